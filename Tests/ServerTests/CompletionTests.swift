import Foundation
import KVStashEngine
import XCTest
@testable import KVStashServer

/// Completions and chat over real HTTP against the real model, checked against greedy
/// decoding run straight on the engine.
final class CompletionTests: XCTestCase {
    var running: RunningServer!
    var model: LlamaModel!
    var tokenizer: Tokenizer!

    override func setUp() async throws {
        model = try TestModel.model()
        tokenizer = try Tokenizer(gguf: model.gguf)
        let backend = try EngineBackend(model: model, modelID: "test-model")
        running = try await RunningServer.start(KVStashServer(
            configuration: ServerConfiguration(port: 0, adminToken: "secret"), backend: backend))
    }

    override func tearDown() async throws {
        await running?.stop()
    }

    func testCompletionIsGreedyContinuation() async throws {
        let prompt = "The capital of France is"
        let (status, json) = try await running.post("/v1/completions", [
            "model": "test-model", "prompt": prompt, "max_tokens": 8, "temperature": 0,
        ])
        XCTAssertEqual(status, 200, "\(json)")
        let tokens = tokenizer.encode(prompt)
        let expected = tokenizer.decode(try TestModel.greedy(model, tokens: tokens, maxTokens: 8))
        XCTAssertEqual(json["choices", "0", "text"] as? String, expected)
        XCTAssertEqual(json["object"] as? String, "text_completion")
        XCTAssertEqual(json["usage", "prompt_tokens"] as? Int, tokens.count)
        XCTAssertEqual(json["usage", "prompt_tokens_details", "cached_tokens"] as? Int, 0)
        XCTAssertNotNil(json["usage", "completion_tokens"] as? Int)
    }

    func testChatUsesTheTemplateAndStreamsTheSameText() async throws {
        let messages: [[String: Any]] = [["role": "user", "content": "What is the capital of France?"]]
        let (status, json) = try await running.post("/v1/chat/completions", [
            "model": "test-model", "messages": messages, "max_tokens": 10, "temperature": 0,
        ])
        XCTAssertEqual(status, 200, "\(json)")
        let template = try ChatTemplate(gguf: model.gguf)
        let rendered = template.render([ChatMessage(role: "user", content: "What is the capital of France?")],
                                       addGenerationPrompt: true, defaultSystem: true)
        let expectedIDs = try TestModel.greedy(model, tokens: tokenizer.encode(rendered), maxTokens: 10)
        let content = try XCTUnwrap(json["choices", "0", "message", "content"] as? String)
        XCTAssertEqual(content, tokenizer.decode(expectedIDs))
        XCTAssertEqual(json["choices", "0", "message", "role"] as? String, "assistant")
        XCTAssertEqual(json["choices", "0", "finish_reason"] as? String, expectedIDs.count == 10 ? "length" : "stop")
        // Without a cache every prompt token is prefilled; the steps are timed.
        XCTAssertEqual(json["timings", "cache_n"] as? Int, 0)
        XCTAssertEqual(json["timings", "prompt_n"] as? Int, json["usage", "prompt_tokens"] as? Int)
        XCTAssertEqual(json["timings", "predicted_n"] as? Int, expectedIDs.count)
        XCTAssertGreaterThan(json["timings", "prompt_ms"] as? Double ?? 0, 0, "\(json)")
        XCTAssertGreaterThan(json["timings", "tokenize_ms"] as? Double ?? 0, 0)

        let body = try JSONSerialization.data(withJSONObject: [
            "model": "test-model", "messages": messages, "max_tokens": 10, "temperature": 0, "stream": true,
            "stream_options": ["include_usage": true],
        ] as [String: Any])
        let (streamStatus, data) = try await running.send("POST", "/v1/chat/completions", body: body)
        XCTAssertEqual(streamStatus, 200)
        let (events, done) = parseSSE(data)
        XCTAssertTrue(done, "stream must end with data: [DONE]")
        XCTAssertEqual(events.first?["choices", "0", "delta", "role"] as? String, "assistant")
        let streamed = events.compactMap { $0["choices", "0", "delta", "content"] as? String }.joined()
        XCTAssertEqual(streamed, content)
        XCTAssertEqual(events.last?["usage", "completion_tokens"] as? Int, json["usage", "completion_tokens"] as? Int)
        // As llama-server does, the chunk that finishes the answer carries its timings.
        let last = try XCTUnwrap(events.last { $0["choices", "0", "finish_reason"] is String })
        XCTAssertEqual(last["timings", "predicted_n"] as? Int, expectedIDs.count, "\(last)")
        XCTAssertEqual(last["timings", "prompt_n"] as? Int, json["usage", "prompt_tokens"] as? Int)
    }

    func testStopSequenceCutsTheText() async throws {
        let prompt = "1, 2, 3, 4, 5,"
        let full = tokenizer.decode(try TestModel.greedy(model, tokens: tokenizer.encode(prompt), maxTokens: 16))
        let chars = Array(full)
        XCTAssertGreaterThan(chars.count, 6)
        let stop = String(chars[3..<5])
        let (status, json) = try await running.post("/v1/completions", [
            "model": "test-model", "prompt": prompt, "max_tokens": 16, "temperature": 0, "stop": stop,
        ])
        XCTAssertEqual(status, 200)
        XCTAssertEqual(json["choices", "0", "text"] as? String, String(full[..<full.range(of: stop)!.lowerBound]))
        XCTAssertEqual(json["choices", "0", "finish_reason"] as? String, "stop")
    }

    func testSeededSamplingIsReproducible() async throws {
        let request: [String: Any] = ["model": "test-model", "prompt": "Once upon a time", "max_tokens": 12,
                                      "temperature": 0.9, "top_p": 0.95, "seed": 1234]
        let a = try await running.post("/v1/completions", request)
        let b = try await running.post("/v1/completions", request)
        XCTAssertEqual(a.status, 200)
        XCTAssertEqual(a.json["choices", "0", "text"] as? String, b.json["choices", "0", "text"] as? String)
    }

    func testModelsAndHealth() async throws {
        let models = try await running.get("/v1/models")
        XCTAssertEqual(models.status, 200)
        XCTAssertEqual(models.json["data", "0", "id"] as? String, "test-model")
        XCTAssertEqual(models.json["data", "0", "context_length"] as? Int, model.config.contextLength)
        let health = try await running.get("/health")
        XCTAssertEqual(health.json["status"] as? String, "ok")
    }
}
