import KVStashChunks
import KVStashStore
import Logging
import Synchronization

/// Settings of the shared tier in the request path.
public struct SharedTierOptions: Sendable {
    /// Bytes of chunk values waiting to be published at most (see `PublishQueue`).
    public var publishQueueBytes: Int
    /// A fetch from the shared tier may take as long as recomputing its tokens would (at
    /// the prefill rate measured in this process), but at least this long.
    public var minimumFetchBudget: Duration
    /// Prefill rate assumed before the first prefill was measured.
    public var initialPrefillTokensPerSecond: Double

    public init(publishQueueBytes: Int = 256 << 20, minimumFetchBudget: Duration = .milliseconds(200),
                initialPrefillTokensPerSecond: Double = 1000) {
        self.publishQueueBytes = publishQueueBytes
        self.minimumFetchBudget = minimumFetchBudget
        self.initialPrefillTokensPerSecond = initialPrefillTokensPerSecond
    }
}

/// The ordered chunk tiers of the request path below the radix tree: the local store
/// (`disk`), then the shared tier. Lookups take each chunk from the first tier that holds
/// it; a chunk read from the shared tier is copied into the local store; chunks written
/// locally are published to the shared tier in the background. Shared by every
/// `PrefixCache` view of a process, so its counters cover them all.
public final class ChunkTiers: Sendable {
    /// One tier and its counters.
    public struct Level: Sendable {
        public let tier: any ChunkTier
        public let meter: TierMeter
        /// True for the shared tier (reads have a deadline; hits are copied locally).
        public let isShared: Bool
    }

    public let levels: [Level]

    /// Whether a probe's answer `level` (nil: in no tier) is the local store.
    func isLocal(_ level: Int?) -> Bool { level.map { !levels[$0].isShared } ?? false }

    /// The local store (first level), if any.
    public let local: ChunkStore?
    /// The shared tier (last level), if any.
    public let shared: (any SharedChunkTier)?
    /// Publishes locally written chunks to `shared`.
    public let publisher: PublishQueue?
    let options: SharedTierOptions
    let logger: Logger
    /// Measured prefill tokens per second (exponential average).
    private let prefillRate: Mutex<Double>

    public init(local: ChunkStore?, shared: (any SharedChunkTier)? = nil, options: SharedTierOptions = SharedTierOptions(),
                logger: Logger = Logger(label: "kvstash.request")) {
        self.local = local
        self.shared = shared
        self.options = options
        self.logger = logger
        var levels: [Level] = []
        if let local { levels.append(Level(tier: local, meter: TierMeter(), isShared: false)) }
        if let shared { levels.append(Level(tier: shared, meter: TierMeter(), isShared: true)) }
        self.levels = levels
        publisher = shared.map { PublishQueue(tier: $0, capacityBytes: options.publishQueueBytes, logger: logger) }
        prefillRate = Mutex(options.initialPrefillTokensPerSecond)
    }

    /// Each tier's name and counters, in lookup order.
    public var counters: [(name: String, counters: TierCounters)] {
        levels.map { ($0.tier.tierName, $0.meter.snapshot) }
    }

    /// Which level holds each key first (nil: none), probing each tier only for the keys
    /// the tiers before it lack.
    func probe(_ keys: [ChunkKey]) -> [Int?] {
        var found = [Int?](repeating: nil, count: keys.count)
        for (index, level) in levels.enumerated() {
            let asked = found.indices.filter { found[$0] == nil }
            guard !asked.isEmpty else { break }
            let answers = level.tier.probe(asked.map { keys[$0] })
            level.meter.update { $0.probes += asked.count }
            for (i, there) in zip(asked, answers) where there { found[i] = index }
        }
        return found
    }

    /// Records a prefill of `tokens` tokens that took `seconds`.
    func notePrefill(tokens: Int, seconds: Double) {
        guard tokens >= 16, seconds > 0 else { return }
        prefillRate.withLock { $0 = 0.7 * $0 + 0.3 * Double(tokens) / seconds }
    }

    /// When a fetch of `tokens` tokens from the shared tier must have arrived: after that,
    /// recomputing them is faster.
    func fetchDeadline(tokens: Int) -> ContinuousClock.Instant {
        let rate = prefillRate.withLock { $0 }
        let budget = max(Duration.seconds(Double(tokens) / max(rate, 1)), options.minimumFetchBudget)
        return .now + budget
    }

    /// Copies a block read from the shared tier into the local store (no admission: it was
    /// asked for). A failure is logged; the block stays remote only.
    func copyToLocal(_ key: ChunkKey, value: [UInt8], meta: ChunkMeta, from level: Level) {
        guard let local, !local.readOnly else { return }
        do {
            try local.put(key, value: value, meta: meta, sync: false)
            level.meter.update { $0.copiedToLocal += 1 }
        } catch {
            logger.warning("copying a shared chunk into the local store failed",
                           metadata: ["chunk": "\(key)", "error": "\(error)"])
        }
    }

    /// Hands a chunk written locally to the publisher (precompute waits for room, queries
    /// drop when the queue is full).
    func publish(_ key: ChunkKey, value: [UInt8], meta: ChunkMeta, wait: Bool) {
        publisher?.enqueue(key, value: value, meta: meta, wait: wait)
    }

    /// Waits until every chunk handed to the publisher reached the shared tier (or failed).
    public func flush() { publisher?.flush() }

    /// `flush`, waiting at most `limit`; logs what it leaves unpublished. Returns whether
    /// every chunk was handed to the shared tier.
    @discardableResult
    public func flush(within limit: Duration) -> Bool {
        guard let publisher, !publisher.flush(within: limit) else { return true }
        logger.warning("chunks not published to the shared tier in time; they stay local only",
                       metadata: ["pendingBytes": "\(publisher.counters.pendingBytes)", "limit": "\(limit)"])
        return false
    }
}
