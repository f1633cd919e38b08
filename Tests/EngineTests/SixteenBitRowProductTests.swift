import CKernels
import Foundation
import XCTest
@testable import KVStashEngine

/// Decode products on 16-bit input codes straight from row-major GGUF blocks
/// (`kv_matvec_q16rows` and its plain C path) and on Q5_0 rewritten as interleaved Q8_0
/// (`kv_qdot_interleave_q5_0`), against weights dequantized by the PyPI `gguf` package
/// (Tests/reference/quant_reference.py) and a naive double-precision product.
final class SixteenBitRowProductTests: XCTestCase {
    static let types: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K]
    /// Rows x cols of each tensor: two row counts that are not multiples of 32 or 4, and
    /// column counts of one, three and eight K-quant super-blocks (those end a lane cycle
    /// part way for the blocks of 32).
    static let shapes = [(rows: 37, cols: 256), (rows: 64, cols: 768), (rows: 5, cols: 2048)]

    var rng = SplitMix64(seed: 16)

    func testRowProductsEqualNaiveProductOnGGUFPackageWeights() throws {
        for t in try PackageWeights.make(types: Self.types, shapes: Self.shapes, seed: 17) {
            check(t.type, raw: t.raw, weights: t.weights, rows: t.rows, cols: t.cols)
        }
    }

    /// One row through the ordered row-major kernel (`kv_matvec_q16rows_ordered`: AVX2 where the
    /// CPU has it, and its plain C path) equals, bit for bit, the same row through the packed
    /// prefill product (`kv_gemm_q16` on every path this CPU runs, and its plain C path) on every
    /// type: a decoded row is a prefill's row. Row counts that end with the kernel's four-row and
    /// one-row tails (13 = 8 + 4 + 1) as well as whole groups of eight.
    func testOrderedRowsEqualThePackedProductBitForBit() throws {
        for t in try PackageWeights.make(types: Self.types, shapes: [(rows: 64, cols: 768), (rows: 32, cols: 2048)], seed: 18) {
            let id = Int32(t.type.rawValue)
            var bk: Int32 = 0, hasOffsets: Int32 = 0
            XCTAssertEqual(kv_gemm_q16_layout(id, &bk, &hasOffsets), 1)
            var codes = [Int8](repeating: 0, count: t.rows * t.cols)
            var scales = [Float](repeating: 0, count: t.rows * t.cols / Int(bk))
            var offsets = [Float](repeating: 0, count: t.rows * t.cols / 32)
            XCTAssertEqual(kv_gemm_q16_pack(id, t.raw, t.rows, t.cols, &codes, &scales, &offsets), bk)
            let x = (0..<t.cols).map { k in rng.uniform(1) * (k % 5 == 0 ? 20 : 1) }
            var q = [kv_q16_block](repeating: kv_q16_block(), count: t.cols / 32)
            kv_quantize_q16(x, &q, t.cols)
            let before = (0..<t.rows).map { _ in rng.uniform(2) }
            for accumulate: Int32 in [0, 1] {
                let label = "\(t.type) \(t.rows)x\(t.cols) accumulate \(accumulate)"
                var reference = before
                offsets.withUnsafeBufferPointer { o in
                    let off = hasOffsets == 1 ? o.baseAddress : nil
                    XCTAssertEqual(kv_gemm_q16_portable(codes, scales, off, bk, q, 1, &reference, t.rows, t.rows, t.cols,
                                                        accumulate), 0)
                    for path in [KV_GEMM_Q16_AVX2, KV_GEMM_Q16_VNNI] where path <= kv_gemm_q16_path() {
                        kv_gemm_q16_set_path(path)
                        defer { kv_gemm_q16_set_path(-1) }
                        var packed = before
                        XCTAssertEqual(kv_gemm_q16(codes, scales, off, bk, q, 1, &packed, t.rows, t.rows, t.cols, accumulate), 0)
                        XCTAssertEqual(packed.map(\.bitPattern), reference.map(\.bitPattern), "\(label) packed path \(path)")
                    }
                }
                for rows in [t.rows, 13] {
                    var vector = before, portable = before
                    XCTAssertEqual(kv_matvec_q16rows_ordered(id, t.raw, q, &vector, rows, t.cols, accumulate), 0)
                    XCTAssertEqual(kv_matvec_q16rows_ordered_portable(id, t.raw, q, &portable, rows, t.cols, accumulate), 0)
                    XCTAssertEqual(vector[..<rows].map(\.bitPattern), reference[..<rows].map(\.bitPattern), "\(label) \(rows) rows")
                    XCTAssertEqual(portable[..<rows].map(\.bitPattern), reference[..<rows].map(\.bitPattern),
                                   "\(label) \(rows) rows, plain C")
                    XCTAssertEqual(vector[rows...], before[rows...], "\(label): rows past \(rows) untouched")
                }
            }
        }
    }

    /// `kv_matvec_q16rows` (AVX2 where the CPU has it) and its plain C path on one tensor:
    /// bit for bit equal, equal to the naive product of the package's weights and the
    /// dequantized input codes up to float rounding, within 1e-4 of the f32 product; with
    /// and without accumulation. Q5_0 also through its interleaved Q8_0 copy.
    private func check(_ type: GGMLType, raw: [UInt8], weights: [Float], rows: Int, cols: Int) {
        let x = (0..<cols).map { k in rng.uniform(1) * (k % 7 == 0 ? 30 : 1) }
        var q = [kv_q16_block](repeating: kv_q16_block(), count: cols / 32)
        kv_quantize_q16(x, &q, cols)
        let xq = (0..<cols).map { k in
            Double(q[k / 32].d) * Double(withUnsafeBytes(of: q[k / 32].q) { $0.load(fromByteOffset: 2 * (k % 32), as: Int16.self) })
        }
        let before = (0..<rows).map { _ in rng.uniform(2) }
        let id = Int32(type.rawValue), label = "\(type) \(rows)x\(cols)"
        for accumulate: Int32 in [0, 1] {
            var y = before, portable = before
            XCTAssertEqual(kv_matvec_q16rows(id, raw, q, &y, rows, cols, accumulate), 0, label)
            XCTAssertEqual(kv_matvec_q16rows_portable(id, raw, q, &portable, rows, cols, accumulate), 0, label)
            XCTAssertEqual(y, portable, "\(label): the AVX2 and plain C paths differ")
            var laid: [Float]? = nil
            if type == .q5_0 && rows % 32 == 0 {
                var copy = [UInt8](repeating: 0, count: rows * cols / 32 * 34), out = before
                XCTAssertEqual(kv_qdot_interleave_q5_0(raw, &copy, rows, cols), 0)
                XCTAssertEqual(kv_matvec_q16dot(Int32(GGMLType.q8_0.rawValue), copy, q, &out, rows, cols, accumulate), 0)
                laid = out
            }
            for o in 0..<rows {
                var onCodes = accumulate == 1 ? Double(before[o]) : 0, exact = onCodes, magnitude = abs(onCodes)
                for k in 0..<cols {
                    let wk = Double(weights[o * cols + k])
                    onCodes += wk * xq[k]
                    exact += wk * Double(x[k])
                    magnitude += abs(wk * xq[k])
                }
                XCTAssertEqual(Double(y[o]), onCodes, accuracy: 1e-6 * max(1, magnitude), "\(label) row \(o)")
                XCTAssertEqual(Double(y[o]), exact, accuracy: 1e-4 * max(1, magnitude), "\(label) row \(o)")
                if let laid {
                    XCTAssertEqual(Double(laid[o]), onCodes, accuracy: 1e-6 * max(1, magnitude), "\(label) interleaved row \(o)")
                }
            }
        }
    }

    /// Types without a kernel, rows that are not whole blocks, and an interleaving of a bad
    /// shape are refused.
    func testOtherTypesAndShapesAreRefused() {
        var y = [Float](repeating: 0, count: 64)
        let q = [kv_q16_block](repeating: kv_q16_block(), count: 8)
        let raw = [UInt8](repeating: 0, count: 4096)
        for type in [GGMLType.f32, .f16, .q8_K, .q2_K] {
            XCTAssertEqual(kv_q16rows_supports(Int32(type.rawValue)), 0, "\(type)")
            XCTAssertEqual(kv_matvec_q16rows(Int32(type.rawValue), raw, q, &y, 1, 256, 0), -1, "\(type)")
            XCTAssertEqual(kv_matvec_q16rows_portable(Int32(type.rawValue), raw, q, &y, 1, 256, 0), -1, "\(type)")
            XCTAssertEqual(kv_matvec_q16rows_ordered(Int32(type.rawValue), raw, q, &y, 1, 256, 0), -1, "\(type)")
        }
        for type in Self.types { XCTAssertEqual(kv_q16rows_supports(Int32(type.rawValue)), 1, "\(type)") }
        XCTAssertEqual(kv_matvec_q16rows(Int32(GGMLType.q4_K.rawValue), raw, q, &y, 1, 128, 0), -1, "K-quant rows of 128")
        XCTAssertEqual(kv_matvec_q16rows(Int32(GGMLType.q5_0.rawValue), raw, q, &y, 1, 48, 0), -1, "rows of 48")
        XCTAssertEqual(kv_matvec_q16rows_ordered(Int32(GGMLType.q6_K.rawValue), raw, q, &y, 1, 128, 0), -1, "ordered rows of 128")
        var copy = [UInt8](repeating: 0, count: 4096)
        XCTAssertEqual(kv_qdot_interleave_q5_0(raw, &copy, 40, 32), -1, "40 rows")
        XCTAssertEqual(kv_qdot_interleave_q5_0(raw, &copy, 32, 48), -1, "48 columns")
    }
}
