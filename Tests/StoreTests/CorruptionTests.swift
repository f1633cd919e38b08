import Foundation
import XCTest
@testable import KVStashStore

/// Damages a value's bytes inside its SST file and checks that the read detects it
/// (RocksDB block checksum), reports a miss, counts it and removes the entry.
final class CorruptionTests: XCTestCase {
    func damage(_ needle: [UInt8], in path: String) throws -> Bool { try damageSST(needle, in: path) }
}

/// Overwrites 8 bytes in the middle of the first occurrence of `needle` in any SST file.
func damageSST(_ needle: [UInt8], in path: String) throws -> Bool {
    let files = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".sst") }
    for name in files {
        let url = URL(fileURLWithPath: path + "/" + name)
        var data = try Data(contentsOf: url)
        guard let range = data.firstRange(of: Data(needle)) else { continue }
        let at = range.lowerBound + needle.count / 2
        for i in 0..<8 { data[at + i] ^= 0xFF }
        try data.write(to: url)
        return true
    }
    return false
}

extension CorruptionTests {
    func testDamagedValueOnDiskIsDetectedCountedAndRemoved() throws {
        try damagedValueIsDetectedCountedAndRemoved(mappedReads: true)
    }

    func testDamagedValueOnDiskIsDetectedWithPreadReads() throws {
        try damagedValueIsDetectedCountedAndRemoved(mappedReads: false)
    }

    private func damagedValueIsDetectedCountedAndRemoved(mappedReads: Bool) throws {
        let path = temporaryStorePath(self)
        let keys: [ChunkKey]
        do {
            let store = try ChunkStore(path: path)
            keys = try putChain(store, count: 4, valueSize: 20_000)
            try store.flush()
            try store.close()
        }
        let victim = selfCheckingValue(seed: 2, size: 20_000)
        XCTAssertTrue(try damage(Array(victim[5000..<5064]), in: path), "value bytes not found in any SST (compression must be off)")

        let store = try ChunkStore(path: path, options: StoreOptions(mappedReads: mappedReads))
        defer { try? store.close() }
        XCTAssertEqual(store.probe(keys), [true, true, true, true])
        XCTAssertNil(try store.get(keys[2]), "a damaged value must read as a miss")
        XCTAssertEqual(try store.stats().corruptFound, 1)
        XCTAssertEqual(store.probe(keys), [true, true, false, true], "the damaged entry is removed")
        XCTAssertEqual(try store.get(keys[1]), selfCheckingValue(seed: 1, size: 20_000))
        XCTAssertEqual(Array(try store.quarantineLog().keys), [keys[2].hex])
    }

    func testValidatorRejectionAndVerify() throws {
        let path = temporaryStorePath(self)
        let store = try ChunkStore(path: path, options: StoreOptions(validator: selfCheck))
        defer { try? store.close() }
        let keys = try putChain(store, count: 3)
        var bad = selfCheckingValue(seed: 99, size: 1000)
        bad[10] ^= 1
        let badKey = ChunkKeyer(modelFingerprint: [5], chunkSize: 4).chain([9, 9, 9, 9])[0]
        try store.put(badKey, value: bad, meta: sampleMeta())
        let report = try store.verify()
        XCTAssertEqual(report.checked, 4)
        XCTAssertEqual(report.ok, 3)
        XCTAssertEqual(report.corrupt, [badKey])
        XCTAssertEqual(report.removed, [badKey])
        XCTAssertEqual(store.probe(keys + [badKey]), [true, true, true, false])

        try store.put(badKey, value: bad, meta: sampleMeta())
        XCTAssertNil(try store.get(badKey))
        try store.reportCorrupt(keys[0])
        XCTAssertEqual(store.probe(keys + [badKey]), [false, true, true, false])
        XCTAssertEqual(try store.stats().corruptFound, 3)
    }
}
