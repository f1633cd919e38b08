import Foundation

/// The `manifest` column family: store version, chunk size, known models, counters,
/// quarantine log. Keys are ASCII strings; integers are u64 little-endian.
enum Manifest {
    /// Version of the store layout (column families, meta record). Bump on incompatible change.
    /// 2: documents per tenant namespace with chunk links in `docs`; meta records without
    /// document ids. A version 1 store is upgraded at its first read-write open (`upgrade`).
    static let storeVersion = 2
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
        if version == 1 && !db.readOnly {
            try upgradeFromVersion1(db)
        } else if let version, version != storeVersion {
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

extension Manifest {
    /// Version 1 keyed document records by their raw id, with no tenant salt, so they cannot
    /// be placed in a namespace: they are dropped (chunks stay; precomputing a document again
    /// finds its chunks stored and only writes its record and links). Meta records keep their
    /// version 1 encoding until rewritten; their document ids are ignored.
    static func upgradeFromVersion1(_ db: RocksDB) throws {
        var keys: [[UInt8]] = []
        try db.scan(.docs) { k, _ in keys.append(k); return true }
        for start in stride(from: 0, to: keys.count, by: 10_000) {
            let batch = db.makeBatch()
            for k in keys[start..<min(start + 10_000, keys.count)] { batch.delete(.docs, k) }
            try db.write(batch)
        }
        let batch = db.makeBatch()
        batch.put(.manifest, versionKey, encodeInt(storeVersion))
        try db.write(batch, sync: true)
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
