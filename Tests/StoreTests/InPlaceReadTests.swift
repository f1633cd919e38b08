import Foundation
import XCTest
@testable import KVStashStore

/// Self-checked reads take a value in place where a memtable holds it (no copy) and from the
/// tables otherwise; either way the newest version wins and a deletion hides older versions.
final class InPlaceReadTests: XCTestCase {
    private func read(_ db: RocksDB, _ key: [UInt8]) throws -> [UInt8]? {
        try db.withValue(.chunks, key, selfChecked: true) { Array($0.bindMemory(to: UInt8.self)) }
    }

    private func write(_ db: RocksDB, put: [([UInt8], [UInt8])] = [], delete: [[UInt8]] = []) throws {
        let batch = db.makeBatch()
        for (k, v) in put { batch.put(.chunks, k, v) }
        for k in delete { batch.delete(.chunks, k) }
        try db.write(batch)
    }

    func testMemtableAndTablesAgreeOnTheNewestVersion() throws {
        let db = try RocksDB(path: temporaryStorePath(self), settings: RocksSettings())
        defer { db.close() }
        let a: [UInt8] = Array(repeating: 1, count: 32), b: [UInt8] = Array(repeating: 2, count: 32)
        let c: [UInt8] = Array(repeating: 3, count: 32), prefixOfC = Array(c.prefix(31))
        let v1 = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }, v2 = Array(v1.reversed())
        try write(db, put: [(a, v1), (c, v2)])
        XCTAssertEqual(try read(db, a), v1, "in the memtable")
        XCTAssertNil(try read(db, b), "absent, with a later key present")
        XCTAssertNil(try read(db, prefixOfC), "a prefix of a present key is another key")
        try db.flush()
        XCTAssertEqual(try read(db, a), v1, "in a table")
        try write(db, put: [(a, v2)], delete: [c])
        XCTAssertEqual(try read(db, a), v2, "the memtable's newer version over the table's")
        XCTAssertNil(try read(db, c), "a deletion in the memtable hides the table's value")
        try write(db, put: [(c, v1)])
        XCTAssertEqual(try read(db, c), v1)
        try db.flush()
        XCTAssertEqual(try read(db, a), v2)
        XCTAssertEqual(try read(db, c), v1)
        XCTAssertEqual(try db.get(.chunks, a), v2, "a checked read agrees")
    }
}
