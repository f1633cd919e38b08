import Foundation
import XCTest
@testable import KVStashStore

/// Writes `date` as the last access of `keys` (as if they were last read then).
private func setLastAccess<C: Collection<ChunkKey>>(_ store: ChunkStore, _ keys: C, _ date: Date) throws {
    for k in keys {
        try store.withStripe(k) {
            var m = try XCTUnwrap(store.readMeta(k))
            m.lastAccess = date
            let b = store.db.makeBatch()
            b.put(.meta, k.bytes, MetaCodec.encode(m))
            try store.db.write(b)
        }
    }
}

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
        try setLastAccess(store, keys[0..<3], Date(timeIntervalSinceNow: -7200))
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

/// A chunk stored as two blocks (a sliding-window model's: the second under the chunk key's
/// `slidingLayersKey`) is one unit for the age and budget rules and for the put budget.
final class BlockPairEvictionTests: XCTestCase {
    /// A chain of `count` chunks of two blocks (1000 and 600 bytes), each put as a write-back
    /// puts it (first block, then second); `after` runs after each chunk. Returns the chunk keys.
    @discardableResult
    private func putPairs(_ store: ChunkStore, count: Int, after: ([ChunkKey]) throws -> Void = { _ in }) throws -> [ChunkKey] {
        let tokens = Array(0..<(count * 4)), keys = ChunkKeyer(modelFingerprint: [1, 1, 1], chunkSize: 4).chain(tokens)
        for (i, key) in keys.enumerated() {
            let meta = sampleMeta(parent: i == 0 ? .root : keys[i - 1], index: i, tokens: Array(tokens[(i * 4)..<(i * 4 + 4)]))
            try store.put(key, value: selfCheckingValue(seed: i, size: 1000), meta: meta)
            try store.put(key.slidingLayersKey, value: selfCheckingValue(seed: 500 + i, size: 600), meta: meta)
            try after(Array(keys[...i]))
        }
        return keys
    }

    /// Every chunk of `keys` has both blocks or neither; the byte counter, the stats and the
    /// values stored agree. Returns the chunks present.
    @discardableResult
    private func assertWholePairs(_ store: ChunkStore, _ keys: [ChunkKey], file: StaticString = #filePath,
                                  line: UInt = #line) throws -> [Bool] {
        let first = store.probe(keys), second = store.probe(keys.map(\.slidingLayersKey))
        XCTAssertEqual(first, second, "a chunk's blocks are present together", file: file, line: line)
        let stats = try store.stats(), present = first.filter { $0 }.count
        XCTAssertEqual(stats.entries, 2 * present, file: file, line: line)
        XCTAssertEqual(stats.bytes, 1600 * present, file: file, line: line)
        XCTAssertEqual(store.counterState.withLock { $0.totalBytes }, stats.bytes, file: file, line: line)
        return first
    }

    /// A budget one byte under the total takes one whole chunk each time: both blocks.
    func testBudgetEvictsBothBlocksOfAChunk() throws {
        let store = try ChunkStore(path: temporaryStorePath(self))
        defer { try? store.close() }
        let keys = try putPairs(store, count: 5)
        for i in (0..<5).reversed() {
            let total = try store.stats().bytes
            let report = try store.evict(.toBudget(total - 1))
            XCTAssertEqual(report.keys, [keys[i], keys[i].slidingLayersKey], "deepest chunk first")
            XCTAssertEqual(report.entries, 2)
            XCTAssertEqual(report.bytes, 1600)
            try assertWholePairs(store, keys)
        }
        XCTAssertEqual(try store.stats().evictions, 10)
    }

    /// A read of either block keeps the chunk: only the sliding block of chunk 3 is read after
    /// every entry aged two hours, and both of its blocks outlast the age and budget rules;
    /// a pinned first block keeps its pair too. A sliding block named alone goes alone.
    func testEitherBlockKeepsThePairAndAPinKeepsIt() throws {
        let store = try ChunkStore(path: temporaryStorePath(self))
        defer { try? store.close() }
        let keys = try putPairs(store, count: 5)
        try setLastAccess(store, keys + keys.map(\.slidingLayersKey), Date(timeIntervalSinceNow: -7200))
        XCTAssertNotNil(try store.get(keys[3].slidingLayersKey))
        try store.pin([keys[1]])
        XCTAssertEqual(try store.evict(.olderThan(Date(timeIntervalSinceNow: -60))).entries, 6, "chunks 0, 2 and 4")
        XCTAssertEqual(try assertWholePairs(store, keys), [false, true, false, true, false])
        XCTAssertEqual(try store.evict(.toBudget(0)).keys, [keys[3], keys[3].slidingLayersKey], "the pinned chunk stays")
        XCTAssertEqual(try assertWholePairs(store, keys), [false, true, false, false, false])
        XCTAssertEqual(try store.evict(.keys([keys[1].slidingLayersKey])).keys, [keys[1].slidingLayersKey],
                       "a sliding block alone: its first block stays usable outside the window")
        XCTAssertEqual(store.probe([keys[1]]), [true])
    }

    /// Evicting a chunk key by name takes its sliding-layer block along (useless without it);
    /// a pin on either block keeps both unless pins are included.
    func testEvictingAKeyTakesItsSlidingBlock() throws {
        let store = try ChunkStore(path: temporaryStorePath(self))
        defer { try? store.close() }
        let keys = try putPairs(store, count: 4)
        try store.pin([keys[2], keys[3].slidingLayersKey])
        let report = try store.evict(.keys([keys[0], keys[2], keys[3]]))
        XCTAssertEqual(report.keys, [keys[0], keys[0].slidingLayersKey])
        XCTAssertEqual(report.bytes, 1600)
        XCTAssertEqual(try assertWholePairs(store, keys), [false, true, true, true])
        XCTAssertEqual(try store.evict(.keys([keys[2], keys[3]]), includePinned: true).entries, 4)
        XCTAssertEqual(try assertWholePairs(store, keys), [false, true, false, false])
    }

    /// The put budget makes room without taking the first block of the chunk whose second
    /// block is being put (the deepest, so the first candidate otherwise), and evicts whole chunks.
    /// The budget is such that each second block overflows it.
    func testPutBudgetKeepsPairsWhole() throws {
        let store = try ChunkStore(path: temporaryStorePath(self), options: StoreOptions(byteBudget: 7500))
        defer { try? store.close() }
        try putPairs(store, count: 12) { keys in
            XCTAssertEqual(try assertWholePairs(store, keys).last, true, "the chunk just put is whole")
        }
        XCTAssertLessThanOrEqual(try store.stats().bytes, 7500)
        XCTAssertGreaterThan(try store.stats().evictions, 0)
    }
}
