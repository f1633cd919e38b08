import Foundation
import KVStashStore
import XCTest
@testable import KVStashServer

/// The admin API over a real RocksDB store in a temp directory.
final class AdminTests: XCTestCase {
    var dir: URL!
    var store: ChunkStore!
    var running: RunningServer!
    var keys: [ChunkKey] = []
    let auth = ["Authorization": "Bearer admin-secret"]

    override func setUp() async throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvstash-admin-\(UUID().uuidString)")
        store = try ChunkStore(path: dir.path, options: StoreOptions(chunkSize: 4))
        // A chain of six chunks of 4 tokens, values of different sizes.
        let keyer = ChunkKeyer(modelFingerprint: Array(repeating: 7, count: 32), chunkSize: 4)
        let tokens = Array(0..<24)
        keys = keyer.chain(tokens)
        for (i, key) in keys.enumerated() {
            let meta = ChunkMeta(parent: i == 0 ? .root : keys[i - 1], chainIndex: i,
                                 tokens: Array(tokens[(i * 4)..<(i * 4 + 4)]), codec: i % 2 == 0 ? "int8" : "f16",
                                 modelFingerprint: keyer.modelFingerprint, docIDs: i < 3 ? ["manual"] : [])
            try store.put(key, value: Array(repeating: UInt8(i), count: 100 * (i + 1)), meta: meta)
        }
        let backend = FakeBackend()
        running = try await RunningServer.start(KVStashServer(
            configuration: ServerConfiguration(port: 0, adminToken: "admin-secret"), backend: backend,
            admin: ChunkStoreAdmin(store: store)))
    }

    override func tearDown() async throws {
        await running?.stop()
        try? store?.close()
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    func testStatsAndPagedFilteredEntries() async throws {
        let stats = try await running.get("/admin/stats", headers: auth)
        XCTAssertEqual(stats.status, 200)
        XCTAssertEqual(stats.json["entries"] as? Int, 6)
        XCTAssertEqual(stats.json["bytes"] as? Int, (1...6).reduce(0) { $0 + 100 * $1 })
        XCTAssertEqual(stats.json["chunk_size"] as? Int, 4)

        var seen: [String] = []
        var after: String?
        var pages = 0
        repeat {
            let query = "/admin/entries?limit=4" + (after.map { "&after=\($0)" } ?? "")
            let page = try await running.get(query, headers: auth)
            XCTAssertEqual(page.status, 200, "\(page.json)")
            let entries = try XCTUnwrap(page.json["entries"] as? [[String: Any]])
            XCTAssertLessThanOrEqual(entries.count, 4)
            seen += entries.compactMap { $0["key"] as? String }
            after = page.json["next"] as? String
            pages += 1
        } while after != nil && pages < 10
        XCTAssertEqual(pages, 2)
        XCTAssertEqual(seen, keys.map(\.hex).sorted(), "every key once, in key order")

        let int8 = try await running.get("/admin/entries?codec=int8", headers: auth)
        XCTAssertEqual((int8.json["entries"] as? [[String: Any]])?.count, 3)
        let doc = try await running.get("/admin/entries?document=manual", headers: auth)
        XCTAssertEqual(Set((doc.json["entries"] as? [[String: Any]] ?? []).compactMap { $0["key"] as? String }),
                       Set(keys.prefix(3).map(\.hex)))
        let bad = try await running.get("/admin/entries?limit=0", headers: auth)
        XCTAssertEqual(bad.status, 400)
    }

    func testOneEntryPinEvictVerify() async throws {
        let key = keys[2].hex
        let entry = try await running.get("/admin/entries/\(key)", headers: auth)
        XCTAssertEqual(entry.status, 200)
        XCTAssertEqual(entry.json["parent"] as? String, keys[1].hex)
        XCTAssertEqual(entry.json["tokens"] as? Int, 4)
        XCTAssertEqual(entry.json["bytes"] as? Int, 300)
        XCTAssertEqual(entry.json["pinned"] as? Bool, false)
        let malformed = try await running.get("/admin/entries/zz", headers: auth)
        XCTAssertEqual(malformed.status, 400)
        let absent = try await running.get("/admin/entries/" + String(repeating: "ab", count: 32), headers: auth)
        XCTAssertEqual(absent.status, 404)

        let pin = try await running.post("/admin/entries/\(key)/pin", [:], headers: auth)
        XCTAssertEqual(pin.status, 200)
        XCTAssertEqual(try store.meta(keys[2])?.pinned, true)
        let pinned = try await running.get("/admin/entries?pinned=true", headers: auth)
        XCTAssertEqual((pinned.json["entries"] as? [[String: Any]])?.compactMap { $0["key"] as? String }, [key])

        // Explicit eviction of two keys, one of them pinned: only the unpinned one goes.
        let evict = try await running.post("/admin/evict", ["keys": [keys[0].hex, key]], headers: auth)
        XCTAssertEqual(evict.status, 200, "\(evict.json)")
        XCTAssertEqual(evict.json["evicted"] as? Int, 1)
        XCTAssertEqual(evict.json["bytes_freed"] as? Int, 100)
        XCTAssertNil(try store.meta(keys[0]))
        // LRU down to zero bytes keeps only the pinned entry.
        let all = try await running.post("/admin/evict", ["down_to_bytes": 0], headers: auth)
        XCTAssertEqual(all.json["evicted"] as? Int, 4)
        XCTAssertEqual(try store.list().map(\.key), [keys[2]])
        let unpin = try await running.post("/admin/entries/\(key)/unpin", [:], headers: auth)
        XCTAssertEqual(unpin.status, 200)
        XCTAssertEqual(try store.meta(keys[2])?.pinned, false)
        let bad = try await running.post("/admin/evict", ["down_to_bytes": -1], headers: auth)
        XCTAssertEqual(bad.status, 400)

        let verify = try await running.post("/admin/verify", [:], headers: auth)
        XCTAssertEqual(verify.status, 200)
        XCTAssertEqual(verify.json["checked"] as? Int, 1)
        XCTAssertEqual((verify.json["corrupt"] as? [Any])?.count, 0)

        // The store gauges follow.
        let (_, data) = try await running.send("GET", "/metrics")
        let exposition = try Exposition(String(decoding: data, as: UTF8.self))
        XCTAssertEqual(exposition.value("kvstash_store_entries"), 1)
        XCTAssertEqual(exposition.value("kvstash_store_bytes"), 300)
        XCTAssertEqual(exposition.value("kvstash_store_evictions_total"), 5)
    }
}
