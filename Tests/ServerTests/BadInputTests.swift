import Foundation
import XCTest
@testable import KVStashServer

/// Bad requests get a 4xx with an OpenAI-style error body, and the server keeps serving
/// (over a socket, against `FakeBackend`: no model needed).
final class BadInputTests: XCTestCase {
    var running: RunningServer!

    override func setUp() async throws {
        let backend = FakeBackend()
        running = try await RunningServer.start(KVStashServer(
            configuration: ServerConfiguration(port: 0, adminToken: "secret", maxBodyBytes: 1 << 20), backend: backend))
    }

    override func tearDown() async throws {
        await running?.stop()
    }

    /// Sends raw bytes and checks the status and that the body is an OpenAI error with a message.
    private func expectError(_ path: String, _ body: Data, status: Int, code: String? = nil,
                             file: StaticString = #filePath, line: UInt = #line) async throws {
        let (got, data) = try await running.send("POST", path, body: body)
        XCTAssertEqual(got, status, String(decoding: data, as: UTF8.self), file: file, line: line)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any], file: file, line: line)
        let message = json["error", "message"] as? String ?? ""
        XCTAssertFalse(message.isEmpty, "error.message missing in \(json)", file: file, line: line)
        XCTAssertNotNil(json["error", "type"] as? String, file: file, line: line)
        if let code { XCTAssertEqual(json["error", "code"] as? String, code, file: file, line: line) }
    }

    private func json(_ object: [String: Any]) throws -> Data { try JSONSerialization.data(withJSONObject: object) }

    func testMalformedAndMistypedBodies() async throws {
        try await expectError("/v1/completions", Data("{\"prompt\": ".utf8), status: 400, code: "invalid_json")
        try await expectError("/v1/completions", Data(), status: 400)
        try await expectError("/v1/chat/completions", Data("[1, 2]".utf8), status: 400)
        try await expectError("/v1/completions", json(["prompt": 42]), status: 400)
        try await expectError("/v1/completions", json(["prompt": "hi", "temperature": "hot"]), status: 400)
        try await expectError("/v1/completions", json(["prompt": "hi", "max_tokens": 1.5]), status: 400)
        try await expectError("/v1/completions", json(["prompt": "hi", "stop": [1, 2]]), status: 400)
        try await expectError("/v1/chat/completions", json(["messages": [["content": "no role"]]]), status: 400)
        try await expectError("/v1/chat/completions", json(["messages": [["role": "wizard", "content": "x"]]]),
                              status: 400)
        try await expectError("/v1/chat/completions", json(["messages": []]), status: 400)
        try await expectError("/v1/chat/completions", json(["model": "test-model"]), status: 400)
    }

    func testUnsupportedAndOutOfRangeValues() async throws {
        try await expectError("/v1/completions", json(["prompt": "hi", "model": "gpt-4"]), status: 404,
                              code: "model_not_found")
        try await expectError("/v1/completions", json(["prompt": "hi", "n": 3]), status: 400)
        try await expectError("/v1/completions", json(["prompt": "hi", "temperature": 7]), status: 400)
        try await expectError("/v1/completions", json(["prompt": "hi", "top_p": 0]), status: 400)
        try await expectError("/v1/completions", json(["prompt": "hi", "max_tokens": 0]), status: 400)
        try await expectError("/v1/completions", json(["prompt": "hi", "stop": ["a", "b", "c", "d", "e"]]), status: 400)
        try await expectError("/v1/completions", json(["prompt": ["a", "b"]]), status: 400)
        try await expectError("/v1/completions", json(["prompt": ""]), status: 400)
    }

    func testLimits() async throws {
        let context = running.server.backend.contextLength
        try await expectError("/v1/completions", json(["prompt": "hi", "max_tokens": context]), status: 400,
                              code: "context_length_exceeded")
        // A prompt longer than the context (well under the body limit).
        let long = String(repeating: "lorem ipsum dolor sit amet ", count: context / 2)
        try await expectError("/v1/completions", json(["prompt": long, "max_tokens": 1]), status: 400,
                              code: "context_length_exceeded")
        // A body over the limit.
        let huge = try json(["prompt": String(repeating: "x", count: 2 << 20)])
        try await expectError("/v1/completions", huge, status: 413, code: "body_too_large")
        // Still alive.
        let (status, json) = try await running.post("/v1/completions", ["prompt": "Hello", "max_tokens": 2])
        XCTAssertEqual(status, 200, "\(json)")
    }

    func testAdminNeedsTheBearerToken() async throws {
        for headers in [[:], ["Authorization": "Bearer wrong"], ["Authorization": "secret"],
                        ["Authorization": "Basic c2VjcmV0"]] {
            let (status, json) = try await running.get("/admin/stats", headers: headers)
            XCTAssertEqual(status, 401, "\(headers)")
            XCTAssertNotNil(json["error", "message"] as? String)
        }
        let (status, _) = try await running.send("POST", "/admin/evict", body: Data("{\"keys\":[]}".utf8))
        XCTAssertEqual(status, 401)
        let authorized = try await running.get("/admin/stats", headers: ["Authorization": "Bearer secret"])
        XCTAssertNotEqual(authorized.status, 401)
    }

    func testUnknownRouteIsJSON404() async throws {
        let (status, json) = try await running.get("/v1/nothing-here")
        XCTAssertEqual(status, 404)
        XCTAssertNotNil(json["error", "message"] as? String)
    }
}
