import Foundation
import XCTest
@testable import KVStashEngine

/// The default model against goldens of the numpy reference
/// (Tests/reference/reference_forward.py goldens, committed as JSON).
final class RealModelTests: XCTestCase {
    struct Golden {
        let name: String
        let text: String
        let chatForm: String
        let promptTokens: [Int]
        let greedyTokens: [Int]
        let greedyText: String
        let topIDs: [Int]
        let topLogits: [Float]
    }

    static func goldens(_ path: String = TestSupport.goldensPath) throws -> [Golden] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        return (json["prompts"] as! [[String: Any]]).map { p in
            let top = p["first_step_top20"] as! [String: Any]
            return Golden(name: p["name"] as! String, text: p["text"] as! String,
                          chatForm: p["chat_template_form"] as! String,
                          promptTokens: p["prompt_tokens"] as! [Int], greedyTokens: p["greedy_tokens"] as! [Int],
                          greedyText: p["greedy_text"] as! String,
                          topIDs: top["ids"] as! [Int], topLogits: (top["logits"] as! [Double]).map(Float.init))
        }
    }

    /// Greedy continuation of `prompt` for `n` tokens, and the first step's logits.
    static func greedy(_ model: LlamaModel, _ prompt: [Int], n: Int) throws -> ([Int], [Float]) {
        var cache = model.newCache()
        let first = try model.prefill(prompt, cache: &cache)
        let loop = GenerationLoop(model: model, tokenizer: try Tokenizer(gguf: model.gguf), maxTokens: n,
                                  stopAtEndOfGeneration: false)
        return (try loop.run(logits: first, cache: &cache).tokens, first)
    }

    func testConfigOfDefaultModel() throws {
        let c = try TestSupport.realModel().config
        XCTAssertEqual([c.layers, c.dim, c.heads, c.kvHeads, c.headDim, c.ffnDim, c.contextLength, c.vocabSize],
                       [30, 576, 9, 3, 64, 1536, 8192, 49152])
        XCTAssertEqual(c.ropeBase, 100_000)
        XCTAssertTrue(c.tiedEmbeddings)
        XCTAssertEqual(c.architecture, "llama")
    }

    func testGreedyMatchesReferenceOnEveryPrompt() throws {
        try Self.checkGreedyAndLogits(model: try TestSupport.realModel(), goldens: try Self.goldens())
    }

    /// Each golden's greedy continuation equals ours token for token, and our first-step
    /// logits of its top-20 ids agree within 2e-3 relative error.
    static func checkGreedyAndLogits(model: LlamaModel, goldens: [Golden]) throws {
        for g in goldens {
            XCTAssertGreaterThanOrEqual(g.greedyTokens.count, 32)
            let (tokens, first) = try Self.greedy(model, g.promptTokens, n: g.greedyTokens.count)
            XCTAssertEqual(tokens, g.greedyTokens, "\(g.name) (\(g.chatForm))")
            let mine = g.topIDs.map { first[$0] }
            let err = TestSupport.relativeError(mine, g.topLogits)
            XCTAssertLessThan(err, 2e-3, "\(g.name): top-20 logits relative error \(err)")
        }
    }

    /// The bare-user-turn ChatML prompt (no default system turn) answers Paris.
    func testCapitalOfFranceBareUserTurn() throws {
        let g = try Self.goldens().first { $0.name == "chat_bare_france" }!
        XCTAssertEqual(g.text, "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertTrue(g.greedyText.hasPrefix("The capital of France is Paris."))
        let (tokens, _) = try Self.greedy(try TestSupport.realModel(), g.promptTokens, n: 8)
        XCTAssertEqual(tokens, Array(g.greedyTokens.prefix(8)))
    }
}

/// The whole text path in Swift: chat template, tokenizer, model, streaming decoder.
final class RealModelChatTests: XCTestCase {
    func testFranceThroughTokenizerAndTemplate() throws {
        let model = try TestSupport.realModel()
        let tokenizer = try Tokenizer(gguf: model.gguf)
        let prompt = try ChatTemplate(gguf: model.gguf).render(
            [ChatMessage(role: "user", content: "What is the capital of France?")],
            addGenerationPrompt: true, defaultSystem: false)
        let golden = try RealModelTests.goldens().first { $0.name == "chat_bare_france" }!
        XCTAssertEqual(prompt, golden.text)
        let ids = tokenizer.encode(prompt)
        XCTAssertEqual(ids, golden.promptTokens)
        var cache = model.newCache()
        let logits = try model.prefill(ids, cache: &cache)
        let out = try GenerationLoop(model: model, tokenizer: tokenizer, maxTokens: 32).run(logits: logits, cache: &cache)
        XCTAssertEqual(out.text, "The capital of France is Paris.")
        XCTAssertEqual(out.end, .endOfGeneration)
    }
}
