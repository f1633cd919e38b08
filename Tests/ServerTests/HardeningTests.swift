import Foundation
import XCTest
@testable import KVStashServer

/// Client-supplied integers, malformed bodies and internal faults get a clear 4xx (or a
/// 500 that names no file), and the server keeps serving.
final class HardeningTests: XCTestCase {
    var running: RunningServer!

    override func setUp() async throws {
        let backend = try EngineBackend(model: TestModel.model(), modelID: "test-model")
        running = try await RunningServer.start(KVStashServer(
            configuration: ServerConfiguration(port: 0, adminToken: "secret", maxBodyBytes: 1 << 20), backend: backend))
    }

    override func tearDown() async throws {
        await running?.stop()
    }

    private func errorOf(_ path: String, _ body: String, file: StaticString = #filePath, line: UInt = #line)
        async throws -> (status: Int, message: String, param: String?, code: String?) {
        let (status, data) = try await running.send("POST", path, body: Data(body.utf8))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any],
                                 String(decoding: data, as: UTF8.self), file: file, line: line)
        return (status, json["error", "message"] as? String ?? "", json["error", "param"] as? String,
                json["error", "code"] as? String)
    }

    private func assertAlive(file: StaticString = #filePath, line: UInt = #line) async throws {
        let (status, _) = try await running.get("/health")
        XCTAssertEqual(status, 200, "the server must survive", file: file, line: line)
    }

    /// `max_tokens` = Int64.max overflowed `prompt + max_tokens` and killed the process.
    func testHugeMaxTokensIsAContextError() async throws {
        let chat = #"{"messages":[{"role":"user","content":"hi"}],"max_tokens":9223372036854775807}"#
        var e = try await errorOf("/v1/chat/completions", chat)
        XCTAssertEqual(e.status, 400)
        XCTAssertEqual(e.code, "context_length_exceeded")
        XCTAssertTrue(e.message.contains("9223372036854775807"), e.message)
        let completion = #"{"prompt":"hi","max_completion_tokens":9223372036854775807}"#
        e = try await errorOf("/v1/completions", completion)
        XCTAssertEqual(e.status, 400)
        XCTAssertEqual(e.code, "context_length_exceeded")
        try await assertAlive()
    }

    func testOtherExtremeIntegers() async throws {
        let cases = [
            #"{"prompt":"hi","max_tokens":2,"top_k":9223372036854775807}"#,
            #"{"prompt":"hi","max_tokens":2,"seed":-9223372036854775808}"#,
            #"{"prompt":"hi","max_tokens":2,"seed":9223372036854775807}"#,
        ]
        for body in cases {
            let (status, data) = try await running.send("POST", "/v1/completions", body: Data(body.utf8))
            XCTAssertEqual(status, 200, "\(body): \(String(decoding: data, as: UTF8.self))")
        }
        let e = try await errorOf("/v1/completions", #"{"prompt":"hi","n":-9223372036854775808}"#)
        XCTAssertEqual(e.status, 400)
        XCTAssertEqual(e.param, "n")
        try await assertAlive()
    }

    /// A number no 64-bit integer holds was called "malformed JSON body".
    func testOutOfRangeNumberNamesTheField() async throws {
        for number in ["99999999999999999999", "1e300", "-1e400"] {
            let e = try await errorOf("/v1/chat/completions",
                                      #"{"messages":[{"role":"user","content":"hi"}],"max_tokens":\#(number)}"#)
            XCTAssertEqual(e.status, 400)
            XCTAssertEqual(e.param, "max_tokens", e.message)
            XCTAssertTrue(e.message.contains("out of range"), e.message)
        }
        let e = try await errorOf("/v1/completions", #"{"prompt":"hi","seed":18446744073709551616}"#)
        XCTAssertEqual(e.param, "seed", e.message)
    }

    /// Invalid UTF-8 in a string was reported as "expected a string".
    func testInvalidUTF8NamesTheField() async throws {
        var body = Data(#"{"messages":[{"role":"user","content":"ab"#.utf8)
        body.append(contentsOf: [0xC3, 0x28])
        body.append(contentsOf: Data(#""}]}"#.utf8))
        let (status, data) = try await running.send("POST", "/v1/chat/completions", body: body)
        XCTAssertEqual(status, 400)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let message = json["error", "message"] as? String ?? ""
        XCTAssertTrue(message.contains("UTF-8"), message)
        XCTAssertEqual(json["error", "param"] as? String, "messages[0].content")
        let surrogate = try await errorOf("/v1/completions", #"{"prompt":"\ud800x"}"#)
        XCTAssertEqual(surrogate.status, 400)
        XCTAssertEqual(surrogate.param, "prompt", surrogate.message)
    }

    func testLongSaltIsRefused() async throws {
        let salt = String(repeating: "s", count: 257)
        let e = try await errorOf("/v1/completions", #"{"prompt":"hi","cache_salt":"\#(salt)"}"#)
        XCTAssertEqual(e.status, 400)
        XCTAssertEqual(e.param, "cache_salt")
    }

    func testSyntaxErrorGivesTheOffset() async throws {
        let e = try await errorOf("/v1/completions", #"{"prompt": "hi",, }"#)
        XCTAssertEqual(e.status, 400)
        XCTAssertEqual(e.code, "invalid_json")
        XCTAssertTrue(e.message.contains("at byte 16"), e.message)
    }

    func testAdminIntegers() async throws {
        let auth = ["Authorization": "Bearer secret"]
        for limit in ["99999999999999999999", "-1", "abc", "0", "1001"] {
            let (status, json) = try await running.get("/admin/entries?limit=\(limit)", headers: auth)
            XCTAssertEqual(status, 400, "limit=\(limit): \(json)")
            XCTAssertEqual(json["error", "param"] as? String, "limit")
        }
        let (status, _) = try await running.get("/admin/entries?limit=5", headers: auth)
        XCTAssertEqual(status, 503, "a valid limit reaches the store, and this server has none")
        try await assertAlive()
    }
}

/// Faults inside the server reach the client as a 500 with an id, never with file paths.
final class InternalErrorTests: XCTestCase {
    /// A backend whose every call fails with an error that names a file.
    struct FailingBackend: CompletionBackend {
        struct Fault: Error, CustomStringConvertible {
            var description: String { "cannot open /var/lib/secret/store/000123.sst: I/O error" }
        }
        var modelID: String { "failing" }
        var contextLength: Int { 2048 }
        func prepare(_ job: CompletionJob) async throws -> PreparedCompletion { throw Fault() }
        func generate(_ prepared: PreparedCompletion,
                      onToken: @Sendable (String) async -> Bool) async throws -> CompletionUsage { throw Fault() }
        func precompute(_ documents: [PrecomputeDocument], salt: String,
                        onProgress: @Sendable (PrecomputeProgress) async -> Void) async throws -> PrecomputeProgress {
            throw Fault()
        }
    }

    func testNoPathsInAnswers() async throws {
        let running = try await RunningServer.start(KVStashServer(
            configuration: ServerConfiguration(port: 0), backend: FailingBackend()))
        defer { Task { await running.stop() } }
        let (status, data) = try await running.send("POST", "/v1/completions", body: Data(#"{"prompt":"hi"}"#.utf8))
        let text = String(decoding: data, as: UTF8.self)
        XCTAssertEqual(status, 500)
        XCTAssertFalse(text.contains("/var/lib"), text)
        XCTAssertTrue(text.contains("err-"), text)

        let (accepted, job) = try await running.post("/v1/precompute", ["documents": ["some text"]])
        XCTAssertEqual(accepted, 202)
        let id = try XCTUnwrap(job["id"] as? String)
        var status2 = ""
        var error = ""
        for _ in 0..<200 {
            let (_, j) = try await running.get("/v1/precompute/\(id)")
            status2 = j["status"] as? String ?? ""
            error = j["error"] as? String ?? ""
            if status2 == "failed" { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        XCTAssertEqual(status2, "failed")
        XCTAssertFalse(error.contains("/var/lib"), error)
        XCTAssertTrue(error.contains("err-"), error)
    }
}
