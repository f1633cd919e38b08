import Foundation
import Synchronization
import XCTest
@testable import KVStashServer

/// Scheduling: a short request is not starved by a long generation that started first.
/// (An ordering property, not a timing one: with first-come-first-served whole requests the
/// short one could only finish after the long one.)
final class FairnessTests: XCTestCase {
    func testShortRequestFinishesWhileALongGenerationRuns() async throws {
        let backend = try EngineBackend(model: TestModel.model(), modelID: "test-model")
        let running = try await RunningServer.start(KVStashServer(
            configuration: ServerConfiguration(port: 0), backend: backend))
        defer { Task { await running.stop() } }

        let longDone = Flag()
        let long = Task { () -> (status: Int, tokens: Int?) in
            // Counting continues for a long time at temperature 0.
            let r = try await running.post("/v1/completions", [
                "prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "max_tokens": 400, "temperature": 0,
            ])
            longDone.value.store(true, ordering: .sequentiallyConsistent)
            return (r.status, r.json["usage", "completion_tokens"] as? Int)
        }
        // Wait until the long generation is running.
        var started = false
        for _ in 0..<600 where !started {
            let (_, data) = try await running.send("GET", "/metrics")
            let exposition = try Exposition(String(decoding: data, as: UTF8.self))
            started = exposition.value("kvstash_active_requests") == 1
                && exposition.value("kvstash_time_to_first_token_seconds_count") == 1
            if !started { try await Task.sleep(for: .milliseconds(20)) }
        }
        XCTAssertTrue(started, "the long generation never started")

        let short = try await running.post("/v1/completions", ["prompt": "Hello", "max_tokens": 2, "temperature": 0])
        XCTAssertEqual(short.status, 200)
        XCTAssertFalse(longDone.value.load(ordering: .sequentiallyConsistent),
                       "the short request waited for the whole long generation")
        let longResult = try await long.value
        XCTAssertEqual(longResult.status, 200)
        XCTAssertEqual(longResult.tokens, 400, "the long generation should run to max_tokens")
    }
}

/// A flag shared with a task.
final class Flag: Sendable {
    let value = Atomic<Bool>(false)
}
