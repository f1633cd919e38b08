import Foundation
import XCTest
@testable import KVStashStore

/// Damage found above RocksDB (by the codec, after a read that skipped block checksums)
/// must not stay in the table files, and a failed compaction must be reported.
final class DamageRepairTests: XCTestCase {
    private func damagedStore(_ path: String) throws -> [ChunkKey] {
        let store = try ChunkStore(path: path)
        let keys = try putChain(store, count: 4, valueSize: 20_000)
        try store.flush()
        try store.close()
        let victim = selfCheckingValue(seed: 2, size: 20_000)
        XCTAssertTrue(try damageSST(Array(victim[5000..<5064]), in: path))
        return keys
    }

    func testCodecRejectionOfDamagedBytesFlagsRepairAndVerifyFindsTheBlock() throws {
        let path = temporaryStorePath(self)
        let keys = try damagedStore(path)
        do {
            let store = try ChunkStore(path: path)
            // The request path: no RocksDB checksum, the reader's own check fails.
            let accepted = try store.withValue(keys[2], selfChecked: true) { selfCheck(Array($0.bindMemory(to: UInt8.self))) }
            XCTAssertEqual(accepted, false)
            try store.reportCorrupt(keys[2], reason: "payload checksum")
            XCTAssertTrue(store.needsRepair, "damage on disk asks for a repair")
            XCTAssertFalse(store.counters.writable)
            XCTAssertEqual(store.probe([keys[2]]), [false])
            // The entry is gone, its block is not: verify reads every block and says so.
            let report = try store.verify(validator: selfCheck)
            XCTAssertNotNil(report.tableDamage)
            XCTAssertFalse(report.clean)
            try? store.close()
        }
        // The next read-write open repairs; everything left reads back exactly.
        let store = try ChunkStore(path: path, options: StoreOptions(validator: selfCheck))
        defer { try? store.close() }
        XCTAssertFalse(store.needsRepair)
        XCTAssertTrue(store.counters.writable)
        for (i, key) in keys.enumerated() {
            if let v = try store.get(key) { XCTAssertEqual(v, selfCheckingValue(seed: i, size: 20_000)) }
        }
        try store.compact()
        XCTAssertTrue(try store.verify().clean)
    }

    func testRejectedValueIsCompactedOutOfTheTableFiles() throws {
        let path = temporaryStorePath(self)
        let rejected = selfCheckingValue(seed: 1, size: 20_000)
        let validator: ValueValidator = { $0 != rejected }
        let store = try ChunkStore(path: path, options: StoreOptions(validator: validator))
        defer { try? store.close() }
        let keys = try putChain(store, count: 3, valueSize: 20_000)
        try store.flush()
        let needle = Data(rejected[8000..<8064])
        func inTables() throws -> Bool {
            try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".sst") }.contains {
                (try Data(contentsOf: URL(fileURLWithPath: path + "/" + $0))).range(of: needle) != nil
            }
        }
        XCTAssertTrue(try inTables())
        XCTAssertNil(try store.get(keys[1]))
        XCTAssertFalse(store.needsRepair, "no damage on disk: no repair")
        let deadline = Date(timeIntervalSinceNow: 20)
        while try inTables(), Date() < deadline { usleep(50_000) }
        XCTAssertFalse(try inTables(), "the rejected value was compacted out of the table files")
        XCTAssertEqual(try store.get(keys[0]), selfCheckingValue(seed: 0, size: 20_000))
        XCTAssertTrue(store.counters.writable)
    }

    /// An SST whose footer is damaged: the open fails with a hint to repair, and repair works.
    func testDamagedFooterGivesARepairHint() throws {
        let path = temporaryStorePath(self)
        let keys: [ChunkKey]
        do {
            let store = try ChunkStore(path: path)
            keys = try putChain(store, count: 3, valueSize: 5000)
            try store.flush()
            try store.close()
        }
        let sst = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: path)
            .filter { $0.hasSuffix(".sst") }.max { size(path + "/" + $0) < size(path + "/" + $1) })
        let url = URL(fileURLWithPath: path + "/" + sst)
        var data = try Data(contentsOf: url)
        for i in (data.count - 48)..<data.count { data[i] ^= 0xA5 }
        try data.write(to: url)
        XCTAssertThrowsError(try ChunkStore(path: path)) { error in
            XCTAssertTrue("\(error)".contains("kvstash repair"), "\(error)")
        }
        try ChunkStore.repair(path: path)
        let store = try ChunkStore(path: path)
        defer { try? store.close() }
        _ = try store.verify()
        for key in keys where store.probe([key]) == [true] { XCTAssertNotNil(try store.get(key)) }
    }

    private func size(_ file: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? Int) ?? 0
    }
}
