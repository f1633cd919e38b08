import CKernels
import Foundation
import XCTest
@testable import KVStashEngine

/// Embedding lookups from the encoded table (`EmbeddingRows`): every row equals the `gguf`
/// package's dequantization of the tensor (Tests/reference/quant_reference.py), whether it
/// comes from the interleaved copy (Q8_0, Q4_1, Q5_0) or from the memory map (the K-quants).
final class EmbeddingRowsTests: XCTestCase {
    func testRowsEqualTheGGUFPackageDequantization() throws {
        let types: [GGMLType] = [.q8_0, .q4_1, .q5_0, .q4_K, .q6_K]
        let tensors = try PackageWeights.make(types: types, shapes: [(rows: 64, cols: 256)], seed: 41)
        let dir = try TestSupport.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var writer = GGUFWriter()
        for (i, t) in tensors.enumerated() {
            writer.addRawTensor("t\(i)", dims: [t.cols, t.rows], typeID: t.type.rawValue, bytes: t.raw)
        }
        let path = dir.appendingPathComponent("embeddings.gguf").path
        try writer.write(to: path)
        let gguf = try GGUFFile(path: path)
        for (i, t) in tensors.enumerated() {
            let table = EncodedMatrix(info: try XCTUnwrap(gguf.tensorInfo("t\(i)")), gguf: gguf)
            XCTAssertEqual(table.interleaved != nil, [.q8_0, .q4_1, .q5_0].contains(t.type), "\(t.type)")
            let rows = try EmbeddingRows(table, gguf: gguf)
            var row = [Float](repeating: .nan, count: t.cols)
            for r in [0, 1, 7, 8, 31, 32, 45, 63] {
                row.withUnsafeMutableBufferPointer { rows.copyRow(r, into: $0.baseAddress!) }
                for c in 0..<t.cols {
                    let want = t.weights[r * t.cols + c]
                    XCTAssertEqual(row[c], want, accuracy: 1e-6 * max(1, abs(want)), "\(t.type) row \(r) column \(c)")
                }
            }
        }
    }
}
