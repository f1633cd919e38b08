import Foundation
import XCTest
@testable import KVStashStore

/// A damaged block stays in its SST file after the entry is deleted; a compaction that reads
/// it makes RocksDB refuse writes. Reads must still answer misses, and the next open repairs
/// the store so that writes work again and nothing wrong is ever returned.
final class CorruptionRepairTests: XCTestCase {
    func testStoreRecoversFromDamagedTableAtNextOpen() throws {
        let path = temporaryStorePath(self)
        let keys: [ChunkKey]
        do {
            let store = try ChunkStore(path: path, options: StoreOptions(validator: selfCheck))
            keys = try putChain(store, count: 4, valueSize: 20_000)
            try store.flush()
            try store.close()
        }
        let victim = selfCheckingValue(seed: 2, size: 20_000)
        XCTAssertTrue(try damageSST(Array(victim[5000..<5064]), in: path))
        do {
            let store = try ChunkStore(path: path, options: StoreOptions(validator: selfCheck))
            XCTAssertNil(try store.get(keys[2]))
            XCTAssertTrue(store.needsRepair)
            // Reads the damaged block: RocksDB stops accepting writes, and compact says so.
            XCTAssertThrowsError(try store.compact())
            XCTAssertGreaterThan(store.counters.backgroundErrors, 0)
            XCTAssertFalse(store.counters.writable)
            XCTAssertNil(try store.get(keys[2]), "a damaged value still reads as a miss")
            try? store.close()   // flushing counters may fail now; the database closes anyway
        }
        let store = try ChunkStore(path: path, options: StoreOptions(validator: selfCheck))
        defer { try? store.close() }
        XCTAssertFalse(store.needsRepair, "the open repaired the store")
        // Writes work again.
        let fresh = try putChain(store, count: 3, valueSize: 1000, seed: 7)
        try store.flush()
        XCTAssertEqual(store.probe(fresh), [true, true, true])
        // Every old key either reads back its exact value or is a miss; never a wrong value.
        for (i, key) in keys.enumerated() {
            if let v = try store.get(key) { XCTAssertEqual(v, selfCheckingValue(seed: i, size: 20_000)) }
        }
        XCTAssertFalse(store.probe([keys[2]])[0])
        let report = try store.verify()
        XCTAssertEqual(report.corrupt, [])
        XCTAssertEqual(report.orphans, [], "gets removed meta records whose values were lost")
    }
}
