import KVStashCore
import Synchronization

/// The KV caches of the last finished requests, kept whole in RAM beside the radix tree, so
/// that a request starting with one's tokens (a new question over the same document, an
/// exact repeat, the next turn of a chat) continues in that cache instead of copying the
/// tree's pages of those positions into a new one: the copy was a sixth of a served hot hit
/// (81 MB for a 3.5K-token SmolLM2 prefix). llama-server keeps each slot's cache the same way.
///
/// They only stand in for pages the tree holds: `PrefixCache` matches in the tree first and
/// takes a resident cache for exactly the matched positions, so what a request reuses, the
/// tree's counters and leases, and eviction are the same with or without them. The rows are
/// the ones the tree's pages were copied from or into, or, where concurrent requests computed
/// the same positions (the tree keeps the first page inserted), another computation of the
/// same tokens at the same positions: as interchangeable as the KV of any two hits.
///
/// Each cache is tagged with its namespace (model and tenant): a request of another tenant
/// never takes it. Taking one removes it, so two requests never share a cache. At most
/// `maxCaches` are kept, the most recent first, their buffers within the byte limit `keep`
/// is given. Past a limit the oldest cache of the namespace keeping the most goes first, so a
/// burst of one tenant's requests replaces that tenant's own caches before another's.
public final class ResidentSequences: Sendable {
    private struct Entry: Sendable {
        let namespace: RadixNamespace
        /// The tokens whose KV `cache` holds, one per row.
        let tokens: [Int]
        var cache: KVCache
        var skipped: SkippedRows
        /// Bytes of the cache's buffers.
        var bytes: Int { cache.capacityBytes }
    }

    /// Caches kept at most.
    public let maxCaches: Int
    /// Most recent first.
    private let entries = Mutex<[Entry]>([])
    private let taken = Atomic<Int>(0)

    public init(maxCaches: Int = 4) {
        self.maxCaches = max(0, maxCaches)
    }

    /// Keeps `cache` (whose rows are the KV of `tokens`, as many as it holds) for a later
    /// `take`, as the most recent, dropping others (`next(toDrop:)`) past `maxCaches` or past
    /// `limitBytes` of buffers in all; nothing when it alone exceeds the limit. The cache's
    /// f32 keys before RoPE are dropped first (write-back turns f16 keys back, as it does for
    /// the tree's pages).
    public func keep(_ tokens: [Int], cache: consuming KVCache, skipped: SkippedRows, namespace: RadixNamespace,
                     limitBytes: Int) {
        let rows = min(tokens.count, cache.count)
        guard rows > 0, maxCaches > 0, cache.capacityBytes <= limitBytes else { return }
        cache.dropRawKeys()
        cache.truncate(to: rows)
        var skipped = skipped
        skipped.clip(to: rows)
        let kept = Entry(namespace: namespace, tokens: Array(tokens[..<rows]), cache: cache, skipped: skipped)
        _ = entries.withLock { list -> [Entry] in
            list.insert(kept, at: 0)
            var dropped: [Entry] = []
            while list.count > maxCaches || list.reduce(0, { $0 + $1.bytes }) > limitBytes {
                dropped.append(list.remove(at: Self.next(toDrop: list)))
            }
            return dropped  // released outside the lock
        }
    }

    /// The cache to drop first: the oldest of the namespace keeping the most, the oldest of
    /// those namespaces' oldest ones when several keep as many (with one namespace, the oldest).
    private static func next(toDrop list: [Entry]) -> Int {
        var kept: [RadixNamespace: Int] = [:]
        for entry in list { kept[entry.namespace, default: 0] += 1 }
        let most = kept.values.max() ?? 0
        return list.lastIndex { kept[$0.namespace] == most } ?? list.count - 1
    }

    /// When a kept cache's first `tokens.count` rows are the KV of `tokens` in `namespace`
    /// (the most recent such one): moves it, cut to those rows, into `cache` (whose previous
    /// buffers are released) with the sliding-layer rows it lacks among them in `skipped`,
    /// and keeps it no longer.
    public func take(_ tokens: ArraySlice<Int>, namespace: RadixNamespace, into cache: inout KVCache,
                     skipped: inout SkippedRows) -> Bool {
        guard !tokens.isEmpty else { return false }
        return entries.withLock { list in
            guard let i = list.firstIndex(where: {
                $0.namespace == namespace && $0.tokens.count >= tokens.count
                    && $0.tokens[..<tokens.count].elementsEqual(tokens)
            }) else { return false }
            var kept = list.remove(at: i)  // `kept` now holds the only reference: cutting it copies nothing
            kept.cache.truncate(to: tokens.count)
            kept.skipped.clip(to: tokens.count)
            swap(&cache, &kept.cache)  // a move: `cache` becomes the only reference
            skipped = kept.skipped
            taken.add(1, ordering: .relaxed)
            return true
        }
    }

    /// Drops every kept cache.
    public func clear() {
        _ = entries.withLock { list in
            defer { list = [] }
            return list
        }
    }

    /// Requests that took a kept cache over.
    public var takes: Int { taken.load(ordering: .relaxed) }

    /// Caches kept now.
    public var count: Int { entries.withLock { $0.count } }

    /// Rows of the kept caches in all.
    public var tokenCount: Int { entries.withLock { $0.reduce(0) { $0 + $1.tokens.count } } }

    /// Bytes of the kept caches' buffers in all.
    public var byteCount: Int { entries.withLock { $0.reduce(0) { $0 + $1.bytes } } }
}
