import XCTest
import KVStashCore
@testable import KVStashEngine

/// The core invariant: logits(prefill(A ++ B)) ≈ logits(prefill(B, past: KV(A))),
/// including when KV(A) is copied row by row (pre-RoPE K and V only) into a fresh
/// cache, as the store does.
final class SpliceTests: XCTestCase {
    /// Copies positions `range` of `source` into a fresh cache through `extend` and
    /// `withMutableRows`, one position at a time (pre-RoPE K and V only).
    static func copyRowByRow(_ source: KVCache, _ range: Range<Int>, model: LlamaModel) -> KVCache {
        var fresh = model.newCache()
        fresh.extend(by: range.count)
        let d = source.shape.kvDim
        for layer in 0..<source.shape.layers {
            for kind in [KVKind.key, .value] {
                for (i, p) in range.enumerated() {
                    let row = source.rows(layer: layer, kind, p..<(p + 1))
                    fresh.withMutableRows(layer: layer, kind, i..<(i + 1)) { dst in
                        for j in 0..<d { dst[j] = row[j] }
                    }
                }
            }
        }
        return fresh
    }

    static func checkSplice(model: LlamaModel, a: [Int], b: [Int], file: StaticString = #filePath, line: UInt = #line) throws {
        var whole = model.newCache()
        let full = try model.prefill(a + b, cache: &whole, allLogits: true)
        let vocab = model.config.vocabSize
        let expected = Array(full[(a.count * vocab)...])

        var pastA = model.newCache()
        _ = try model.prefill(a, cache: &pastA)
        var continued = pastA
        let spliced = try model.prefill(b, cache: &continued, allLogits: true)
        XCTAssertLessThan(TestSupport.relativeError(spliced, expected), 1e-4, "prefill(B, past: KV(A))", file: file, line: line)

        var copied = copyRowByRow(pastA, 0..<a.count, model: model)
        XCTAssertEqual(copied.ropedCount, 0, file: file, line: line)
        let fromCopy = try model.prefill(b, cache: &copied, allLogits: true)
        XCTAssertLessThan(TestSupport.relativeError(fromCopy, expected), 1e-4, "row-by-row copied KV(A)", file: file, line: line)
        XCTAssertEqual(copied.count, a.count + b.count, file: file, line: line)
        XCTAssertEqual(copied.ropedCount, copied.count, file: file, line: line)
        // Pre-RoPE K and V of the whole sequence agree too.
        for layer in [0, model.config.layers - 1] {
            for kind in [KVKind.key, .value] {
                let x = copied.rows(layer: layer, kind, 0..<copied.count)
                let y = whole.rows(layer: layer, kind, 0..<whole.count)
                XCTAssertLessThan(TestSupport.relativeError(x, y), 1e-4, "layer \(layer) \(kind)", file: file, line: line)
            }
        }
    }

    func testTinyLlamaSplice() throws {
        let path = try TestSupport.tinyModelPath(.llama)
        let model = try LlamaModel(path: path)
        let t = TestSupport.tokens(100, vocab: model.config.vocabSize, seed: 9)
        try Self.checkSplice(model: model, a: Array(t[..<64]), b: Array(t[64...]))
        try Self.checkSplice(model: model, a: Array(t[..<1]), b: Array(t[1...]))
    }

    func testTinyQwen2Splice() throws {
        let model = try LlamaModel(path: TestSupport.tinyModelPath(.qwen2))
        let t = TestSupport.tokens(80, vocab: model.config.vocabSize, seed: 10)
        try Self.checkSplice(model: model, a: Array(t[..<37]), b: Array(t[37...]))
    }

    /// Splicing in the middle: cache rows after a prefix are replaced by copied rows.
    func testDecodeAfterSpliceMatchesContinuousDecode() throws {
        let model = try LlamaModel(path: TestSupport.tinyModelPath(.llama))
        let t = TestSupport.tokens(50, vocab: model.config.vocabSize, seed: 11)
        var a = model.newCache()
        var logitsA = try model.prefill(t, cache: &a)
        var b = Self.copyRowByRow(a, 0..<a.count, model: model)
        var next = TestSupport.argmax(logitsA)
        var logitsB = try model.prefill([next], cache: &b)
        logitsA = try model.decode(next, cache: &a)
        for _ in 0..<10 {
            XCTAssertLessThan(TestSupport.relativeError(logitsB, logitsA), 1e-4)
            next = TestSupport.argmax(logitsA)
            logitsA = try model.decode(next, cache: &a)
            logitsB = try model.decode(next, cache: &b)
        }
    }

    func testRealModelSplice() throws {
        let model = try TestSupport.realModel()
        let golden = try RealModelTests.goldens()
        let long = golden.first { $0.name == "raw_long_over_one_chunk" }!.promptTokens
        try Self.checkSplice(model: model, a: Array(long[..<256]), b: Array(long[256..<300]))
        // A past longer than one chunk and a B that crosses a chunk boundary.
        try Self.checkSplice(model: model, a: Array(long[..<520]), b: Array(long[520...]))
    }
}
