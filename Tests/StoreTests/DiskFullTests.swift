import Foundation
import XCTest
@testable import KVStashStore
import KVStashTestSupport

/// A small tmpfs the test mounts (root only; skipped with the reason otherwise).
final class SmallFilesystem {
    let path: String

    init(_ test: XCTestCase, megabytes: Int) throws {
        path = NSTemporaryDirectory() + "kvstash-tmpfs-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let (status, output) = Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path])
        guard status == 0 else {
            try? FileManager.default.removeItem(atPath: path)
            throw XCTSkip("cannot mount a tmpfs (needs root): \(output)")
        }
        test.addTeardownBlock { [path] in
            _ = Self.run("/bin/umount", [path])
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    @discardableResult
    static func run(_ tool: String, _ args: [String]) -> (Int32, String) {
        do {
            let run = try ChildProcess.run(tool, args, mergeStandardError: true)
            return (run.status, run.text)
        } catch { return (-1, "\(error)") }
    }

    /// Fills the filesystem with a file `filler` until the kernel refuses (ENOSPC).
    func fill() {
        let fd = open(path + "/filler", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return }
        let block = [UInt8](repeating: 0x5A, count: 1 << 16)
        while block.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
        close(fd)
    }

    func unfill() { try? FileManager.default.removeItem(atPath: path + "/filler") }
}

final class DiskFullTests: XCTestCase {
    /// Debian's RocksDB aborts the process on ENOSPC in a WAL write. Writes on a filling disk
    /// must fail one by one with a clear error, reads go on, and the store reopens.
    func testWritesOnAFillingDiskFailCleanlyAndTheStoreReopens() throws {
        let fs = try SmallFilesystem(self, megabytes: 48)
        let path = fs.path + "/store"
        let keyer = ChunkKeyer(modelFingerprint: [4], chunkSize: 4)
        var written: [(ChunkKey, [UInt8])] = []
        var refusal: StoreError?
        do {
            let store = try ChunkStore(path: path, options: StoreOptions(validator: selfCheck))
            for i in 0..<200 {
                let key = keyer.chain([i, i, i, i])[0]
                let value = selfCheckingValue(seed: i, size: 1 << 20)
                do {
                    try store.put(key, value: value, meta: sampleMeta(tokens: [i, i, i, i]))
                    written.append((key, value))
                } catch let error as StoreError {
                    refusal = error
                    break
                }
            }
            let error = try XCTUnwrap(refusal, "48 MiB cannot hold 200 MiB")
            XCTAssertTrue(error.isDiskFull, "\(error)")
            XCTAssertTrue(error.description.contains("disk is full"), error.description)
            XCTAssertGreaterThan(written.count, 5)
            XCTAssertGreaterThanOrEqual(store.counters.writesRefusedDiskFull, 1)
            for (key, value) in written { XCTAssertEqual(try store.get(key), value, "reads go on") }
            try? store.close()
        }
        // The disk fills up completely from outside: a read-write open refuses cleanly,
        // a read-only open still serves every value.
        fs.fill()
        XCTAssertThrowsError(try ChunkStore(path: path)) { error in
            XCTAssertTrue((error as? StoreError)?.isDiskFull == true, "\(error)")
        }
        do {
            let reader = try ChunkStore(path: path, options: StoreOptions(readOnly: true))
            for (key, value) in written { XCTAssertEqual(try reader.get(key, recordAccess: false), value) }
            try reader.close()
        }
        // Space comes back: the store opens for writing and takes writes again.
        fs.unfill()
        let store = try ChunkStore(path: path, options: StoreOptions(validator: selfCheck))
        defer { try? store.close() }
        for (key, value) in written { XCTAssertEqual(try store.get(key), value) }
        let fresh = keyer.chain([9999, 1, 2, 3])[0]
        try store.put(fresh, value: selfCheckingValue(seed: 9999, size: 1000), meta: sampleMeta(tokens: [9999, 1, 2, 3]))
        XCTAssertEqual(try store.get(fresh), selfCheckingValue(seed: 9999, size: 1000))
    }

    /// The budget is kept by evicting before a write, never by exceeding it first.
    func testByteBudgetEvictsBeforeWriting() throws {
        let store = try ChunkStore(path: temporaryStorePath(self), options: StoreOptions(byteBudget: 10_000))
        defer { try? store.close() }
        let keys = try (0..<10).map { i -> ChunkKey in
            let key = ChunkKeyer(modelFingerprint: [5], chunkSize: 4).chain([i, 0, 0, 0])[0]
            try store.put(key, value: selfCheckingValue(seed: i, size: 3000), meta: sampleMeta(tokens: [i, 0, 0, 0]))
            XCTAssertLessThanOrEqual(store.counters.bytes, 10_000, "after put \(i)")
            return key
        }
        XCTAssertGreaterThan(store.counters.evictions, 0)
        XCTAssertEqual(store.probe([keys[9]]), [true], "the newest entry is kept")
        // A value larger than the whole budget is refused, and nothing is lost for it.
        let big = ChunkKeyer(modelFingerprint: [5], chunkSize: 4).chain([77, 0, 0, 0])[0]
        XCTAssertThrowsError(try store.put(big, value: selfCheckingValue(seed: 77, size: 20_000), meta: sampleMeta())) {
            XCTAssertTrue(($0 as? StoreError)?.isOverBudget == true, "\($0)")
        }
        XCTAssertEqual(store.probe([big]), [false])
    }

    /// Without an explicit budget, `budgetFromFreeSpace` takes half of the free space.
    func testDefaultBudgetIsAShareOfTheFreeSpace() throws {
        let fs = try SmallFilesystem(self, megabytes: 64)
        let store = try ChunkStore(path: fs.path + "/store", options: StoreOptions(budgetFromFreeSpace: true))
        defer { try? store.close() }
        let free = try XCTUnwrap(DiskSpace.freeBytes(fs.path))
        let budget = try XCTUnwrap(store.byteBudget)
        XCTAssertEqual(Double(budget), Double(free) * DiskSpace.defaultBudgetFraction, accuracy: Double(4 << 20))
        XCTAssertNil(try ChunkStore(path: temporaryStorePath(self)).byteBudget, "no budget unless asked")
    }
}
