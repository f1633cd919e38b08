import Foundation
import Hummingbird
import XCTest
@testable import KVStashServer

/// The HTTP layer over `FakeBackend`, on a loopback port (`withLoopbackServer`): the
/// JSON and SSE shapes, stop sequences across pieces, finish reasons, usage, precompute jobs.
final class FakeBackendTests: XCTestCase {
    let fake = FakeBackend()

    private func server() -> KVStashServer {
        KVStashServer(configuration: ServerConfiguration(port: 0, adminToken: "secret"), backend: fake)
    }

    private static func body(_ object: [String: Any]) throws -> Data { try JSONSerialization.data(withJSONObject: object) }

    func testCompletionTextUsageAndFinishReason() async throws {
        let fake = self.fake
        try await withLoopbackServer(server()) { client in
            let (status, json) = try await client.post("/v1/completions", ["prompt": "one two three", "max_tokens": 3])
            XCTAssertEqual(status, 200, "\(json)")
            XCTAssertEqual(json["object"] as? String, "text_completion")
            XCTAssertEqual(json["choices", "0", "text"] as? String, fake.answer(maxTokens: 3))
            XCTAssertEqual(json["choices", "0", "finish_reason"] as? String, "length")
            XCTAssertEqual(json["usage", "prompt_tokens"] as? Int, 3)
            XCTAssertEqual(json["usage", "completion_tokens"] as? Int, 3)
            XCTAssertEqual(json["usage", "prompt_tokens_details", "cached_tokens"] as? Int, 0)
            XCTAssertNil(json["timings"], "a backend that times nothing sends no timings")

            let whole = try await client.post("/v1/completions", ["prompt": "hi", "max_tokens": 100])
            XCTAssertEqual(whole.json["choices", "0", "text"] as? String, fake.answer(maxTokens: 100))
            XCTAssertEqual(whole.json["choices", "0", "finish_reason"] as? String, "stop")
        }
    }

    func testChatStreamsSSEWithUsageAndDone() async throws {
        let fake = self.fake
        let request = try Self.body([
            "messages": [["role": "user", "content": "Say hello"]], "max_tokens": 100, "stream": true,
            "stream_options": ["include_usage": true],
        ])
        try await withLoopbackServer(server()) { client in
            let (status, data) = try await client.send(.post, "/v1/chat/completions", body: request)
            XCTAssertEqual(status, 200)
            let (events, done) = parseSSE(data)
            XCTAssertTrue(done, "the stream ends with data: [DONE]")
            XCTAssertEqual(events.first?["object"] as? String, "chat.completion.chunk")
            XCTAssertEqual(events.first?["choices", "0", "delta", "role"] as? String, "assistant")
            let text = events.compactMap { $0["choices", "0", "delta", "content"] as? String }.joined()
            XCTAssertEqual(text, fake.answer(maxTokens: 100), "emoji and split words arrive whole")
            let reasons = events.compactMap { $0["choices", "0", "finish_reason"] as? String }
            XCTAssertEqual(reasons, ["stop"])
            XCTAssertEqual(events.last?["usage", "completion_tokens"] as? Int, fake.pieces.count)
            XCTAssertEqual(events.last?["usage", "prompt_tokens"] as? Int, 3, "role plus two words")
        }
    }

    func testStopSequenceSpanningPiecesEndsTheAnswer() async throws {
        try await withLoopbackServer(server()) { client in
            // " wor" + "ld": the match spans two pieces, and nothing after it is sent.
            let (status, json) = try await client.post("/v1/completions",
                                                       ["prompt": "x", "max_tokens": 100, "stop": ["world", "Done"]])
            XCTAssertEqual(status, 200)
            XCTAssertEqual(json["choices", "0", "text"] as? String, "Hello, ")
            XCTAssertEqual(json["choices", "0", "finish_reason"] as? String, "stop")

            let stream = try Self.body(["prompt": "x", "max_tokens": 100, "stop": "ld!", "stream": true])
            let (_, data) = try await client.send(.post, "/v1/completions", body: stream)
            let (events, done) = parseSSE(data)
            XCTAssertTrue(done)
            XCTAssertEqual(events.compactMap { $0["choices", "0", "text"] as? String }.joined(), "Hello, wor")
        }
    }

    func testBadInputAndAuthAnswerOpenAIErrors() async throws {
        try await withLoopbackServer(server()) { client in
            for (path, bad) in [("/v1/completions", Data("{\"prompt\": ".utf8)),
                                ("/v1/completions", try Self.body(["prompt": "hi", "max_tokens": 1000])),
                                ("/v1/chat/completions", try Self.body(["messages": []]))] {
                let (status, data) = try await client.send(.post, path, body: bad)
                XCTAssertEqual(status, 400, String(decoding: data, as: UTF8.self))
                let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
                XCTAssertNotNil(json["error", "message"] as? String)
            }
            let (unauthorized, _) = try await client.send(.get, "/admin/stats", authorization: "Bearer wrong")
            XCTAssertEqual(unauthorized, 401)
            let (health, _) = try await client.send(.get, "/health")
            XCTAssertEqual(health, 200)
        }
    }

    func testPrecomputeJobReportsProgress() async throws {
        try await withLoopbackServer(server()) { client in
            let (status, job) = try await client.post("/v1/precompute",
                                                      ["documents": ["alpha beta", ["id": "d2", "text": "gamma"]]])
            XCTAssertEqual(status, 202, "\(job)")
            let id = try XCTUnwrap(job["id"] as? String)
            var state: [String: Any] = [:]
            for _ in 0..<200 {
                let (_, data) = try await client.send(.get, "/v1/precompute/" + id)
                state = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
                if state["status"] as? String != "running" { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            XCTAssertEqual(state["status"] as? String, "succeeded", "\(state)")
            XCTAssertEqual(state["documents_done"] as? Int, 2)
            XCTAssertEqual(state["tokens_done"] as? Int, 3)
            let (missing, _) = try await client.send(.get, "/v1/precompute/nope")
            XCTAssertEqual(missing, 404)
        }
    }
}
