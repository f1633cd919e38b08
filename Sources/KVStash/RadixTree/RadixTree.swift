import KVStashCore
import Synchronization

/// Counters of the radix tree.
public struct RadixStats: Sendable, Equatable, Codable {
    /// Nodes in the tree (roots excluded).
    public var nodes = 0
    /// Tokens held (whole pages and partial last pages).
    public var tokens = 0
    /// Bytes of KV held.
    public var bytes = 0
    /// Byte budget.
    public var budget = 0
    /// Nodes held by at least one request.
    public var lockedNodes = 0
    /// `match` calls, and those that matched at least one page.
    public var lookups = 0
    public var hits = 0
    /// Tokens served by matches.
    public var hitTokens = 0
    /// Tokens added by inserts.
    public var insertedTokens = 0
    /// Nodes and tokens dropped by eviction.
    public var evictedNodes = 0
    public var evictedTokens = 0
    /// Pages replaced by an insert that held rows of layers they lacked (see `insert`).
    public var completedPages = 0
    /// Rows of the last requests' caches kept whole beside the tree (`RadixTree.resident`).
    public var residentTokens = 0
    /// Bytes of those caches' buffers (counted in the budget, outside `bytes`).
    public var residentBytes = 0
    /// Matches served from that cache instead of a copy of their pages.
    public var residentTakes = 0
    /// Bytes of the 2 MiB slabs the process's larger pages live in (`PageBuffer`): their
    /// live pages plus free slots, beside `bytes`.
    public var pageSlabBytes = 0

    public init() {}
}

/// A hold on a matched path: its nodes are not evicted until the lease is released.
public struct RadixLease: Sendable {
    let namespace: RadixNamespace
    /// The deepest matched node; nil when nothing matched (nothing is held).
    let nodeID: UInt64?
}

/// The result of a longest-prefix match.
public struct RadixMatch: Sendable {
    /// Tokens matched.
    public let tokenCount: Int
    /// KV of the matched tokens, one page per `KVPage.size` tokens; the last page may hold
    /// more rows than match. Splice with `cache.splice(pages, rows: tokenCount)`.
    public let pages: [KVPage]
    /// Hold on the matched nodes; pass it to `RadixTree.release` when done.
    public let lease: RadixLease
}

/// The hot tier: an SGLang-style radix tree of token runs and their KV pages, in RAM.
///
/// Nodes hold whole pages of `KVPage.size` (16) tokens and only split on page
/// boundaries, so pages move between nodes and are never copied or cut. An insert also
/// keeps the sequence's partial last page on the node its whole pages end at (at most
/// `RadixNode.maxPartials` per node, none at a root). A match takes whole pages, then
/// the leading rows of the one page (the next page of a node, the first of a child, or a
/// partial page) that matches the most of the rest: an exact repeat matches every token,
/// and a query diverging inside a page keeps the rows before the divergence. Every
/// namespace (model fingerprint + tenant salt) has its own root.
///
/// Thread-safe: all state sits behind one mutex. KV is copied out of and into caches
/// outside the mutex; the mutex only guards the structure.
public final class RadixTree: Sendable {
    let core: Mutex<RadixCore>
    /// Prompts on their way into the tree (being prefilled).
    public let inflight = InflightPrompts()
    /// The last finished requests' caches, each taken over by a request whose match it covers.
    public let resident = ResidentSequences()

    /// Creates an empty tree that holds at most `budgetBytes` of KV in unlocked nodes and
    /// resident caches together.
    public init(budgetBytes: Int) {
        core = Mutex(RadixCore(budget: budgetBytes))
    }

    /// Longest prefix of `tokens` in `namespace`. With `lock`, the nodes of the matched
    /// whole pages stay in the tree until `release(match.lease)` (the partial page is a
    /// value the match holds itself).
    public func match(_ tokens: [Int], namespace: RadixNamespace, lock: Bool = true) -> RadixMatch {
        core.withLock { core in
            let time = core.tick()
            let (node, whole, pages, tail) = core.walk(namespace, tokens, split: lock, time: time)
            let matched = whole + (tail?.rows ?? 0)
            core.stats.lookups += 1
            if matched > 0 {
                core.stats.hits += 1
                core.stats.hitTokens += matched
            }
            let held = lock && whole > 0
            if held { core.lock(node) }
            if matched == 0 { core.dropRootIfEmpty(namespace) }
            return RadixMatch(tokenCount: matched, pages: pages + (tail.map { [$0.page] } ?? []),
                              lease: RadixLease(namespace: namespace, nodeID: held ? node.id : nil))
        }
    }

    /// Tokens of `tokens` the tree holds in `namespace` (whole pages, then part of one),
    /// without counting a lookup or holding anything.
    public func heldTokens(_ tokens: [Int], namespace: RadixNamespace) -> Int {
        core.withLock { core in
            let time = core.tick()
            let (_, whole, _, tail) = core.walk(namespace, tokens, split: false, time: time)
            let held = whole + (tail?.rows ?? 0)
            if held == 0 { core.dropRootIfEmpty(namespace) }
            return held
        }
    }

    /// Releases the hold of a match.
    public func release(_ lease: RadixLease) {
        guard let id = lease.nodeID else { return }
        core.withLock { core in
            guard let node = core.nodes[id] else { preconditionFailure("leased radix node vanished") }
            core.unlock(node)
            core.evict(toFit: treeShare(of: core.budget))
        }
    }

    /// Inserts the pages of `tokens`, taking their KV from `cache` (whose positions
    /// `0..<tokens.count` belong to `tokens`): the whole pages, then the partial last page.
    /// Rows `skipped` says were left out are not copied (their pages say so). A page
    /// already in the tree is not copied unless it lacks layers whose rows `cache` holds:
    /// then it is replaced by a copy holding them (completed). Returns the number of tokens
    /// added. May evict other nodes to stay in budget.
    @discardableResult
    public func insert(_ tokens: [Int], from cache: KVCache, namespace: RadixNamespace,
                       skipped: SkippedRows = SkippedRows()) -> Int {
        let usable = min(tokens.count, cache.count), whole = usable - usable % KVPage.size
        let added = insertPages(Array(tokens[..<whole]), from: cache, namespace: namespace, skipped: skipped)
        guard whole > 0, usable > whole else { return added }
        let lacking = skipped.layers(in: whole..<usable)
        let held = core.withLock { core -> Bool in
            let known = core.walk(namespace, Array(tokens[..<usable]), split: false, time: nil)
            let partial = known.node.partials[Array(tokens[whole..<usable])]
            return known.matched == whole && known.tail?.rows == usable - whole
                && !(partial.map { KVPage.completes($0, lacking: lacking) } ?? false)
        }
        if held { return added }
        let page = KVPage(from: cache, start: whole, rows: usable - whole, skipping: lacking)  // copied outside the mutex
        return added + core.withLock { core in
            let time = core.tick()
            let (node, matched, _, _) = core.walk(namespace, Array(tokens[..<whole]), split: true, time: time)
            guard matched == whole else { return 0 }  // evicted meanwhile
            let n = core.attachPartial(Array(tokens[whole..<usable]), page: page, after: node)
            core.stats.insertedTokens += n
            core.evict(toFit: treeShare(of: core.budget))
            return n
        }
    }

    /// The whole pages of `insert`.
    private func insertPages(_ query: [Int], from cache: KVCache, namespace: RadixNamespace,
                             skipped: SkippedRows) -> Int {
        guard !query.isEmpty else { return 0 }
        for _ in 0..<3 {
            let (known, held) = core.withLock { core in
                let walk = core.walk(namespace, query, split: false, time: nil)
                return (walk.matched, walk.pages)
            }
            // Copied outside the mutex: the known pages this cache completes, and the new ones.
            let completed = completions(of: held, from: cache, skipped: skipped)
            if known == query.count && completed.isEmpty { return 0 }
            let pages = cache.pages(known..<query.count, skipped: skipped)
            let added: Int? = core.withLock { core in
                let time = core.tick()
                core.complete(namespace, query, with: completed)
                guard known < query.count else {
                    core.evict(toFit: treeShare(of: core.budget))
                    return 0
                }
                let (node, matched, _, _) = core.walk(namespace, query, split: true, time: time)
                guard matched >= known else { return nil }  // evicted meanwhile: copy again
                let skip = (matched - known) / KVPage.size
                let added = core.attach(query, pages: Array(pages[skip...]), under: node, matched: matched, time: time)
                core.stats.insertedTokens += added
                core.evict(toFit: treeShare(of: core.budget))
                return added
            }
            if let added { return added }
        }
        return 0
    }

    /// Copies of the pages of `held` (the tree's pages of positions `0..<16 · held.count`)
    /// that lack layers whose rows `cache` holds, by page index.
    private func completions(of held: [KVPage], from cache: KVCache, skipped: SkippedRows) -> [Int: KVPage] {
        var copies: [Int: KVPage] = [:]
        for (i, page) in held.enumerated() where !page.skippedLayers.isEmpty {
            let start = i * KVPage.size, lacking = skipped.layers(in: start..<(start + KVPage.size))
            if KVPage.completes(page, lacking: lacking) { copies[i] = KVPage(from: cache, start: start, skipping: lacking) }
        }
        return copies
    }

    /// Keeps a finished request's cache (its rows the KV of `tokens`) in `resident`, whose
    /// caches' buffers count in the byte budget and take at most a quarter of it: the tree
    /// evicts pages to make room for them (its least recently used ones; the rows of the cache
    /// just kept were used last).
    public func keepResident(_ tokens: [Int], cache: consuming KVCache, skipped: SkippedRows, namespace: RadixNamespace) {
        let budget = core.withLock { $0.budget }
        resident.keep(tokens, cache: consume cache, skipped: skipped, namespace: namespace, limitBytes: budget / 4)
        core.withLock { core in core.evict(toFit: treeShare(of: core.budget)) }
    }

    /// Bytes the tree's pages may take of `budget`: what the resident caches leave (called
    /// under the tree's lock; `resident` takes only its own, never the tree's).
    private func treeShare(of budget: Int) -> Int { max(0, budget - resident.byteCount) }

    /// Changes the byte budget, evicting at once if needed.
    public func setBudget(_ bytes: Int) {
        resident.clear()
        core.withLock { core in
            core.budget = bytes
            core.evict(toFit: bytes)
        }
    }

    /// Drops every node no request holds and the resident caches (the RAM tier becomes empty).
    public func evictAll() {
        resident.clear()
        core.withLock { $0.evictAll() }
    }

    /// Namespaces with a root in the tree (a namespace whose nodes are all evicted has none).
    public var namespaceCount: Int { core.withLock { $0.roots.count } }

    /// Current counters.
    public func stats() -> RadixStats {
        var stats = core.withLock { core in
            var s = core.stats
            s.budget = core.budget
            s.residentTokens = resident.tokenCount
            s.residentBytes = resident.byteCount
            s.residentTakes = resident.takes
            return s
        }
        stats.pageSlabBytes = PageBuffer.slabBytesHeld  // the slabs' own lock, not the tree's
        return stats
    }
}
