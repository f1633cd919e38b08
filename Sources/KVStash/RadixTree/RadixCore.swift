/// The radix tree's state. Not thread-safe: `RadixTree` guards it with a mutex.
final class RadixCore {
    var roots: [RadixNamespace: RadixNode] = [:]
    /// Every live non-root node by id, so leases can find them.
    var nodes: [UInt64: RadixNode] = [:]
    var nextID: UInt64 = 1
    /// Logical clock: incremented by every match and insert.
    var clock: UInt64 = 0
    var budget: Int
    var stats = RadixStats()

    init(budget: Int) { self.budget = budget }

    func tick() -> UInt64 { clock += 1; return clock }

    func root(_ ns: RadixNamespace) -> RadixNode {
        if let r = roots[ns] { return r }
        let r = RadixNode(id: 0, tokens: [], pages: [], parent: nil, time: 0)
        roots[ns] = r
        return r
    }

    func newNode(tokens: [Int], pages: [KVPage], parent: RadixNode, time: UInt64) -> RadixNode {
        let n = RadixNode(id: nextID, tokens: tokens, pages: pages, parent: parent, time: time)
        nextID += 1
        nodes[n.id] = n
        return n
    }

    /// Walks `query` (whole pages only) from the namespace root. Splits the last node
    /// when the match ends inside it if `split`, so the returned node ends exactly at
    /// the matched length. Without `split` the returned node may extend past it.
    ///
    /// `tail` is the page that matches the most of the query's tokens past the whole
    /// pages (fewer than `KVPage.size`: the next page of the node the walk stopped in,
    /// the first page of a child, or a partial page), with the number of its rows that match.
    func walk(_ ns: RadixNamespace, _ query: [Int], split: Bool, time: UInt64?)
        -> (node: RadixNode, matched: Int, pages: [KVPage], tail: (page: KVPage, rows: Int)?) {
        var node = root(ns)
        var pos = 0
        var pages: [KVPage] = []
        var next: [(ArraySlice<Int>, KVPage)]?
        let n = query.count - query.count % KVPage.size
        while pos < n, let child = node.children[RadixNode.key(query[pos...])] {
            let p = child.matchingPages(query, from: pos, maxPages: (n - pos) / KVPage.size)
            if let time { child.lastAccess = time }
            pages += child.pages[0..<p]
            pos += p * KVPage.size
            if p < child.pages.count {
                next = [(child.tokens[(p * KVPage.size)..<((p + 1) * KVPage.size)], child.pages[p])]
                node = split ? self.split(child, atPage: p) : child
                break
            }
            node = child
        }
        let candidates = next ?? (node.children.values.map { ($0.tokens.prefix(KVPage.size), $0.pages[0]) }
                                  + node.partials.map { ($0.key[...], $0.value) })
        let rest = query[pos...]
        var tail: (page: KVPage, rows: Int)?
        for (tokens, page) in candidates {
            let rows = zip(tokens, rest).prefix { $0.0 == $0.1 }.count
            if rows > (tail?.rows ?? 0) { tail = (page, min(rows, KVPage.size - 1)) }
        }
        return (node, pos, pages, tail)
    }

    /// Keeps `page` as the partial page of `tokens` after `node`, unless a child or
    /// another partial page already covers them; drops partial pages it extends.
    /// Returns the tokens added.
    func attachPartial(_ tokens: [Int], page: KVPage, after node: RadixNode) -> Int {
        if let old = node.partials[tokens] {
            if KVPage.completes(old, lacking: page.skippedLayers) { replace(&node.partials[tokens]!, with: page) }
            return 0
        }
        let covered = node.children.values.contains { $0.tokens.starts(with: tokens) }
            || node.partials.keys.contains { $0.starts(with: tokens) }
        guard !covered, !node.isRoot else { return 0 }
        for key in node.partials.keys where tokens.starts(with: key) { dropPartial(key, of: node) }
        if node.partials.count >= RadixNode.maxPartials, let key = node.partials.keys.first { dropPartial(key, of: node) }
        node.partials[tokens] = page
        stats.tokens += tokens.count
        stats.bytes += page.byteCount
        return tokens.count
    }

    private func dropPartial(_ key: [Int], of node: RadixNode) {
        guard let page = node.partials.removeValue(forKey: key) else { return }
        stats.tokens -= key.count
        stats.bytes -= page.byteCount
    }

    /// Puts `page` in place of `old` (same positions, fewer layers lacking).
    private func replace(_ old: inout KVPage, with page: KVPage) {
        stats.bytes += page.byteCount - old.byteCount
        stats.completedPages += 1
        old = page
    }

    /// Replaces the pages of `query`'s path whose index `completed` gives (whole pages of
    /// positions `16 · index ..< 16 · (index + 1)`) where the tree's page still lacks layers
    /// the replacement holds.
    func complete(_ ns: RadixNamespace, _ query: [Int], with completed: [Int: KVPage]) {
        guard let last = completed.keys.max(), var node = roots[ns] else { return }
        let end = (last + 1) * KVPage.size
        var pos = 0
        while pos < end, let child = node.children[RadixNode.key(query[pos...])] {
            let p = child.matchingPages(query, from: pos, maxPages: (end - pos) / KVPage.size)
            for j in 0..<p {
                if let page = completed[pos / KVPage.size + j], KVPage.completes(child.pages[j], lacking: page.skippedLayers) {
                    replace(&child.pages[j], with: page)
                }
            }
            guard p == child.pages.count else { return }
            pos += p * KVPage.size
            node = child
        }
    }

    /// Splits `node` after `page` pages: a new parent takes the head, `node` keeps the
    /// tail (and its id, children and locks). Returns the new head.
    func split(_ node: RadixNode, atPage page: Int) -> RadixNode {
        precondition(page > 0 && page < node.pages.count)
        guard let parent = node.parent else { preconditionFailure("cannot split a root") }
        let cut = page * KVPage.size
        let head = newNode(tokens: Array(node.tokens[..<cut]), pages: Array(node.pages[..<page]),
                           parent: parent, time: node.lastAccess)
        head.lockCount = node.lockCount
        if head.lockCount > 0 { stats.lockedNodes += 1 }
        parent.children[RadixNode.key(node.tokens)] = head
        node.tokens = Array(node.tokens[cut...])
        node.pages = Array(node.pages[page...])
        node.parent = head
        head.children[RadixNode.key(node.tokens)] = node
        stats.nodes += 1
        return head
    }

    /// Adds `pages` for `query[matched...]` under `node` (which ends at `matched`).
    func attach(_ query: [Int], pages: [KVPage], under node: RadixNode, matched: Int, time: UInt64) -> Int {
        guard !pages.isEmpty else { return 0 }
        let end = matched + pages.count * KVPage.size
        let leaf = newNode(tokens: Array(query[matched..<end]), pages: pages, parent: node, time: time)
        for key in node.partials.keys where leaf.tokens.starts(with: key) { dropPartial(key, of: node) }
        node.children[RadixNode.key(leaf.tokens)] = leaf
        stats.nodes += 1
        stats.tokens += leaf.tokens.count
        stats.bytes += leaf.byteCount
        return leaf.tokens.count
    }

    /// Adds one lock to `node` and every ancestor.
    func lock(_ node: RadixNode) {
        var n: RadixNode? = node
        while let cur = n, !cur.isRoot {
            if cur.lockCount == 0 { stats.lockedNodes += 1 }
            cur.lockCount += 1
            n = cur.parent
        }
    }

    /// Removes one lock from `node` and every ancestor.
    func unlock(_ node: RadixNode) {
        var n: RadixNode? = node
        while let cur = n, !cur.isRoot {
            precondition(cur.lockCount > 0, "radix lease released twice")
            cur.lockCount -= 1
            if cur.lockCount == 0 { stats.lockedNodes -= 1 }
            n = cur.parent
        }
    }
}

extension RadixCore {
    /// Recomputes the counters from the nodes (for tests): nodes, tokens, bytes, locked.
    func recount() -> (nodes: Int, tokens: Int, bytes: Int, locked: Int) {
        var result = (nodes: 0, tokens: 0, bytes: 0, locked: 0)
        var stack = Array(roots.values)
        while let n = stack.popLast() {
            stack += n.children.values
            precondition(n.children.allSatisfy { $0.value.parent === n }, "broken parent link")
            guard !n.isRoot else { continue }
            precondition(n.tokens.count == n.pages.count * KVPage.size && !n.pages.isEmpty, "bad node")
            precondition(n.partials.allSatisfy { $0.key.count == $0.value.rows && $0.key.count < KVPage.size }, "bad partial")
            result.nodes += 1
            result.tokens += n.heldTokens
            result.bytes += n.byteCount
            if n.lockCount > 0 { result.locked += 1 }
        }
        return result
    }
}
