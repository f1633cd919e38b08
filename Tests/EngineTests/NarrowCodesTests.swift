import CKernels
import Foundation
import XCTest
@testable import KVStashEngine

/// Packed codes at 4 or 5 bits per weight (`kv_gemm_q16_narrow`, `kv_gemm_q16_narrow_product`):
/// the layout byte by byte as gemm_q16_narrow.c describes it, and products equal bit for bit to
/// the 8-bit layout's on every path this CPU runs, and to a naive product of the weights the
/// PyPI `gguf` package dequantizes.
final class NarrowCodesTests: XCTestCase {
    static let types: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K]
    static let shapes = [(rows: 32, cols: 256), (rows: 96, cols: 768)]
    /// Decode's one row, a cache hit's question (up to 10 in registers, 11 through a tile), and longer prefills.
    static let inputRows = [1, 2, 9, 10, 11, 17, 40]

    var rng = SplitMix64(seed: 41)

    func testWidthsOfTheTypes() {
        var bits: Int32 = 0, bias: Int32 = 0
        let expected: [GGMLType: (Int32, Int32)] = [.q4_0: (4, -8), .q4_1: (4, 0), .q4_K: (4, 0), .q5_0: (5, -16),
                                                    .q5_1: (5, 0), .q5_K: (5, 0)]
        for type in [GGMLType.f32, .f16, .q8_0, .q6_K, .q8_K, .q4_0, .q4_1, .q4_K, .q5_0, .q5_1, .q5_K] {
            let has = kv_gemm_q16_narrow_width(Int32(type.rawValue), &bits, &bias) == 1
            XCTAssertEqual(has, expected[type] != nil, "\(type)")
            if let (b, o) = expected[type] { XCTAssertEqual([bits, bias], [b, o], "\(type)") }
        }
    }

    /// Random codes in range, narrowed, against the layout written out from its description.
    func testLayoutByteByByte() {
        for (bits, bias) in [(4, -8), (4, 0), (5, -16), (5, 0)] {
            let rows = 32, cols = 64, units = rows / 16 * cols / 32
            let codes = (0..<(rows * cols)).map { _ in Int8(Int(rng.next() % UInt64(1 << bits)) + bias) }
            var out = [UInt8](repeating: 0xAA, count: rows * cols * bits / 8)
            XCTAssertEqual(kv_gemm_q16_narrow(codes, rows, cols, Int32(bits), Int32(bias), &out), 0)
            var expected = [UInt8](repeating: 0, count: out.count)
            for u in 0..<units {
                let src = u * 512, dst = u * 64 * bits
                for q in 0..<8 {
                    for j in 0..<32 {
                        let lo = Int(codes[src + 32 * q + j]) - bias, hi = Int(codes[src + 32 * (q + 8) + j]) - bias
                        expected[dst + 32 * q + j] = UInt8(lo & 15 | (hi & 15) << 4)
                        if bits == 5 {  // row p's fifth bits: a little-endian word, bit j for byte j
                            expected[dst + 256 + 4 * q + j / 8] |= UInt8((lo >> 4) << (j % 8))
                            expected[dst + 256 + 4 * (q + 8) + j / 8] |= UInt8((hi >> 4) << (j % 8))
                        }
                    }
                }
            }
            XCTAssertEqual(out, expected, "\(bits) bits, bias \(bias)")
        }
    }

    func testCodesThatDoNotFitAndBadShapesAreRefused() {
        var out = [UInt8](repeating: 0, count: 32 * 64)
        var codes = [Int8](repeating: 0, count: 32 * 64)
        codes[700] = 16
        XCTAssertEqual(kv_gemm_q16_narrow(codes, 32, 64, 4, 0, &out), -1, "16 in 4 bits")
        XCTAssertEqual(kv_gemm_q16_narrow(codes, 32, 64, 5, 0, &out), 0, "16 in 5 bits")
        codes[700] = -1
        XCTAssertEqual(kv_gemm_q16_narrow(codes, 32, 64, 5, 0, &out), -1, "-1 without a bias")
        XCTAssertEqual(kv_gemm_q16_narrow(codes, 32, 64, 4, -8, &out), 0, "-1 above -8")
        XCTAssertEqual(kv_gemm_q16_narrow(codes, 32, 64, 6, 0, &out), -1, "6 bits")
        XCTAssertEqual(kv_gemm_q16_narrow(codes, 24, 64, 4, 0, &out), -1, "24 rows")
        XCTAssertEqual(kv_gemm_q16_narrow(codes, 32, 48, 4, 0, &out), -1, "48 columns")
        let x = [kv_q16_block](repeating: kv_q16_block(), count: 2)
        let scales = [Float](repeating: 1, count: 64)
        var y = [Float](repeating: 0, count: 64)
        XCTAssertEqual(kv_gemm_q16_narrow_product(out, 4, 0, scales, nil, x, 1, &y, 64, 48, 64, 0), -1, "48 weight rows")
        XCTAssertEqual(kv_gemm_q16_narrow_product(out, 8, 0, scales, nil, x, 1, &y, 64, 32, 64, 0), -1, "8 bits")
    }

    func testProductsEqualTheEightBitLayoutAndTheNaiveProduct() throws {
        for t in try PackageWeights.make(types: Self.types, shapes: Self.shapes, seed: 42) {
            try check(t)
        }
    }

    /// Where one row can take the packed product (AVX-512 VNNI), decode reads each part's smallest
    /// copy: Gemma 3's Q5_0 projections get 5-bit codes (0.75 bytes per weight) instead of their
    /// interleaved Q8_0 copy (1.06), its Q4_K 4-bit codes beside the 8-bit ones; SmolLM2's Q4_1
    /// keeps its interleaved copy (0.63 against 0.75). Elsewhere nothing changes.
    func testDecodeReadsTheSmallerCopy() throws {
        let onPacked = PackedProduct.path == KV_GEMM_Q16_VNNI && Linear.decodeActivations == .auto
        let gemma = try TestSupport.gemma3Model().weights.layers[0]
        for linear in [gemma.wqkv, gemma.wGateUp] {
            for (part, packed) in zip(linear.parts, linear.packed!.parts) where part.info.type == .q5_0 {
                XCTAssertEqual(part.interleaved == nil, onPacked, part.info.name)
                XCTAssertEqual(packed.narrow?.bits, onPacked ? 5 : nil, part.info.name)
                XCTAssertEqual(packed.narrow?.bytes.count, onPacked ? packed.codes.count * 5 / 8 : nil, part.info.name)
            }
            XCTAssertEqual(linear.singleRowTakesPacked, onPacked)
        }
        // Q4_K has no interleaved copy: one row reads its 4-bit codes (0.75 bytes a weight, not 1.25).
        XCTAssertEqual(gemma.wo.packed!.parts[0].narrow?.bits, onPacked ? 4 : nil)
        XCTAssertEqual(gemma.wo.packed!.parts[0].oneRowBytesPerWeight, onPacked ? 0.75 : 1.25)
        let smol = try TestSupport.realModel().weights.layers[0]
        for linear in [smol.wqkv, smol.wo, smol.wGateUp, smol.wDown] {
            XCTAssertTrue(linear.parts.allSatisfy { $0.info.type == .q4_1 && $0.interleaved != nil })
            XCTAssertTrue(linear.packed?.parts.allSatisfy { $0.narrow == nil } ?? true)
            XCTAssertFalse(linear.singleRowTakesPacked)
        }
    }

    private func check(_ t: PackageWeights.Tensor) throws {
        let (rows, cols) = (t.rows, t.cols), id = Int32(t.type.rawValue)
        var bk: Int32 = 0, hasOffsets: Int32 = 0, bits: Int32 = 0, bias: Int32 = 0
        XCTAssertEqual(kv_gemm_q16_layout(id, &bk, &hasOffsets), 1)
        XCTAssertEqual(kv_gemm_q16_narrow_width(id, &bits, &bias), 1)
        var codes = [Int8](repeating: 0, count: rows * cols), scales = [Float](repeating: 0, count: rows * cols / 32)
        var offsets = [Float](repeating: 0, count: rows * cols / 32)
        XCTAssertEqual(offsets.withUnsafeMutableBufferPointer {
            kv_gemm_q16_pack(id, t.raw, rows, cols, &codes, &scales, hasOffsets == 1 ? $0.baseAddress : nil)
        }, 32)
        var narrow = [UInt8](repeating: 0, count: rows * cols * Int(bits) / 8)
        XCTAssertEqual(kv_gemm_q16_narrow(codes, rows, cols, bits, bias, &narrow), 0, "\(t.type) narrows")
        let blocks = cols / 32
        for m in Self.inputRows {
            let x = (0..<(m * cols)).map { k in rng.uniform(1) * (k % 7 == 0 ? 30 : 1) }
            var q = [kv_q16_block](repeating: kv_q16_block(), count: m * blocks)
            for r in 0..<m { x.withUnsafeBufferPointer { kv_quantize_q16($0.baseAddress! + r * cols, &q[r * blocks], cols) } }
            let before = (0..<(m * rows)).map { _ in rng.uniform(2) }
            for accumulate: Int32 in [0, 1] {
                for r0 in [0, 32] where r0 < rows {
                    let label = "\(t.type) \(rows)x\(cols), \(m) rows, from row \(r0), accumulate \(accumulate)"
                    let s = r0 * cols / 32, n = rows - r0
                    var wide = before
                    /// `body` with this range's scales and offsets (nil for a type without).
                    func withScales(_ body: (UnsafePointer<Float>, UnsafePointer<Float>?) -> Int32) -> Int32 {
                        scales.withUnsafeBufferPointer { sc in
                            offsets.withUnsafeBufferPointer { ob in body(sc.baseAddress! + s, hasOffsets == 1 ? ob.baseAddress! + s : nil) }
                        }
                    }
                    XCTAssertEqual(codes.withUnsafeBufferPointer { c in
                        withScales { sc, o in
                            wide.withUnsafeMutableBufferPointer { w in
                                kv_gemm_q16_portable(c.baseAddress! + r0 * cols, sc, o, 32, q, m, w.baseAddress! + r0, rows, n, cols,
                                                     accumulate)
                            }
                        }
                    }, 0, label)
                    for path in [KV_GEMM_Q16_PORTABLE, KV_GEMM_Q16_AVX2, KV_GEMM_Q16_VNNI] where path <= kv_gemm_q16_path() {
                        kv_gemm_q16_set_path(path)
                        defer { kv_gemm_q16_set_path(-1) }
                        for portable in [true, false] {
                            var y = before
                            let status = narrow.withUnsafeBufferPointer { c in
                                withScales { sc, o in
                                    y.withUnsafeMutableBufferPointer { yb in
                                        let at = c.baseAddress! + r0 * cols * Int(bits) / 8, out = yb.baseAddress! + r0
                                        return portable
                                            ? kv_gemm_q16_narrow_product_portable(at, bits, bias, sc, o, q, m, out, rows, n, cols, accumulate)
                                            : kv_gemm_q16_narrow_product(at, bits, bias, sc, o, q, m, out, rows, n, cols, accumulate)
                                    }
                                }
                            }
                            XCTAssertEqual(status, 0, label)
                            XCTAssertEqual(y, wide, "\(label): path \(path)\(portable ? ", plain C" : "") differs from the 8-bit layout")
                        }
                    }
                    // The 8-bit layout's product against the package's weights, so neither side is its own reference.
                    for r in 0..<m {
                        for row in r0..<rows {
                            var exact = accumulate == 1 ? Double(before[r * rows + row]) : 0, magnitude = abs(exact)
                            for k in 0..<cols {
                                let code = withUnsafeBytes(of: q[r * blocks + k / 32].q) { $0.load(fromByteOffset: 2 * (k % 32), as: Int16.self) }
                                let term = Double(t.weights[row * cols + k]) * Double(q[r * blocks + k / 32].d) * Double(code)
                                exact += term
                                magnitude += abs(term)
                            }
                            XCTAssertEqual(Double(wide[r * rows + row]), exact, accuracy: 1e-6 * max(1, magnitude), "\(label) (\(r), \(row))")
                        }
                    }
                }
            }
        }
    }
}
