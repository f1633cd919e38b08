import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import KVStashServer

/// Generations are admitted by the KV positions they hold (prompt + max_tokens): past
/// `maxActiveTokens` a request gets 429 with Retry-After instead of more memory.
final class AdmissionTests: XCTestCase {
    func testBudgetArithmetic() {
        let budget = TokenBudget(limit: 100)
        XCTAssertTrue(budget.reserve(60))
        XCTAssertFalse(budget.reserve(41))
        XCTAssertTrue(budget.reserve(40))
        XCTAssertFalse(budget.reserve(Int.max), "no overflow on a huge reservation")
        budget.release(60)
        budget.release(40)
        XCTAssertEqual(budget.reserved, 0)
        XCTAssertTrue(budget.reserve(500), "an idle server admits any single request")
        XCTAssertFalse(budget.reserve(1))
    }

    /// Generates one piece, then waits for the gate.
    struct GatedBackend: CompletionBackend {
        let gate: Gate
        var modelID: String { "gated" }
        var contextLength: Int { 2048 }
        func prepare(_ job: CompletionJob) async throws -> PreparedCompletion {
            PreparedCompletion(job: job, tokens: Array(repeating: 0, count: 10),
                               maxTokens: try job.completionLimit(promptTokens: 10, contextLength: contextLength))
        }
        func generate(_ prepared: PreparedCompletion,
                      onToken: @Sendable (String) async -> Bool) async throws -> CompletionUsage {
            _ = await onToken("x")
            await gate.wait()
            return CompletionUsage(promptTokens: 10, completionTokens: 1, finishReason: .length)
        }
        func precompute(_ documents: [PrecomputeDocument], salt: String,
                        onProgress: @Sendable (PrecomputeProgress) async -> Void) async throws -> PrecomputeProgress {
            PrecomputeProgress()
        }
    }

    func testBusyServerAnswers429() async throws {
        let gate = Gate()
        let running = try await RunningServer.start(KVStashServer(
            configuration: ServerConfiguration(port: 0, maxActiveTokens: 100), backend: GatedBackend(gate: gate)))
        defer {
            gate.open()
            Task { await running.stop() }
        }
        // 10 prompt + 80 completion tokens: admitted and held until the gate opens.
        let first = Task { try await running.post("/v1/completions", ["prompt": "a", "max_tokens": 80]).status }
        for _ in 0..<200 where running.server.activeTokens.reserved == 0 { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(running.server.activeTokens.reserved, 90)

        var request = URLRequest(url: URL(string: running.base + "/v1/completions")!)
        request.httpMethod = "POST"
        request.httpBody = Data(#"{"prompt":"b","max_tokens":20}"#.utf8)
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = try XCTUnwrap(response as? HTTPURLResponse)
        XCTAssertEqual(http.statusCode, 429, String(decoding: data, as: UTF8.self))
        XCTAssertEqual(http.value(forHTTPHeaderField: "Retry-After"), "1")

        let small = try await running.post("/v1/completions", ["prompt": "c", "max_tokens": 5])
        XCTAssertEqual(small.status, 429, "10 + 5 does not fit beside 90 either")
        gate.open()
        let done = try await first.value
        XCTAssertEqual(done, 200)
        for _ in 0..<200 where running.server.activeTokens.reserved > 0 { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(running.server.activeTokens.reserved, 0, "the reservation is released when the run ends")
    }
}
