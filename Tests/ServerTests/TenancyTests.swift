import Foundation
import KVStash
import KVStashEngine
import KVStashStore
import XCTest
@testable import KVStashServer

/// `tenantFromAPIKey`: every API key is a namespace of its own; and one RAM budget for all
/// namespaces, with idle ones released.
final class TenancyTests: XCTestCase {
    var dir: URL!
    var store: ChunkStore!

    override func setUp() async throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvstash-tenancy-\(UUID().uuidString)")
        store = try ChunkStore(path: dir.path)
    }

    override func tearDown() async throws {
        try? store?.close()
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    private func chat(_ question: String) -> [String: Any] {
        ["messages": [["role": "system", "content": PrefixCacheServerTests.document],
                      ["role": "user", "content": question]],
         "max_tokens": 2, "temperature": 0]
    }

    private func cached(_ json: [String: Any]) -> Int {
        json["usage", "prompt_tokens_details", "cached_tokens"] as? Int ?? -1
    }

    func testEachAPIKeyHasItsOwnNamespace() async throws {
        let backend = try PrefixCacheBackend(model: TestModel.model(), modelPath: TestModel.path, store: store)
        let running = try await RunningServer.start(KVStashServer(
            configuration: ServerConfiguration(port: 0, tenantFromAPIKey: true), backend: backend))
        defer { Task { await running.stop() } }
        let alice = ["Authorization": "Bearer key-alice"], bob = ["Authorization": "Bearer key-bob"]

        var (status, json) = try await running.post("/v1/chat/completions", chat("Apple?"))
        XCTAssertEqual(status, 401, "no key, no namespace: \(json)")
        (status, json) = try await running.post("/v1/chat/completions", chat("Apple?"), headers: alice)
        XCTAssertEqual(status, 200, "\(json)")
        XCTAssertEqual(cached(json), 0)
        (status, json) = try await running.post("/v1/chat/completions", chat("River?"), headers: alice)
        XCTAssertGreaterThan(cached(json), 0, "a key reuses its own prefixes")
        (status, json) = try await running.post("/v1/chat/completions", chat("River?"), headers: bob)
        XCTAssertEqual(status, 200)
        XCTAssertEqual(cached(json), 0, "another key sees nothing of alice's prefix")
        var body = chat("River?")
        body["cache_salt"] = ""
        (status, json) = try await running.post("/v1/chat/completions", body, headers: bob)
        XCTAssertEqual(cached(json), 0, "cache_salt subdivides a key's namespace")

        // Precompute jobs belong to their key.
        (status, json) = try await running.post("/v1/precompute", ["documents": ["A short note."]], headers: alice)
        XCTAssertEqual(status, 202, "\(json)")
        let id = try XCTUnwrap(json["id"] as? String)
        let asBob = try await running.get("/v1/precompute/\(id)", headers: bob)
        XCTAssertEqual(asBob.status, 404, "another key does not see the job")
        let asAlice = try await running.get("/v1/precompute/\(id)", headers: alice)
        XCTAssertEqual(asAlice.status, 200)
        for _ in 0..<600 where await running.server.jobs.runningCount() > 0 {
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    func testSaltsShareOneRAMBudgetAndIdleOnesAreReleased() async throws {
        let model = try TestModel.model()
        // A budget with room for about three of the prompts below.
        let probe = try PrefixCacheBackend(model: model, modelPath: TestModel.path, store: nil)
        let one = try await runOnce(probe, salt: "probe")
        let budget = one * 3
        XCTAssertGreaterThan(one, 0, "a 2-token answer leaves its prompt's pages in the RAM tier")

        let options = PrefixCacheOptions(ramBudgetBytes: budget)
        let backend = try PrefixCacheBackend(model: model, modelPath: TestModel.path, store: nil, options: options)
        for i in 0..<12 {
            _ = try await runOnce(backend, salt: "tenant-\(i)")
            let bytes = backend.tree.stats().bytes
            XCTAssertLessThanOrEqual(bytes, budget, "after salt \(i): one budget for all salts")
        }
        XCTAssertLessThanOrEqual(backend.tree.namespaceCount, 4, "evicted salts leave nothing behind")
        backend.tree.evictAll()
        XCTAssertEqual(backend.tree.namespaceCount, 0)
    }

    /// Runs one short chat under `salt`; returns the RAM tier's bytes after it.
    private func runOnce(_ backend: PrefixCacheBackend, salt: String) async throws -> Int {
        let turns = [ChatTurn(role: "user", content: "Tell me about the harbour of Vell and its ledgers, please.")]
        let prepared = try await backend.prepare(CompletionJob(prompt: .chat(turns), maxTokens: 2, temperature: 0,
                                                               salt: salt))
        _ = try await backend.generate(prepared) { _ in true }
        await backend.settled()  // the prompt's pages are inserted after the answer
        return backend.tree.stats().bytes
    }
}
