import Foundation
import KVStashDigest

extension ChunkKey {
    /// The key of a chunk's second block when it is stored as two (a sliding-window model:
    /// the global layers under the chunk key, the sliding layers under this one):
    /// SHA-256 of `"kvstash.sliding-layers"` followed by the chunk key.
    public var slidingLayersKey: ChunkKey {
        var hasher = SHA256()
        hasher.update(data: Array("kvstash.sliding-layers".utf8))
        hasher.update(data: bytes)
        return ChunkKey(bytes: Array(hasher.finalize()))!
    }
}

/// What age and budget eviction removes as one: a stored value, or a chunk's two blocks
/// (the value under a key and the one under its `slidingLayersKey`, when both are stored).
/// Neither block is usable without the other, so a pair is chosen by the newest access of
/// either, kept if either is pinned, and removed whole.
struct EvictionUnit {
    /// The stored values: the chunk key's first, its sliding-layer block second.
    let members: [ChunkEntry]
    /// The first member's entry with the unit's newest access, total hits and pin: what the
    /// rules select and order by.
    let summary: ChunkEntry

    init(_ members: [ChunkEntry]) {
        self.members = members
        var summary = members[0]
        for m in members.dropFirst() {
            summary.meta.lastAccess = max(summary.meta.lastAccess, m.meta.lastAccess)
            summary.meta.hits += m.meta.hits
            summary.meta.pinned = summary.meta.pinned || m.meta.pinned
        }
        self.summary = summary
    }

    /// Groups `entries` into units: every entry whose `slidingLayersKey` is among them with
    /// that entry, every other entry alone. Order follows the first member's.
    static func group(_ entries: [ChunkEntry]) -> [EvictionUnit] {
        var index: [ChunkKey: Int] = [:]
        for (i, e) in entries.enumerated() { index[e.key] = i }
        var partner: [Int: Int] = [:]
        for (i, e) in entries.enumerated() {
            if let j = index[e.key.slidingLayersKey], j != i { partner[i] = j }
        }
        let seconds = Set(partner.values)
        return entries.indices.filter { !seconds.contains($0) }.map { i in
            EvictionUnit([entries[i]] + (partner[i].map { [entries[$0]] } ?? []))
        }
    }

    /// Whether a value about to be stored under `key` completes this unit (it is the
    /// sliding-layer block of a chunk whose first block is stored alone): eviction that
    /// makes room for it keeps the unit.
    func isCompleted(by key: ChunkKey) -> Bool {
        members.count == 1 && members[0].key.slidingLayersKey == key
    }
}
