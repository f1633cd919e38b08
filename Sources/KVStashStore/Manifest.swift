import Foundation

/// The `manifest` column family: store version, chunk size, known models, counters,
/// quarantine log. Keys are ASCII strings; integers are u64 little-endian.
enum Manifest {
    /// Version of the store layout (column families, meta record). Bump on incompatible change.
    static let storeVersion = 1
    static let defaultChunkSize = 256

    static let versionKey = Array("store_version".utf8)
    static let chunkSizeKey = Array("chunk_size".utf8)
    static let corruptKey = Array("counter/corrupt".utf8)
    static let evictionsKey = Array("counter/evictions".utf8)
    static let modelPrefix = "model/"
    static let quarantinePrefix = "quarantine/"

    static func encodeInt(_ v: Int) -> [UInt8] {
        var w = ByteWriter()
        w.u64(UInt64(max(v, 0)))
        return w.out
    }

    static func decodeInt(_ raw: [UInt8]?) -> Int? {
        guard let raw, raw.count == 8 else { return nil }
        var r = ByteReader(raw)
        return (try? r.u64()).map { Int(clamping: $0) }
    }

    /// Reads or initializes version and chunk size; throws on a mismatch.
    static func open(_ db: RocksDB, path: String, requestedChunkSize: Int?) throws -> Int {
        let version = decodeInt(try db.get(.manifest, versionKey))
        let stored = decodeInt(try db.get(.manifest, chunkSizeKey))
        if let version, version != storeVersion {
            throw StoreError.versionMismatch(path: path, found: version, expected: storeVersion)
        }
        if let stored {
            if let requested = requestedChunkSize, requested != stored {
                throw StoreError.chunkSizeMismatch(path: path, store: stored, requested: requested)
            }
            return stored
        }
        let chunkSize = requestedChunkSize ?? defaultChunkSize
        if !db.readOnly {
            let batch = db.makeBatch()
            batch.put(.manifest, versionKey, encodeInt(storeVersion))
            batch.put(.manifest, chunkSizeKey, encodeInt(chunkSize))
            try db.write(batch, sync: true)
        }
        return chunkSize
    }
}

/// A side file in the store directory naming the process that holds the store for writing,
/// so a second opener gets a useful error. RocksDB's own LOCK file does the locking.
enum LockHolderFile {
    static let name = "kvstash.holder"

    static func write(storePath: String) {
        let info = ProcessInfo.processInfo
        let command = CommandLine.arguments.prefix(3).joined(separator: " ")
        let text = "pid \(info.processIdentifier) on \(info.hostName): \(command) (since \(ISO8601DateFormatter().string(from: Date())))\n"
        try? text.write(toFile: storePath + "/" + name, atomically: true, encoding: .utf8)
    }

    static func read(storePath: String) -> String? {
        guard let text = try? String(contentsOfFile: storePath + "/" + name, encoding: .utf8) else { return nil }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func remove(storePath: String) {
        try? FileManager.default.removeItem(atPath: storePath + "/" + name)
    }
}
