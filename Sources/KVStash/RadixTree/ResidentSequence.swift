import KVStashCore
import Synchronization

/// The KV cache of the last finished request, kept whole in RAM beside the radix tree, so
/// the next request that starts with the same tokens (a new question over the same
/// document, an exact repeat, the next turn of a chat) takes it over instead of copying the
/// tree's pages of those positions into a new cache: the copy was a sixth of a served hot
/// hit (81 MB for a 3.5K-token SmolLM2 prefix). llama-server keeps a slot's cache the same way.
///
/// It only stands in for pages the tree holds: `PrefixCache` matches in the tree first
/// and takes the resident cache for exactly the matched positions, so what a request
/// reuses, the tree's counters and leases, and eviction are the same with or without it.
/// The rows are the ones the tree's pages were copied from or an equal computation of the
/// same tokens at the same positions, so answers do not depend on which one served them.
///
/// One sequence is kept, tagged with its namespace (model and tenant): a request of
/// another tenant never takes it. Taking it removes it, so two requests never share it.
/// Its memory is bounded by one request's cache and counts against nothing else; a tree
/// with a budget smaller than the cache keeps none (a budget of 0 disables both).
public final class ResidentSequence: Sendable {
    private struct Entry: Sendable {
        let namespace: RadixNamespace
        /// The tokens whose KV `cache` holds, one per row.
        let tokens: [Int]
        var cache: KVCache
        var skipped: SkippedRows
    }

    private let entry = Mutex<Entry?>(nil)
    private let taken = Atomic<Int>(0)

    public init() {}

    /// Keeps `cache` (whose rows are the KV of `tokens`, as many as it holds) for a later
    /// `take`, replacing the one kept before; nothing when its buffers take more than
    /// `budgetBytes`. The cache's f32 keys before RoPE are dropped first (write-back turns
    /// f16 keys back, as it does for the tree's pages).
    public func keep(_ tokens: [Int], cache: consuming KVCache, skipped: SkippedRows, namespace: RadixNamespace,
                     budgetBytes: Int) {
        let rows = min(tokens.count, cache.count)
        guard rows > 0, cache.capacity * cache.shape.cacheBytesPerPosition <= budgetBytes else {
            clear()
            return
        }
        cache.dropRawKeys()
        cache.truncate(to: rows)
        var skipped = skipped
        skipped.clip(to: rows)
        let kept = Entry(namespace: namespace, tokens: Array(tokens[..<rows]), cache: cache, skipped: skipped)
        _ = entry.withLock { e in
            let old = e
            e = kept
            return old  // released outside the lock
        }
    }

    /// When the kept cache's first `tokens.count` rows are the KV of `tokens` in `namespace`:
    /// moves it, cut to those rows, into `cache` (whose previous buffers are released) with
    /// the sliding-layer rows it lacks among them in `skipped`, and keeps it no longer.
    public func take(_ tokens: ArraySlice<Int>, namespace: RadixNamespace, into cache: inout KVCache,
                     skipped: inout SkippedRows) -> Bool {
        guard !tokens.isEmpty else { return false }
        return entry.withLock { e in
            guard var kept = e, kept.namespace == namespace, kept.tokens.count >= tokens.count,
                  kept.tokens[..<tokens.count].elementsEqual(tokens) else { return false }
            e = nil  // `kept` now holds the only reference: cutting it copies nothing
            kept.cache.truncate(to: tokens.count)
            kept.skipped.clip(to: tokens.count)
            swap(&cache, &kept.cache)  // a move: `cache` becomes the only reference
            skipped = kept.skipped
            taken.add(1, ordering: .relaxed)
            return true
        }
    }

    /// Drops the kept cache.
    public func clear() {
        _ = entry.withLock { e in
            let old = e
            e = nil
            return old
        }
    }

    /// Requests that took the kept cache over.
    public var takes: Int { taken.load(ordering: .relaxed) }

    /// Rows of the kept cache (0 when none).
    public var tokenCount: Int { entry.withLock { $0?.tokens.count ?? 0 } }
}
