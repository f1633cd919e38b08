import Synchronization

/// A set of packed character pairs (`SentencePieceModel.forEachPair`): open addressing with
/// linear probing and a multiplicative hash, one `UInt64` per slot, at most half full.
struct CharPairSet: Sendable {
    private var slots = [UInt64](repeating: CharPairSet.empty, count: 1 << 12)
    private var shift: UInt64 = 64 - 12
    private var count = 0
    /// An empty slot. No pair of valid UTF-8 characters packs to it; a text pair that does is
    /// reported present, which only saves a cut.
    private static let empty = UInt64.max

    @inline(__always)
    private func slot(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    @inline(__always)
    func contains(_ pair: UInt64) -> Bool {
        var i = slot(pair)
        while true {
            let s = slots[i]
            if s == pair { return true }
            if s == Self.empty { return pair == Self.empty }
            i = (i + 1) & (slots.count - 1)
        }
    }

    mutating func insert(_ pair: UInt64) {
        guard pair != Self.empty else { return }
        var i = slot(pair)
        while slots[i] != pair {
            if slots[i] == Self.empty {
                slots[i] = pair
                count += 1
                if 2 * count > slots.count { grow() }
                return
            }
            i = (i + 1) & (slots.count - 1)
        }
    }

    private mutating func grow() {
        let old = slots
        slots = [UInt64](repeating: Self.empty, count: 2 * old.count)
        shift -= 1
        count = 0
        for p in old where p != Self.empty { insert(p) }
    }
}

/// A segment of at most 23 bytes packed into three words, its length in the top byte: a table key
/// that needs no allocation. Longer segments (rare: long words, CJK) are merged every time.
/// Hashed by `Hasher` (seeded), so crafted text cannot pile keys into one bucket.
struct SegmentKey: Hashable {
    let w0: UInt64, w1: UInt64, w2: UInt64

    @inline(__always)
    init?(_ text: [UInt8], _ range: Range<Int>) {
        guard range.count <= 23 else { return nil }
        var w: (UInt64, UInt64, UInt64) = (0, 0, UInt64(range.count) << 56)
        var k = 0
        for i in range {
            let b = UInt64(text[i]) << UInt64(8 * (k & 7))
            if k < 8 { w.0 |= b } else if k < 16 { w.1 |= b } else { w.2 |= b }
            k += 1
        }
        (w0, w1, w2) = w
    }
}

/// Ids of merged segments, shared by the copies of a `SentencePieceModel` and so by concurrent
/// `Tokenizer.encode` calls: the lock is held for one lookup or one insert. The ids sit in one
/// pool; table and pool are dropped past 200,000 segments, as the byte-level pre-token cache is.
final class SegmentTable: Sendable {
    private struct State {
        var index: [SegmentKey: UInt64] = [:]
        var pool: [Int32] = []
    }

    private let state = Mutex(State())

    /// Appends the ids of segment `key` to `out` if it was merged before.
    @inline(__always)
    func append(_ key: SegmentKey, into out: inout [Int32]) -> Bool {
        state.withLock { s in
            guard let at = s.index[key] else { return false }
            let start = Int(at >> 32)
            out.append(contentsOf: s.pool[start..<start + Int(at & 0xFFFF_FFFF)])
            return true
        }
    }

    func insert(_ key: SegmentKey, ids: ArraySlice<Int32>) {
        state.withLock { s in
            if s.index.count >= 200_000 {
                s.index.removeAll(keepingCapacity: true)
                s.pool.removeAll(keepingCapacity: true)
            }
            s.index[key] = UInt64(s.pool.count) << 32 | UInt64(ids.count)
            s.pool.append(contentsOf: ids)
        }
    }
}
