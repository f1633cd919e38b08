import CKernels
import Foundation
import XCTest
@testable import KVStashEngine

/// Encoded blocks of Q5_0, Q5_1 and the K-quants for the kernel tests: every code byte
/// random (so every bit of the packed scales and high bits is exercised), scale fields
/// of sane magnitude (random bytes there would be inf or NaN halves; weights within a few
/// units, so products of 768 terms stay within the naive check's tolerance), Q6_K scales of both signs.
struct RandomBlocks {
    var rng: SplitMix64

    mutating func blocks(_ type: GGMLType, count: Int) -> [UInt8] {
        let size = type.blockLayout!.bytes
        var raw = (0..<(count * size)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        func put(_ bytes: [UInt8], _ at: Int) { raw.replaceSubrange(at..<(at + bytes.count), with: bytes) }
        func half(_ at: Int, _ center: Float, _ spread: Float) {
            let bits = Float16(center + rng.uniform(spread)).bitPattern
            put([UInt8(bits & 0xFF), UInt8(bits >> 8)], at)
        }
        for b in 0..<count {
            let o = b * size
            switch type {
            case .q5_0: half(o, 0, 0.1)
            case .q5_1: half(o, 0.05, 0.04); half(o + 2, 0, 1)
            case .q4_K, .q5_K: half(o, 0.001, 0.0008); half(o + 2, 0.001, 0.0008)
            case .q6_K: half(o + 208, 0, 0.0005)
            case .q4_0, .q8_0: half(o, 0, 0.05)
            case .q4_1: half(o, 0.05, 0.04); half(o + 2, 0, 1)
            default: put(withUnsafeBytes(of: rng.uniform(0.01).bitPattern.littleEndian, Array.init), o)
            }
        }
        return raw
    }
}

/// Random tensors of every type and shape, their encoded bytes and their weights as the PyPI
/// `gguf` package dequantizes them (Tests/reference/quant_reference.py), type by type, shape by
/// shape.
struct PackageWeights {
    struct Tensor {
        let type: GGMLType
        let rows: Int
        let cols: Int
        let raw: [UInt8]
        let weights: [Float]
    }

    static func make(types: [GGMLType], shapes: [(rows: Int, cols: Int)], seed: UInt64) throws -> [Tensor] {
        let dir = try TestSupport.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var random = RandomBlocks(rng: SplitMix64(seed: seed))
        var w = GGUFWriter(), encoded: [(GGMLType, Int, Int, [UInt8])] = []
        for type in types {
            for (i, shape) in shapes.enumerated() {
                let raw = random.blocks(type, count: shape.rows * shape.cols / type.blockLayout!.elements)
                w.addRawTensor("\(type).\(i)", dims: [shape.cols, shape.rows], typeID: type.rawValue, bytes: raw)
                encoded.append((type, shape.rows, shape.cols, raw))
            }
        }
        let path = dir.appendingPathComponent("tensors.gguf").path, golden = dir.appendingPathComponent("golden.f32").path
        try w.write(to: path)
        _ = try TestSupport.runPython(TestSupport.quantReferenceScript, ["gguf", path, golden])
        let weights = try Data(contentsOf: URL(fileURLWithPath: golden)).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        var offset = 0, tensors: [Tensor] = []
        for (type, rows, cols, raw) in encoded {
            tensors.append(Tensor(type: type, rows: rows, cols: cols, raw: raw,
                                  weights: Array(weights[offset..<(offset + rows * cols)])))
            offset += rows * cols
        }
        guard offset == weights.count else { throw CocoaError(.fileReadCorruptFile) }
        return tensors
    }
}

/// Q5_0, Q5_1 and the K-quants against the PyPI `gguf` package's dequantization, and the
/// writer's encoders of every type.
final class KQuantTests: XCTestCase {
    static let newTypes: [GGMLType] = [.q5_0, .q5_1, .q4_K, .q5_K, .q6_K, .q8_K]

    /// Every readable type written by our encoders from Gaussian data, plus random blocks
    /// of each new type, decode to the `gguf` package's values; the encoders' error is
    /// within a bound of each type's precision.
    func testEveryTypeDequantizesAsTheGGUFPackage() throws {
        let dir = try TestSupport.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = SplitMix64(seed: 3)
        let data = (0..<(512 * 3)).map { _ in rng.uniform(1) + rng.uniform(1) + rng.uniform(1) }
        var w = GGUFWriter()
        for t in GGMLType.readable { try w.addTensor("enc.\(t)", dims: [512, 3], type: t, data: data) }
        var random = RandomBlocks(rng: SplitMix64(seed: 4))
        for t in Self.newTypes {
            w.addRawTensor("raw.\(t)", dims: [512, 3], typeID: t.rawValue,
                           bytes: random.blocks(t, count: 3 * 512 / t.blockLayout!.elements))
        }
        let path = dir.appendingPathComponent("types.gguf").path
        try w.write(to: path)
        try Self.checkAgainstGGUFPackage(path: path, rowsPerTensor: nil)

        // Relative RMS error of our encoders, per type (bounds about twice what they give).
        let bounds: [GGMLType: Double] = [.f16: 1e-3, .bf16: 8e-3, .q8_0: 8e-3, .q4_0: 0.15, .q4_1: 0.12,
                                          .q5_0: 0.07, .q5_1: 0.06, .q4_K: 0.12, .q5_K: 0.06, .q6_K: 0.04, .q8_K: 8e-3]
        let file = try GGUFFile(path: path)
        let norm = (data.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
        for t in GGMLType.readable where t != .f32 {
            let back = try file.dequantize("enc.\(t)")
            let err = zip(back, data).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot() / norm
            XCTAssertGreaterThan(err, 0, "\(t) is lossy")
            XCTAssertLessThan(err, bounds[t]!, "\(t): relative RMS error \(err)")
        }
    }

    /// Dequantizes every tensor of the GGUF at `path` with our kernels and compares it
    /// with the `gguf` package's values (Tests/reference/quant_reference.py gguf): all
    /// rows, or up to `rowsPerTensor` of each spread from first to last. Returns the types seen.
    @discardableResult
    static func checkAgainstGGUFPackage(path: String, rowsPerTensor: Int?) throws -> Set<GGMLType> {
        let out = try TestSupport.tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let golden = out.appendingPathComponent("golden.f32").path
        let listing = try TestSupport.runPython(TestSupport.quantReferenceScript,
                                                ["gguf", path, golden] + (rowsPerTensor.map { [String($0)] } ?? []))
            as! [[String: Any]]
        let expected = try Data(contentsOf: URL(fileURLWithPath: golden)).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        let file = try GGUFFile(path: path)
        XCTAssertEqual(listing.map { $0["name"] as! String }, file.tensors.map(\.name))
        var offset = 0, types = Set<GGMLType>()
        for (info, entry) in zip(file.tensors, listing) {
            types.insert(info.type)
            XCTAssertEqual(entry["type"] as? String, "\(info.type)")
            let values = try file.dequantize(info)
            XCTAssertTrue(values.allSatisfy(\.isFinite), "\(info.name): non-finite values")
            let cols = info.dims[0]
            for row in entry["rows"] as! [Int] {
                let mine = values[(row * cols)..<((row + 1) * cols)], theirs = expected[offset..<(offset + cols)]
                offset += cols
                // Equal up to a fused multiply-add's last bit.
                let scale = max(1, theirs.map(abs).max() ?? 0)
                let err = zip(mine, theirs).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(err, 1e-6 * scale, "\(info.name) (\(info.type)) row \(row)")
            }
        }
        XCTAssertEqual(offset, expected.count)
        return types
    }

    func testCTypeIdsMirrorGGMLType() {
        let pairs: [(GGMLType, kv_ggml_type)] = [
            (.f32, KV_GGML_F32), (.f16, KV_GGML_F16), (.q4_0, KV_GGML_Q4_0), (.q4_1, KV_GGML_Q4_1),
            (.q5_0, KV_GGML_Q5_0), (.q5_1, KV_GGML_Q5_1), (.q8_0, KV_GGML_Q8_0), (.q8_1, KV_GGML_Q8_1),
            (.q2_K, KV_GGML_Q2_K), (.q3_K, KV_GGML_Q3_K), (.q4_K, KV_GGML_Q4_K), (.q5_K, KV_GGML_Q5_K),
            (.q6_K, KV_GGML_Q6_K), (.q8_K, KV_GGML_Q8_K), (.i8, KV_GGML_I8), (.i16, KV_GGML_I16),
            (.i32, KV_GGML_I32), (.i64, KV_GGML_I64), (.f64, KV_GGML_F64), (.bf16, KV_GGML_BF16),
        ]
        for (swift, c) in pairs { XCTAssertEqual(swift.rawValue, c.rawValue, "\(swift)") }
    }

    /// A K-quant tensor whose rows are not a multiple of 256 is refused by name, in the
    /// reader and in the writer.
    func testRowLengthOutsideTheBlockIsRefused() throws {
        let dir = try TestSupport.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var w = GGUFWriter()
        w.addRawTensor("blk.0.ffn_up.weight", dims: [128, 2], typeID: GGMLType.q4_K.rawValue, bytes: [UInt8](repeating: 0, count: 144))
        let path = dir.appendingPathComponent("rows.gguf").path
        try w.write(to: path)
        XCTAssertThrowsError(try GGUFFile(path: path)) { e in
            XCTAssertEqual("\(e)", "tensor 'blk.0.ffn_up.weight' has a bad shape: row length 128 is not a multiple of the Q4_K block (256)")
        }
        var v = GGUFWriter()
        XCTAssertThrowsError(try v.addTensor("t", dims: [640, 1], type: .q6_K, data: [Float](repeating: 0, count: 640))) { e in
            XCTAssertEqual("\(e)", "tensor 't' has a bad shape: row length 640 is not a multiple of the Q6_K block (256)")
        }
    }
}

/// The small-row kernels on the new types (naive product and checks in SmallProductTests.swift).
extension SmallProductTests {
    func testKQuantProductsEqualNaiveProduct() throws {
        var random = RandomBlocks(rng: SplitMix64(seed: 8))
        for type in KQuantTests.newTypes {
            let block = type.blockLayout!.elements
            for (rows, cols) in [(1, 256), (5, 512), (13, 256), (33, 768)] + (block == 32 ? [(7, 96)] : []) {
                let raw = random.blocks(type, count: rows * cols / block)
                var w = [Float](repeating: 0, count: rows * cols)
                try raw.withUnsafeBytes { r in
                    try w.withUnsafeMutableBufferPointer {
                        try GGUFFile.dequantize(r, type: type, count: rows * cols, into: $0.baseAddress!, name: "w")
                    }
                }
                for m in [1, 2, 8, 9, 17, 32, 33] {
                    let ldx = cols + 3, ldy = rows + 5
                    let x = (0..<(m * ldx)).map { _ in gaussian() }
                    let before = (0..<(m * ldy)).map { _ in gaussian() }
                    for accumulate: Int32 in [0, 1] {
                        var y = before
                        let id = Int32(type.rawValue)
                        let status = m == 1
                            ? raw.withUnsafeBytes { kv_matvec(id, $0.baseAddress!, x, &y, rows, cols, accumulate) }
                            : raw.withUnsafeBytes { kv_matmul_rows(id, $0.baseAddress!, x, ldx, &y, ldy, m, rows, cols, accumulate) }
                        XCTAssertEqual(status, 0)
                        checkProduct(y, before: before, w: w, x: x, m: m, rows: rows, cols: cols, ldx: ldx, ldy: ldy,
                                     accumulate: accumulate == 1, "\(type) m \(m) rows \(rows) cols \(cols)")
                    }
                }
            }
        }
        var y = [Float](repeating: 0, count: 4)
        let x = [Float](repeating: 0, count: 256)
        XCTAssertEqual(kv_matvec(Int32(KV_GGML_Q4_K.rawValue), [UInt8](repeating: 0, count: 144), x, &y, 1, 128, 0), -1,
                       "K-quant rows must be a multiple of 256")
        XCTAssertEqual(kv_matmul_rows(Int32(KV_GGML_Q2_K.rawValue), [UInt8](repeating: 0, count: 84), x, 128, &y, 4, 2, 1, 256, 0), -1,
                       "no kernel for Q2_K")
    }

    /// The K-quant and Q5 types on both register tiles of 9...32 inputs: the same bits. And
    /// Q5_0 through its interleaved Q8_0 copy (`kv_qdot_interleave_q5_0`, what small prefills
    /// read): bit for bit the row-major product for 9...32 inputs, the naive one for fewer.
    func testKQuantTilesAndInterleavedQ5_0GiveTheSameBits() throws {
        defer { kv_matmul_set_tiles(-1) }
        var random = RandomBlocks(rng: SplitMix64(seed: 9))
        for type in KQuantTests.newTypes {
            let rows = 40, cols = 512, id = Int32(type.rawValue)
            let raw = random.blocks(type, count: rows * cols / type.blockLayout!.elements)
            for m in [9, 17, 32] {
                let x = (0..<(m * cols)).map { _ in gaussian() }
                var wide = [Float](repeating: 0, count: m * rows), narrow = wide
                kv_matmul_set_tiles(1)
                XCTAssertEqual(raw.withUnsafeBytes { kv_matmul_rows(id, $0.baseAddress!, x, cols, &wide, rows, m, rows, cols, 0) }, 0)
                kv_matmul_set_tiles(0)
                XCTAssertEqual(raw.withUnsafeBytes { kv_matmul_rows(id, $0.baseAddress!, x, cols, &narrow, rows, m, rows, cols, 0) }, 0)
                XCTAssertEqual(wide.map(\.bitPattern), narrow.map(\.bitPattern), "\(type) m \(m)")
            }
        }
        let rows = 64, cols = 256
        let raw = random.blocks(.q5_0, count: rows * cols / 32)
        var w = [Float](repeating: 0, count: rows * cols)
        try raw.withUnsafeBytes { r in
            try w.withUnsafeMutableBufferPointer {
                try GGUFFile.dequantize(r, type: .q5_0, count: rows * cols, into: $0.baseAddress!, name: "w")
            }
        }
        var copy = [UInt8](repeating: 0, count: rows * cols / 32 * 34)
        XCTAssertEqual(kv_qdot_interleave_q5_0(raw, &copy, rows, cols), 0)
        for m in [2, 8, 9, 20, 32] {
            let ldx = cols + 1, ldy = rows + 3
            let x = (0..<(m * ldx)).map { _ in gaussian() }
            let before = (0..<(m * ldy)).map { _ in gaussian() }
            for accumulate: Int32 in [0, 1] {
                var y = before, reference = before
                XCTAssertEqual(kv_matmul_interleaved(Int32(GGMLType.q8_0.rawValue), copy, x, ldx, &y, ldy, m, rows, cols, accumulate), 0)
                XCTAssertEqual(raw.withUnsafeBytes {
                    kv_matmul_rows(Int32(GGMLType.q5_0.rawValue), $0.baseAddress!, x, ldx, &reference, ldy, m, rows, cols, accumulate)
                }, 0)
                checkProduct(y, before: before, w: w, x: x, m: m, rows: rows, cols: cols, ldx: ldx, ldy: ldy,
                             accumulate: accumulate == 1, "Q5_0 as interleaved Q8_0, m \(m)")
                if m > 8 { XCTAssertEqual(y.map(\.bitPattern), reference.map(\.bitPattern), "Q5_0 m \(m): same sums") }
            }
        }
    }
}
