import Foundation

/// Checks a stored value before `get` returns it (e.g. the codec's header and checksum).
/// Returning false makes the read a miss; the entry is counted as corrupt and removed.
public typealias ValueValidator = @Sendable ([UInt8]) -> Bool

/// A validator that also sees the key (e.g. to check the key recorded in the value's header).
public typealias KeyedValueValidator = @Sendable (ChunkKey, [UInt8]) -> Bool

/// How a chunk store is opened.
public struct StoreOptions: Sendable {
    /// Tokens per chunk. `nil`: whatever the store records (256 for a new store).
    public var chunkSize: Int?
    /// Create the directory and column families when absent.
    public var createIfMissing: Bool
    /// Open without the write lock (works while another process holds the store).
    /// Reads see the state at open time; writes throw `StoreError.readOnly`.
    public var readOnly: Bool
    /// Total value bytes to keep; `put` evicts down to it. `nil`: unbounded.
    public var byteBudget: Int?
    /// Entries not read for this long are evicted by `evictExpired()` and maintenance.
    public var ttl: TimeInterval?
    /// Store values of at least `minBlobSize` bytes in RocksDB blob files.
    public var blobFiles: Bool
    /// Threshold for blob files.
    public var minBlobSize: Int
    /// fsync the WAL on every put (otherwise only `put(..., sync: true)` does).
    public var syncWrites: Bool
    /// Checks values on `get` and `verify` (plug the codec's checksum check in here).
    public var validator: ValueValidator?
    /// Which chunks `shouldAdmit` lets in.
    public var admission: any AdmissionPolicy
    /// Seconds between background flushes of coalesced access updates (0: only every
    /// `flushEvery` reads and on close).
    public var flushInterval: TimeInterval
    /// Flush coalesced access updates after this many pending reads.
    public var flushEvery: Int

    public init(chunkSize: Int? = nil, createIfMissing: Bool = true, readOnly: Bool = false,
                byteBudget: Int? = nil, ttl: TimeInterval? = nil, blobFiles: Bool = false,
                minBlobSize: Int = 64 << 10, syncWrites: Bool = false, validator: ValueValidator? = nil,
                admission: any AdmissionPolicy = SecondSightingPolicy(),
                flushInterval: TimeInterval = 5, flushEvery: Int = 1024) {
        self.chunkSize = chunkSize
        self.createIfMissing = createIfMissing
        self.readOnly = readOnly
        self.byteBudget = byteBudget
        self.ttl = ttl
        self.blobFiles = blobFiles
        self.minBlobSize = minBlobSize
        self.syncWrites = syncWrites
        self.validator = validator
        self.admission = admission
        self.flushInterval = flushInterval
        self.flushEvery = flushEvery
    }
}

/// Errors of the chunk store.
public enum StoreError: Error, CustomStringConvertible, Equatable {
    /// Another process (or another open store in this one) holds the store's lock.
    case locked(path: String, holder: String?)
    /// The store was written by another store version.
    case versionMismatch(path: String, found: Int, expected: Int)
    /// The store records another chunk size than the one requested.
    case chunkSizeMismatch(path: String, store: Int, requested: Int)
    /// A write on a store opened read-only.
    case readOnly(path: String)
    /// The store is closed.
    case closed
    /// A record that does not decode.
    case corruptRecord(String)
    /// Any other RocksDB error.
    case rocksdb(String)

    public var description: String {
        switch self {
        case let .locked(path, holder):
            return "store \(path) is in use by \(holder ?? "another process") (RocksDB LOCK held); "
                + "open it read-only, or go through that process (e.g. the server's /admin API)"
        case let .versionMismatch(path, found, expected):
            return "store \(path) has store version \(found); this kvstash reads version \(expected)"
        case let .chunkSizeMismatch(path, store, requested):
            return "store \(path) uses chunk size \(store), not \(requested); open it with chunk size \(store) or use another store"
        case let .readOnly(path):
            return "store \(path) is open read-only; this operation writes"
        case .closed: return "store is closed"
        case let .corruptRecord(what): return "corrupt store record: \(what)"
        case let .rocksdb(message): return "RocksDB: \(message)"
        }
    }
}

/// Counts and sizes of a store.
public struct StoreStats: Sendable, Codable, Equatable {
    public var entries = 0
    /// Sum of value sizes.
    public var bytes = 0
    public var pinnedEntries = 0
    public var bytesByCodec: [String: Int] = [:]
    /// Keyed by hex model fingerprint.
    public var bytesByModel: [String: Int] = [:]
    public var entriesByModel: [String: Int] = [:]
    public var documents = 0
    /// Sum of per-entry hit counts (including not yet flushed hits).
    public var hits = 0
    /// Reads answered from the store / reads that missed, since open.
    public var reads = 0
    public var misses = 0
    /// Corrupt values found (RocksDB checksum errors or failed validator), ever.
    public var corruptFound = 0
    /// Entries evicted, ever.
    public var evictions = 0
    /// Chunk size and store version from the manifest.
    public var chunkSize = 0
    public var storeVersion = 0
    /// Size of the store's SST and blob files on disk.
    public var diskBytes = 0
    /// A damaged table file was detected; the next read-write open repairs the store.
    public var needsRepair = false

    public init() {}
}

/// Live counters of an open store, kept in memory (`ChunkStore.counters`; no scan).
/// Entries and bytes are exact for this process's writes on top of the scan at open.
public struct StoreCounters: Sendable, Codable, Equatable {
    public var entries: Int
    /// Sum of value sizes.
    public var bytes: Int
    /// `get` calls since open, and those that missed (corrupt reads count as misses).
    public var reads: Int
    public var misses: Int
    /// Ever (persisted in the manifest).
    public var corruptFound: Int
    public var evictions: Int
    /// Hits read but not yet written to the meta records.
    public var pendingHits: Int
}

/// What `verify` found.
public struct VerifyReport: Sendable, Codable, Equatable {
    public var checked = 0
    public var ok = 0
    /// Keys whose value failed RocksDB's checksum or the validator.
    public var corrupt: [ChunkKey] = []
    /// Keys with a value but no meta, or meta but no value (should never happen).
    public var orphans: [ChunkKey] = []
    /// Keys of bad entries that were removed (empty in read-only mode).
    public var removed: [ChunkKey] = []
    public init() {}
}

/// Filters for `list`.
public struct ChunkFilter: Sendable {
    public var model: [UInt8]?
    public var docID: String?
    public var pinned: Bool?
    /// Only entries last read before this date.
    public var olderThan: Date?
    public var limit: Int?
    public init(model: [UInt8]? = nil, docID: String? = nil, pinned: Bool? = nil, olderThan: Date? = nil, limit: Int? = nil) {
        self.model = model
        self.docID = docID
        self.pinned = pinned
        self.olderThan = olderThan
        self.limit = limit
    }

    func matches(_ m: ChunkMeta) -> Bool {
        if let model, m.modelFingerprint != model { return false }
        if let docID, !m.docIDs.contains(docID) { return false }
        if let pinned, m.pinned != pinned { return false }
        if let olderThan, m.lastAccess >= olderThan { return false }
        return true
    }
}

/// One listed entry.
public struct ChunkEntry: Sendable, Codable, Hashable {
    public var key: ChunkKey
    public var meta: ChunkMeta
}

/// A precomputed document (column family `docs`): used to resume precompute.
public struct DocumentRecord: Sendable, Codable, Hashable {
    public var id: String
    public var name: String
    public var tokenCount: Int
    public var chunkKeys: [ChunkKey]
    public init(id: String, name: String, tokenCount: Int, chunkKeys: [ChunkKey]) {
        self.id = id
        self.name = name
        self.tokenCount = tokenCount
        self.chunkKeys = chunkKeys
    }
}
