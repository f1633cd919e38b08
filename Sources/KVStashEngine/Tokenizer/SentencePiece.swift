import Foundation
import KVStashCore

/// SentencePiece-style BPE (`tokenizer.ggml.model == "llama"`: Llama 2, Mistral, TinyLlama,
/// Gemma 3), with the ids of llama.cpp's SPM tokenizer.
///
/// The text (spaces already escaped to `▁`) starts as one symbol per UTF-8 character; the adjacent
/// pair whose concatenation is a vocabulary piece with the highest score (leftmost on ties) is
/// merged until none is left. A final symbol that is not a piece becomes byte tokens `<0xXX>`.
///
/// `encode` first cuts the text into segments between every two adjacent characters that sit side
/// by side in no piece: no merge can span such a cut (the merged symbol would be a piece holding
/// the pair), and merges in different segments do not interact, each segment keeping its own
/// highest-score / leftmost order, so merging the segments one by one gives the ids of merging the
/// whole text (docs/decisions/094-sentencepiece-segments.md). Segments are short (a word and its
/// `▁`) and repeat, so their ids are remembered across calls.
struct SentencePieceModel: Sendable {
    private let pieces: PieceTable
    private let scores: [Float]
    /// Token of each byte (`<0xXX>`, else the one-character piece), or -1 (the byte is dropped).
    let byteToken: [Int32]
    /// The pairs of adjacent characters inside any piece (as `forEachPair` packs them).
    private let innerPairs: CharPairSet

    /// `KVSTASH_SPM_ENCODE=whole` merges each text fragment at once, as before the cuts (for
    /// measurements on one build: bench/spm_segments_bench.py).
    static let mergeWholeText = ProcessInfo.processInfo.environment["KVSTASH_SPM_ENCODE"] == "whole"
    /// Ids of the segments merged so far, shared by every copy of the model (bounded).
    private let segments = SegmentTable()

    init(tokens: [String], scores: [Float]) {
        let table = PieceTable(tokens)
        pieces = table
        self.scores = scores.count == tokens.count ? scores : [Float](repeating: 0, count: tokens.count)
        byteToken = (0..<256).map { b in
            let hex = Array(("<0x" + (b < 16 ? "0" : "") + String(b, radix: 16, uppercase: true) + ">").utf8)
            return table.id(hex, hex.indices) ?? (b < 0x80 ? table.id([UInt8(b)], 0..<1) : nil) ?? -1
        }
        innerPairs = Self.innerPairs(of: tokens)
    }

    /// The pairs of adjacent characters inside `pieces`.
    static func innerPairs(of pieces: [String]) -> CharPairSet {
        var pairs = CharPairSet()
        for var piece in pieces {
            piece.withUTF8 { bytes in
                forEachPair(bytes, bytes.indices) { pair, _ in pairs.insert(pair) }
            }
        }
        return pairs
    }

    /// The raw bytes of a `<0xXX>` byte piece, if `text` is one.
    static func byteValue(_ text: String) -> UInt8? {
        guard text.count == 6, text.hasPrefix("<0x"), text.hasSuffix(">") else { return nil }
        return UInt8(text.dropFirst(3).prefix(2), radix: 16)
    }

    /// Appends the ids of escaped text `text` to `out`, merging each segment on its own; a segment
    /// merged before (by any copy of the model) is looked up instead. `scratch` holds the merge
    /// buffers.
    func encode(_ text: [UInt8], scratch: inout SPMScratch, into out: inout [Int32]) {
        if Self.mergeWholeText { return encodeWhole(text, into: &out) }
        encode(text, table: segments, scratch: &scratch, into: &out)
    }

    /// `encode` remembering segments in `table` (tests give a fresh one).
    func encode(_ text: [UInt8], table: SegmentTable, scratch: inout SPMScratch, into out: inout [Int32]) {
        forEachSegment(text) { range in
            guard let key = SegmentKey(text, range) else { return merge(text, range, &scratch, into: &out) }
            if table.append(key, into: &out) { return }
            let mark = out.count
            merge(text, range, &scratch, into: &out)
            table.insert(key, ids: out[mark...])
        }
    }

    /// Appends the ids of escaped text `text` to `out`, merging the whole text at once (the
    /// algorithm before the cuts; `encode` must equal it, which the tests check).
    func encodeWhole(_ text: [UInt8], into out: inout [Int32]) {
        var scratch = SPMScratch()
        merge(text, 0..<text.count, &scratch, into: &out)
    }

    /// Calls `body` with the segments of `text` (between the cuts), in order; together they cover it.
    func forEachSegment(_ text: [UInt8], _ body: (Range<Int>) -> Void) {
        guard !text.isEmpty else { return }
        var start = 0
        Self.forEachPair(text, 0..<text.count) { pair, cut in
            if !innerPairs.contains(pair) {
                body(start..<cut)
                start = cut
            }
        }
        body(start..<text.count)
    }

    /// Calls `body` with each pair of adjacent characters of `bytes[range]` and the offset between
    /// them. Characters are split as `merge` splits them (the length the lead byte gives, cut at
    /// the end of `range`); a pair is packed as `packedChar(first) << 32 | packedChar(second)`.
    @inline(__always)
    static func forEachPair<Bytes: RandomAccessCollection<UInt8>>(_ bytes: Bytes, _ range: Range<Int>,
                                                                   _ body: (UInt64, Int) -> Void) where Bytes.Index == Int {
        guard !range.isEmpty else { return }
        var n = min(charLength(bytes[range.lowerBound]), range.count)
        var prev = packedChar(bytes, range.lowerBound, n)
        var i = range.lowerBound + n
        while i < range.upperBound {
            n = min(charLength(bytes[i]), range.upperBound - i)
            let c = packedChar(bytes, i, n)
            body(prev << 32 | c, i)
            prev = c
            i += n
        }
    }

    @inline(__always)
    static func charLength(_ b: UInt8) -> Int { b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1 }

    /// The 1-4 bytes of a character, big-endian in a `UInt64` (a pair is `first << 32 | second`).
    @inline(__always)
    static func packedChar<Bytes: RandomAccessCollection<UInt8>>(_ bytes: Bytes, _ at: Int, _ n: Int) -> UInt64
        where Bytes.Index == Int {
        var c = UInt64(bytes[at])
        for k in 1..<max(n, 1) { c = c << 8 | UInt64(bytes[at + k]) }
        return c
    }

    /// The merges of `text[range]` (llama.cpp's `llm_tokenizer_spm`): a linked list of symbols, a
    /// heap of adjacent pairs that are pieces, stale pairs skipped. Appends the final symbols' ids.
    private func merge(_ text: [UInt8], _ range: Range<Int>, _ w: inout SPMScratch, into out: inout [Int32]) {
        guard !range.isEmpty else { return }
        w.reset()
        var i = range.lowerBound
        while i < range.upperBound {
            let n = min(Self.charLength(text[i]), range.upperBound - i)
            w.start.append(i); w.len.append(n); w.prev.append(w.start.count - 2); w.next.append(w.start.count)
            w.id.append(-1)
            i += n
        }
        w.next[w.next.count - 1] = -1
        for s in 1..<w.start.count { push(text, s - 1, s, &w) }
        while let top = w.heap.pop() {
            let l = top.left, r = top.right
            guard w.len[l] > 0, w.len[r] > 0, w.len[l] + w.len[r] == top.size else { continue }
            w.len[l] += w.len[r]
            w.len[r] = 0
            w.id[l] = top.id
            w.next[l] = w.next[r]
            if w.next[r] >= 0 { w.prev[w.next[r]] = l }
            push(text, w.prev[l], l, &w)
            push(text, l, w.next[l], &w)
        }
        var s = 0
        while s >= 0 {
            let piece = w.start[s]..<w.start[s] + w.len[s]
            if w.id[s] >= 0 {
                out.append(w.id[s])
            } else if let id = pieces.id(text, piece) {
                out.append(id)
            } else {
                for b in text[piece] where byteToken[Int(b)] >= 0 { out.append(byteToken[Int(b)]) }
            }
            s = w.next[s]
        }
    }

    /// Queues symbols `l` and `r` if together they are a piece.
    @inline(__always)
    private func push(_ text: [UInt8], _ l: Int, _ r: Int, _ w: inout SPMScratch) {
        guard l >= 0, r >= 0 else { return }
        let size = w.len[l] + w.len[r]
        guard let id = pieces.id(text, w.start[l]..<w.start[l] + size) else { return }
        w.heap.push(SPMBigram(score: scores[Int(id)], id: id, left: l, right: r, size: size))
    }
}

/// The symbol list and heap of `SentencePieceModel.merge`, kept between segments for their capacity.
struct SPMScratch {
    var start: [Int] = [], len: [Int] = [], prev: [Int] = [], next: [Int] = []
    /// The piece id of a merged symbol, -1 for a character not merged yet.
    var id: [Int32] = []
    var heap = Heap<SPMBigram>()

    mutating func reset() {
        start.removeAll(keepingCapacity: true)
        len.removeAll(keepingCapacity: true)
        prev.removeAll(keepingCapacity: true)
        next.removeAll(keepingCapacity: true)
        id.removeAll(keepingCapacity: true)
    }
}

/// A candidate SentencePiece merge: highest score first, then leftmost.
struct SPMBigram: HeapOrdered {
    let score: Float
    let id: Int32
    let left: Int
    let right: Int
    let size: Int
    func before(_ o: SPMBigram) -> Bool { score > o.score || (score == o.score && left < o.left) }
}
