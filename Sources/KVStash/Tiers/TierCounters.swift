import KVStashChunks
import Synchronization

/// What the request path did with one tier since start.
public struct TierCounters: Sendable, Codable, Equatable {
    /// Keys probed.
    public var probes = 0
    /// Blocks read, verified and spliced.
    public var hits = 0
    /// Blocks probed present but gone when read (evicted since the probe).
    public var misses = 0
    /// Bytes of the blocks read.
    public var bytesRead = 0
    /// Reads that failed in the tier (node down, timeout, deadline passed).
    public var errors = 0
    /// Of the errors, reads abandoned at their deadline (the tokens were recomputed).
    public var deadlines = 0
    /// Blocks rejected as damaged or foreign (removed from the tier).
    public var damaged = 0
    /// Blocks of an unknown format or codec version (kept, read as misses).
    public var unknownVersion = 0
    /// Blocks read from this tier and copied into the local store.
    public var copiedToLocal = 0
    /// Seconds spent reading blocks from this tier, and the reads timed.
    public var fetchSeconds = 0.0
    public var fetches = 0

    public init() {}
}

/// Thread-safe `TierCounters` of one tier.
public final class TierMeter: Sendable {
    private let counters = Mutex(TierCounters())

    public init() {}

    public var snapshot: TierCounters { counters.withLock { $0 } }

    func update(_ body: (inout TierCounters) -> Void) { counters.withLock { body(&$0) } }
}
