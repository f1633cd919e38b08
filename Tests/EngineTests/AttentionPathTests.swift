import CKernels
import XCTest
@testable import KVStashEngine

/// `CausalAttention` on many query rows, through BLAS and through the BLAS-free blocks of
/// stacked rows (the prefill path on AVX-512; forced here on any CPU), against a naive
/// double-precision causal attention, with and without a sliding window, from position 0 and
/// after cached positions.
final class AttentionPathTests: XCTestCase {
    var rng = SplitMix64(seed: 92)

    func testBothPrefillPathsEqualNaiveAttention() {
        // (heads, kvHeads, headDim, window, new rows, cached positions): a group of 3 (80 rows
        // per block, so 100 rows leave a partial block), a group of 4 with a window that cuts
        // into every block, one query head per KV head, and head dimension 256.
        let cases: [(Int, Int, Int, Int?, Int, Int)] = [
            (9, 3, 64, nil, 100, 0), (9, 3, 64, nil, 70, 150), (4, 1, 64, 40, 130, 20), (2, 2, 32, 7, 33, 0),
            (4, 1, 256, nil, 61, 5),
        ]
        for (heads, kvHeads, hd, window, n, start) in cases {
            let ldq = heads * hd, kvDim = kvHeads * hd, positions = start + n
            let q = (0..<(n * ldq)).map { _ in rng.uniform(1) }
            let k = (0..<(positions * kvDim)).map { _ in Float16(rng.uniform(1)) }
            let v = (0..<(positions * kvDim)).map { _ in Float16(rng.uniform(1)) }
            let scale = 1 / Float(hd).squareRoot()
            var outs: [[Float]] = []
            for blocked in [false, true] {
                var attention = CausalAttention(heads: heads, kvHeads: kvHeads, headDim: hd, scale: scale, window: window)
                attention.prefillWithoutBLAS = blocked
                var out = [Float](repeating: .nan, count: n * ldq)
                q.withUnsafeBufferPointer { qp in
                    k.map(\.bitPattern).withUnsafeBufferPointer { kp in
                        v.map(\.bitPattern).withUnsafeBufferPointer { vp in
                            out.withUnsafeMutableBufferPointer { op in
                                attention(q: qp.baseAddress!, ldq: ldq, n: n, start: start, keys: kp.baseAddress!,
                                          values: vp.baseAddress!, out: op.baseAddress!, ldo: ldq)
                            }
                        }
                    }
                }
                outs.append(out)
            }
            let group = heads / kvHeads
            for r in 0..<n {
                let position = start + r, first = window.map { max(0, position - $0 + 1) } ?? 0
                for h in 0..<heads {
                    let g = h / group
                    let scores = (first...position).map { p in
                        (0..<hd).reduce(0.0) { $0 + Double(q[r * ldq + h * hd + $1]) * Double(k[p * kvDim + g * hd + $1]) }
                            * Double(scale)
                    }
                    let top = scores.max()!, weights = scores.map { exp($0 - top) }, total = weights.reduce(0, +)
                    for c in 0..<hd {
                        let expected = zip(first...position, weights).reduce(0.0) {
                            $0 + $1.1 * Double(v[$1.0 * kvDim + g * hd + c])
                        } / total
                        for (path, out) in zip(["BLAS", "blocked"], outs) {
                            XCTAssertEqual(Double(out[r * ldq + h * hd + c]), expected, accuracy: 1e-5,
                                           "\(path): heads \(heads)/\(kvHeads) d \(hd) window \(String(describing: window)) row \(r) head \(h) col \(c)")
                        }
                    }
                }
            }
        }
    }
}
