import XCTest
import KVStashCore
@testable import KVStashEngine

/// The core invariant: logits(prefill(A ++ B)) ≈ logits(prefill(B, past: KV(A))),
/// including when KV(A) is copied row by row (K before RoPE, as the engine kept it, and V)
/// into a fresh cache, as the store does.
///
/// The cache holds K and V in f16, so the two sides agree to f16 precision, not f32: the
/// K and V rows of A come from products over a different number of rows (A alone, or
/// A ++ B), whose f32 results can differ in the last bits, and rounding to f16 turns an
/// occasional such difference into one f16 step (2^-11 relative), which the next layers
/// carry on. The tolerances below leave room for that: 2e-3 on logits, and on K and V
/// (relative to the largest element) 4e-3, about eight f16 steps, where the real model's
/// last layer measured 2.2e-3 (its first layer and the tiny models stay near one step). A copy through the store's
/// lossless path, by contrast, is exact: it reads the same f16 cache as `prefill(B, past:
/// KV(A))` and must give identical logits.
final class SpliceTests: XCTestCase {
    /// Copies positions `range` of `source` into a fresh cache through `extend` and
    /// `withMutableRows`, one position at a time (K before RoPE and V, the store's view).
    static func copyRowByRow(_ source: KVCache, _ range: Range<Int>, model: LlamaModel) -> KVCache {
        var fresh = model.newCache()
        fresh.extend(by: range.count)
        for layer in 0..<source.shape.layers {
            for kind in [KVKind.key, .value] {
                for (i, p) in range.enumerated() {
                    source.withRows(layer: layer, kind, p..<(p + 1)) { row in
                        fresh.withMutableRows(layer: layer, kind, i..<(i + 1)) { dst in
                            _ = dst.update(fromContentsOf: row)
                        }
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
        pastA.keepsRawKeys = true
        _ = try model.prefill(a, cache: &pastA)
        var continued = pastA
        let spliced = try model.prefill(b, cache: &continued, allLogits: true)
        XCTAssertLessThan(TestSupport.relativeError(spliced, expected), 2e-3, "prefill(B, past: KV(A))", file: file, line: line)

        var copied = copyRowByRow(pastA, 0..<a.count, model: model)
        let fromCopy = try model.prefill(b, cache: &copied, allLogits: true)
        XCTAssertEqual(fromCopy, spliced, "row-by-row copied KV(A) is the same cache", file: file, line: line)
        XCTAssertEqual(copied.count, a.count + b.count, file: file, line: line)
        // K after RoPE and V of the whole sequence agree too.
        for layer in [0, model.config.layers - 1] {
            for kind in [KVKind.key, .value] {
                let x = copied.rows(layer: layer, kind, 0..<copied.count)
                let y = whole.rows(layer: layer, kind, 0..<whole.count)
                XCTAssertLessThan(TestSupport.relativeError(x, y), 4e-3, "layer \(layer) \(kind)", file: file, line: line)
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
        a.keepsRawKeys = true
        var logitsA = try model.prefill(t, cache: &a)
        var b = Self.copyRowByRow(a, 0..<a.count, model: model)
        var next = TestSupport.argmax(logitsA)
        var logitsB = try model.prefill([next], cache: &b)
        logitsA = try model.decode(next, cache: &a)
        for _ in 0..<10 {
            XCTAssertEqual(logitsB, logitsA, "the copy is the same f16 cache")
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
