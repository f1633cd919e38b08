import CKernels
import Foundation
import XCTest
@testable import KVStashEngine

/// The integer prefill products (`kv_gemm_q16_pack` + `kv_gemm_q16` on 16-bit inputs, with
/// `kv_gemm_q8_relayout` + `kv_gemm_q8` on 8-bit inputs; AVX-512 VNNI where the CPU has it, the
/// 16-bit product's AVX2 path too, and their plain C paths) against weights dequantized by the PyPI `gguf` package
/// (Tests/reference/quant_reference.py) and a naive double-precision product.
final class PackedProductTests: XCTestCase {
    static let types: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K]
    /// Rows x cols: one, two and three tiles of 32 rows; one, three and eight K-quant super-blocks.
    static let shapes = [(rows: 32, cols: 256), (rows: 64, cols: 768), (rows: 96, cols: 2048)]
    /// Input rows: one; 7, 9 and 12 (one pass of every row on VNNI, a tile of six and the rest
    /// elsewhere); two tiles of six with a partial third.
    static let inputRows = [1, 7, 9, 12, 17]

    var rng = SplitMix64(seed: 26)

    /// The vector paths of `kv_gemm_q16` this CPU runs (`KV_GEMM_Q16_AVX2`, `KV_GEMM_Q16_VNNI`).
    static let vectorPaths: [Int32] = {
        kv_gemm_q16_set_path(-1)
        return [KV_GEMM_Q16_AVX2, KV_GEMM_Q16_VNNI].filter { $0 <= kv_gemm_q16_path() }
    }()

    func testThisCPURunsAVectorPath() throws {
        try XCTSkipUnless(kernelISA() != "default", "a CPU without AVX2 runs the plain C path")
        XCTAssertFalse(Self.vectorPaths.isEmpty)
        XCTAssertEqual(kv_gemm_q16_available(), 1)
    }

    func testPackedProductsEqualNaiveProductOnGGUFPackageWeights() throws {
        for t in try PackageWeights.make(types: Self.types, shapes: Self.shapes, seed: 27) {
            try check(t.type, raw: t.raw, weights: t.weights, rows: t.rows, cols: t.cols, inputBits: 16)
        }
    }

    /// The same tensors relaid for 8-bit inputs (`kv_gemm_q8_relayout`, `kv_gemm_q8`): equal to
    /// the naive product of the package's weights and the 8-bit input codes up to float rounding,
    /// and to the f32 product within the codes' step (2e-2 of the terms' magnitude).
    func testEightBitInputProductsEqualNaiveProductOnGGUFPackageWeights() throws {
        for t in try PackageWeights.make(types: Self.types, shapes: Self.shapes, seed: 28) {
            try check(t.type, raw: t.raw, weights: t.weights, rows: t.rows, cols: t.cols, inputBits: 8)
        }
    }

    /// One packed product under test: its input codes dequantized, and a call of the dispatched
    /// or the plain C path (`portable`) for `m` input rows from weight row `r0` into `y`.
    private struct Product {
        let dequantized: [Double]
        let run: (_ portable: Bool, _ r0: Int, _ n: Int, _ y: UnsafeMutablePointer<Float>, _ accumulate: Int32) -> Int32
    }

    /// kv_gemm_q16 on 16-bit codes of `x`, or kv_gemm_q8 on 8-bit codes and relaid `codes`.
    private func product(inputBits: Int, x: [Float], m: Int, cols: Int, rows: Int, bk: Int32, codes: [Int8],
                         scales: [Float], offsets: [Float]?) -> Product {
        let blocks = cols / 32
        func offsetPointer(_ r0: Int, _ body: (UnsafePointer<Float>?) -> Int32) -> Int32 {
            guard let offsets else { return body(nil) }
            return offsets.withUnsafeBufferPointer { body($0.baseAddress! + r0 * cols / 32) }
        }
        if inputBits == 16 {
            var q = [kv_q16_block](repeating: kv_q16_block(), count: m * blocks)
            for t in 0..<m { x.withUnsafeBufferPointer { kv_quantize_q16($0.baseAddress! + t * cols, &q[t * blocks], cols) } }
            let xq = (0..<(m * cols)).map { k in
                Double(q[k / 32].d) * Double(withUnsafeBytes(of: q[k / 32].q) { $0.load(fromByteOffset: 2 * (k % 32), as: Int16.self) })
            }
            return Product(dequantized: xq) { portable, r0, n, y, add in
                offsetPointer(r0) { o in
                    codes.withUnsafeBufferPointer { cb in
                        scales.withUnsafeBufferPointer { sb in
                            let c = cb.baseAddress! + r0 * cols, s = sb.baseAddress! + r0 * cols / Int(bk)
                            return portable ? kv_gemm_q16_portable(c, s, o, bk, q, m, y, rows, n, cols, add)
                                : kv_gemm_q16(c, s, o, bk, q, m, y, rows, n, cols, add)
                        }
                    }
                }
            }
        }
        var relaid = codes, bias = [Int32](repeating: 0, count: rows * cols / Int(bk))
        XCTAssertEqual(kv_gemm_q8_relayout(&relaid, &bias, bk, rows, cols), 0)
        var q = [kv_u8_block](repeating: kv_u8_block(), count: m * blocks)
        for t in 0..<m { x.withUnsafeBufferPointer { kv_quantize_u8($0.baseAddress! + t * cols, &q[t * blocks], cols) } }
        let xq = (0..<(m * cols)).map { k in
            Double(q[k / 32].d) * Double(Int(withUnsafeBytes(of: q[k / 32].q) { $0[k % 32] }) - 128)
        }
        return Product(dequantized: xq) { [relaid, bias] portable, r0, n, y, add in
            offsetPointer(r0) { o in
                relaid.withUnsafeBufferPointer { cb in
                    bias.withUnsafeBufferPointer { bb in
                        scales.withUnsafeBufferPointer { sb in
                            let at = r0 * cols / Int(bk)
                            let c = cb.baseAddress! + r0 * cols, b = bb.baseAddress! + at, s = sb.baseAddress! + at
                            return portable ? kv_gemm_q8_portable(c, b, s, o, bk, q, m, y, rows, n, cols, add)
                                : kv_gemm_q8(c, b, s, o, bk, q, m, y, rows, n, cols, add)
                        }
                    }
                }
            }
        }
    }

    /// One tensor: packed; the product of every input-row count, whole and from its second
    /// tile of 32 rows on, with and without accumulation. Every vector path the CPU runs (AVX2,
    /// and VNNI where it has it) and the plain C path agree bit for bit, and both equal the naive product
    /// of the package's weights and the dequantized input codes up to float rounding, and the
    /// f32 product within 1e-4 (16-bit codes) or 2e-2 (8-bit) of the terms' magnitude.
    private func check(_ type: GGMLType, raw: [UInt8], weights: [Float], rows: Int, cols: Int, inputBits: Int) throws {
        var bk: Int32 = 0, hasOffsets: Int32 = 0
        XCTAssertEqual(kv_gemm_q16_layout(Int32(type.rawValue), &bk, &hasOffsets), 1, "\(type)")
        XCTAssertEqual(bk, type == .q6_K ? 16 : 32)
        XCTAssertEqual(hasOffsets == 1, [.q4_1, .q5_1, .q4_K, .q5_K].contains(type), "\(type)")
        var codes = [Int8](repeating: 0, count: rows * cols), scales = [Float](repeating: 0, count: rows * cols / Int(bk))
        var offsets = [Float](repeating: 0, count: rows * cols / 32)
        let packed = offsets.withUnsafeMutableBufferPointer { o in
            kv_gemm_q16_pack(Int32(type.rawValue), raw, rows, cols, &codes, &scales, hasOffsets == 1 ? o.baseAddress : nil)
        }
        XCTAssertEqual(packed, bk, "\(type) packs")
        let toF32 = inputBits == 16 ? 1e-4 : 2e-2
        for m in Self.inputRows {
            let x = (0..<(m * cols)).map { k in rng.uniform(1) * (k % 7 == 0 ? 30 : 1) }
            let p = product(inputBits: inputBits, x: x, m: m, cols: cols, rows: rows, bk: bk, codes: codes, scales: scales,
                            offsets: hasOffsets == 1 ? offsets : nil)
            let before = (0..<(m * rows)).map { _ in rng.uniform(2) }
            for accumulate: Int32 in [0, 1] {
                for r0 in [0, 32] where r0 < rows {
                    let label = "\(type) \(rows)x\(cols), \(inputBits)-bit inputs, \(m) rows, from row \(r0), accumulate \(accumulate)"
                    var y = before, portable = before
                    XCTAssertEqual(portable.withUnsafeMutableBufferPointer { p.run(true, r0, rows - r0, $0.baseAddress! + r0, accumulate) },
                                   0, label)
                    // Every vector path this CPU runs (16-bit inputs: AVX2 and AVX-512 VNNI).
                    for path in inputBits == 16 ? Self.vectorPaths : [-1] {
                        kv_gemm_q16_set_path(path)
                        defer { kv_gemm_q16_set_path(-1) }
                        y = before
                        XCTAssertEqual(y.withUnsafeMutableBufferPointer { p.run(false, r0, rows - r0, $0.baseAddress! + r0, accumulate) },
                                       0, label)
                        XCTAssertEqual(y, portable, "\(label): path \(path) and the plain C path differ")
                    }
                    for t in 0..<m {
                        for o in 0..<rows {
                            let at = t * rows + o
                            guard o >= r0 else {
                                XCTAssertEqual(y[at], before[at], "\(label): row \(o) before the range was written")
                                continue
                            }
                            var onCodes = accumulate == 1 ? Double(before[at]) : 0, exact = onCodes, magnitude = abs(onCodes)
                            for k in 0..<cols {
                                let wk = Double(weights[o * cols + k])
                                onCodes += wk * p.dequantized[t * cols + k]
                                exact += wk * Double(x[t * cols + k])
                                magnitude += abs(wk * p.dequantized[t * cols + k])
                            }
                            XCTAssertEqual(Double(y[at]), onCodes, accuracy: 1e-6 * max(1, magnitude), "\(label) (\(t), \(o))")
                            XCTAssertEqual(Double(y[at]), exact, accuracy: toF32 * max(1, magnitude), "\(label) (\(t), \(o))")
                        }
                    }
                }
            }
        }
    }

    /// Types without integer codes and shapes that do not tile are refused.
    func testOtherTypesAndShapesAreRefused() {
        var bk: Int32 = 0, hasOffsets: Int32 = 0
        let raw = [UInt8](repeating: 0, count: 1 << 16)
        var codes = [Int8](repeating: 0, count: 1 << 15), scales = [Float](repeating: 0, count: 1 << 12)
        var offsets = scales
        for type in [GGMLType.f32, .f16, .bf16, .q8_K, .q2_K] {
            XCTAssertEqual(kv_gemm_q16_layout(Int32(type.rawValue), &bk, &hasOffsets), 0, "\(type)")
            XCTAssertEqual(kv_gemm_q16_pack(Int32(type.rawValue), raw, 32, 256, &codes, &scales, nil), -1, "\(type)")
        }
        let q8 = Int32(GGMLType.q8_0.rawValue), q4k = Int32(GGMLType.q4_K.rawValue)
        XCTAssertEqual(kv_gemm_q16_pack(q8, raw, 40, 32, &codes, &scales, nil), -1, "40 rows")
        XCTAssertEqual(kv_gemm_q16_pack(q8, raw, 32, 48, &codes, &scales, nil), -1, "48 columns")
        XCTAssertEqual(kv_gemm_q16_pack(q4k, raw, 32, 128, &codes, &scales, &offsets), -1, "K-quant rows of 128")
        XCTAssertEqual(kv_gemm_q16_pack(q4k, raw, 32, 256, &codes, &scales, nil), -1, "Q4_K without room for offsets")
        let x = [kv_q16_block](repeating: kv_q16_block(), count: 8)
        var y = [Float](repeating: 0, count: 64)
        XCTAssertEqual(kv_gemm_q16(codes, scales, nil, 32, x, 1, &y, 64, 48, 256, 0), -1, "48 weight rows")
        XCTAssertEqual(kv_gemm_q16(codes, scales, nil, 24, x, 1, &y, 64, 32, 256, 0), -1, "24 weights per scale")
        XCTAssertEqual(kv_gemm_q16_portable(codes, scales, scales, 16, x, 1, &y, 64, 32, 256, 0), -1, "offsets with 16 per scale")
    }
}
