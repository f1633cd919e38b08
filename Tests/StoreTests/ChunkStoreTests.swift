import Foundation
import XCTest
@testable import KVStashStore

final class ChunkStoreTests: XCTestCase {
    func testPutGetProbeWithHolesAndReopen() throws {
        let path = temporaryStorePath(self)
        let keyer = ChunkKeyer(modelFingerprint: [7], chunkSize: 4)
        let keys = keyer.chain(Array(0..<20))
        do {
            let store = try ChunkStore(path: path, options: StoreOptions(chunkSize: 4))
            for i in [0, 1, 3] {
                try store.put(keys[i], value: selfCheckingValue(seed: i, size: 5000),
                              meta: sampleMeta(index: i, tokens: Array(i * 4..<i * 4 + 4), model: [7]))
            }
            XCTAssertEqual(store.probe(keys), [true, true, false, true, false])
            XCTAssertEqual(try store.get(keys[1]), selfCheckingValue(seed: 1, size: 5000))
            XCTAssertNil(try store.get(keys[2]))
            try store.close()
        }
        let store = try ChunkStore(path: path, options: StoreOptions(chunkSize: 4))
        defer { try? store.close() }
        XCTAssertEqual(store.chunkSize, 4)
        XCTAssertEqual(store.probe(keys), [true, true, false, true, false])
        XCTAssertEqual(try store.get(keys[3]), selfCheckingValue(seed: 3, size: 5000))
        let m = try XCTUnwrap(store.meta(keys[3]))
        XCTAssertEqual(m.tokens, [12, 13, 14, 15])
        XCTAssertEqual(m.byteSize, 5000)
        XCTAssertEqual(m.chainIndex, 3)
        XCTAssertEqual(m.hits, 1, "the hit before reopen was flushed on close")
    }

    /// `withValue` hands out the stored bytes in place (a blob-sized value, as real chunks
    /// are), counts the read like `get`, and calls nothing for an absent key.
    func testWithValueReadsInPlaceLikeGet() throws {
        let path = temporaryStorePath(self)
        let keys = ChunkKeyer(modelFingerprint: [7], chunkSize: 4).chain(Array(0..<8))
        let store = try ChunkStore(path: path, options: StoreOptions(chunkSize: 4))
        defer { try? store.close() }
        let value = selfCheckingValue(seed: 9, size: 300_000)
        try store.put(keys[0], value: value, meta: sampleMeta(index: 0, tokens: [0, 1, 2, 3], model: [7]))
        let readsBefore = try store.stats().reads
        XCTAssertEqual(try store.withValue(keys[0]) { Array($0.bindMemory(to: UInt8.self)) }, value)
        XCTAssertEqual(try store.stats().reads, readsBefore + 1)
        var called = false
        XCTAssertNil(try store.withValue(keys[1]) { _ in called = true })
        XCTAssertFalse(called, "no body for an absent key")
    }

    func testManifestRejectsOtherChunkSize() throws {
        let path = temporaryStorePath(self)
        try ChunkStore(path: path, options: StoreOptions(chunkSize: 256)).close()
        XCTAssertThrowsError(try ChunkStore(path: path, options: StoreOptions(chunkSize: 128))) { error in
            XCTAssertEqual(error as? StoreError, .chunkSizeMismatch(path: path, store: 256, requested: 128))
            XCTAssertTrue("\(error)".contains("chunk size 256"))
        }
        let adopted = try ChunkStore(path: path, options: StoreOptions(chunkSize: nil))
        XCTAssertEqual(adopted.chunkSize, 256)
        try adopted.close()
    }

    func testManifestRejectsOtherVersion() throws {
        let path = temporaryStorePath(self)
        let store = try ChunkStore(path: path)
        let batch = store.db.makeBatch()
        batch.put(.manifest, Manifest.versionKey, Manifest.encodeInt(99))
        try store.db.write(batch, sync: true)
        try store.close()
        XCTAssertThrowsError(try ChunkStore(path: path)) { error in
            XCTAssertEqual(error as? StoreError, .versionMismatch(path: path, found: 99, expected: Manifest.storeVersion))
        }
    }

    func testSecondOpenNamesHolderAndReadOnlyWorks() throws {
        let path = temporaryStorePath(self)
        let writer = try ChunkStore(path: path)
        defer { try? writer.close() }
        let keys = try putChain(writer, count: 3)
        XCTAssertThrowsError(try ChunkStore(path: path)) { error in
            guard case let .locked(_, holder)? = error as? StoreError else { return XCTFail("\(error)") }
            XCTAssertTrue(holder?.contains("pid \(ProcessInfo.processInfo.processIdentifier)") ?? false, "\(String(describing: holder))")
        }
        let reader = try ChunkStore(path: path, options: StoreOptions(readOnly: true))
        defer { try? reader.close() }
        XCTAssertEqual(reader.probe(keys), [true, true, true])
        XCTAssertEqual(try reader.get(keys[2]), selfCheckingValue(seed: 2, size: 1000))
        XCTAssertThrowsError(try reader.put(keys[0], value: [1], meta: sampleMeta())) {
            XCTAssertEqual($0 as? StoreError, .readOnly(path: path))
        }
        XCTAssertThrowsError(try reader.evict(.keys(keys)))
    }

    func testConcurrentReadersAndWriters() throws {
        let path = temporaryStorePath(self)
        let store = try ChunkStore(path: path, options: StoreOptions(validator: selfCheck, flushEvery: 50))
        defer { try? store.close() }
        let keyer = ChunkKeyer(modelFingerprint: [3], chunkSize: 4)
        let keys = (0..<64).map { keyer.key(parent: .root, tokens: [$0, $0, $0, $0][...]) }
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for round in 0..<40 {
                let i = (worker * 7 + round * 13) % keys.count
                do {
                    if round % 2 == 0 {
                        try store.put(keys[i], value: selfCheckingValue(seed: i, size: 3000 + i), meta: sampleMeta(model: [3]))
                    } else if let v = try store.get(keys[i]), v != selfCheckingValue(seed: i, size: 3000 + i) {
                        failures.withLock { $0 += 1 }
                    }
                    _ = store.probe(Array(keys[0..<8]))
                    if round % 10 == 9 { try store.flushAccess() }
                } catch {
                    failures.withLock { $0 += 1 }
                }
            }
        }
        XCTAssertEqual(failures.withLock { $0 }, 0)
        let report = try store.verify()
        XCTAssertEqual(report.corrupt, [])
        XCTAssertEqual(report.orphans, [])
        XCTAssertEqual(report.ok, store.probe(keys).filter { $0 }.count)
    }

    func testHitsAreCoalescedAndFlushed() throws {
        let path = temporaryStorePath(self)
        let store = try ChunkStore(path: path, options: StoreOptions(flushInterval: 0, flushEvery: 1_000_000))
        let keys = try putChain(store, count: 2)
        for _ in 0..<5 { _ = try store.get(keys[0]) }
        // Not yet written to RocksDB, but visible through meta().
        XCTAssertEqual(try store.readMeta(keys[0])?.hits, 0)
        XCTAssertEqual(try store.meta(keys[0])?.hits, 5)
        try store.flushAccess()
        XCTAssertEqual(try store.readMeta(keys[0])?.hits, 5)
        _ = try store.get(keys[0])
        try store.close()
        let again = try ChunkStore(path: path)
        defer { try? again.close() }
        XCTAssertEqual(try again.meta(keys[0])?.hits, 6)
        XCTAssertEqual(try again.stats().hits, 6)
    }

    func testBackgroundThreadFlushesHits() throws {
        let path = temporaryStorePath(self)
        let store = try ChunkStore(path: path, options: StoreOptions(flushInterval: 0.2, flushEvery: 1_000_000))
        defer { try? store.close() }
        let keys = try putChain(store, count: 1)
        _ = try store.get(keys[0])
        _ = try store.get(keys[0])
        let deadline = Date(timeIntervalSinceNow: 10)
        while try store.readMeta(keys[0])?.hits != 2 && Date() < deadline { usleep(50_000) }
        XCTAssertEqual(try store.readMeta(keys[0])?.hits, 2, "the maintenance thread should have written the hits")
    }

    func testNewStoreDefaultsToChunkSize256AndGetWithoutAccess() throws {
        let store = try ChunkStore(path: temporaryStorePath(self))
        defer { try? store.close() }
        XCTAssertEqual(store.chunkSize, 256)
        let keys = try putChain(store, count: 1)
        XCTAssertNotNil(try store.get(keys[0], recordAccess: false))
        XCTAssertEqual(try store.meta(keys[0])?.hits, 0)
        try store.close()
        XCTAssertThrowsError(try store.get(keys[0])) { XCTAssertEqual($0 as? StoreError, .closed) }
        XCTAssertEqual(store.probe(keys), [false])
    }

    func testPutRewritesValueOfOrphanMetaAndGetHealsOrphans() throws {
        let store = try ChunkStore(path: temporaryStorePath(self))
        defer { try? store.close() }
        let keys = try putChain(store, count: 2)
        for key in keys {   // simulate values lost with a table file: meta without value
            let batch = store.db.makeBatch()
            batch.delete(.chunks, key.bytes)
            try store.db.write(batch)
        }
        try store.flush()
        try store.compact()
        try store.put(keys[0], value: selfCheckingValue(seed: 0, size: 1000), meta: sampleMeta())
        XCTAssertEqual(try store.get(keys[0]), selfCheckingValue(seed: 0, size: 1000))
        XCTAssertEqual(store.probe(keys), [true, true])
        XCTAssertNil(try store.get(keys[1]))
        XCTAssertEqual(store.probe(keys), [true, false], "a miss removes the orphan meta record")
    }

    func testLiveCountersFollowPutsEvictionsAndCorruption() throws {
        let path = temporaryStorePath(self)
        let store = try ChunkStore(path: path)
        let keys = try putChain(store, count: 3)
        XCTAssertEqual(store.counters.entries, 3)
        XCTAssertEqual(store.counters.bytes, 3000)
        try store.evict(.keys([keys[0]]))
        try store.reportCorrupt(keys[1])
        _ = try store.get(keys[2])
        _ = try store.get(keys[0])
        let c = store.counters
        XCTAssertEqual([c.entries, c.bytes, c.evictions, c.corruptFound, c.reads, c.misses, c.pendingHits], [1, 1000, 1, 1, 3, 2, 1])
        try store.close()
        let again = try ChunkStore(path: path)
        defer { try? again.close() }
        let d = again.counters
        XCTAssertEqual([d.entries, d.bytes, d.evictions, d.corruptFound], [1, 1000, 1, 1])
        let s = try again.stats()
        XCTAssertEqual([s.entries, s.bytes], [d.entries, d.bytes])
    }

    func testRePutMergesDocumentsAndKeepsHits() throws {
        let path = temporaryStorePath(self)
        let store = try ChunkStore(path: path)
        defer { try? store.close() }
        let key = ChunkKeyer(modelFingerprint: [1], chunkSize: 4).chain([1, 2, 3, 4])[0]
        try store.put(key, value: [1, 2, 3], meta: sampleMeta(docs: ["a"]))
        _ = try store.get(key)
        try store.flushAccess()
        try store.put(key, value: [1, 2, 3], meta: sampleMeta(docs: ["b"]))
        let m = try XCTUnwrap(store.meta(key))
        XCTAssertEqual(m.docIDs, ["a", "b"])
        XCTAssertEqual(m.hits, 1)
        XCTAssertEqual(try store.stats().bytes, 3)
    }

    func testListFiltersAndStats() throws {
        let path = temporaryStorePath(self)
        let store = try ChunkStore(path: path)
        defer { try? store.close() }
        let a = try putChain(store, count: 3, seed: 1, model: [0xAA], docs: ["doc-1"])
        let b = try putChain(store, count: 2, seed: 2, model: [0xBB])
        try store.pin([b[0]])
        XCTAssertEqual(Set(try store.list(filter: ChunkFilter(model: [0xAA])).map(\.key)), Set(a))
        XCTAssertEqual(Set(try store.list(filter: ChunkFilter(docID: "doc-1")).map(\.key)), Set(a))
        XCTAssertEqual(try store.list(filter: ChunkFilter(pinned: true)).map(\.key), [b[0]])
        XCTAssertEqual(try store.list(filter: ChunkFilter(olderThan: Date(timeIntervalSinceNow: -3600))).count, 0)
        XCTAssertEqual(try store.list(filter: ChunkFilter(limit: 2)).count, 2)
        let s = try store.stats()
        XCTAssertEqual(s.entries, 5)
        XCTAssertEqual(s.bytes, 5000)
        XCTAssertEqual(s.bytesByModel["aa"], 3000)
        XCTAssertEqual(s.bytesByModel["bb"], 2000)
        XCTAssertEqual(s.bytesByCodec["f16"], 5000)
        XCTAssertEqual(s.pinnedEntries, 1)
    }

    func testDocumentsAndModels() throws {
        let path = temporaryStorePath(self)
        let store = try ChunkStore(path: path)
        defer { try? store.close() }
        let keys = try putChain(store, count: 2, docs: ["d1"])
        try store.putDocument(DocumentRecord(id: "d1", name: "a.txt", tokenCount: 9, chunkKeys: keys))
        XCTAssertEqual(try store.document(id: "d1")?.chunkKeys, keys)
        XCTAssertNil(try store.document(id: "nope"))
        XCTAssertEqual(try store.documents().map(\.name), ["a.txt"])
        try store.registerModel(fingerprint: [1, 2], name: "m.gguf")
        XCTAssertEqual(try store.models(), ["0102": "m.gguf"])
        let report = try store.evict(.document("d1"))
        XCTAssertEqual(Set(report.keys), Set(keys))
        XCTAssertNil(try store.document(id: "d1"))
    }

    func testDocumentsSharingAPrefixAreTaggedAndEvictedApart() throws {
        let store = try ChunkStore(path: temporaryStorePath(self))
        defer { try? store.close() }
        // d1 wrote the shared chunk; d2 reuses it and adds one of its own.
        let keys = try putChain(store, count: 2, docs: ["d1"])
        try store.putDocument(DocumentRecord(id: "d1", name: "a", tokenCount: 4, chunkKeys: [keys[0]]))
        try store.putDocument(DocumentRecord(id: "d2", name: "b", tokenCount: 8, chunkKeys: keys))
        XCTAssertEqual(try store.meta(keys[0])?.docIDs, ["d1", "d2"], "the shared chunk carries both documents")
        XCTAssertEqual(try store.meta(keys[1])?.docIDs, ["d1", "d2"])
        let first = try store.evict(.document("d1"))
        XCTAssertEqual(first.entries, 0, "every chunk of d1 is still used by d2")
        XCTAssertEqual(first.untagged, 2)
        XCTAssertEqual(try store.meta(keys[0])?.docIDs, ["d2"])
        XCTAssertEqual(store.probe(keys), [true, true])
        let second = try store.evict(.document("d2"))
        XCTAssertEqual(Set(second.keys), Set(keys))
        XCTAssertEqual(store.probe(keys), [false, false])
    }

    func testAdmissionSecondSighting() throws {
        let store = try ChunkStore(path: temporaryStorePath(self))
        defer { try? store.close() }
        let key = ChunkKeyer(modelFingerprint: [1], chunkSize: 4).chain([5, 6, 7, 8])[0]
        XCTAssertFalse(store.shouldAdmit(key: key, meta: sampleMeta(), origin: .query))
        XCTAssertTrue(store.shouldAdmit(key: key, meta: sampleMeta(), origin: .query))
        let other = ChunkKeyer(modelFingerprint: [2], chunkSize: 4).chain([5, 6, 7, 8])[0]
        XCTAssertTrue(store.shouldAdmit(key: other, meta: sampleMeta(), origin: .precompute))
        let counter = SightingCounter(capacity: 4)
        let many = (0..<10).map { ChunkKeyer(modelFingerprint: [UInt8($0)], chunkSize: 1).chain([1])[0] }
        for k in many { XCTAssertEqual(counter.sight(k), 1) }
        XCTAssertEqual(counter.sight(many[9]), 2)
        XCTAssertEqual(counter.sight(many[0]), 1, "the oldest sightings were forgotten")
    }
}

import Synchronization
