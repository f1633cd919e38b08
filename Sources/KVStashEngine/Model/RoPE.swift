import Foundation

/// Cosine and sine tables of rotary position embedding for a run of positions.
///
/// Frequency i of a head is `base^(-2i/nRot)`; the angle at position p is `p * freq`,
/// computed in double precision and rounded once to f32.
struct RopeTable {
    let firstPosition: Int
    let count: Int
    /// `nRot / 2` values per position.
    let half: Int
    let cos: [Float]
    let sin: [Float]

    init(positions: Range<Int>, ropeDims: Int, base: Double) {
        firstPosition = positions.lowerBound
        count = positions.count
        half = ropeDims / 2
        let freqs = (0..<half).map { pow(base, -2.0 * Double($0) / Double(ropeDims)) }
        var c = [Float](repeating: 0, count: count * half)
        var s = [Float](repeating: 0, count: count * half)
        for (r, p) in positions.enumerated() {
            for i in 0..<half {
                let angle = Double(p) * freqs[i]
                c[r * half + i] = Float(Foundation.cos(angle))
                s[r * half + i] = Float(Foundation.sin(angle))
            }
        }
        cos = c
        sin = s
    }

    /// Offset of position `p` in `cos`/`sin`.
    func offset(of p: Int) -> Int {
        precondition(p >= firstPosition && p <= firstPosition + count)
        return (p - firstPosition) * half
    }
}
