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
        check([(9, 3, 64, nil, 100, 0), (9, 3, 64, nil, 70, 150), (4, 1, 64, 40, 130, 20), (2, 2, 32, 7, 33, 0),
               (4, 1, 256, nil, 61, 5)])
    }

    /// A few rows after a long cache (a hit's question, a decode step): key ranges on parallel
    /// tasks, merged. Gemma 3's shape: a question of 9 rows against a 512-key window and
    /// against 1,500 keys, a decode row against both; SmolLM2's groups of 3.
    func testSmallRowPathEqualsNaiveAttention() {
        check([(4, 1, 256, 512, 9, 900), (4, 1, 256, nil, 9, 1500), (4, 1, 256, 512, 1, 900),
               (4, 1, 256, nil, 1, 1500), (9, 3, 64, nil, 9, 1200), (9, 3, 64, 100, 3, 700)])
    }

    /// Ranges spread work over every core once there is enough of it, in whole rounds.
    func testKeyRangesFollowTheWork() {
        // A decode row of Gemma 3 against its 512-key window: one task.
        XCTAssertEqual(CausalAttention.keyRanges(keys: 513, stackedRows: 16, kvHeads: 1, cores: 2), 1)
        // A question of 9 rows (36 stacked, 48 lanes) against the window: both cores, 2 tasks each.
        XCTAssertEqual(CausalAttention.keyRanges(keys: 520, stackedRows: 48, kvHeads: 1, cores: 2), 4)
        // Three KV heads: two ranges each make six tasks, three per core.
        XCTAssertEqual(CausalAttention.keyRanges(keys: 3539, stackedRows: 32, kvHeads: 3, cores: 2), 2)
        // Little work on many cores: as many ranges as it fills, rounded to whole rounds.
        XCTAssertEqual(CausalAttention.keyRanges(keys: 1600, stackedRows: 16, kvHeads: 1, cores: 4), 4)
        XCTAssertEqual(CausalAttention.keyRanges(keys: 100, stackedRows: 16, kvHeads: 1, cores: 8), 1)
    }

    /// Runs each case through BLAS and through the BLAS-free kernel and compares both with a
    /// naive double-precision attention.
    private func check(_ cases: [(Int, Int, Int, Int?, Int, Int)]) {
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
                        for (path, out) in zip(["prefillWithoutBLAS false", "prefillWithoutBLAS true"], outs) {
                            XCTAssertEqual(Double(out[r * ldq + h * hd + c]), expected, accuracy: 1e-5,
                                           "\(path): heads \(heads)/\(kvHeads) d \(hd) window \(String(describing: window)) row \(r) head \(h) col \(c)")
                        }
                    }
                }
            }
        }
    }
}
