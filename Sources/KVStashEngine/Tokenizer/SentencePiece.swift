import KVStashCore

/// SentencePiece-style BPE (`tokenizer.ggml.model == "llama"`: Llama 2, Mistral, TinyLlama), run
/// the way llama.cpp's SPM tokenizer runs it.
///
/// The text (spaces already escaped to `▁`) starts as one symbol per UTF-8 character; the adjacent
/// pair whose concatenation is a vocabulary piece with the highest score (leftmost on ties) is
/// merged until none is left. A final symbol that is not a piece becomes byte tokens `<0xXX>`.
struct SentencePieceModel: Sendable {
    /// Keyed by slices, so a candidate piece is looked up as a slice of the text, not copied.
    private let idForPiece: [ArraySlice<UInt8>: Int32]
    private let scores: [Float]
    /// Token of each byte (`<0xXX>`, else the one-character piece), or -1 (the byte is dropped).
    let byteToken: [Int32]

    init(tokens: [String], scores: [Float]) {
        var map: [ArraySlice<UInt8>: Int32] = [:]
        map.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() where map[ArraySlice(t.utf8)] == nil { map[ArraySlice(t.utf8)] = Int32(i) }
        idForPiece = map
        self.scores = scores.count == tokens.count ? scores : [Float](repeating: 0, count: tokens.count)
        byteToken = (0..<256).map { b in
            let hex = "<0x" + (b < 16 ? "0" : "") + String(b, radix: 16, uppercase: true) + ">"
            return map[ArraySlice(hex.utf8)] ?? (b < 0x80 ? map[[UInt8(b)]] : nil) ?? -1
        }
    }

    /// The raw bytes of a `<0xXX>` byte piece, if `text` is one.
    static func byteValue(_ text: String) -> UInt8? {
        guard text.count == 6, text.hasPrefix("<0x"), text.hasSuffix(">") else { return nil }
        return UInt8(text.dropFirst(3).prefix(2), radix: 16)
    }

    /// Appends the ids of escaped text `text` to `out`.
    func encode(_ text: [UInt8], into out: inout [Int32]) {
        guard !text.isEmpty else { return }
        var start: [Int] = [], len: [Int] = [], prev: [Int] = [], next: [Int] = []
        var i = 0
        while i < text.count {
            let b = text[i]
            let n = min(b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1, text.count - i)
            start.append(i); len.append(n); prev.append(start.count - 2); next.append(start.count)
            i += n
        }
        next[next.count - 1] = -1
        var heap = Heap<SPMBigram>()
        func tryAdd(_ l: Int, _ r: Int) {
            guard l >= 0, r >= 0 else { return }
            let size = len[l] + len[r]
            guard let id = idForPiece[text[start[l]..<start[l] + size]] else { return }
            heap.push(SPMBigram(score: scores[Int(id)], left: l, right: r, size: size))
        }
        for s in 1..<start.count { tryAdd(s - 1, s) }
        while let top = heap.pop() {
            let l = top.left, r = top.right
            guard len[l] > 0, len[r] > 0, len[l] + len[r] == top.size else { continue }
            len[l] += len[r]
            len[r] = 0
            next[l] = next[r]
            if next[r] >= 0 { prev[next[r]] = l }
            tryAdd(prev[l], l)
            tryAdd(l, next[l])
        }
        var s = 0
        while s >= 0 {
            let piece = text[start[s]..<start[s] + len[s]]
            if let id = idForPiece[piece] {
                out.append(id)
            } else {
                for b in piece where byteToken[Int(b)] >= 0 { out.append(byteToken[Int(b)]) }
            }
            s = next[s]
        }
    }
}

/// A candidate SentencePiece merge: highest score first, then leftmost.
private struct SPMBigram: HeapOrdered {
    let score: Float
    let left: Int
    let right: Int
    let size: Int
    func before(_ o: SPMBigram) -> Bool { score > o.score || (score == o.score && left < o.left) }
}
