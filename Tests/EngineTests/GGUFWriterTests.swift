import Foundation
import XCTest
import KVStashCore
@testable import KVStashEngine

/// The writer, dequantization and every refusal of bad input.
final class GGUFWriterTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try TestSupport.tempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func testMetadataRoundTripsEveryValueType() throws {
        var w = GGUFWriter()
        let values: [(String, GGUFValue)] = [
            ("u8", .uint8(200)), ("i8", .int8(-5)), ("u16", .uint16(60000)), ("i16", .int16(-300)),
            ("u32", .uint32(4_000_000_000)), ("i32", .int32(-7)), ("u64", .uint64(1 << 40)), ("i64", .int64(-(1 << 40))),
            ("f32", .float32(1.5)), ("f64", .float64(-2.25)), ("b", .bool(true)), ("s", .string("héllo ✓")),
            ("arr", .array([.string("a"), .string("bc")])), ("nums", .array([.int32(1), .int32(-2)])),
        ]
        values.forEach { w.set($0.0, $0.1) }
        try w.addTensor("t", dims: [4, 2], type: .f32, data: [1, 2, 3, 4, 5, 6, 7, 8])
        try w.write(to: path("m.gguf"))
        let f = try GGUFFile(path: path("m.gguf"))
        XCTAssertEqual(f.version, 3)
        for (k, v) in values { XCTAssertEqual(f[k], v, k) }
        XCTAssertEqual(f.tensorInfo("t")?.dims, [4, 2])
        XCTAssertEqual(try f.dequantize("t"), [1, 2, 3, 4, 5, 6, 7, 8])
    }

    /// Each type decodes within its quantization step of the original.
    func testDequantizeEveryType() throws {
        var rng = SplitMix64(seed: 5)
        let data = (0..<256).map { _ in rng.uniform(3) }
        let tolerance: [(GGMLType, Float)] = [(.f32, 0), (.f16, 2e-3), (.bf16, 2e-2), (.q8_0, 3.0 / 127),
                                              (.q4_0, 3.0 / 8 * 1.01), (.q4_1, 6.0 / 15 * 0.51 + 1e-2)]
        var w = GGUFWriter()
        for (t, _) in tolerance { try w.addTensor("\(t)", dims: [64, 4], type: t, data: data) }
        try w.write(to: path("q.gguf"))
        let f = try GGUFFile(path: path("q.gguf"))
        for (t, tol) in tolerance {
            XCTAssertEqual(f.tensorInfo("\(t)")?.type, t)
            let back = try f.dequantize("\(t)")
            let err = zip(back, data).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(err, tol, "\(t)")
            if t != .f32 { XCTAssertGreaterThan(err, 0, "\(t) is lossy") }
        }
    }

    func testHalfConversionEdgeCases() throws {
        var w = GGUFWriter()
        let v: [Float] = [0, -0.0, 1, -2, 65504, 6.1035156e-05, 5.9604645e-08, .infinity, -.infinity, 0.333]
        try w.addTensor("h", dims: [v.count], type: .f16, data: v)
        try w.write(to: path("h.gguf"))
        let back = try GGUFFile(path: path("h.gguf")).dequantize("h")
        XCTAssertEqual(Array(back[..<9]), Array(v[..<9]))
        XCTAssertEqual(back[9], Float(Float16(0.333)))
    }

    func testTruncatedFileIsRefused() throws {
        try TinyModel.write(.llama, to: path("t.gguf"))
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path("t.gguf")))
        for cut in [3, 20, 200, bytes.count / 2, bytes.count - 1] {
            try bytes.prefix(cut).write(to: URL(fileURLWithPath: path("cut.gguf")))
            XCTAssertThrowsError(try GGUFFile(path: path("cut.gguf")), "cut at \(cut)") { e in
                let text = "\(e)"
                XCTAssertTrue(text.contains("truncated") || text.contains("not a GGUF"), text)
            }
        }
    }

    func testMissingFileIsRefused() {
        XCTAssertThrowsError(try LlamaModel(path: path("nope.gguf"))) { e in
            XCTAssertTrue("\(e)".contains("cannot open model file"), "\(e)")
        }
    }

    func testUnsupportedTensorTypeIsRefused() throws {
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        w.addRawTensor("blk.0.attn_q.weight", dims: [256], typeID: GGMLType.q2_K.rawValue, bytes: [UInt8](repeating: 0, count: 84))
        try w.write(to: path("k.gguf"))
        XCTAssertThrowsError(try GGUFFile(path: path("k.gguf"))) { e in
            XCTAssertEqual("\(e)", "tensor 'blk.0.attn_q.weight' has unsupported type Q2_K "
                + "(supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, Q8_K)")
        }
        var u = GGUFWriter()
        u.addRawTensor("blk.0.attn_k.weight", dims: [256], typeID: 99, bytes: [UInt8](repeating: 0, count: 84))
        try u.write(to: path("u.gguf"))
        XCTAssertThrowsError(try GGUFFile(path: path("u.gguf"))) { e in
            XCTAssertTrue("\(e)".hasPrefix("tensor 'blk.0.attn_k.weight' has unsupported type id 99 (supported: F32"), "\(e)")
        }
    }

    func testUnsupportedArchitectureIsRefused() throws {
        var w = GGUFWriter()
        w.set("general.architecture", .string("gpt2"))
        try w.write(to: path("a.gguf"))
        XCTAssertThrowsError(try LlamaModel(path: path("a.gguf"))) { e in
            XCTAssertEqual(e as? EngineError, .unsupportedArchitecture("gpt2"))
            XCTAssertTrue("\(e)".contains("'gpt2'") && "\(e)".contains("gemma3, llama, qwen2"), "\(e)")
        }
    }

    /// A model file with a tensor removed or of the wrong shape.
    func testMissingOrMisshapenTensorIsRefused() throws {
        let source = try GGUFFile(path: TestSupport.tinyModelPath(.llama))
        for (victim, replacement) in [("blk.1.ffn_up.weight", nil), ("blk.0.attn_k.weight", [64, 64])] as [(String, [Int]?)] {
            var w = GGUFWriter()
            source.metadata.forEach { w.set($0.key, $0.value) }
            for t in source.tensors {
                if t.name == victim {
                    guard let dims = replacement else { continue }
                    try w.addTensor(t.name, dims: dims, type: .f32, data: [Float](repeating: 0, count: dims.reduce(1, *)))
                } else {
                    try w.addTensor(t.name, dims: t.dims, type: .f32, data: source.dequantize(t))
                }
            }
            try w.write(to: path("bad.gguf"))
            XCTAssertThrowsError(try LlamaModel(path: path("bad.gguf"))) { e in
                if replacement == nil {
                    XCTAssertEqual(e as? GGUFError, .missingTensor(victim))
                } else {
                    XCTAssertEqual("\(e)", "tensor '\(victim)' has a bad shape: dims [64, 64], expected [64, 32]")
                }
            }
        }
    }

    func testPrefillRefusesBadInput() throws {
        let model = try LlamaModel(path: TestSupport.tinyModelPath(.llama))
        var cache = model.newCache()
        XCTAssertThrowsError(try model.prefill([1, 512], cache: &cache)) { e in
            XCTAssertEqual(e as? EngineError, .tokenOutOfRange(token: 512, vocabSize: 512))
        }
        XCTAssertThrowsError(try model.prefill([-1], cache: &cache))
        XCTAssertThrowsError(try model.prefill([], cache: &cache)) { XCTAssertEqual($0 as? EngineError, .emptyInput) }
        _ = try model.prefill(Array(repeating: 3, count: 500), cache: &cache)
        XCTAssertThrowsError(try model.prefill(Array(repeating: 3, count: 13), cache: &cache)) { e in
            XCTAssertEqual(e as? EngineError, .contextOverflow(needed: 513, limit: 512))
            XCTAssertEqual("\(e)", "context overflow: 513 tokens needed but the model's context length is 512")
        }
        XCTAssertEqual(cache.count, 500, "a refused prefill leaves the cache untouched")
        _ = try model.prefill(Array(repeating: 3, count: 12), cache: &cache)
        XCTAssertThrowsError(try model.decode(3, cache: &cache))
        var wrong = KVCache(shape: KVShape(layers: 1, kvHeads: 2, headDim: 16))
        XCTAssertThrowsError(try model.decode(3, cache: &wrong))
    }
}
