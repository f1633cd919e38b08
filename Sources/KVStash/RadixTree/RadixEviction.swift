extension RadixCore {
    /// Evicts unlocked leaves, least recently used first, until the tree holds at most
    /// `limit` bytes or only locked nodes and their ancestors remain. A parent left
    /// without children becomes a candidate in turn.
    func evict(toFit limit: Int) {
        guard stats.bytes > limit else { return }
        var heap = MinHeap<RadixNode> { $0.lastAccess < $1.lastAccess }
        for node in nodes.values where node.isLeaf && node.lockCount == 0 { heap.push(node) }
        var emptiedRoot = false
        while stats.bytes > limit, let leaf = heap.pop() {
            guard let parent = leaf.parent else { continue }
            remove(leaf, from: parent)
            if !parent.isRoot && parent.isLeaf && parent.lockCount == 0 { heap.push(parent) }
            if parent.isRoot && parent.isLeaf { emptiedRoot = true }
        }
        // A namespace (tenant salt) left without nodes costs nothing until it is used again.
        if emptiedRoot { roots = roots.filter { !$0.value.isLeaf } }
    }

    /// Forgets the root of `ns` when it holds no node.
    func dropRootIfEmpty(_ ns: RadixNamespace) {
        if roots[ns]?.isLeaf == true { roots[ns] = nil }
    }

    /// Drops every unlocked node (the RAM tier becomes empty except for what requests hold).
    func evictAll() { evict(toFit: 0) }

    private func remove(_ leaf: RadixNode, from parent: RadixNode) {
        parent.children[RadixNode.key(leaf.tokens)] = nil
        nodes[leaf.id] = nil
        stats.nodes -= 1
        stats.tokens -= leaf.tokens.count
        stats.bytes -= leaf.byteCount
        stats.evictedNodes += 1
        stats.evictedTokens += leaf.tokens.count
    }
}

/// A binary min-heap ordered by a comparison closure.
struct MinHeap<Element> {
    private var items: [Element] = []
    private let less: (Element, Element) -> Bool

    init(less: @escaping (Element, Element) -> Bool) { self.less = less }

    mutating func push(_ x: Element) {
        items.append(x)
        var i = items.count - 1
        while i > 0, less(items[i], items[(i - 1) / 2]) {
            items.swapAt(i, (i - 1) / 2)
            i = (i - 1) / 2
        }
    }

    mutating func pop() -> Element? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count, less(items[l], items[m]) { m = l }
            if r < items.count, less(items[r], items[m]) { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return top
    }
}
