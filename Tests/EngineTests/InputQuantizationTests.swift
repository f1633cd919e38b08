import CKernels
import Foundation
import XCTest
@testable import KVStashEngine

/// The kernels every product's input passes through: the 8- and 16-bit input codes
/// (`kv_quantize_q8`, `kv_quantize_u8`, `kv_quantize_q16`) and RMSNorm (`kv_rmsnorm`), against their
/// definitions computed here in double precision; and the producers that write a packed
/// product's input as codes directly (`kv_rmsnorm_q16`, `kv_silu_mul_q16`, `kv_gelu_mul_q16`),
/// bit for bit the codes of those kernels' f32 output.
final class InputQuantizationTests: XCTestCase {
    var rng = SplitMix64(seed: 2026)

    /// Rows of 4 blocks of 32: random values with outliers, an all-zero block, a block with a
    /// single non-zero value, one of equal magnitudes with both signs, one of tiny values.
    private func rows() -> [[Float]] {
        var out: [[Float]] = []
        for _ in 0..<20 { out.append((0..<128).map { k in rng.uniform(1) * (k % 11 == 0 ? 40 : 1) }) }
        var special = [Float](repeating: 0, count: 128)
        special[40] = -3.5
        for k in 64..<96 { special[k] = k % 2 == 0 ? 2 : -2 }
        for k in 96..<128 { special[k] = rng.uniform(1e-30) }
        out.append(special)
        return out
    }

    /// Per block of 32: d = max|x| / top, q = x / d rounded to nearest (ties to even), s = d * sum(q).
    private func checkCodes(_ x: [Float], top: Double, d: (Int) -> Float, s: (Int) -> Float, q: (Int) -> Int) {
        for b in 0..<(x.count / 32) {
            let block = x[(32 * b)..<(32 * b + 32)]
            let amax = block.map { abs(Double($0)) }.max()!
            XCTAssertEqual(Double(d(b)), Double(Float(Float(amax) / Float(top))), "block \(b): scale")
            var sum = 0
            for k in (32 * b)..<(32 * b + 32) {
                let expected = amax > 0 ? Int((Double(x[k]) * (Double(Float(top) / Float(amax)))).rounded(.toNearestOrEven)) : 0
                XCTAssertLessThanOrEqual(abs(q(k) - expected), 1, "block \(b) element \(k): code")
                XCTAssertLessThanOrEqual(abs(q(k)), Int(top), "block \(b) element \(k): code range")
                if amax > 0 {
                    XCTAssertLessThanOrEqual(abs(Double(x[k]) - Double(d(b)) * Double(q(k))), Double(d(b)) * 0.51,
                                             "block \(b) element \(k): rounding error")
                }
                sum += q(k)
            }
            XCTAssertEqual(s(b), d(b) * Float(sum), "block \(b): code sum")
        }
    }

    func testSixteenBitCodes() {
        for x in rows() {
            var blocks = [kv_q16_block](repeating: kv_q16_block(), count: x.count / 32)
            kv_quantize_q16(x, &blocks, x.count)
            checkCodes(x, top: 32767, d: { blocks[$0].d }, s: { blocks[$0].s }, q: { k in
                Int(withUnsafeBytes(of: blocks[k / 32].q) { $0.load(fromByteOffset: 2 * (k % 32), as: Int16.self) })
            })
        }
    }

    /// The 8-bit codes of the packed products on 8-bit inputs: the signed codes plus 128.
    func testUnsignedEightBitCodes() {
        for x in rows() {
            var blocks = [kv_u8_block](repeating: kv_u8_block(), count: x.count / 32)
            kv_quantize_u8(x, &blocks, x.count)
            checkCodes(x, top: 127, d: { blocks[$0].d }, s: { blocks[$0].s }, q: { k in
                Int(withUnsafeBytes(of: blocks[k / 32].q) { $0[k % 32] }) - 128
            })
        }
    }

    func testEightBitCodes() {
        for x in rows() {
            var blocks = [kv_q8_block](repeating: kv_q8_block(), count: x.count / 32)
            kv_quantize_q8(x, &blocks, x.count)
            checkCodes(x, top: 127, d: { blocks[$0].d }, s: { blocks[$0].s }, q: { k in
                Int(withUnsafeBytes(of: blocks[k / 32].q) { $0.load(fromByteOffset: k % 32, as: Int8.self) })
            })
        }
    }

    /// RMSNorm of rows whose length is not a multiple of 16 (the scalar tail), of 640 (Gemma 3)
    /// and of 256 (its per-head QK-norm), within float rounding of the double-precision value.
    func testRMSNormMatchesDoublePrecision() {
        for n in [7, 37, 256, 640] {
            let rows = 3
            let x = (0..<(rows * n)).map { k in rng.uniform(4) * (k % 13 == 0 ? 25 : 1) }
            let w = (0..<n).map { _ in 1 + rng.uniform(0.5) }
            var out = [Float](repeating: .nan, count: rows * n)
            kv_rmsnorm(&out, x, w, rows, n, 1e-6)
            for r in 0..<rows {
                let row = x[(r * n)..<((r + 1) * n)].map(Double.init)
                let scale = 1 / (row.reduce(0) { $0 + $1 * $1 } / Double(n) + 1e-6).squareRoot()
                for i in 0..<n {
                    let expected = row[i] * scale * Double(w[i])
                    XCTAssertEqual(Double(out[r * n + i]), expected, accuracy: 1e-6 * max(1, abs(expected)), "n \(n) row \(r) element \(i)")
                }
            }
        }
    }

    /// Every field of every block equal, bit for bit.
    private func assertSameCodes(_ a: [kv_q16_block], _ b: [kv_q16_block], _ label: String) {
        XCTAssertEqual(a.count, b.count, label)
        for k in 0..<min(a.count, b.count) {
            let qa = withUnsafeBytes(of: a[k].q) { Array($0) }, qb = withUnsafeBytes(of: b[k].q) { Array($0) }
            XCTAssertEqual(a[k].d.bitPattern, b[k].d.bitPattern, "\(label) block \(k): scale")
            XCTAssertEqual(a[k].s.bitPattern, b[k].s.bitPattern, "\(label) block \(k): code sum")
            XCTAssertEqual(qa, qb, "\(label) block \(k): codes")
        }
    }

    /// `kv_quantize_q16` of each row of `x` (rows of `n`, `ld` apart).
    private func codes(of x: [Float], rows: Int, n: Int, ld: Int) -> [kv_q16_block] {
        var out = [kv_q16_block](repeating: kv_q16_block(), count: rows * n / 32)
        x.withUnsafeBufferPointer { xb in
            for r in 0..<rows { kv_quantize_q16(xb.baseAddress! + r * ld, &out[r * n / 32], n) }
        }
        return out
    }

    func testNormWritesTheCodesOfItsOutput() {
        for n in [64, 640, 2048] {
            let rows = 5
            let x = (0..<(rows * n)).map { k in rng.uniform(4) * (k % 13 == 0 ? 25 : 1) }
            let w = (0..<n).map { _ in 1 + rng.uniform(0.5) }
            var normed = [Float](repeating: .nan, count: rows * n)
            kv_rmsnorm(&normed, x, w, rows, n, 1e-6)
            var fused = [kv_q16_block](repeating: kv_q16_block(), count: rows * n / 32)
            kv_rmsnorm_q16(x, w, &fused, rows, n, 1e-6)
            assertSameCodes(fused, codes(of: normed, rows: rows, n: n, ld: n), "rmsnorm n \(n)")
        }
    }

    /// QK-norm (a row's heads normed side by side) gives each head the bits of kv_rmsnorm on
    /// that head alone, for 1 to 10 heads (past one group of 8) and rows with a stride.
    func testHeadNormEqualsTheNormOfEachHead() {
        for heads in [1, 4, 5, 10] {
            let rows = 3, hd = 256, ld = heads * hd + 64
            let x = (0..<(rows * ld)).map { k in rng.uniform(3) * (k % 29 == 0 ? 20 : 1) }
            let w = (0..<hd).map { _ in 1 + rng.uniform(0.5) }
            var normed = x
            kv_rmsnorm_heads(&normed, ld, rows, heads, hd, w, 1e-6)
            for r in 0..<rows {
                var alone = [Float](repeating: .nan, count: heads * hd)
                kv_rmsnorm(&alone, Array(x[(r * ld)..<(r * ld + heads * hd)]), w, heads, hd, 1e-6)
                XCTAssertEqual(normed[(r * ld)..<(r * ld + heads * hd)].map(\.bitPattern), alone.map(\.bitPattern),
                               "\(heads) heads, row \(r)")
                XCTAssertEqual(normed[(r * ld + heads * hd)..<((r + 1) * ld)], x[(r * ld + heads * hd)..<((r + 1) * ld)])
            }
        }
    }

    /// The post-norm fused with the residual add equals the norm into a buffer then the add,
    /// bit for bit (n not a multiple of the vector width included).
    func testPostNormAndResidualAddInOnePass() {
        for n in [40, 640, 1152] {
            let rows = 5
            let y = (0..<(rows * n)).map { k in rng.uniform(4) * (k % 13 == 0 ? 25 : 1) }
            let x = (0..<(rows * n)).map { _ in rng.uniform(30) }
            let w = (0..<n).map { _ in rng.uniform(2) }
            var normed = [Float](repeating: .nan, count: rows * n), separate = x, fused = x
            kv_rmsnorm(&normed, y, w, rows, n, 1e-6)
            kv_add(&separate, separate, normed, rows * n)
            kv_add_rmsnorm(&fused, y, w, rows, n, 1e-6)
            XCTAssertEqual(fused.map(\.bitPattern), separate.map(\.bitPattern), "n \(n)")
            XCTAssertNotEqual(fused, x)
        }
    }

    /// Gate and up halves of one buffer, as the gate-up product leaves them (row stride 2n),
    /// with values beyond the activations' interesting range and exact zeros.
    func testGatedActivationsWriteTheCodesOfTheirOutput() {
        let kernels: [(String, (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int, Int, Int) -> Void,
                       (UnsafePointer<Float>, UnsafePointer<Float>, Int, Int, Int, UnsafeMutablePointer<kv_q16_block>) -> Void)] = [
            ("silu", { kv_silu_mul($0, $1, $2, $3, $4) }, { kv_silu_mul_q16($0, $1, $2, $3, $4, $5, $3 / 32) }),
            ("gelu", { kv_gelu_mul($0, $1, $2, $3, $4) }, { kv_gelu_mul_q16($0, $1, $2, $3, $4, $5, $3 / 32) }),
        ]
        for (name, f32, fused) in kernels {
            for n in [32, 1536, 2048] {
                let rows = 4, ld = 2 * n
                var gateUp = (0..<(rows * ld)).map { k in k % 97 == 0 ? 0 : rng.uniform(6) * (k % 17 == 0 ? 4 : 1) }
                var out = [kv_q16_block](repeating: kv_q16_block(), count: rows * n / 32)
                gateUp.withUnsafeBufferPointer { g in fused(g.baseAddress!, g.baseAddress! + n, rows, n, ld, &out) }
                gateUp.withUnsafeMutableBufferPointer { g in f32(g.baseAddress!, g.baseAddress! + n, rows, n, ld) }
                assertSameCodes(out, codes(of: gateUp, rows: rows, n: n, ld: ld), "\(name) n \(n)")
            }
        }
    }
}
