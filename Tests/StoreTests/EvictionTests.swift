import Foundation
import XCTest
@testable import KVStashStore

final class EvictionTests: XCTestCase {
    func testBudgetEvictsDeeperChunksFirstAndKeepsPinned() throws {
        let path = temporaryStorePath(self)
        let store = try ChunkStore(path: path)
        defer { try? store.close() }
        let keys = try putChain(store, count: 10, valueSize: 1000)
        try store.pin([keys[9]])
        let report = try store.evict(.toBudget(5000))
        // Same minute of last access: deepest unpinned first (8, 7, 6, 5, 4).
        XCTAssertEqual(report.keys, [keys[8], keys[7], keys[6], keys[5], keys[4]])
        XCTAssertEqual(store.probe(keys), [true, true, true, true, false, false, false, false, false, true])
        XCTAssertEqual(try store.stats().evictions, 5)
        XCTAssertEqual(try store.stats().bytes, 5000)
    }

    func testBudgetPrefersLeastRecentlyUsed() throws {
        let path = temporaryStorePath(self)
        let store = try ChunkStore(path: path)
        defer { try? store.close() }
        let keys = try putChain(store, count: 4, valueSize: 1000)
        // Make chunk 3 recent and chunks 0..2 two hours old.
        for k in keys[0..<3] {
            try store.withStripe(k) {
                var m = try XCTUnwrap(store.readMeta(k))
                m.lastAccess = Date(timeIntervalSinceNow: -7200)
                let b = store.db.makeBatch()
                b.put(.meta, k.bytes, MetaCodec.encode(m))
                try store.db.write(b)
            }
        }
        let report = try store.evict(.toBudget(2000))
        XCTAssertEqual(report.keys, [keys[2], keys[1]])
        XCTAssertEqual(store.probe(keys), [true, false, false, true])
    }

    func testPutEnforcesByteBudget() throws {
        let store = try ChunkStore(path: temporaryStorePath(self), options: StoreOptions(byteBudget: 10_000))
        defer { try? store.close() }
        try putChain(store, count: 30, valueSize: 1000)
        let s = try store.stats()
        XCTAssertLessThanOrEqual(s.bytes, 10_000)
        XCTAssertGreaterThan(s.evictions, 0)
        XCTAssertEqual(s.bytes, s.entries * 1000)
    }

    func testRulesByModelKeyAgeAndTTL() throws {
        let path = temporaryStorePath(self)
        let store = try ChunkStore(path: path, options: StoreOptions(ttl: 3600))
        defer { try? store.close() }
        let a = try putChain(store, count: 2, seed: 1, model: [0xA])
        let b = try putChain(store, count: 2, seed: 2, model: [0xB])
        XCTAssertEqual(try store.evict(.expired).entries, 0)
        XCTAssertEqual(try store.evict(.olderThan(Date(timeIntervalSinceNow: -60))).entries, 0)
        XCTAssertEqual(Set(try store.evict(.model([0xA])).keys), Set(a))
        try store.pin([b[0]])
        XCTAssertEqual(try store.evict(.keys(b)).keys, [b[1]], "pinned entries are exempt")
        XCTAssertEqual(try store.evict(.olderThan(Date(timeIntervalSinceNow: 60))).entries, 0)
        try store.unpin([b[0]])
        XCTAssertEqual(try store.evict(.olderThan(Date(timeIntervalSinceNow: 60))).keys, [b[0]])
        XCTAssertEqual(try store.stats().entries, 0)
    }

    func testTTLExpiresOldEntries() throws {
        let path = temporaryStorePath(self)
        let store = try ChunkStore(path: path, options: StoreOptions(ttl: 60))
        defer { try? store.close() }
        let keys = try putChain(store, count: 2)
        try store.withStripe(keys[0]) {
            var m = try XCTUnwrap(store.readMeta(keys[0]))
            m.lastAccess = Date(timeIntervalSinceNow: -120)
            let batch = store.db.makeBatch()
            batch.put(.meta, keys[0].bytes, MetaCodec.encode(m))
            try store.db.write(batch)
        }
        XCTAssertEqual(try store.evict(.expired).keys, [keys[0]])
    }
}
