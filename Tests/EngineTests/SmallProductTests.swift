import CKernels
import Foundation
import KVStashEngine
import XCTest

/// The BLAS-free kernels of small prefills and decode (`kv_matmul_rows`, `kv_scores`,
/// `kv_weighted_sum`) against naive double-precision loops written here, over awkward
/// sizes: row counts that are not multiples of the register tiles, odd output counts,
/// strides wider than the rows, and every GGUF weight type the engine reads.
final class SmallProductTests: XCTestCase {
    private var rng = SplitMix64(seed: 42)

    private func gaussian() -> Float {
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

    func testEncodedProductEqualsNaiveProductForEveryTypeAndShape() {
        for type: Int32 in [0, 1, 2, 3, 8] {
            for (m, rows, cols) in [(2, 1, 32), (3, 5, 64), (7, 33, 96), (8, 16, 64), (9, 64, 32), (16, 31, 576)] {
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
                    for r in 0..<m {
                        for o in 0..<rows {
                            var expected = accumulate == 1 ? Double(before[r * ldy + o]) : 0
                            for k in 0..<cols { expected += Double(w[o * cols + k]) * Double(x[r * ldx + k]) }
                            XCTAssertEqual(Double(y[r * ldy + o]), expected, accuracy: 1e-4 * max(1, abs(expected)),
                                           "type \(type) m \(m) rows \(rows) cols \(cols) at (\(r), \(o))")
                        }
                        // Columns past `rows` are not touched.
                        for o in rows..<ldy { XCTAssertEqual(y[r * ldy + o], before[r * ldy + o]) }
                    }
                }
            }
        }
        var y = [Float](repeating: 0, count: 4)
        XCTAssertEqual(kv_matmul_rows(3, [UInt8](repeating: 0, count: 40), [Float](repeating: 0, count: 40), 40, &y, 4, 1, 1, 40, 0),
                       -1, "columns must be a multiple of 32")
    }

    func testAttentionProductsEqualNaiveProducts() {
        for (m, n, d) in [(1, 1, 16), (5, 17, 64), (24, 300, 64), (3, 33, 80), (9, 40, 128)] {
            let ldq = d + 4, ldk = 3 * d, lds = n + 7, ldo = d + 2
            let q = (0..<(m * ldq)).map { _ in gaussian() }
            let k = (0..<(n * ldk)).map { _ in gaussian() }
            let v = (0..<(n * ldk)).map { _ in gaussian() }
            var s = [Float](repeating: .nan, count: m * lds)
            kv_scores(q, ldq, m, k, ldk, n, d, 0.125, &s, lds)
            for t in 0..<m {
                for p in 0..<n {
                    var e = 0.0
                    for c in 0..<d { e += Double(q[t * ldq + c]) * Double(k[p * ldk + c]) }
                    XCTAssertEqual(Double(s[t * lds + p]), 0.125 * e, accuracy: 1e-4, "scores m \(m) n \(n) d \(d)")
                }
                for p in n..<lds { XCTAssertTrue(s[t * lds + p].isNaN, "padding untouched") }
            }
            let weights = (0..<(m * lds)).map { _ in abs(gaussian()) / Float(n) }
            var o = [Float](repeating: .nan, count: m * ldo)
            kv_weighted_sum(weights, lds, m, v, ldk, n, d, &o, ldo)
            for t in 0..<m {
                for c in 0..<d {
                    var e = 0.0
                    for p in 0..<n { e += Double(weights[t * lds + p]) * Double(v[p * ldk + c]) }
                    XCTAssertEqual(Double(o[t * ldo + c]), e, accuracy: 1e-4, "weighted sum m \(m) n \(n) d \(d)")
                }
            }
        }
    }
}
