import KVStashCore

/// Byte-level BPE over token ids: the merge table of a GGUF `gpt2` vocabulary.
///
/// A word (one pre-token's bytes) starts as one symbol per byte; the adjacent pair with the lowest
/// merge rank (leftmost on ties) is merged until no pair has a rank — the same order as llama.cpp's
/// and Hugging Face's priority queues.
struct BPEMerges: Sendable {
    /// Token id of each single byte; -1 for a byte the vocabulary lacks (SmolLM2 lacks 21 rare
    /// ones such as 0x04 and 0xFF). Such a byte is dropped from the output and blocks merges across
    /// it, as in llama.cpp.
    let byteToken: [Int32]
    /// (left id << 32 | right id) -> (rank << 32 | merged id).
    private let table: PairTable

    /// Builds the table from `merges` ("left right" in vocabulary spelling) and `vocab`.
    /// Merges whose parts or result are not in the vocabulary are ignored.
    init(merges: [String], vocab: [String: Int]) throws {
        var bytes = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            if let id = vocab[String(ByteLevel.scalarForByte[b])] { bytes[b] = Int32(id) }
        }
        guard bytes.contains(where: { $0 >= 0 }) else {
            throw TokenizerError.badVocabulary("no byte-level tokens (is this a gpt2 BPE vocabulary?)")
        }
        byteToken = bytes
        var t: [UInt64: UInt64] = [:]
        t.reserveCapacity(merges.count)
        for (rank, m) in merges.enumerated() {
            // The separator is the first space after the first character (llama.cpp's rule).
            guard let sep = m.unicodeScalars.dropFirst().firstIndex(of: " ") else { continue }
            let left = String(m.unicodeScalars[..<sep])
            let right = String(m.unicodeScalars[m.unicodeScalars.index(after: sep)...])
            guard let l = vocab[left], let r = vocab[right], let out = vocab[left + right] else { continue }
            let key = UInt64(l) << 32 | UInt64(r)
            if t[key] == nil { t[key] = UInt64(rank) << 32 | UInt64(out) }
        }
        table = PairTable(t)
    }

    @inline(__always)
    private func lookup(_ l: Int32, _ r: Int32) -> (rank: Int32, id: Int32) {
        guard l >= 0, r >= 0, let v = table.value(UInt64(l) << 32 | UInt64(r)) else { return (Int32.max, -1) }
        return (Int32(truncatingIfNeeded: v >> 32), Int32(truncatingIfNeeded: v & 0xFFFF_FFFF))
    }

    /// Appends the token ids of one pre-token's bytes to `out`.
    func encode(_ word: UnsafeBufferPointer<UInt8>, into out: inout [Int32]) {
        if word.count == 1 {
            if byteToken[Int(word[0])] >= 0 { out.append(byteToken[Int(word[0])]) }
            return
        }
        if word.count > 64 { encodeLong(word, into: &out); return }
        var syms = word.map { byteToken[Int($0)] }
        // ranks[i] / merged[i]: the merge of syms[i] and syms[i+1].
        var ranks = [Int32](), merged = [Int32]()
        ranks.reserveCapacity(syms.count)
        merged.reserveCapacity(syms.count)
        for i in 0..<(syms.count - 1) {
            let m = lookup(syms[i], syms[i + 1])
            ranks.append(m.rank); merged.append(m.id)
        }
        while !ranks.isEmpty {
            var best = 0
            for i in 1..<ranks.count where ranks[i] < ranks[best] { best = i }
            if ranks[best] == Int32.max { break }
            syms[best] = merged[best]
            syms.remove(at: best + 1)
            ranks.remove(at: best); merged.remove(at: best)
            if best > 0 {
                let m = lookup(syms[best - 1], syms[best])
                ranks[best - 1] = m.rank; merged[best - 1] = m.id
            }
            if best < ranks.count {
                let m = lookup(syms[best], syms[best + 1])
                ranks[best] = m.rank; merged[best] = m.id
            }
        }
        for s in syms where s >= 0 { out.append(s) }
    }

    /// The same merges in O(n log n) for long words (whitespace runs, minified code): a linked
    /// list of symbols and a heap of candidate pairs, stale candidates skipped (llama.cpp's way).
    private func encodeLong(_ word: UnsafeBufferPointer<UInt8>, into out: inout [Int32]) {
        var sym = word.map { byteToken[Int($0)] }
        var prev = Array(-1..<(sym.count - 1)), next = Array(1...sym.count)
        next[sym.count - 1] = -1
        var heap = Heap<BPEPair>()
        func tryAdd(_ l: Int, _ r: Int) {
            guard l >= 0, r >= 0 else { return }
            let m = lookup(sym[l], sym[r])
            if m.id >= 0 { heap.push(BPEPair(rank: m.rank, left: l, right: r, leftID: sym[l], rightID: sym[r], merged: m.id)) }
        }
        for i in 0..<(sym.count - 1) { tryAdd(i, i + 1) }
        while let p = heap.pop() {
            // Stale if either side changed or was absorbed since the pair was queued.
            guard next[p.left] == p.right, sym[p.left] == p.leftID, sym[p.right] == p.rightID else { continue }
            sym[p.left] = p.merged
            sym[p.right] = -2
            next[p.left] = next[p.right]
            if next[p.right] >= 0 { prev[next[p.right]] = p.left }
            next[p.right] = -1
            tryAdd(prev[p.left], p.left)
            tryAdd(p.left, next[p.left])
        }
        var i = 0
        while i >= 0 {
            if sym[i] >= 0 { out.append(sym[i]) }
            i = next[i]
        }
    }
}

/// A candidate merge: lowest rank first, then leftmost.
private struct BPEPair: HeapOrdered {
    let rank: Int32
    let left: Int
    let right: Int
    let leftID: Int32
    let rightID: Int32
    let merged: Int32
    func before(_ o: BPEPair) -> Bool { rank < o.rank || (rank == o.rank && left < o.left) }
}

/// A read-only open-addressing hash table from token pair to merge, several times faster than
/// `Dictionary` (SipHash) on this hot path.
struct PairTable: Sendable {
    private let keys: [UInt64]
    private let values: [UInt64]
    private let shift: UInt64
    private let mask: Int
    private static let empty = UInt64.max

    init(_ dict: [UInt64: UInt64]) {
        var bits: UInt64 = 4
        while (1 << bits) < dict.count * 2 { bits += 1 }
        let size = 1 << Int(bits)
        var k = [UInt64](repeating: PairTable.empty, count: size)
        var v = [UInt64](repeating: 0, count: size)
        shift = 64 - bits
        mask = size - 1
        for (key, value) in dict {
            var i = PairTable.slot(key, shift)
            while k[i] != PairTable.empty { i = (i + 1) & (size - 1) }
            k[i] = key
            v[i] = value
        }
        keys = k
        values = v
    }

    @inline(__always)
    private static func slot(_ key: UInt64, _ shift: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    @inline(__always)
    func value(_ key: UInt64) -> UInt64? {
        var i = PairTable.slot(key, shift)
        while true {
            let k = keys[i]
            if k == key { return values[i] }
            if k == PairTable.empty { return nil }
            i = (i + 1) & mask
        }
    }
}
