import Foundation
import KVStashEngine
import KVStashStore
import XCTest
@testable import KVStashServer

/// `/health` and `/metrics` report a store that refuses writes.
final class StoreHealthTests: XCTestCase {
    private func serve(_ store: ChunkStore) async throws -> RunningServer {
        let backend = try EngineBackend(model: TestModel.model(), modelID: "test-model")
        return try await RunningServer.start(KVStashServer(
            configuration: ServerConfiguration(port: 0), backend: backend, admin: ChunkStoreAdmin(store: store)))
    }

    private func storePath() -> String {
        let dir = NSTemporaryDirectory() + "kvstash-health-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func testDamageWaitingForRepairDegradesHealthAndMetrics() async throws {
        let path = storePath()
        let store = try ChunkStore(path: path, options: StoreOptions(chunkSize: 4))
        defer { try? store.close() }
        let running = try await serve(store)
        let healthy = try await running.get("/health")
        XCTAssertEqual(healthy.status, 200)
        XCTAssertEqual(healthy.json["status"] as? String, "ok")
        // What a read that meets a damaged block leaves behind.
        try "2026-01-01T00:00:00Z abc: block checksum mismatch\n".write(toFile: path + "/kvstash.needs-repair",
                                                                        atomically: true, encoding: .utf8)
        let degraded = try await running.get("/health")
        XCTAssertEqual(degraded.status, 200, "reads are still served")
        XCTAssertEqual(degraded.json["status"] as? String, "degraded")
        let detail = try XCTUnwrap(degraded.json["store"] as? [String: Any])
        XCTAssertEqual(detail["writable"] as? Bool, false)
        XCTAssertTrue((detail["problems"] as? [String])?.first?.contains("repair") == true, "\(detail)")
        let (_, data) = try await running.send("GET", "/metrics")
        let exposition = try Exposition(String(decoding: data, as: UTF8.self))
        XCTAssertEqual(exposition.value("kvstash_store_writable"), 0)
        await running.stop()
    }

    func testWritesRefusedForSpaceAreCountedAndReported() async throws {
        // A reserve no disk has: every write is refused as if the disk were full.
        let path = storePath()
        try ChunkStore(path: path, options: StoreOptions(chunkSize: 4)).close()
        let store = try ChunkStore(path: path, options: StoreOptions(chunkSize: 4, minFreeBytes: 1 << 60))
        defer { try? store.close() }
        let key = ChunkKeyer(modelFingerprint: [1], chunkSize: 4).chain([1, 2, 3, 4])[0]
        let meta = ChunkMeta(parent: .root, tokens: [1, 2, 3, 4], codec: "f16", modelFingerprint: [1])
        XCTAssertThrowsError(try store.put(key, value: [1, 2, 3], meta: meta)) {
            XCTAssertTrue(($0 as? StoreError)?.isDiskFull == true, "\($0)")
        }
        let running = try await serve(store)
        let health = try await running.get("/health")
        XCTAssertEqual(health.json["status"] as? String, "degraded")
        XCTAssertEqual((health.json["store"] as? [String: Any])?["writes_refused_disk_full"] as? Int, 1)
        let (_, data) = try await running.send("GET", "/metrics")
        let exposition = try Exposition(String(decoding: data, as: UTF8.self))
        XCTAssertEqual(exposition.value("kvstash_store_writes_refused_disk_full"), 1)
        XCTAssertEqual(exposition.value("kvstash_store_writable"), 1)
        await running.stop()
    }
}
