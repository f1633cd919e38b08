import CRocksDB
import Foundation

/// Recovery from on-disk damage of an SST file.
///
/// A read that hits a damaged block deletes the entry, but the damaged block stays in its
/// SST file until a compaction rewrites the file, and a compaction that reads the block
/// fails and puts RocksDB into read-only mode (writes then fail until reopen). So a detected
/// block corruption also drops the side file `kvstash.needs-repair`; the next read-write
/// open runs RocksDB's repairer first, which moves table files it cannot read completely to
/// `lost/` and rebuilds the MANIFEST from the rest. The store is a cache: entries lost with
/// such a file are recomputed. A meta record whose value went with the file is removed by
/// the first `get` of its key (or by `verify`).
enum RepairFlag {
    static let name = "kvstash.needs-repair"

    static func set(storePath: String, reason: String) {
        let text = "\(ISO8601DateFormatter().string(from: Date())) \(reason)\n"
        if let handle = FileHandle(forWritingAtPath: storePath + "/" + name) {
            handle.seekToEndOfFile()
            handle.write(Data(text.utf8))
            try? handle.close()
        } else {
            try? text.write(toFile: storePath + "/" + name, atomically: true, encoding: .utf8)
        }
    }

    static func isSet(storePath: String) -> Bool { FileManager.default.fileExists(atPath: storePath + "/" + name) }

    static func clear(storePath: String) { try? FileManager.default.removeItem(atPath: storePath + "/" + name) }
}

extension ChunkStore {
    /// Runs RocksDB's repairer on a closed store (see `RepairFlag`). Needs the write lock.
    public static func repair(path: String) throws {
        let options = rocksdb_options_create()!
        defer { rocksdb_options_destroy(options) }
        rocksdb_options_set_create_if_missing(options, 0)
        var err: UnsafeMutablePointer<CChar>? = nil
        rocksdb_repair_db(options, path, &err)
        if let message = RocksDB.take(err) {
            let e = RocksError(message: message)
            if e.isLock { throw StoreError.locked(path: path, holder: LockHolderFile.read(storePath: path)) }
            throw StoreError.rocksdb(message)
        }
        RepairFlag.clear(storePath: path)
    }

    /// Whether a detected block corruption asks for a repair at the next read-write open.
    public var needsRepair: Bool { RepairFlag.isSet(storePath: path) }
}
