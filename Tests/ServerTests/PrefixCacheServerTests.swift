import Foundation
import KVStash
import KVStashEngine
import KVStashStore
import Synchronization
import XCTest
@testable import KVStashServer

/// The server on the real request path (radix tree + RocksDB store in a temp dir).
final class PrefixCacheServerTests: XCTestCase {
    var dir: URL!
    var store: ChunkStore!
    var backend: PrefixCacheBackend!
    var running: RunningServer!

    override func setUp() async throws {
        let model = try TestModel.model()
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvstash-server-\(UUID().uuidString)")
        store = try ChunkStore(path: dir.path)
        backend = try PrefixCacheBackend(model: model, modelPath: TestModel.path, store: store)
        running = try await RunningServer.start(KVStashServer(
            configuration: ServerConfiguration(port: 0), backend: backend, admin: ChunkStoreAdmin(store: store),
            ramTier: backend.tree))
    }

    override func tearDown() async throws {
        // The store must not close under a precompute job still writing to it.
        for _ in 0..<1200 where await running?.server.jobs.runningCount() ?? 0 > 0 {
            try? await Task.sleep(for: .milliseconds(50))
        }
        await running?.stop()
        try? store?.close()
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    /// A shared document of several hundred tokens.
    static let document = (1...12).map {
        "Section \($0). The harbour town of Vell keeps ledger \($0 * 7) for the grain ships, "
            + "and its keeper notes the tide, the wind and the cargo of each arrival."
    }.joined(separator: "\n")

    /// 32 questions whose first token differs pairwise, plus one for warming up.
    static let words = ["apple", "river", "stone", "cloud", "bread", "horse", "lamp", "chair", "green", "music",
                        "north", "paper", "salt", "tiger", "window", "yellow", "garden", "silver", "winter", "copper",
                        "dance", "engine", "forest", "island", "jacket", "kettle", "umbrella", "mirror", "needle",
                        "orange", "pepper", "rocket"]

    static func chat(_ word: String, salt: String, document: String = document) -> [String: Any] {
        ["messages": [["role": "system", "content": document],
                      ["role": "user", "content": "\(word.capitalized): which section mentions it?"]],
         "max_tokens": 4, "temperature": 0, "cache_salt": salt]
    }

    private func ask(_ word: String, salt: String) async throws -> (text: String, cached: Int) {
        try await Self.ask(running, word, salt: salt)
    }

    static func ask(_ running: RunningServer, _ word: String, salt: String,
                    document: String = document) async throws -> (text: String, cached: Int) {
        let (status, json) = try await running.post("/v1/chat/completions", chat(word, salt: salt, document: document))
        XCTAssertEqual(status, 200, "\(json)")
        return (json["choices", "0", "message", "content"] as? String ?? "<none>",
                json["usage", "prompt_tokens_details", "cached_tokens"] as? Int ?? -1)
    }

    /// An answer's `timings` split its prompt as its usage does, and time the tier it came from.
    func testTimingsMatchTheUsage() async throws {
        var answers: [[String: Any]] = []
        for word in ["pepper", "rocket"] {
            let (status, json) = try await running.post("/v1/chat/completions", Self.chat(word, salt: "timings"))
            XCTAssertEqual(status, 200, "\(json)")
            answers.append(json)
        }
        for json in answers {
            let prompt = try XCTUnwrap(json["usage", "prompt_tokens"] as? Int)
            let cached = try XCTUnwrap(json["usage", "prompt_tokens_details", "cached_tokens"] as? Int)
            XCTAssertEqual(json["timings", "cache_n"] as? Int, cached, "\(json)")
            XCTAssertEqual(json["timings", "prompt_n"] as? Int, prompt - cached)
            XCTAssertEqual(json["timings", "predicted_n"] as? Int, json["usage", "completion_tokens"] as? Int)
            XCTAssertGreaterThan(json["timings", "prompt_ms"] as? Double ?? 0, 0)
            XCTAssertGreaterThan(json["timings", "tokenize_ms"] as? Double ?? 0, 0)
        }
        XCTAssertEqual(answers[0]["timings", "cache_n"] as? Int, 0, "a new salt starts empty")
        XCTAssertGreaterThan(answers[1]["timings", "cache_n"] as? Int ?? 0, 0, "the second question reuses the document")
        XCTAssertGreaterThan(answers[1]["timings", "ram_ms"] as? Double ?? 0, 0, "its pages came from the radix tree")
    }

    func testQuestionsDivergeAtTheSameToken() throws {
        // Precondition of the concurrency test: every pair of prompts diverges at the same
        // position, so what a request finds cached does not depend on which others ran first.
        let prompts = Self.words.map { backend.prepareTokens(chat: Self.chat($0, salt: "")) }
        let common = zip(prompts[0], prompts[1]).prefix { $0 == $1 }.count
        for i in prompts.indices {
            for j in prompts.indices where j > i {
                XCTAssertEqual(zip(prompts[i], prompts[j]).prefix { $0 == $1 }.count, common,
                               "\(Self.words[i]) / \(Self.words[j])")
            }
        }
        XCTAssertGreaterThan(common, 256, "the shared prefix should span more than one chunk")
    }

    func test32ConcurrentClientsMatchSerialRunsAndReuseThePrefix() async throws {
        // Serial runs under one salt, concurrent runs under another: both start from the
        // same cache state (one warm-up request), so the outputs must be identical.
        let warmSerial = try await ask("zebra", salt: "serial")
        var serial: [(text: String, cached: Int)] = []
        for word in Self.words { serial.append(try await ask(word, salt: "serial")) }

        let warmConcurrent = try await ask("zebra", salt: "concurrent")
        XCTAssertEqual(warmConcurrent.cached, 0, "another salt's prefix must not be visible")
        XCTAssertEqual(warmConcurrent.text, warmSerial.text)
        let concurrent = try await withThrowingTaskGroup(of: (Int, (text: String, cached: Int)).self) { group in
            for (i, word) in Self.words.enumerated() {
                group.addTask { [running] in (i, try await Self.ask(running!, word, salt: "concurrent")) }
            }
            var out = [(text: String, cached: Int)](repeating: ("", 0), count: Self.words.count)
            for try await (i, r) in group { out[i] = r }
            return out
        }
        for i in Self.words.indices {
            XCTAssertEqual(concurrent[i].text, serial[i].text, "request \(i) (\(Self.words[i]))")
            XCTAssertGreaterThan(serial[i].cached, 0, "serial \(i)")
            XCTAssertGreaterThan(concurrent[i].cached, 0, "concurrent \(i)")
        }
    }

    /// A burst of requests over a document nothing holds yet computes it once: the first to
    /// take the model puts its prompt in the tree before it lets the others take a step, so
    /// the ones queued behind it find the document there.
    func testConcurrentFirstRequestsOverANewDocumentComputeItOnce() async throws {
        let words = Array(Self.words.prefix(8))
        // Longer than one prefill chunk: the first request passes the model between chunks.
        let document = Array(repeating: Self.document, count: 3).joined(separator: "\n")
        XCTAssertGreaterThan(backend.prepareTokens(chat: Self.chat("apple", salt: "", document: document)).count,
                             LlamaModel.chunkSize)
        let answers = try await withThrowingTaskGroup(of: (text: String, cached: Int).self) { group in
            for word in words {
                group.addTask { [running] in try await Self.ask(running!, word, salt: "burst", document: document) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(answers.filter { $0.cached == 0 }.count, 1, "\(answers.map(\.cached))")
        XCTAssertEqual(answers.filter { $0.cached > 256 }.count, words.count - 1, "\(answers.map(\.cached))")
    }

    /// A long prompt's prefill passes the model between its 512-token chunks: a short request
    /// queued behind it gets its first token before the long one does, instead of waiting for
    /// the whole prefill.
    func testShortRequestAnswersWhileALongPromptPrefills() async throws {
        let long = (1...60).map { "Section \($0): the harbour keeps ledger \($0 * 13) for the salt barges." }
            .joined(separator: "\n")
        XCTAssertGreaterThan(backend.prepareTokens(chat: ["messages": [["role": "system", "content": long]]]).count,
                             2 * LlamaModel.chunkSize, "the long prompt spans three engine chunks")
        let backend: PrefixCacheBackend = backend
        let firstTokens = FirstTokens()
        // Hold the model so the two queue in order: the long prompt first.
        backend.turn.acquire()
        let first = Task.detached { [backend, long, firstTokens] in
            try await PrefixCacheServerTests.answer(backend, "long", long, firstTokens)
        }
        while backend.turn.waiting < 1 { try await Task.sleep(for: .milliseconds(5)) }
        let second = Task.detached { [backend, firstTokens] in
            try await PrefixCacheServerTests.answer(backend, "short", "A note.", firstTokens)
        }
        while backend.turn.waiting < 2 { try await Task.sleep(for: .milliseconds(5)) }
        backend.turn.release()
        try await first.value
        try await second.value
        XCTAssertEqual(firstTokens.names.withLock { $0 }, ["short", "long"])
    }

    /// A request whose client is gone stops at the first prefill chunk boundary it reaches,
    /// and leaves no prompt registered as being prefilled.
    func testPrefillStopsAtAChunkOnceTheClientIsGone() throws {
        let document = Array(repeating: Self.document, count: 3).joined(separator: "\n")
        let tokens = backend.prepareTokens(chat: Self.chat("apple", salt: "", document: document))
        XCTAssertGreaterThan(tokens.count, 2 * LlamaModel.chunkSize)
        let passes = Passes()
        XCTAssertThrowsError(try backend.prefixCache(salt: "gone").generate(tokens: tokens, passTurn: {
            passes.count.add(1, ordering: .relaxed)
            return false
        })) { XCTAssertTrue($0 is CancellationError, "\($0)") }
        XCTAssertEqual(passes.count.load(ordering: .relaxed), 1)
        XCTAssertEqual(backend.tree.inflight.count, 0)
    }

    final class Passes: Sendable {
        let count = Atomic<Int>(0)
    }

    /// Names in the order their first token arrived.
    final class FirstTokens: Sendable {
        let names = Mutex<[String]>([])
    }

    /// A one-token chat over `document` under salt `name`, straight on the backend; `name` is
    /// recorded when its token arrives.
    static func answer(_ backend: PrefixCacheBackend, _ name: String, _ document: String,
                       _ firstTokens: FirstTokens) async throws {
        let job = CompletionJob(prompt: .chat([ChatTurn(role: "system", content: document),
                                               ChatTurn(role: "user", content: "Which ledger?")]),
                                maxTokens: 1, temperature: 0, salt: name)
        _ = try await backend.generate(try await backend.prepare(job)) { _ in
            firstTokens.names.withLock { $0.append(name) }
            return true
        }
    }

    /// `/metrics` reports the radix tree's size and budget, and the second question over a
    /// document continuing in the first one's cache (`RadixTree.resident`).
    func testRAMTierMetricsFollowTheTreeAndTheResidentCache() async throws {
        _ = try await ask("apple", salt: "m")
        let second = try await ask("river", salt: "m")
        XCTAssertGreaterThan(second.cached, 0)
        let (_, data) = try await running.send("GET", "/metrics")
        let metrics = try Exposition(String(decoding: data, as: UTF8.self))
        let tree = backend.tree.stats()
        XCTAssertGreaterThan(tree.tokens, second.cached)
        XCTAssertEqual(metrics.value("kvstash_ram_tier_tokens"), Double(tree.tokens))
        XCTAssertEqual(metrics.value("kvstash_ram_tier_bytes"), Double(tree.bytes))
        XCTAssertEqual(metrics.value("kvstash_ram_tier_budget_bytes"), Double(PrefixCacheOptions().ramBudgetBytes))
        XCTAssertEqual(metrics.value("kvstash_ram_tier_resident_takes_total"), 1, "the second continued in the first's cache")
        XCTAssertEqual(metrics.value("kvstash_ram_tier_resident_tokens"), Double(tree.residentTokens))
        XCTAssertGreaterThan(tree.residentTokens, second.cached)
        XCTAssertEqual(metrics.value("kvstash_ram_tier_resident_bytes"), Double(tree.residentBytes))
        XCTAssertEqual(metrics.value("kvstash_ram_tier_page_slabs_bytes"), Double(tree.pageSlabBytes))
        XCTAssertGreaterThan(tree.pageSlabBytes, 0, "SmolLM2's 30-layer pages (368,640 B) live in slabs")
        XCTAssertGreaterThan(tree.residentBytes, 0)
        XCTAssertEqual(metrics.value("kvstash_ram_tier_evicted_tokens_total"), 0)
    }

    func testSaltsDoNotShareCachedTokens() async throws {
        let first = try await ask("apple", salt: "tenant-a")
        XCTAssertEqual(first.cached, 0)
        let again = try await ask("river", salt: "tenant-a")
        XCTAssertGreaterThan(again.cached, 0, "same tenant, shared prefix")
        let other = try await ask("river", salt: "tenant-b")
        XCTAssertEqual(other.cached, 0, "another tenant sees nothing of tenant-a's prefix")
        let none = try await ask("river", salt: "")
        XCTAssertEqual(none.cached, 0, "no salt is a tenant of its own")
        let otherAgain = try await ask("stone", salt: "tenant-b")
        XCTAssertGreaterThan(otherAgain.cached, 0)
    }

    func testPrecomputeJobThenChatReusesTheDocument() async throws {
        let (status, job) = try await running.post("/v1/precompute", [
            "documents": [["id": "vell", "text": Self.document]], "cache_salt": "docs",
        ])
        XCTAssertEqual(status, 202, "\(job)")
        let id = try XCTUnwrap(job["id"] as? String)
        var state: [String: Any] = [:]
        for _ in 0..<600 {
            state = try await running.get("/v1/precompute/\(id)").json
            if state["status"] as? String != "running" { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTAssertEqual(state["status"] as? String, "succeeded", "\(state)")
        XCTAssertEqual(state["documents_done"] as? Int, 1)
        XCTAssertGreaterThan(state["tokens_done"] as? Int ?? 0, 0)
        XCTAssertNotNil(try store.document(id: "vell", salt: Array("docs".utf8)))
        XCTAssertNil(try store.document(id: "vell"), "the record lives in the salt's namespace")

        let answer = try await running.post("/v1/chat/completions", Self.chat("apple", salt: "docs"))
        XCTAssertGreaterThan(answer.json["usage", "prompt_tokens_details", "cached_tokens_disk"] as? Int ?? 0, 0,
                             "\(answer.json)")
        let missing = try await running.get("/v1/precompute/pc-nope")
        XCTAssertEqual(missing.status, 404)
    }
}

extension PrefixCacheBackend {
    /// Prompt tokens of a chat request body (test helper).
    func prepareTokens(chat body: [String: Any]) -> [Int] {
        let messages = (body["messages"] as? [[String: String]] ?? []).map {
            ChatTurn(role: $0["role"] ?? "", content: $0["content"] ?? "")
        }
        return tokenizer.encode(promptText(.chat(messages)), parseSpecial: true)
    }
}
