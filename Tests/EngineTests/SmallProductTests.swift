import CKernels
import Foundation
@testable import KVStashEngine
import XCTest

/// The BLAS-free kernels of small prefills and decode (`kv_matvec`, `kv_matmul_rows`,
/// `kv_attend_partial` with `kv_attend_merge`) against naive double-precision loops written here, over awkward
/// sizes: row counts that are not multiples of the register tiles, odd output counts,
/// strides wider than the rows, and every GGUF weight type the engine reads.
final class SmallProductTests: XCTestCase {
    var rng = SplitMix64(seed: 42)

    func gaussian() -> Float {
        let u = Double(rng.next() % 1_000_000 + 1) / 1_000_001, v = Double(rng.next() % 1_000_000) / 1_000_000
        return Float((-2 * log(u)).squareRoot() * cos(2 * .pi * v))
    }

    private func f16(_ x: Float) -> [UInt8] {
        let bits = Float16(x).bitPattern
        return [UInt8(bits & 0xFF), UInt8(bits >> 8)]
    }

    /// Random weights of `rows x cols` encoded as GGUF `type`, and their f32 values as the
    /// engine's own dequantizer reads them (the product must equal W·x for those values).
    private func encodedWeights(type: Int32, rows: Int, cols: Int) -> (raw: [UInt8], dense: [Float]) {
        var raw: [UInt8] = []
        for _ in 0..<(rows * cols / 32) {
            switch type {
            case 0: for _ in 0..<32 { raw += withUnsafeBytes(of: gaussian().bitPattern.littleEndian, Array.init) }
            case 1: for _ in 0..<32 { raw += f16(gaussian()) }
            case 2: raw += f16(0.05 + abs(gaussian()) * 0.1); raw += (0..<16).map { _ in UInt8(rng.next() & 0xFF) }
            case 3:
                raw += f16(0.05 + abs(gaussian()) * 0.1) + f16(gaussian())
                raw += (0..<16).map { _ in UInt8(rng.next() & 0xFF) }
            default: raw += f16(0.01 + abs(gaussian()) * 0.02); raw += (0..<32).map { _ in UInt8(rng.next() & 0xFF) }
            }
        }
        var dense = [Float](repeating: 0, count: rows * cols)
        raw.withUnsafeBytes { r in
            dense.withUnsafeMutableBufferPointer { d in
                let p = r.baseAddress!, out = d.baseAddress!, n = rows * cols
                switch type {
                case 0: out.update(from: p.assumingMemoryBound(to: Float.self), count: n)
                case 1: kv_dequant_f16(p.assumingMemoryBound(to: UInt16.self), out, n)
                case 2: kv_dequant_q4_0(p, out, n)
                case 3: kv_dequant_q4_1(p, out, n)
                default: kv_dequant_q8_0(p, out, n)
                }
            }
        }
        return (raw, dense)
    }

    /// `y` (m rows, ldy apart) equals `before` (when accumulating) plus W·x in double
    /// precision, and the columns past `rows` are untouched.
    func checkProduct(_ y: [Float], before: [Float], w: [Float], x: [Float], m: Int, rows: Int, cols: Int,
                              ldx: Int, ldy: Int, accumulate: Bool, _ label: String) {
        for r in 0..<m {
            for o in 0..<rows {
                var expected = accumulate ? Double(before[r * ldy + o]) : 0
                for k in 0..<cols { expected += Double(w[o * cols + k]) * Double(x[r * ldx + k]) }
                XCTAssertEqual(Double(y[r * ldy + o]), expected, accuracy: 1e-4 * max(1, abs(expected)),
                               "\(label) at (\(r), \(o))")
            }
            for o in rows..<ldy { XCTAssertEqual(y[r * ldy + o], before[r * ldy + o], "\(label): column \(o) past rows") }
        }
    }

    func testEncodedProductEqualsNaiveProductForEveryTypeAndShape() {
        for type: Int32 in [0, 1, 2, 3, 8] {
            for (m, rows, cols) in [(2, 1, 32), (3, 5, 64), (7, 33, 96), (8, 16, 64), (9, 64, 32), (16, 31, 576),
                                      (17, 13, 64), (32, 25, 96), (33, 3, 32)] {
                let (raw, w) = encodedWeights(type: type, rows: rows, cols: cols)
                let ldx = cols + 3, ldy = rows + 5
                let x = (0..<(m * ldx)).map { _ in gaussian() }
                let before = (0..<(m * ldy)).map { _ in gaussian() }
                for accumulate: Int32 in [0, 1] {
                    var y = before
                    let status = raw.withUnsafeBytes { r in
                        kv_matmul_rows(type, r.baseAddress!, x, ldx, &y, ldy, m, rows, cols, accumulate)
                    }
                    XCTAssertEqual(status, 0)
                    checkProduct(y, before: before, w: w, x: x, m: m, rows: rows, cols: cols, ldx: ldx, ldy: ldy,
                                 accumulate: accumulate == 1, "type \(type) m \(m) rows \(rows) cols \(cols)")
                }
            }
        }
        var y = [Float](repeating: 0, count: 4)
        XCTAssertEqual(kv_matmul_rows(3, [UInt8](repeating: 0, count: 40), [Float](repeating: 0, count: 40), 40, &y, 4, 1, 1, 40, 0),
                       -1, "columns must be a multiple of 32")
    }

    /// The interleaved Q4_1 and Q8_0 kernel of small prefills: against the naive product for
    /// every input count it takes (whole and partial passes of its tiles), with strides and both
    /// accumulate modes, and bit for bit against `kv_matmul_rows` where that takes the
    /// same arithmetic (9...32 rows). Types and shapes it cannot take are refused.
    func testInterleavedProductEqualsNaiveProduct() {
        let rows = 64, cols = 96
        for type: Int32 in [3, 8] {
            let (raw, w) = encodedWeights(type: type, rows: rows, cols: cols)
            var grouped = [UInt8](repeating: 0, count: raw.count)
            kv_qdot_interleave(type, raw, &grouped, rows, cols)
            XCTAssertNotEqual(grouped, raw)
            for m in [1, 2, 5, 8, 9, 16, 17, 23, 32] {
                let ldx = cols + 3, ldy = rows + 5
                let x = (0..<(m * ldx)).map { _ in gaussian() }
                let before = (0..<(m * ldy)).map { _ in gaussian() }
                for accumulate: Int32 in [0, 1] {
                    var y = before, reference = before
                    XCTAssertEqual(kv_matmul_interleaved(type, grouped, x, ldx, &y, ldy, m, rows, cols, accumulate), 0)
                    XCTAssertEqual(kv_matmul_rows(type, raw, x, ldx, &reference, ldy, m, rows, cols, accumulate), 0)
                    checkProduct(y, before: before, w: w, x: x, m: m, rows: rows, cols: cols, ldx: ldx, ldy: ldy,
                                 accumulate: accumulate == 1, "type \(type) interleaved m \(m)")
                    if m > 8 { XCTAssertEqual(y, reference, "type \(type) m \(m): same sums as kv_matmul_rows") }
                }
            }
            var y = [Float](repeating: 0, count: 64 * 40)
            XCTAssertEqual(kv_matmul_interleaved(type, grouped, [Float](repeating: 0, count: 33 * cols), cols, &y, rows, 33, rows,
                                                 cols, 0), -1, "at most 32 input rows")
            XCTAssertEqual(kv_matmul_interleaved(type, grouped, [Float](repeating: 0, count: cols), cols, &y, 40, 1, 40, cols, 0),
                           -1, "rows must be a multiple of 32")
        }
        var y = [Float](repeating: 0, count: 32)
        XCTAssertEqual(kv_matmul_interleaved(2, [UInt8](repeating: 0, count: 576), [Float](repeating: 0, count: 32), 32, &y, 32,
                                             1, 32, 32, 0), -1, "no interleaved layout for Q4_0")
    }

    /// `kv_matmul_rows`' wide (AVX-512) and narrow (AVX2) register tiles for 9...32 inputs
    /// give the same bits on any CPU, for every row count around both tiles' sizes.
    func testMatmulTilesGiveTheSameBits() {
        defer { kv_matmul_set_tiles(-1) }
        for type: Int32 in [0, 3, 8] {
            for (m, rows) in [(9, 40), (16, 17), (17, 31), (24, 13), (32, 7)] {
                let cols = 96
                let (raw, _) = encodedWeights(type: type, rows: rows, cols: cols)
                let x = (0..<(m * cols)).map { _ in gaussian() }
                var wide = [Float](repeating: 0, count: m * rows), narrow = wide
                kv_matmul_set_tiles(1)
                XCTAssertEqual(kv_matmul_rows(type, raw, x, cols, &wide, rows, m, rows, cols, 0), 0)
                kv_matmul_set_tiles(0)
                XCTAssertEqual(kv_matmul_rows(type, raw, x, cols, &narrow, rows, m, rows, cols, 0), 0)
                XCTAssertEqual(wide.map(\.bitPattern), narrow.map(\.bitPattern), "type \(type) m \(m) rows \(rows)")
            }
        }
    }

    /// One input row (decode): `kv_matvec` for every type, with row counts around its
    /// four-row groups.
    func testMatrixVectorProductEqualsNaiveProductForEveryType() {
        for type: Int32 in [0, 1, 2, 3, 8] {
            for (rows, cols) in [(1, 32), (4, 64), (7, 96), (13, 576)] {
                let (raw, w) = encodedWeights(type: type, rows: rows, cols: cols)
                let x = (0..<cols).map { _ in gaussian() }
                let before = (0..<rows).map { _ in gaussian() }
                for accumulate: Int32 in [0, 1] {
                    var y = before
                    let status = raw.withUnsafeBytes { kv_matvec(type, $0.baseAddress!, x, &y, rows, cols, accumulate) }
                    XCTAssertEqual(status, 0)
                    for o in 0..<rows {
                        var expected = accumulate == 1 ? Double(before[o]) : 0
                        for k in 0..<cols { expected += Double(w[o * cols + k]) * Double(x[k]) }
                        XCTAssertEqual(Double(y[o]), expected, accuracy: 1e-4 * max(1, abs(expected)),
                                       "type \(type) rows \(rows) cols \(cols) row \(o)")
                    }
                }
            }
        }
    }

    /// `kv_quantize_q8`: codes in [-127, 127], each within half a step of its input, the
    /// largest magnitude of a block at 127, s = d * sum(q), and an all-zero block all zero.
    func testInputQuantizationRoundsEveryBlockToItsScale() {
        let cols = 128
        var x = (0..<cols).map { i in gaussian() * (i % 5 == 0 ? 40 : 1) }
        for k in 32..<64 { x[k] = 0 }
        var q = [kv_q8_block](repeating: kv_q8_block(), count: cols / 32)
        kv_quantize_q8(x, &q, cols)
        for b in 0..<(cols / 32) {
            let codes = withUnsafeBytes(of: q[b].q) { $0.map { Int8(bitPattern: $0) } }
            let block = x[(b * 32)..<(b * 32 + 32)], amax = block.map(abs).max()!
            XCTAssertEqual(q[b].d, amax / 127, "block \(b) scale")
            XCTAssertEqual(q[b].s, q[b].d * Float(codes.reduce(0) { $0 + Int($1) }), accuracy: 1e-6 * abs(q[b].s), "block \(b) sum")
            XCTAssertEqual(codes.map { abs(Int($0)) }.max(), amax > 0 ? 127 : 0, "block \(b) largest code")
            for (k, v) in block.enumerated() {
                XCTAssertGreaterThanOrEqual(codes[k], -127)
                XCTAssertLessThanOrEqual(abs(Double(codes[k]) * Double(q[b].d) - Double(v)), Double(q[b].d) * 0.5001 + 1e-30,
                                         "block \(b) element \(k)")
            }
        }
    }

    /// One input row on 8-bit activations (`kv_matvec_qdot`, and the plain C path it takes
    /// without AVX2): equal to the naive double-precision product of the dequantized
    /// weights and the dequantized input codes up to float rounding, within the quantization
    /// bound (sum of |w| times half a step per block) of the f32 product, the two paths
    /// bit for bit equal; other types and shapes are refused.
    func testIntegerDecodeProductEqualsNaiveProductOnQuantizedInput() {
        for type: Int32 in [3, 8] {
            for (rows, cols) in [(32, 32), (64, 96), (96, 576), (32, 1536)] {
                let (raw, w) = encodedWeights(type: type, rows: rows, cols: cols)
                var laid = [UInt8](repeating: 0, count: raw.count)
                kv_qdot_interleave(type, raw, &laid, rows, cols)
                XCTAssertNotEqual(laid, raw)
                let x = (0..<cols).map { k in gaussian() * (k % 7 == 0 ? 8 : 1) }
                var q = [kv_q8_block](repeating: kv_q8_block(), count: cols / 32)
                kv_quantize_q8(x, &q, cols)
                let xq = (0..<cols).map { k in
                    Double(q[k / 32].d) * Double(withUnsafeBytes(of: q[k / 32].q) { $0.load(fromByteOffset: k % 32, as: Int8.self) })
                }
                let before = (0..<rows).map { _ in gaussian() }
                for accumulate: Int32 in [0, 1] {
                    var y = before, portable = before
                    XCTAssertEqual(kv_matvec_qdot(type, laid, q, &y, rows, cols, accumulate), 0)
                    XCTAssertEqual(kv_matvec_qdot_portable(type, laid, q, &portable, rows, cols, accumulate), 0)
                    XCTAssertEqual(y, portable, "type \(type): the AVX2 and plain C paths differ")
                    for o in 0..<rows {
                        let base = accumulate == 1 ? Double(before[o]) : 0
                        var onCodes = base, exact = base, magnitude = abs(base), bound = 0.0
                        for k in 0..<cols {
                            let wk = Double(w[o * cols + k])
                            onCodes += wk * xq[k]
                            exact += wk * Double(x[k])
                            magnitude += abs(wk * xq[k])
                            bound += abs(wk) * Double(q[k / 32].d) / 2
                        }
                        let label = "type \(type) rows \(rows) cols \(cols) row \(o)"
                        XCTAssertEqual(Double(y[o]), onCodes, accuracy: 1e-6 * max(1, magnitude), label)
                        XCTAssertEqual(Double(y[o]), exact, accuracy: bound + 1e-6 * max(1, magnitude), label)
                    }
                }
            }
        }
        var y = [Float](repeating: 0, count: 64)
        let q = [kv_q8_block](repeating: kv_q8_block(), count: 2)
        XCTAssertEqual(kv_matvec_qdot(3, [UInt8](repeating: 0, count: 40 * 40), q, &y, 40, 32, 0), -1, "rows must be a multiple of 32")
        XCTAssertEqual(kv_matvec_qdot(8, [UInt8](repeating: 0, count: 64 * 34), q, &y, 32, 48, 0), -1, "cols must be a multiple of 32")
        XCTAssertEqual(kv_matvec_qdot(2, [UInt8](repeating: 0, count: 32 * 18), q, &y, 32, 32, 0), -1, "Q4_0 has no integer layout")
        XCTAssertEqual(kv_matvec_qdot_portable(2, [UInt8](repeating: 0, count: 32 * 18), q, &y, 32, 32, 0), -1)
    }

    /// The largest integer sums a block can hold (Q8_0 codes -128 against input codes of
    /// ±32767, Q4_1 nibbles 15) come out exact on every path: the naive product in doubles.
    func testSixteenBitInputProductAtTheExtremes() {
        let rows = 32, cols = 64
        for type: Int32 in [3, 8] {
            for sign: Int16 in [1, -1] {
                var raw: [UInt8] = []
                for _ in 0..<(rows * cols / 32) {
                    if type == 8 { raw += f16(1) + [UInt8](repeating: 0x80, count: 32) }
                    else { raw += f16(1) + f16(0) + [UInt8](repeating: 0xFF, count: 16) }
                }
                var laid = [UInt8](repeating: 0, count: raw.count)
                kv_qdot_interleave(type, raw, &laid, rows, cols)
                var block = kv_q16_block()
                block.d = 1
                withUnsafeMutableBytes(of: &block.q) { q in
                    for k in 0..<32 { q.storeBytes(of: (k % 3 == 0 ? -sign : sign) * 32767, toByteOffset: 2 * k, as: Int16.self) }
                }
                block.s = Float((0..<32).reduce(0) { $0 + Int(($1 % 3 == 0 ? -sign : sign)) * 32767 })
                let x = [block, block]
                let weight = type == 8 ? -128.0 : 15.0
                let expected = Float(2 * weight * Double(block.s))
                var portable = [Float](repeating: 0, count: rows)
                XCTAssertEqual(kv_matvec_q16dot_portable(type, laid, x, &portable, rows, cols, 0), 0)
                XCTAssertEqual(portable, [Float](repeating: expected, count: rows))
                for path in [KV_GEMM_Q16_VNNI, KV_GEMM_Q16_AVX2] {
                    kv_gemm_q16_set_path(path)
                    defer { kv_gemm_q16_set_path(-1) }
                    var y = [Float](repeating: 0, count: rows)
                    XCTAssertEqual(kv_matvec_q16dot(type, laid, x, &y, rows, cols, 0), 0)
                    XCTAssertEqual(y, portable, "type \(type), path \(kv_gemm_q16_path())")
                }
            }
        }
    }

    /// Q4_1 and Q8_0 against 16-bit input codes (`kv_quantize_q16`, `kv_matvec_q16dot` and
    /// its plain C path): codes within half a step of the input, s = d * sum(q), the product
    /// equal to the naive double-precision product on the dequantized codes up to float
    /// rounding and within 1e-4 of the f32 product, both paths bit for bit equal; other
    /// types and shapes are refused.
    func testSixteenBitInputProductEqualsNaiveProduct() {
        var ys = [Float](repeating: 0, count: 64)
        for type: Int32 in [3, 8] {
        for (rows, cols) in [(32, 32), (96, 576), (32, 1536)] {
            let (raw, w) = encodedWeights(type: type, rows: rows, cols: cols)
            var laid = [UInt8](repeating: 0, count: raw.count)
            kv_qdot_interleave(type, raw, &laid, rows, cols)
            let x = (0..<cols).map { k in gaussian() * (k % 7 == 0 ? 50 : 1) }
            var q = [kv_q16_block](repeating: kv_q16_block(), count: cols / 32)
            kv_quantize_q16(x, &q, cols)
            let xq = (0..<cols).map { k in
                Double(q[k / 32].d) * Double(withUnsafeBytes(of: q[k / 32].q) { $0.load(fromByteOffset: 2 * (k % 32), as: Int16.self) })
            }
            for k in 0..<cols { XCTAssertEqual(xq[k], Double(x[k]), accuracy: Double(q[k / 32].d) * 0.51, "16-bit code \(k)") }
            for b in q {
                let sum = withUnsafeBytes(of: b.q) { r in (0..<32).reduce(0) { $0 + Int(r.load(fromByteOffset: 2 * $1, as: Int16.self)) } }
                XCTAssertEqual(b.s, b.d * Float(sum), accuracy: 1e-6 * abs(b.s))
            }
            let before = (0..<rows).map { _ in gaussian() }
            for accumulate: Int32 in [0, 1] {
                var y = before, portable = before
                XCTAssertEqual(kv_matvec_q16dot_portable(type, laid, q, &portable, rows, cols, accumulate), 0)
                // Every vector path the CPU runs (VNNI, AVX2; kv_gemm_q16_set_path caps them)
                // gives the plain C path's bits.
                for path in [KV_GEMM_Q16_VNNI, KV_GEMM_Q16_AVX2] {
                    kv_gemm_q16_set_path(path)
                    defer { kv_gemm_q16_set_path(-1) }
                    y = before
                    XCTAssertEqual(kv_matvec_q16dot(type, laid, q, &y, rows, cols, accumulate), 0)
                    XCTAssertEqual(y, portable, "16-bit input: path \(kv_gemm_q16_path()) and plain C differ")
                }
                for o in 0..<rows {
                    var onCodes = accumulate == 1 ? Double(before[o]) : 0, exact = onCodes, magnitude = abs(onCodes)
                    for k in 0..<cols {
                        onCodes += Double(w[o * cols + k]) * xq[k]
                        exact += Double(w[o * cols + k]) * Double(x[k])
                        magnitude += abs(Double(w[o * cols + k]) * xq[k])
                    }
                    let label = "16-bit input, type \(type) rows \(rows) row \(o)"
                    XCTAssertEqual(Double(y[o]), onCodes, accuracy: 1e-6 * max(1, magnitude), label)
                    XCTAssertEqual(Double(y[o]), exact, accuracy: 1e-4 * max(1, magnitude), label)
                }
            }
        }
        }
        let q = [kv_q16_block](repeating: kv_q16_block(), count: 2)
        XCTAssertEqual(kv_matvec_q16dot(8, [UInt8](repeating: 0, count: 64 * 34), q, &ys, 32, 48, 0), -1, "cols must be a multiple of 32")
        XCTAssertEqual(kv_matvec_q16dot(2, [UInt8](repeating: 0, count: 32 * 18), q, &ys, 32, 32, 0), -1, "Q4_0 has no integer layout")
        XCTAssertEqual(kv_matvec_q16dot_portable(2, [UInt8](repeating: 0, count: 32 * 18), q, &ys, 32, 32, 0), -1)
    }

    /// The MLP's `act(gate) * up` against double precision, for SiLU and for GELU (tanh
    /// approximation, as ggml): both signs, arguments far past exp's range (±100), zeros,
    /// whole vectors and a partial last one per row, and the columns past `n` untouched.
    func testGatedActivationsEqualDoublePrecision() {
        let gelu = { (x: Double) in 0.5 * x * (1 + tanh((2 / Double.pi).squareRoot() * x * (1 + 0.044715 * x * x))) }
        let cases: [(String, (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int, Int, Int) -> Void, (Double) -> Double)] = [
            ("silu", { kv_silu_mul($0, $1, $2, $3, $4) }, { $0 / (1 + exp(-$0)) }),
            ("gelu", { kv_gelu_mul($0, $1, $2, $3, $4) }, gelu),
        ]
        for (name, kernel, act) in cases {
            let rows = 3, n = 37, ld = 41
            var gate = (0..<(rows * ld)).map { _ in gaussian() * 6 }
            gate[0] = 0; gate[1] = 100; gate[2] = -100; gate[3] = 88; gate[4] = -88; gate[5] = 30; gate[n - 1] = -0.0
            let up = (0..<(rows * ld)).map { _ in gaussian() }
            let before = gate
            kernel(&gate, up, rows, n, ld)
            for r in 0..<rows {
                for c in 0..<ld {
                    let i = r * ld + c, x = Double(before[i])
                    guard c < n else { XCTAssertEqual(gate[i], before[i], "column \(c) past n"); continue }
                    let expected = act(x) * Double(up[i])
                    XCTAssertEqual(Double(gate[i]), expected, accuracy: 2e-6 * max(1, abs(expected)), "\(name) row \(r) col \(c) x \(x)")
                }
            }
        }
    }

    /// The BLAS path's causal softmax: row r keeps its first `valid0 + r` entries (whole
    /// vectors and a partial last one), normalized in double precision here; the rest is 0.
    func testCausalSoftmaxEqualsNaiveSoftmax() {
        let rows = 5, cols = 40, ld = 43, valid0 = 14
        let scores = (0..<(rows * ld)).map { _ in gaussian() * 4 }
        var s = scores
        kv_softmax_causal(&s, rows, cols, ld, valid0)
        for r in 0..<rows {
            let valid = min(cols, valid0 + r)
            let row = (0..<valid).map { Double(scores[r * ld + $0]) }
            let top = row.max()!, total = row.reduce(0) { $0 + exp($1 - top) }
            for c in 0..<cols {
                let expected = c < valid ? exp(row[c] - top) / total : 0
                XCTAssertEqual(Double(s[r * ld + c]), expected, accuracy: 1e-6, "row \(r) col \(c)")
            }
            for c in cols..<ld { XCTAssertEqual(s[r * ld + c], scores[r * ld + c], "padding untouched") }
        }
    }

    /// QK-norm: every head slice of every row RMS-normed with the same weights, in place,
    /// the rest of the row untouched.
    func testHeadRMSNormEqualsDoublePrecision() {
        let rows = 3, heads = 2, hd = 24, ld = heads * hd + 5
        let x0 = (0..<(rows * ld)).map { _ in gaussian() * 3 }, w = (0..<hd).map { _ in 1 + gaussian() * 0.2 }
        var x = x0
        kv_rmsnorm_heads(&x, ld, rows, heads, hd, w, 1e-6)
        for r in 0..<rows {
            for h in 0..<heads {
                let s = (0..<hd).map { Double(x0[r * ld + h * hd + $0]) }
                let inv = 1 / (s.reduce(0) { $0 + $1 * $1 } / Double(hd) + 1e-6).squareRoot()
                for c in 0..<hd {
                    XCTAssertEqual(Double(x[r * ld + h * hd + c]), s[c] * inv * Double(w[c]), accuracy: 1e-5)
                }
            }
            for c in (heads * hd)..<ld { XCTAssertEqual(x[r * ld + c], x0[r * ld + c]) }
        }
    }

    /// The sliding-window softmax: row r keeps entries [first0 + r, valid0 + r) (clipped),
    /// normalized; the rest of `cols` is 0 and the padding is untouched.
    func testBandSoftmaxEqualsNaiveSoftmax() {
        let rows = 6, cols = 40, ld = 43
        for (valid0, first0) in [(14, -3), (20, 2), (35, 18), (1, -6)] {
            let scores = (0..<(rows * ld)).map { _ in gaussian() * 4 }
            var s = scores
            kv_softmax_band(&s, rows, cols, ld, valid0, first0)
            for r in 0..<rows {
                let hi = min(cols, valid0 + r), lo = max(0, first0 + r)
                let row = (lo..<hi).map { Double(scores[r * ld + $0]) }
                let top = row.max()!, total = row.reduce(0) { $0 + exp($1 - top) }
                for c in 0..<cols {
                    let expected = (lo..<hi).contains(c) ? exp(row[c - lo] - top) / total : 0
                    XCTAssertEqual(Double(s[r * ld + c]), expected, accuracy: 1e-6, "row \(r) col \(c)")
                }
                for c in cols..<ld { XCTAssertEqual(s[r * ld + c], scores[r * ld + c], "padding untouched") }
            }
        }
    }

    /// `kv_attend_partial` over `keys` cut into `ranges` parts (`qt` as the kernel takes it, m
    /// lanes of d), merged by `kv_attend_merge`: the attention output `[m][d]`. Runs with the
    /// narrow (AVX2) and the wide (AVX-512) register tiles, which must give the same bits.
    func attendInRanges(_ qt: [Float], m: Int, d: Int, k: [UInt16], v: [UInt16], ld: Int, keys: Range<Int>,
                        ranges: Int, last: [Int32], first: [Int32]? = nil) -> [Float] {
        defer { kv_attend_set_tiles(-1) }
        let outputs = [0, 1].map { wide in
            kv_attend_set_tiles(Int32(wide))
            return attendOnce(qt, m: m, d: d, k: k, v: v, ld: ld, keys: keys, ranges: ranges, last: last, first: first)
        }
        XCTAssertEqual(outputs[0].map(\.bitPattern), outputs[1].map(\.bitPattern), "narrow and wide tiles differ (m \(m), d \(d))")
        return outputs[1]
    }

    private func attendOnce(_ qt: [Float], m: Int, d: Int, k: [UInt16], v: [UInt16], ld: Int, keys: Range<Int>,
                            ranges: Int, last: [Int32], first: [Int32]?) -> [Float] {
        let mp = (m + 15) / 16 * 16, n = keys.upperBound, length = (keys.count + ranges - 1) / ranges
        var o = [Float](repeating: .nan, count: ranges * m * d)
        var mx = [Float](repeating: .nan, count: ranges * mp), sum = mx
        var scratch = [Float](repeating: .nan, count: (Int(KV_ATTEND_BLOCK) + d + 2) * mp)  // KV_ATTEND_SCRATCH
        for part in 0..<ranges {
            let p0 = min(n, keys.lowerBound + part * length), p1 = min(n, p0 + length)
            o.withUnsafeMutableBufferPointer { ob in
                mx.withUnsafeMutableBufferPointer { mb in
                    sum.withUnsafeMutableBufferPointer { sb in
                        kv_attend_partial(qt, m, mp, d, k, v, ld, p0, p1, CausalAttention.segmentKeys(headDim: d), last,
                                          first, &scratch,
                                          ob.baseAddress! + part * m * d, mb.baseAddress! + part * mp,
                                          sb.baseAddress! + part * mp)
                    }
                }
            }
        }
        var out = [Float](repeating: .nan, count: m * d)
        kv_attend_merge(ranges, m, mp, d, o, mx, sum, &out)
        return out
    }

    /// The BLAS-free attention with a first visible key per lane (a sliding window) equals
    /// naive attention over keys first...last: windows that start inside a block, ranges
    /// some lanes see nothing of, and lanes with different windows in one vector.
    func testWindowedBlockedAttentionEqualsNaiveAttention() {
        for (m, n, d, ranges, window) in [(4, 700, 64, 3, 100), (20, 600, 64, 2, 257), (1, 300, 256, 2, 512), (33, 90, 32, 1, 7)] {
            let mp = (m + 15) / 16 * 16, ld = d + 16
            let q = (0..<(m * d)).map { _ in gaussian() }
            let k = (0..<(n * ld)).map { _ in Float16(gaussian()) }, kBits = k.map(\.bitPattern)
            let v = (0..<(n * ld)).map { _ in Float16(gaussian()) }, vBits = v.map(\.bitPattern)
            let last = (0..<mp).map { Int32(max(0, n - 1 - (min($0, m - 1) % 5))) }
            let first = last.map { Int32(max(0, Int($0) - window + 1)) }
            var qt = [Float](repeating: 0, count: d * mp)
            for t in 0..<m { for c in 0..<d { qt[c * mp + t] = q[t * d + c] } }
            let out = attendInRanges(qt, m: m, d: d, k: kBits, v: vBits, ld: ld, keys: Int(first.min()!)..<n,
                                     ranges: ranges, last: last, first: first)
            for t in 0..<m {
                let keys = Int(first[t])...Int(last[t])
                let scores = keys.map { p in (0..<d).reduce(0.0) { $0 + Double(q[t * d + $1]) * Double(k[p * ld + $1]) } }
                let top = scores.max()!
                let weights = scores.map { exp($0 - top) }, total = weights.reduce(0, +)
                for c in 0..<d {
                    let expected = zip(keys, weights).reduce(0.0) { $0 + $1.1 * Double(v[$1.0 * ld + c]) } / total
                    XCTAssertEqual(Double(out[t * d + c]), expected, accuracy: 1e-5,
                                   "m \(m) n \(n) d \(d) window \(window) at (\(t), \(c))")
                }
            }
        }
    }

    /// Partial states over key ranges of an f16 K and V, merged, equal a naive causal softmax
    /// attention in double precision over the same f16 values: lane counts that are not multiples of 16, ranges that end inside a
    /// block, a range no lane sees, and lanes whose last visible key falls inside a block.
    func testBlockedAttentionEqualsNaiveAttention() {
        for (m, n, d, ranges) in [(1, 1, 16, 1), (3, 17, 64, 2), (4, 70, 64, 2), (2, 9, 256, 1), (48, 700, 64, 3), (20, 300, 80, 4), (33, 600, 64, 1), (9, 40, 128, 1)] {
            let mp = (m + 15) / 16 * 16, ld = 3 * d + 16
            let q = (0..<(m * d)).map { _ in gaussian() }
            let k = (0..<(n * ld)).map { _ in Float16(gaussian()) }, kBits = k.map(\.bitPattern)
            let v = (0..<(n * ld)).map { _ in Float16(gaussian()) }, vBits = v.map(\.bitPattern)
            // Lane t sees keys 0...last[t]: the last few lanes end inside the final block.
            let last = (0..<mp).map { Int32(max(0, n - 1 - (min($0, m - 1) % 5))) }
            var qt = [Float](repeating: 0, count: d * mp)
            for t in 0..<m { for c in 0..<d { qt[c * mp + t] = q[t * d + c] / Float(d).squareRoot() } }
            let out = attendInRanges(qt, m: m, d: d, k: kBits, v: vBits, ld: ld, keys: 0..<n, ranges: ranges, last: last)
            for t in 0..<m {
                let visible = Int(last[t]) + 1
                let scores = (0..<visible).map { p in
                    (0..<d).reduce(0.0) { $0 + Double(q[t * d + $1]) * Double(k[p * ld + $1]) } / Double(d).squareRoot()
                }
                let top = scores.max()!
                let weights = scores.map { exp($0 - top) }, total = weights.reduce(0, +)
                for c in 0..<d {
                    let expected = (0..<visible).reduce(0.0) { $0 + weights[$1] * Double(v[$1 * ld + c]) } / total
                    XCTAssertEqual(Double(out[t * d + c]), expected, accuracy: 1e-5,
                                   "m \(m) n \(n) d \(d) ranges \(ranges) at (\(t), \(c))")
                }
            }
        }
        // A row that sees no key of any range gets zeros, not NaN.
        var out = [Float](repeating: .nan, count: 16)
        kv_attend_merge(1, 1, 16, 16, [Float](repeating: 0, count: 16), [Float](repeating: -.infinity, count: 16),
                        [Float](repeating: 0, count: 16), &out)
        XCTAssertEqual(out, [Float](repeating: 0, count: 16))
    }
}
