import XCTest
@testable import KVStashEngine

/// The one generation loop: budget, context limit, cancellation, what the callback sees.
/// A tiny random-weight model carrying the default model's tokenizer (skipped without it).
final class GenerationLoopTests: XCTestCase {
    static func tinyWithTokenizer() throws -> (LlamaModel, Tokenizer) {
        let real = try GGUFFile(path: TestSupport.realModelPath())
        let path = try TestSupport.tempDir().appendingPathComponent("tiny-tok.gguf").path
        try TinyModel.write(.llama, to: path, tokenizerFrom: real)
        let model = try LlamaModel(path: path)
        return (model, try Tokenizer(gguf: model.gguf))
    }

    func testGreedyWithoutStopRunsTheBudgetLikeAHandWrittenLoop() throws {
        let (model, tokenizer) = try Self.tinyWithTokenizer()
        let prompt = TestSupport.tokens(20, vocab: model.config.vocabSize, seed: 3)
        var cache = model.newCache()
        let logits = try model.prefill(prompt, cache: &cache)
        var seen: [Int] = []
        let out = try GenerationLoop(model: model, tokenizer: tokenizer, maxTokens: 12, stopAtEndOfGeneration: false)
            .run(logits: logits, cache: &cache) { token, cache in
                XCTAssertEqual(cache.count, prompt.count + token.index, "the callback sees every position before the token")
                seen.append(token.id)
                return true
            }
        XCTAssertEqual(out.tokens.count, 12)
        XCTAssertEqual(out.tokens, seen)
        XCTAssertEqual(out.end, .length)
        XCTAssertEqual(out.decodeSteps, 11)
        XCTAssertEqual(cache.count, prompt.count + 11, "the last token is not decoded")
        XCTAssertNotNil(out.firstTokenAt)
        XCTAssertLessThanOrEqual(out.firstTokenAt!, out.endedAt)

        var ref = model.newCache()
        var l = try model.prefill(prompt, cache: &ref)
        var expected: [Int] = []
        for _ in 0..<12 {
            expected.append(l.indices.max { l[$0] < l[$1] }!)
            l = try model.decode(expected.last!, cache: &ref)
        }
        XCTAssertEqual(out.tokens, expected)
    }

    func testBudgetIsClippedToTheContext() throws {
        let (model, tokenizer) = try Self.tinyWithTokenizer()
        let context = model.config.contextLength
        let prompt = TestSupport.tokens(context - 7, vocab: model.config.vocabSize, seed: 4)
        var cache = model.newCache()
        let logits = try model.prefill(prompt, cache: &cache)
        let out = try GenerationLoop(model: model, tokenizer: tokenizer, maxTokens: 100, stopAtEndOfGeneration: false)
            .run(logits: logits, cache: &cache)
        XCTAssertEqual(out.tokens.count, 7)
        XCTAssertEqual(out.end, .length)
        XCTAssertLessThanOrEqual(cache.count, context)
    }

    func testCallbackReturningFalseCancels() throws {
        let (model, tokenizer) = try Self.tinyWithTokenizer()
        let prompt = TestSupport.tokens(10, vocab: model.config.vocabSize, seed: 5)
        var cache = model.newCache()
        let logits = try model.prefill(prompt, cache: &cache)
        let out = try GenerationLoop(model: model, tokenizer: tokenizer, maxTokens: 50, stopAtEndOfGeneration: false)
            .run(logits: logits, cache: &cache) { token, _ in token.index < 2 }
        XCTAssertEqual(out.tokens.count, 3)
        XCTAssertEqual(out.end, .cancelled)
        XCTAssertEqual(out.tail, "")
        XCTAssertEqual(out.decodeSteps, 2)
    }
}
