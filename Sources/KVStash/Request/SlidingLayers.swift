import KVStashChunks
import KVStashEngine
import KVStashStore

/// How the chunks of a model with sliding-window layers are stored and read: each chunk
/// is two blocks, its global layers' under the chunk key and its sliding layers' under
/// `slidingKey(chunk key)`. A prefix whose first new token is at position p needs the
/// global rows of every position before p, and the sliding rows of `[p - window, p)` only
/// (a sliding layer's query at p sees keys from `p - window + 1` on), so a hit reads the
/// sliding block of the chunks overlapping that window alone. Nil for a model whose layers
/// are all global (one block of every layer per chunk).
public struct LayerSplit: Sendable {
    /// Layers that attend to every earlier position, ascending.
    public let global: [Int]
    /// Layers with a sliding window, ascending.
    public let sliding: [Int]
    /// The largest window of the sliding layers (keys a query sees, itself included).
    public let window: Int

    /// The split of a model whose layers attend as `attention` says; nil when they are all
    /// global (or all sliding).
    public init?(_ attention: [LayerAttention]) {
        let sliding = attention.indices.filter { attention[$0].window != nil }
        guard !sliding.isEmpty, sliding.count < attention.count else { return nil }  // all of one kind: one block
        self.sliding = sliding
        global = attention.indices.filter { attention[$0].window == nil }
        window = attention.compactMap(\.window).max()!
    }

    /// The key of a chunk's sliding-layer block (`ChunkKey.slidingLayersKey`; the chained
    /// key itself is unchanged).
    public static func slidingKey(_ key: ChunkKey) -> ChunkKey { key.slidingLayersKey }

    /// The keys a chunk is stored under, with the layers each block carries (nil: all).
    static func blocks(_ key: ChunkKey, _ split: LayerSplit?) -> [(key: ChunkKey, layers: [Int]?)] {
        guard let split else { return [(key, nil)] }
        return [(key, split.global), (slidingKey(key), split.sliding)]
    }
}

/// Positions of a sequence's cache whose sliding-layer rows were left out (a cold hit reads
/// a chunk's sliding block only when a later query can see it), sorted and disjoint.
/// Attention never reads them; the radix tree keeps pages over them without those layers.
public struct SkippedRows: Sendable, Equatable {
    /// The layers whose rows are left out (the model's sliding layers).
    public var layers: [Int] = []
    /// Position ranges whose rows of `layers` are unwritten.
    public private(set) var ranges: [Range<Int>] = []

    public init(layers: [Int] = []) { self.layers = layers }

    /// Marks `range` as left out.
    mutating func add(_ range: Range<Int>) {
        guard !range.isEmpty else { return }
        var merged = range
        var kept: [Range<Int>] = []
        for r in ranges {
            if r.upperBound < merged.lowerBound || r.lowerBound > merged.upperBound { kept.append(r) } else {
                merged = min(r.lowerBound, merged.lowerBound)..<max(r.upperBound, merged.upperBound)
            }
        }
        ranges = (kept + [merged]).sorted { $0.lowerBound < $1.lowerBound }
    }

    /// Marks `range` as written.
    mutating func remove(_ range: Range<Int>) {
        ranges = ranges.flatMap { r -> [Range<Int>] in
            guard r.overlaps(range) else { return [r] }
            return [r.lowerBound..<max(r.lowerBound, range.lowerBound), min(r.upperBound, range.upperBound)..<r.upperBound]
                .filter { !$0.isEmpty }
        }
    }

    /// Forgets everything at or past `end` (rows about to be computed or dropped).
    mutating func clip(to end: Int) { remove(end..<Int.max) }

    /// The left-out positions inside `range`.
    func overlapping(_ range: Range<Int>) -> [Range<Int>] {
        ranges.compactMap { r in r.overlaps(range) ? r.clamped(to: range) : nil }
    }

    /// The layers left out anywhere in `range` (none when it holds no skipped row).
    func layers(in range: Range<Int>) -> [Int] {
        ranges.contains { $0.overlaps(range) } ? layers : []
    }

    public var isEmpty: Bool { ranges.isEmpty }
}
