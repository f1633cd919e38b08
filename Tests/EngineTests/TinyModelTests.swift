import CKernels
import Dispatch
import Synchronization
import XCTest
import KVStashCore
@testable import KVStashEngine

/// The tiny random-weight models against the independent numpy reference.
final class TinyModelTests: XCTestCase {
    /// Relative error of the logits allowed: 1e-4 on f32 products; 2e-4 where prefill takes
    /// 16-bit input codes against packed weight codes (`PackedProduct`: every input rounded to
    /// 1/32767 of its block's largest magnitude, measured up to 1.3e-4 on these random-weight
    /// models).
    static let tolerance: Float = kv_gemm_q16_available() == 1 && PackedProduct.mode == .auto ? 2e-4 : 1e-4

    func checkAgainstReference(_ spec: TinyModelSpec, tokens n: Int, seed: UInt64) throws {
        let path = try TestSupport.tinyModelPath(spec)
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let model = try LlamaModel(path: path)
        let tokens = TestSupport.tokens(n, vocab: spec.vocabSize, seed: seed)
        var cache = model.newCache()
        let logits = try model.prefill(tokens, cache: &cache, allLogits: true)
        let reference = try TestSupport.referenceLogits(model: path, tokens: tokens)
        XCTAssertEqual(logits.count, n * spec.vocabSize)
        XCTAssertEqual(cache.count, n)
        for (i, row) in reference.enumerated() {
            let mine = logits[(i * spec.vocabSize)..<((i + 1) * spec.vocabSize)]
            let err = TestSupport.relativeError(mine, row[...])
            XCTAssertLessThan(err, Self.tolerance, "position \(i) of \(spec.architecture): relative error \(err)")
        }
    }

    /// The gated FFN product (gate and up 32 features at a time into the down projection's
    /// codes) writes the same codes, bit for bit, as the stacked product into a buffer then the
    /// activation's codes of it, for every layer of models with SiLU and GELU and mixed types,
    /// for 7 and 40 input rows (layers whose gate and up have no packed product are passed by).
    func testGatedProductWritesTheCodesOfTheProductThenTheActivation() throws {
        try XCTSkipUnless(kv_gemm_q16_available() == 1, "no packed products on this CPU")
        var rng = SplitMix64(seed: 31)
        var checked: Set<String> = []
        var gemma3KQuants = TinyModelSpec.gemma3  // GELU on packed gate and up
        (gemma3KQuants.kQuantTypes, gemma3KQuants.dim, gemma3KQuants.ffnDim) = (true, 256, 512)
        for spec in [TinyModelSpec.llama, .gemma3, .kQuants, gemma3KQuants] {
            let path = try TestSupport.tinyModelPath(spec)
            defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
            let model = try LlamaModel(path: path), c = model.config, f = c.ffnDim
            for (l, layer) in model.weights.layers.enumerated() {
                for m in [7, 40] {
                    let gateUp = layer.wGateUp
                    guard gateUp.takesCodes(rows: m) else { continue }
                    checked.insert(spec.architecture + (spec.kQuantTypes ? " K-quants" : ""))
                    let x = (0..<(m * c.dim)).map { _ in Float(Int(rng.next() % 2001) - 1000) / 250 }
                    var codes = [kv_q16_block](repeating: kv_q16_block(), count: m * c.dim / 32)
                    x.withUnsafeBufferPointer { xb in
                        for r in 0..<m { kv_quantize_q16(xb.baseAddress! + r * c.dim, &codes[r * c.dim / 32], c.dim) }
                    }
                    var product = [Float](repeating: .nan, count: m * 2 * f)
                    var separate = [kv_q16_block](repeating: kv_q16_block(), count: m * f / 32), gated = separate
                    gateUp.apply(codes: codes, rows: m, into: &product, ldc: 2 * f)
                    product.withUnsafeBufferPointer { g in
                        switch c.block.activation {
                        case .silu: kv_silu_mul_q16(g.baseAddress!, g.baseAddress! + f, m, f, 2 * f, &separate, f / 32)
                        case .geluTanh: kv_gelu_mul_q16(g.baseAddress!, g.baseAddress! + f, m, f, 2 * f, &separate, f / 32)
                        }
                    }
                    gateUp.gatedCodes(codes, rows: m, activation: c.block.activation, into: &gated)
                    let bytes = { (blocks: [kv_q16_block]) in blocks.withUnsafeBytes { Array($0) } }
                    XCTAssertEqual(bytes(gated), bytes(separate), "\(spec.architecture) layer \(l), \(m) rows")
                    XCTAssertTrue(separate.contains { $0.d > 0 })
                }
            }
        }
        XCTAssertEqual(checked, ["llama K-quants", "gemma3 K-quants"], "SiLU and GELU")
    }

    /// The warm-up pass a server runs at start leaves no trace: a model warmed up answers
    /// bit for bit as one that was not.
    func testWarmUpChangesNoAnswer() throws {
        for spec in [TinyModelSpec.llama, .gemma3] {
            let path = try TestSupport.tinyModelPath(spec)
            defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
            let tokens = TestSupport.tokens(12, vocab: spec.vocabSize, seed: 7)
            var answers: [[Float]] = []
            for warm in [false, true] {
                let model = try LlamaModel(path: path)
                if warm { try model.warmUp() }
                var cache = model.newCache()
                var logits = try model.prefill(tokens, cache: &cache, allLogits: true)
                logits += try model.decode(tokens[0], cache: &cache)
                answers.append(logits)
            }
            XCTAssertEqual(answers[0], answers[1], "\(spec.architecture)")
        }
        // A context too short for the whole pass warms up with what fits.
        for context in [1, 2] {
            var spec = TinyModelSpec.llama
            spec.contextLength = context
            let path = try TestSupport.tinyModelPath(spec)
            defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
            XCTAssertNoThrow(try LlamaModel(path: path).warmUp(), "context \(context)")
        }
    }

    /// Forward chunks reuse one set of activation buffers: an answer after a longer prefill
    /// (a larger set kept, stale rows in it) is bit for bit the answer of a fresh model, and
    /// the set goes to the next forward only once returned.
    func testKeptActivationsChangeNoAnswer() throws {
        for spec in [TinyModelSpec.llama, .gemma3] {
            let path = try TestSupport.tinyModelPath(spec)
            defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
            let long = TestSupport.tokens(40, vocab: spec.vocabSize, seed: 3)
            let short = TestSupport.tokens(5, vocab: spec.vocabSize, seed: 4)
            let used = try LlamaModel(path: path), fresh = try LlamaModel(path: path)
            var first = used.newCache()
            _ = try used.prefill(long, cache: &first)
            var a = used.newCache(), b = fresh.newCache()
            XCTAssertEqual(try used.prefill(short, cache: &a, allLogits: true),
                           try fresh.prefill(short, cache: &b, allLogits: true), "\(spec.architecture)")
            XCTAssertEqual(try used.decode(short[0], cache: &a), try fresh.decode(short[0], cache: &b), "\(spec.architecture)")
        }
        let config = try LlamaModel(path: TestSupport.tinyModelPath()).config
        let scratch = ActivationScratch(config: config)
        let big = scratch.take(rows: 8)
        let other = scratch.take(rows: 4)  // while the first is out: its own buffers
        XCTAssertNotEqual(big.x, other.x)
        scratch.give(big)
        scratch.give(other)  // smaller: freed, the larger set stays
        let again = scratch.take(rows: 6)
        XCTAssertEqual(again.x, big.x)
        XCTAssertEqual(again.rows, 8)
        let more = scratch.take(rows: 2)  // nothing kept now
        XCTAssertNotEqual(more.x, big.x)
        scratch.give(again)
        scratch.give(more)
    }

    /// 8-bit prefill inputs (llama.cpp's input precision) on the packed products: the logits
    /// of a prefill within 5e-2 of the reference's (every input rounded to 1/127 of its block's
    /// largest magnitude), decode unchanged (16-bit inputs).
    func testEightBitPrefillInputsStayNearTheReference() throws {
        try XCTSkipUnless(kv_gemm_q8_available() == 1, "8-bit prefill inputs need AVX-512 VNNI")
        for spec in [TinyModelSpec.llama, .gemma3] {
            let path = try TestSupport.tinyModelPath(spec)
            defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
            let model = try LlamaModel(path: path, prefillInputs: .eight)
            let tokens = TestSupport.tokens(20, vocab: spec.vocabSize, seed: 9)
            var cache = model.newCache()
            let logits = try model.prefill(tokens, cache: &cache, allLogits: true)
            let reference = try TestSupport.referenceLogits(model: path, tokens: tokens)
            var worst: Float = 0
            for (i, row) in reference.enumerated() {
                worst = max(worst, TestSupport.relativeError(logits[(i * spec.vocabSize)..<((i + 1) * spec.vocabSize)], row[...]))
            }
            XCTAssertLessThan(worst, 5e-2, "\(spec.architecture)")
            XCTAssertGreaterThan(worst, Self.tolerance, "\(spec.architecture): the 8-bit inputs are in use")
        }
    }

    func testLlamaLogitsMatchReference() throws {
        try checkAgainstReference(.llama, tokens: 40, seed: 1)
    }

    func testQwen2LogitsMatchReference() throws {
        try checkAgainstReference(.qwen2, tokens: 40, seed: 2)
    }

    /// gemma3 over 40 positions with a window of 8: the sliding layers' band mask on the
    /// BLAS path, then the same tokens in pieces (small-row attention with a first visible
    /// key per lane, and decode).
    func testGemma3LogitsMatchReference() throws {
        let spec = TinyModelSpec.gemma3
        try checkAgainstReference(spec, tokens: 40, seed: 6)
        try checkInPieces(spec, cuts: [11, 23]) { model in
            XCTAssertEqual(model.config.layerAttention.map(\.window), [8, 8, 8, 8, 8, nil])
        }
    }

    /// Q4_K/Q5_K/Q6_K/Q5_0/Q5_1 matrices: 40 rows at once (BLAS on the dequantized
    /// weights), then the same tokens as 20 rows, 3 rows and one decode step (the encoded
    /// kernels: kv_matmul_rows' lanes and tile paths, kv_matvec).
    func testKQuantLogitsMatchReference() throws {
        let spec = TinyModelSpec.kQuants
        try checkAgainstReference(spec, tokens: 40, seed: 4)
        try checkInPieces(spec, cuts: [20, 23])
    }

    /// 24 tokens prefilled in pieces ending at `cuts`, then the last one decoded, against
    /// the reference at every position.
    func checkInPieces(_ spec: TinyModelSpec, cuts: [Int], check: (LlamaModel) -> Void = { _ in }) throws {
        let path = try TestSupport.tinyModelPath(spec)
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let model = try LlamaModel(path: path)
        check(model)
        let tokens = TestSupport.tokens(24, vocab: spec.vocabSize, seed: 5)
        let reference = try TestSupport.referenceLogits(model: path, tokens: tokens)
        var cache = model.newCache()
        var logits: [Float] = []
        for (a, b) in zip([0] + cuts, cuts) { logits += try model.prefill(Array(tokens[a..<b]), cache: &cache, allLogits: true) }
        logits += try model.decode(tokens[23], cache: &cache)
        for (i, row) in reference.enumerated() {
            let err = TestSupport.relativeError(logits[(i * spec.vocabSize)..<((i + 1) * spec.vocabSize)], row[...])
            XCTAssertLessThan(err, Self.tolerance, "position \(i): relative error \(err)")
        }
    }

    /// More than one 512-token chunk, in a model with a longer context.
    func testChunkedPrefillMatchesReference() throws {
        var spec = TinyModelSpec.llama
        spec.contextLength = 1024
        spec.layers = 2
        try checkAgainstReference(spec, tokens: 600, seed: 3)
    }
}

/// Prefills that used BLAS park OpenBLAS's workers when they end (`BLASWorkers`): prefills
/// running at once on several threads, finishing while others are still in BLAS (the last
/// one out parks, and the next call restarts the workers), must neither hang nor differ
/// from the same prefill run alone.
final class BLASWorkersTests: XCTestCase {
    func testConcurrentLongPrefillsAgreeWithASequentialOne() throws {
        // The real model: its products are large enough for OpenBLAS to use its workers.
        let model = try TestSupport.realModel()
        let tokens = TestSupport.tokens(80, vocab: model.config.vocabSize, seed: 7)  // > 32 rows: BLAS
        var alone = model.newCache()
        let expected = try model.prefill(tokens, cache: &alone)
        let results = Mutex<[[Float]]>([])
        DispatchQueue.concurrentPerform(iterations: 3) { _ in
            for _ in 0..<2 {
                var cache = model.newCache()
                if let logits = try? model.prefill(tokens, cache: &cache) { results.withLock { $0.append(logits) } }
            }
        }
        let all = results.withLock { $0 }
        XCTAssertEqual(all.count, 6)
        for logits in all {
            XCTAssertLessThan(TestSupport.relativeError(logits[...], expected[...]), 1e-5)
        }
    }
}

/// A tiny model can carry the real model's tokenizer, for tests that need text.
final class TinyModelTokenizerTests: XCTestCase {
    func testTinyModelWithRealTokenizer() throws {
        let real = try GGUFFile(path: TestSupport.realModelPath())
        let dir = try TestSupport.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tiny-tok.gguf").path
        try TinyModel.write(.llama, to: path, tokenizerFrom: real)
        let model = try LlamaModel(path: path)
        XCTAssertEqual(model.config.vocabSize, 49152)
        let tokenizer = try Tokenizer(gguf: model.gguf)
        let ids = tokenizer.encode("Hello, world!")
        XCTAssertEqual(ids, try Tokenizer(gguf: real).encode("Hello, world!"))
        var cache = model.newCache()
        XCTAssertEqual(try model.prefill(ids, cache: &cache).count, 49152)
    }
}
