import Foundation
import XCTest
@testable import KVStashStore

/// A table file truncated under a store that maps it: the pages past the new end raise
/// SIGBUS when read. They must read as zeros instead, so the value they held fails its
/// checksum and is counted, removed and written again, and the process goes on.
final class MappedReadFaultTests: XCTestCase {
    func testTruncatedTableFileIsDamageNotACrash() throws {
        let path = temporaryStorePath(self)
        let keys: [ChunkKey]
        let size = 300_000
        do {
            let store = try ChunkStore(path: path)
            keys = try putChain(store, count: 6, valueSize: size, seed: 9)
            try store.flush()
            try store.close()
        }
        let values = keys.indices.map { chainValue($0, seed: 9, size: size) }
        let tables = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".sst") }
            .map { path + "/" + $0 }
        // Where each value lies in the table file that holds them all.
        let (table, offsets) = try XCTUnwrap(tables.lazy.compactMap { file -> (String, [Int])? in
            guard let data = FileManager.default.contents(atPath: file) else { return nil }
            let found = values.map { data.firstRange(of: Data($0[0..<64]))?.lowerBound }
            return found.allSatisfy { $0 != nil } ? (file, found.map { $0! }) : nil
        }.first, "one table file must hold every value")
        let order = offsets.indices.sorted { offsets[$0] < offsets[$1] }
        let cut = order[2], beyond = order[4]

        let store = try ChunkStore(path: path, options: StoreOptions(mappedReads: true))
        defer { try? store.close() }
        XCTAssertEqual(try store.get(keys[order[0]]), values[order[0]], "the table is open and mapped")

        // Truncated in place: the open mapping loses every page past the middle of `cut`.
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: table))
        try handle.truncate(atOffset: UInt64(offsets[cut] + size / 2))
        try handle.close()

        // The table's index, at its end, is gone too: RocksDB reads zeros there and reports
        // a checksum mismatch for every key, through the request path's in-place read and
        // through `get`.
        let before = MappedReadGuard.faults
        let inPlace = try store.withValue(keys[beyond], recordAccess: false, selfChecked: true) { Array($0.bindMemory(to: UInt8.self)) }
        XCTAssertNil(inPlace, "an unreadable value reads as a miss, in place")
        XCTAssertGreaterThan(MappedReadGuard.faults, before, "the unreadable pages were counted")
        XCTAssertNil(try store.get(keys[cut]), "a value cut by the truncation reads as a miss")
        XCTAssertEqual(try store.stats().corruptFound, 2)
        XCTAssertTrue(try store.stats().needsRepair, "the damaged table file is marked for repair")
        XCTAssertEqual(store.probe([keys[cut], keys[beyond]]), [false, false], "the damaged entries are removed")
        for i in keys.indices where i != cut {  // whatever still reads is the bytes written
            if let value = try store.get(keys[i], recordAccess: false) { XCTAssertEqual(value, values[i], "chunk \(i)") }
        }

        // Recomputed and written again, it reads back.
        try store.put(keys[cut], value: values[cut], meta: chainMeta(cut, of: keys, seed: 9))
        XCTAssertEqual(try store.get(keys[cut]), values[cut])

        // A compaction reads the damaged file too: it fails with an error (RocksDB then refuses
        // writes until the repair), and the process goes on.
        XCTAssertThrowsError(try store.compact(), "a compaction over the truncated table file fails")
        XCTAssertEqual(try store.get(keys[cut]), values[cut], "reads go on")
    }
}
