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
    /// Total value bytes to keep: `put` evicts (approximate LRU) before a write that would
    /// exceed it. `nil`: `budgetFromFreeSpace` decides.
    public var byteBudget: Int?
    /// Without a `byteBudget`, budget `DiskSpace.defaultBudget` (a share of the free space
    /// of the store's filesystem at open) instead of no budget.
    public var budgetFromFreeSpace: Bool
    /// Free bytes every write must leave on the store's filesystem; a write that would
    /// leave less fails with `StoreError.diskFull` (reads go on).
    public var minFreeBytes: Int
    /// Entries not read for this long are evicted by `evictExpired()` and maintenance.
    public var ttl: TimeInterval?
    /// Store values of at least `minBlobSize` bytes in RocksDB blob files.
    public var blobFiles: Bool
    /// Threshold for blob files.
    public var minBlobSize: Int
    /// fsync the WAL on every put (otherwise only `put(..., sync: true)` does).
    public var syncWrites: Bool
    /// Read table files through memory maps (RocksDB `allow_mmap_reads`): the request path's
    /// self-checked reads take a value where it lies in the mapping, its pages asked for with
    /// `MADV_WILLNEED`, with no copy into a freshly allocated buffer; a page that cannot be
    /// read reads as zeros (`MappedReadGuard`) and fails its checksum. With false, every table
    /// read is a `pread` into a buffer, and a disk's read error comes back as an error
    /// (decision 115).
    public var mappedReads: Bool
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
                byteBudget: Int? = nil, budgetFromFreeSpace: Bool = false,
                minFreeBytes: Int = DiskSpace.defaultMinFreeBytes, ttl: TimeInterval? = nil, blobFiles: Bool = false,
                minBlobSize: Int = 64 << 10, syncWrites: Bool = false, mappedReads: Bool = true,
                validator: ValueValidator? = nil,
                admission: any AdmissionPolicy = SecondSightingPolicy(),
                flushInterval: TimeInterval = 5, flushEvery: Int = 1024) {
        self.chunkSize = chunkSize
        self.createIfMissing = createIfMissing
        self.readOnly = readOnly
        self.byteBudget = byteBudget
        self.budgetFromFreeSpace = budgetFromFreeSpace
        self.minFreeBytes = minFreeBytes
        self.ttl = ttl
        self.blobFiles = blobFiles
        self.minBlobSize = minBlobSize
        self.syncWrites = syncWrites
        self.mappedReads = mappedReads
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
    /// The store's filesystem has too little free space for a write (or a read-write open).
    case diskFull(path: String, free: Int, needed: Int)
    /// A write would exceed the byte budget even after evicting every unpinned entry.
    case overBudget(path: String, budget: Int, needed: Int)
    /// The store's table files are damaged so that RocksDB cannot open it.
    case damaged(path: String, message: String)
    /// A document record the store does not take.
    case invalidDocument(String)
    /// Any other RocksDB error.
    case rocksdb(String)

    public var description: String {
        switch self {
        case let .locked(path, holder):
            return "store \(path) is in use by \(holder ?? "another process") (RocksDB LOCK held); "
                + "open it read-only, or go through that process (e.g. the server's /admin API)"
        case let .versionMismatch(path, found, expected):
            let upgrade = found == 1 && expected == 2
                ? " (a read-write open upgrades a version 1 store: run e.g. `kvstash compact` with no server on it)" : ""
            return "store \(path) has store version \(found); this kvstash reads version \(expected)" + upgrade
        case let .chunkSizeMismatch(path, store, requested):
            return "store \(path) uses chunk size \(store), not \(requested); open it with chunk size \(store) or use another store"
        case let .readOnly(path):
            return "store \(path) is open read-only; this operation writes"
        case .closed: return "store is closed"
        case let .corruptRecord(what): return "corrupt store record: \(what)"
        case let .diskFull(path, free, needed):
            return "store \(path): the disk is full (\(free >> 20) MiB free, a write needs \(needed >> 20) MiB); "
                + "nothing was written. Free space on that filesystem, or lower --max-store-bytes, "
                + "`kvstash evict --to-bytes` and `kvstash compact` (reads go on meanwhile)"
        case let .overBudget(path, budget, needed):
            return "store \(path): a write of \(needed) bytes does not fit the byte budget of \(budget) bytes "
                + "(the rest is pinned); nothing was written"
        case let .damaged(path, message):
            return "store \(path) cannot be opened: \(message). A table file is damaged: run "
                + "`kvstash repair --store \(path)` (moves unreadable table files to lost/; their chunks are recomputed on use)"
        case let .invalidDocument(why): return "invalid document: \(why)"
        case let .rocksdb(message): return "RocksDB: \(message)"
        }
    }

    /// The filesystem lacked the space for a write or a read-write open.
    public var isDiskFull: Bool {
        if case .diskFull = self { return true }
        return false
    }

    /// A write did not fit the byte budget.
    public var isOverBudget: Bool {
        if case .overBudget = self { return true }
        return false
    }
}

/// Counts and sizes of a store.
public struct StoreStats: Sendable, Codable, Equatable {
    public var entries = 0
    /// Sum of value sizes.
    public var bytes = 0
    public var pinnedEntries = 0
    /// Entries that are queries' prompt tails (and their bytes).
    public var promptTailEntries = 0
    public var promptTailBytes = 0
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
    /// RocksDB background errors (failed flushes or compactions) since open: RocksDB then
    /// refuses writes until the store is reopened (repaired, for damage).
    public var backgroundErrors = 0
    /// Writes refused for lack of disk space since open.
    public var writesRefusedDiskFull = 0
    /// Byte budget in force (nil: unbounded).
    public var byteBudget: Int?

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
    /// RocksDB background errors since open (see `StoreStats.backgroundErrors`).
    public var backgroundErrors: Int
    /// Writes refused for lack of disk space since open.
    public var writesRefusedDiskFull: Int
    /// A damaged table file was detected (see `StoreStats.needsRepair`).
    public var needsRepair: Bool

    /// Whether the store takes writes: no background error and no damage waiting for repair.
    public var writable: Bool { backgroundErrors == 0 && !needsRepair }
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
    /// A damaged block in a table file (also under deleted entries), as RocksDB reported
    /// it; the store is flagged for repair at its next read-write open.
    public var tableDamage: String?
    /// RocksDB background errors since open (a failed compaction or flush).
    public var backgroundErrors = 0
    public init() {}

    /// Nothing wrong was found.
    public var clean: Bool { corrupt.isEmpty && orphans.isEmpty && tableDamage == nil && backgroundErrors == 0 }
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
    /// A query's prompt tail (listed in a prompt-tail record; no document links it):
    /// true in `list`'s entries, absent otherwise.
    public var promptTail: Bool?

    public init(key: ChunkKey, meta: ChunkMeta, promptTail: Bool? = nil) {
        self.key = key
        self.meta = meta
        self.promptTail = promptTail
    }
}

/// A precomputed document (column family `docs`, in the namespace of its tenant salt):
/// used to resume precompute.
public struct DocumentRecord: Sendable, Codable, Hashable {
    public var id: String
    public var name: String
    public var tokenCount: Int
    public var chunkKeys: [ChunkKey]
    /// Tenant salt: ids of different salts never meet.
    public var salt: [UInt8]
    public init(id: String, name: String, tokenCount: Int, chunkKeys: [ChunkKey], salt: [UInt8] = []) {
        self.id = id
        self.name = name
        self.tokenCount = tokenCount
        self.chunkKeys = chunkKeys
        self.salt = salt
    }

    enum CodingKeys: String, CodingKey { case id, name, tokenCount, chunkKeys }

    /// The JSON form leaves the salt out (the record's key carries its namespace).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(id: try c.decode(String.self, forKey: .id), name: try c.decode(String.self, forKey: .name),
                  tokenCount: try c.decode(Int.self, forKey: .tokenCount),
                  chunkKeys: try c.decode([ChunkKey].self, forKey: .chunkKeys))
    }
}
