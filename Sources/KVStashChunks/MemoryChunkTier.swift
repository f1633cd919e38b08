import Synchronization

/// A chunk tier in memory: the hermetic stand-in for a shared tier in tests (holes,
/// damaged and unknown-version blocks, tails) and a reference for what a tier must do.
public final class MemoryChunkTier: SharedChunkTier {
    public let tierName: String
    private struct State {
        var values: [ChunkKey: [UInt8]] = [:]
        var records: [String: [UInt8]] = [:]
        var rejected: [ChunkKey: BlockProblem] = [:]
        var failing = false
    }
    private let state = Mutex(State())

    public init(name: String = "memory") { tierName = name }

    public func probe(_ keys: [ChunkKey]) -> [Bool] {
        state.withLock { s in keys.map { !s.failing && s.values[$0] != nil } }
    }

    public func withBlock<R>(_ key: ChunkKey, deadline: ContinuousClock.Instant?,
                             _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        let value: [UInt8]? = try state.withLock { s in
            if s.failing { throw ChunkTierError(tier: tierName, "unavailable") }
            return s.values[key]
        }
        return try value.map { try $0.withUnsafeBytes(body) }
    }

    @discardableResult
    public func putOnce(_ key: ChunkKey, value: [UInt8], meta: ChunkMeta) throws -> Bool {
        try state.withLock { s in
            if s.failing { throw ChunkTierError(tier: tierName, "unavailable") }
            guard s.values[key] == nil else { return false }
            s.values[key] = value
            return true
        }
    }

    public func reject(_ key: ChunkKey, _ problem: BlockProblem) {
        state.withLock { s in
            s.rejected[key] = problem
            if case .damaged = problem { s.values[key] = nil }
        }
    }

    public func putRecord(_ name: String, value: [UInt8]) throws {
        try state.withLock { s in
            if s.failing { throw ChunkTierError(tier: tierName, "unavailable") }
            s.records[name] = value
        }
    }

    public func record(_ name: String) throws -> [UInt8]? {
        try state.withLock { s in
            if s.failing { throw ChunkTierError(tier: tierName, "unavailable") }
            return s.records[name]
        }
    }

    // MARK: test controls

    /// Replaces (or with nil removes) the value of `key`, write-once or not.
    public func overwrite(_ key: ChunkKey, with value: [UInt8]?) { state.withLock { $0.values[key] = value } }
    /// The value of `key`.
    public func value(_ key: ChunkKey) -> [UInt8]? { state.withLock { $0.values[key] } }
    /// Keys held.
    public var keys: [ChunkKey] { state.withLock { Array($0.values.keys) } }
    /// What readers rejected, by key.
    public var rejected: [ChunkKey: BlockProblem] { state.withLock { $0.rejected } }
    /// While true every operation fails (probes read absent), as a tier that is down.
    public func setFailing(_ failing: Bool) { state.withLock { $0.failing = failing } }
}
