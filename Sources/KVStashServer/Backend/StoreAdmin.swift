/// Store totals for `/admin/stats` and the store gauges of `/metrics`.
public struct StoreStatsSnapshot: Sendable, Hashable, Codable {
    /// Chunks stored.
    public var entries: Int
    /// Bytes of stored values (compressed KV blocks).
    public var bytes: Int
    /// Pinned chunks (exempt from eviction).
    public var pinnedEntries: Int
    /// Chunks evicted since the store was created (or the server started, if the store does not keep it).
    public var evictions: Int
    /// Corrupt blocks found (by reads and by verify).
    public var corruptBlocks: Int
    /// Tokens per chunk.
    public var chunkSize: Int
    /// Documents precomputed into the store.
    public var documents: Int
    /// Size of the store's files on disk.
    public var diskBytes: Int
    /// Bytes of stored values by codec.
    public var bytesByCodec: [String: Int]

    public init(entries: Int, bytes: Int, pinnedEntries: Int, evictions: Int, corruptBlocks: Int,
                chunkSize: Int, documents: Int = 0, diskBytes: Int = 0, bytesByCodec: [String: Int] = [:]) {
        self.entries = entries
        self.bytes = bytes
        self.pinnedEntries = pinnedEntries
        self.evictions = evictions
        self.corruptBlocks = corruptBlocks
        self.chunkSize = chunkSize
        self.documents = documents
        self.diskBytes = diskBytes
        self.bytesByCodec = bytesByCodec
    }
}

/// One stored chunk as the admin API shows it.
public struct StoreEntry: Sendable, Hashable, Codable {
    /// Chunk key, 64 hex digits.
    public var key: String
    /// Parent chunk key (nil for a first chunk).
    public var parent: String?
    /// Tokens in the chunk.
    public var tokens: Int
    /// Bytes of the stored value.
    public var bytes: Int
    /// Codec of the value (`f32`, `f16`, `int8`, `int4`).
    public var codec: String
    /// Creation time, seconds since 1970.
    public var created: Double
    /// Last access, seconds since 1970.
    public var lastAccess: Double
    /// Hits since creation.
    public var hits: Int
    /// Pinned entries are never evicted.
    public var pinned: Bool
    /// Documents this chunk belongs to.
    public var documents: [String]

    public init(key: String, parent: String?, tokens: Int, bytes: Int, codec: String, created: Double,
                lastAccess: Double, hits: Int, pinned: Bool, documents: [String]) {
        self.key = key
        self.parent = parent
        self.tokens = tokens
        self.bytes = bytes
        self.codec = codec
        self.created = created
        self.lastAccess = lastAccess
        self.hits = hits
        self.pinned = pinned
        self.documents = documents
    }
}

/// Filters of `GET /admin/entries`.
public struct StoreEntryFilter: Sendable, Hashable {
    /// Only pinned (true) or only unpinned (false) entries.
    public var pinned: Bool?
    /// Only entries of this codec.
    public var codec: String?
    /// Only entries of this document.
    public var document: String?
    /// Only entries whose key starts with this hex prefix.
    public var keyPrefix: String?

    public init(pinned: Bool? = nil, codec: String? = nil, document: String? = nil, keyPrefix: String? = nil) {
        self.pinned = pinned
        self.codec = codec
        self.document = document
        self.keyPrefix = keyPrefix
    }
}

/// A page of entries: `next` is the cursor of the following page, nil at the end.
public struct StoreEntryPage: Sendable, Hashable, Codable {
    public var entries: [StoreEntry]
    public var next: String?

    public init(entries: [StoreEntry], next: String?) {
        self.entries = entries
        self.next = next
    }
}

/// What `POST /admin/evict` asks for: explicit keys, or LRU eviction down to a byte target.
public enum StoreEvictRequest: Sendable, Hashable {
    /// These chunks (pinned ones are refused).
    case keys([String])
    /// Least recently used unpinned chunks until the store holds at most this many bytes.
    case downTo(bytes: Int)
}

/// What an eviction did.
public struct StoreEvictResult: Sendable, Hashable, Codable {
    public var evicted: Int
    public var bytesFreed: Int

    public init(evicted: Int, bytesFreed: Int) {
        self.evicted = evicted
        self.bytesFreed = bytesFreed
    }
}

/// What `POST /admin/verify` found.
public struct StoreVerifyReport: Sendable, Hashable, Codable {
    /// Values read and checked.
    public var checked: Int
    /// Keys whose value failed its checksum or header check.
    public var corrupt: [String]
    /// Keys of bad entries that were removed.
    public var removed: [String]

    public init(checked: Int, corrupt: [String], removed: [String]) {
        self.checked = checked
        self.corrupt = corrupt
        self.removed = removed
    }
}

/// What the admin API and the store metrics need from the chunk store.
/// Keys are 64-digit hex strings; an unknown or malformed key throws `APIError`.
public protocol StoreAdmin: Sendable {
    func stats() async throws -> StoreStatsSnapshot
    func entries(filter: StoreEntryFilter, after cursor: String?, limit: Int) async throws -> StoreEntryPage
    func entry(key: String) async throws -> StoreEntry?
    func evict(_ request: StoreEvictRequest) async throws -> StoreEvictResult
    /// Pins or unpins; returns false when the key is not stored.
    func setPinned(key: String, _ pinned: Bool) async throws -> Bool
    /// Checks every stored value against its checksums and header; removes bad entries.
    func verify() async throws -> StoreVerifyReport
    /// Whether the store takes writes (cheap; `/health` calls it on every probe).
    func health() -> StoreHealth
}
