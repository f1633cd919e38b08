import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Synchronization
import XCTest
@testable import KVStashServer

/// A one-shot signal that async work waits for.
final class Gate: Sendable {
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() { (stream, continuation) = AsyncStream.makeStream(of: Void.self) }

    func open() { continuation.finish() }

    func wait() async {
        for await _ in stream {}
    }
}

/// How many jobs run at once, and the most seen.
private final class Concurrency: Sendable {
    let active = Atomic<Int>(0)
    let peak = Atomic<Int>(0)

    func enter() {
        let now = active.wrappingAdd(1, ordering: .relaxed).newValue
        peak.store(max(peak.load(ordering: .relaxed), now), ordering: .relaxed)
    }

    func leave() { active.wrappingSubtract(1, ordering: .relaxed) }
}

/// Precompute jobs wait in a bounded FIFO queue, run `concurrency` at a time, are refused
/// with 429 past the queue limit, and are forgotten after their retention time.
final class PrecomputeQueueTests: XCTestCase {
    private func waitFor(_ jobs: PrecomputeJobs, _ id: String, tenant: String = "", status: String) async throws {
        for _ in 0..<500 {
            if await jobs.get(id, tenant: tenant)?.status == status { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        XCTFail("job \(id) never reached '\(status)'")
    }

    func testQueueRunsInOrderWithinTheLimits() async throws {
        let jobs = PrecomputeJobs(limits: PrecomputeLimits(concurrency: 1, queueLimit: 2, retentionSeconds: 0))
        let gates = [Gate(), Gate()]
        let concurrency = Concurrency()
        func work(_ gate: Gate) -> PrecomputeWork {
            { onProgress in
                concurrency.enter()
                await onProgress(PrecomputeProgress(documentsDone: 0, tokensDone: 7))
                await gate.wait()
                concurrency.leave()
                return PrecomputeProgress(documentsDone: 1, tokensDone: 10)
            }
        }
        let a = try await jobs.submit(documents: 1, tenant: "t", work: work(gates[0]))
        let b = try await jobs.submit(documents: 1, tenant: "t", work: work(gates[1]))
        do {
            _ = try await jobs.submit(documents: 1, tenant: "t") { _ in PrecomputeProgress() }
            XCTFail("a third job must be refused")
        } catch let e as APIError {
            XCTAssertEqual(e.status.code, 429)
            XCTAssertNotNil(e.retryAfter)
        }
        try await waitFor(jobs, a.id, tenant: "t", status: "running")
        let queued = await jobs.get(b.id, tenant: "t")?.status
        XCTAssertEqual(queued, "queued")
        let hidden = await jobs.get(a.id, tenant: "someone-else")
        XCTAssertNil(hidden, "another tenant does not see the job")

        gates[0].open()
        try await waitFor(jobs, b.id, tenant: "t", status: "running")
        gates[1].open()
        for _ in 0..<500 where await jobs.runningCount() > 0 { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(concurrency.peak.load(ordering: .relaxed), 1, "concurrency 1: never two at once")
        // Retention 0: finished jobs are pruned.
        let records = await jobs.recordCount()
        XCTAssertEqual(records, 0)
        let gone = await jobs.get(a.id, tenant: "t")
        XCTAssertNil(gone)
    }

    func testFinishedRecordsAreBounded() async throws {
        let jobs = PrecomputeJobs(limits: PrecomputeLimits(queueLimit: 1, retentionSeconds: 3600, maxFinishedRecords: 3))
        var ids: [String] = []
        for _ in 0..<6 {
            let job = try await jobs.submit(documents: 1, tenant: "") { _ in PrecomputeProgress(documentsDone: 1) }
            ids.append(job.id)
            try await waitFor(jobs, job.id, status: "succeeded")
        }
        let records = await jobs.recordCount()
        XCTAssertEqual(records, 3)
        let oldest = await jobs.get(ids[0], tenant: "")
        XCTAssertNil(oldest, "the oldest finished job is forgotten first")
        let newest = await jobs.get(ids[5], tenant: "")
        XCTAssertEqual(newest?.documents_done, 1)
    }

    /// A backend whose precompute waits for a gate (nothing else is used).
    private struct BlockingBackend: CompletionBackend {
        let gate: Gate
        var modelID: String { "blocking" }
        var contextLength: Int { 2048 }
        func prepare(_ job: CompletionJob) async throws -> PreparedCompletion { throw CancellationError() }
        func generate(_ prepared: PreparedCompletion,
                      onToken: @Sendable (String) async -> Bool) async throws -> CompletionUsage { throw CancellationError() }
        func precompute(_ documents: [PrecomputeDocument], salt: String,
                        onProgress: @Sendable (PrecomputeProgress) async -> Void) async throws -> PrecomputeProgress {
            await gate.wait()
            return PrecomputeProgress(documentsDone: documents.count)
        }
    }

    func testHTTPLimitsAndRetryAfter() async throws {
        let gate = Gate()
        let limits = PrecomputeLimits(concurrency: 1, queueLimit: 1, maxDocuments: 2, maxTextBytes: 10)
        let running = try await RunningServer.start(KVStashServer(
            configuration: ServerConfiguration(port: 0, precompute: limits), backend: BlockingBackend(gate: gate)))
        defer {
            gate.open()
            Task { await running.stop() }
        }
        var (status, json) = try await running.post("/v1/precompute", ["documents": ["a", "b", "c"]])
        XCTAssertEqual(status, 400)
        XCTAssertEqual(json["error", "code"] as? String, "too_many_documents")
        (status, json) = try await running.post("/v1/precompute", ["documents": ["0123456789x"]])
        XCTAssertEqual(status, 400)
        XCTAssertEqual(json["error", "code"] as? String, "documents_too_large")

        (status, json) = try await running.post("/v1/precompute", ["documents": ["short"]])
        XCTAssertEqual(status, 202)
        let id = try XCTUnwrap(json["id"] as? String)
        var request = URLRequest(url: URL(string: running.base + "/v1/precompute")!)
        request.httpMethod = "POST"
        request.httpBody = Data(#"{"documents":["more"]}"#.utf8)
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = try XCTUnwrap(response as? HTTPURLResponse)
        XCTAssertEqual(http.statusCode, 429, String(decoding: data, as: UTF8.self))
        XCTAssertNotNil(Int(http.value(forHTTPHeaderField: "Retry-After") ?? ""), "429 carries Retry-After")

        gate.open()
        for _ in 0..<500 {
            (status, json) = try await running.get("/v1/precompute/\(id)")
            if json["status"] as? String == "succeeded" { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        XCTAssertEqual(json["status"] as? String, "succeeded")
        (status, _) = try await running.post("/v1/precompute", ["documents": ["again"]])
        XCTAssertEqual(status, 202, "a slot is free again")
    }
}
