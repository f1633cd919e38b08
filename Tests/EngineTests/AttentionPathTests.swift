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

    /// With one KV head the blocked path can write its output rows as the 16-bit codes of the
    /// product that reads them: the codes of the f32 rows it writes otherwise, bit for bit
    /// (several blocks of rows, a window). Several KV heads, or a few rows, write f32 rows.
    func testOneKVHeadWritesTheCodesOfItsOutputRows() {
        for (heads, kvHeads, hd, window, n) in [(4, 1, 256, 512, 130), (4, 1, 64, 40, 70), (9, 3, 64, nil, 70),
                                               (4, 1, 256, nil, 9)] as [(Int, Int, Int, Int?, Int)] {
            let ldq = heads * hd, kvDim = kvHeads * hd
            let q = (0..<(n * ldq)).map { _ in rng.uniform(1) }
            let k = (0..<(n * kvDim)).map { _ in Float16(rng.uniform(1)).bitPattern }
            let v = (0..<(n * kvDim)).map { _ in Float16(rng.uniform(1)).bitPattern }
            var attention = CausalAttention(heads: heads, kvHeads: kvHeads, headDim: hd, scale: 0.1, window: window)
            attention.prefillWithoutBLAS = true
            var rows = [Float](repeating: .nan, count: n * ldq), unused = rows
            var codes = [kv_q16_block](repeating: kv_q16_block(), count: n * ldq / 32)
            let plain = attention(q: q, ldq: ldq, n: n, start: 0, keys: k, values: v, out: &rows, ldo: ldq)
            let wrote = attention(q: q, ldq: ldq, n: n, start: 0, keys: k, values: v, out: &unused, ldo: ldq, codes: &codes)
            XCTAssertFalse(plain)
            XCTAssertEqual(wrote, kvHeads == 1 && n > CausalAttention.smallRows, "heads \(heads)/\(kvHeads), \(n) rows")
            guard wrote else { continue }
            var expected = [kv_q16_block](repeating: kv_q16_block(), count: n * ldq / 32)
            for r in 0..<n { kv_quantize_q16(Array(rows[(r * ldq)..<((r + 1) * ldq)]), &expected[r * ldq / 32], ldq) }
            let bytes = { (blocks: [kv_q16_block]) in blocks.withUnsafeBytes { Array($0) } }
            XCTAssertEqual(bytes(codes), bytes(expected), "heads \(heads)/\(kvHeads) d \(hd), \(n) rows")
            XCTAssertTrue(unused.allSatisfy(\.isNaN), "the f32 rows are left alone")
        }
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
                // Rows of every head side by side, then the cache's layout: each head's rows
                // together (`headStride` apart, with room after each as a cache's capacity
                // leaves); both must give the same bits.
                var byLayout: [[Float]] = []
                for headStride in [nil, (positions + 5) * hd] as [Int?] {
                    let (kk, vv) = headStride.map { (headMajor(k, positions, kvHeads, hd, $0), headMajor(v, positions, kvHeads, hd, $0)) }
                        ?? (k.map(\.bitPattern), v.map(\.bitPattern))
                    var out = [Float](repeating: .nan, count: n * ldq)
                    q.withUnsafeBufferPointer { qp in
                        kk.withUnsafeBufferPointer { kp in
                            vv.withUnsafeBufferPointer { vp in
                                out.withUnsafeMutableBufferPointer { op in
                                    attention(q: qp.baseAddress!, ldq: ldq, n: n, start: start, keys: kp.baseAddress!,
                                              values: vp.baseAddress!, headStride: headStride, out: op.baseAddress!, ldo: ldq)
                                }
                            }
                        }
                    }
                    byLayout.append(out)
                }
                XCTAssertEqual(byLayout[1].map(\.bitPattern), byLayout[0].map(\.bitPattern),
                               "head-major operands, blocked \(blocked): heads \(heads)/\(kvHeads) d \(hd)")
                outs.append(byLayout[0])
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

    /// A row's output is the same bits whichever rows share its call: all rows at once (the
    /// prefill's blocks), a few after the others (a hit's question), or one at a time
    /// (decode), with narrow and wide register tiles; keys cross the 256-key blocks and the
    /// segments (256 or 512 keys by head dimension), and a window cuts into them.
    func testRowsDoNotDependOnTheirBatch() {
        for (heads, kvHeads, hd, window, positions) in [(9, 3, 64, nil, 1300), (4, 1, 256, 512, 1300), (4, 1, 64, 100, 700)] as [(Int, Int, Int, Int?, Int)] {
            let ldq = heads * hd, kvDim = kvHeads * hd
            let q = (0..<(positions * ldq)).map { _ in rng.uniform(1) }
            let k = (0..<(positions * kvDim)).map { _ in Float16(rng.uniform(1)).bitPattern }
            let v = (0..<(positions * kvDim)).map { _ in Float16(rng.uniform(1)).bitPattern }
            var attention = CausalAttention(heads: heads, kvHeads: kvHeads, headDim: hd, scale: 1 / Float(hd).squareRoot(),
                                            window: window)
            attention.prefillWithoutBLAS = true  // the BLAS path sums in other orders
            /// Rows `rows` in one call: queries and outputs at their own positions.
            func run(_ rows: Range<Int>, into out: inout [Float]) {
                q.withUnsafeBufferPointer { qp in
                    k.withUnsafeBufferPointer { kp in
                        v.withUnsafeBufferPointer { vp in
                            out.withUnsafeMutableBufferPointer { op in
                                attention(q: qp.baseAddress! + rows.lowerBound * ldq, ldq: ldq, n: rows.count, start: rows.lowerBound,
                                          keys: kp.baseAddress!, values: vp.baseAddress!,
                                          out: op.baseAddress! + rows.lowerBound * ldq, ldo: ldq)
                            }
                        }
                    }
                }
            }
            for wide in [1, 0] {
                kv_attend_set_tiles(Int32(wide))
                defer { kv_attend_set_tiles(-1) }
                var whole = [Float](repeating: .nan, count: positions * ldq)
                run(0..<positions, into: &whole)
                // Splits: a long prefix then the rest in calls of 1, 7, 9 (a hit's question), 32
                // and 33 rows.
                for (cut, step) in [(positions - 5, 1), (positions - 40, 7), (positions - 18, 9), (511, 32), (700, 33),
                                    (257, 600)] {
                    var split = [Float](repeating: .nan, count: positions * ldq)
                    run(0..<cut, into: &split)
                    for r0 in stride(from: cut, to: positions, by: step) { run(r0..<min(positions, r0 + step), into: &split) }
                    XCTAssertTrue(split.map(\.bitPattern) == whole.map(\.bitPattern),
                                  "heads \(heads)/\(kvHeads) d \(hd) window \(String(describing: window)) wide \(wide): cut \(cut) step \(step)")
                }
            }
        }
    }

    /// Rows `[position][kvHeads * hd]` rearranged head-major: head g's rows from `g * headStride`.
    private func headMajor(_ x: [Float16], _ positions: Int, _ kvHeads: Int, _ hd: Int, _ headStride: Int) -> [UInt16] {
        var out = [UInt16](repeating: 0x7E00, count: kvHeads * headStride)  // NaN where no row lies
        for p in 0..<positions {
            for g in 0..<kvHeads {
                for c in 0..<hd { out[g * headStride + p * hd + c] = x[p * kvHeads * hd + g * hd + c].bitPattern }
            }
        }
        return out
    }
}

