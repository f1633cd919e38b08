import KVStashCore

extension RadixCore {
    /// Evicts unlocked leaves, least recently used first, until the tree holds at most
    /// `limit` bytes or only locked nodes and their ancestors remain. A parent left
    /// without children becomes a candidate in turn.
    func evict(toFit limit: Int) {
        guard stats.bytes > limit else { return }
        var heap = Heap<EvictionCandidate>()
        for node in nodes.values where node.isLeaf && node.lockCount == 0 { heap.push(EvictionCandidate(node: node)) }
        var emptiedRoot = false
        while stats.bytes > limit, let leaf = heap.pop()?.node {
            guard let parent = leaf.parent else { continue }
            remove(leaf, from: parent)
            if !parent.isRoot && parent.isLeaf && parent.lockCount == 0 { heap.push(EvictionCandidate(node: parent)) }
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
        stats.tokens -= leaf.heldTokens
        stats.bytes -= leaf.byteCount
        stats.evictedNodes += 1
        stats.evictedTokens += leaf.heldTokens
    }
}

/// A leaf in the eviction heap: least recently used first.
private struct EvictionCandidate: HeapOrdered {
    let node: RadixNode
    func before(_ other: EvictionCandidate) -> Bool { node.lastAccess < other.node.lastAccess }
}
