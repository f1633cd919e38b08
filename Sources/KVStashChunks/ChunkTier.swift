/// What a reader found wrong with a block it read from a tier.
public enum BlockProblem: Sendable, Equatable, CustomStringConvertible {
    /// Damaged or foreign: a bad checksum, another chunk's key, another model's fingerprint,
    /// a malformed header. The tier removes it.
    case damaged(String)
    /// Written by a format or codec version this reader does not know. The tier keeps it (a
    /// newer reader sharing the tier can use it); for this reader it is a miss.
    case unknownVersion(String)

    public var description: String {
        switch self {
        case .damaged(let why): "damaged: \(why)"
        case .unknownVersion(let why): "unknown version: \(why)"
        }
    }
}

/// A failed tier operation, naming the tier.
public struct ChunkTierError: Error, CustomStringConvertible {
    public var tier: String
    public var message: String

    public init(tier: String, _ message: String) {
        self.tier = tier
        self.message = message
    }

    public var description: String { "tier '\(tier)': \(message)" }
}

/// One level of chunk storage the request path reads and writes: the local RocksDB store,
/// a shared tier on Redis, an in-memory tier. Values are the self-checking KV blocks of
/// `KVStashCodec`, keyed by chunk key; a tier stores them opaquely and the reader verifies
/// every block it takes.
public protocol ChunkTier: Sendable {
    /// Names the tier in logs, errors, stats and metrics (`disk`, `shared`, ...).
    var tierName: String { get }

    /// Which of `keys` the tier holds, in order; a key the tier cannot answer for reads as
    /// absent.
    func probe(_ keys: [ChunkKey]) -> [Bool]

    /// Calls `body` with the value of `key` (valid only inside `body`) and returns its
    /// result; nil when the key is absent. Throws `ChunkTierError` when the tier failed,
    /// or when `deadline` passed before the value arrived.
    func withBlock<R>(_ key: ChunkKey, deadline: ContinuousClock.Instant?,
                      _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R?

    /// Stores `value` under `key` unless present (write-once). Returns true when this call
    /// stored it.
    @discardableResult
    func putOnce(_ key: ChunkKey, value: [UInt8], meta: ChunkMeta) throws -> Bool

    /// The reader rejected the block of `key`: `damaged` ones are removed, `unknownVersion`
    /// ones kept. Failures are the tier's to log.
    func reject(_ key: ChunkKey, _ problem: BlockProblem)
}

/// A tier several frontends share: chunks plus small named records (the document records
/// that let `query --doc ID` run on a frontend that did not precompute ID).
public protocol SharedChunkTier: ChunkTier {
    /// Stores (or replaces) the record `name`.
    func putRecord(_ name: String, value: [UInt8]) throws
    /// The record `name`, or nil.
    func record(_ name: String) throws -> [UInt8]?
}
