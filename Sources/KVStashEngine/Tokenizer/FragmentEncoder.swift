/// Encodes plain-text fragments (no special tokens) for one `encode` call: decodes UTF-8 into code
/// points, pre-tokenizes, and runs BPE on each pre-token through a cache of pre-token -> ids.
struct FragmentEncoder {
    let vocab: Vocabulary
    private var cps: [UInt32] = []
    private var cls: [UInt8] = []
    /// Byte offset of each code point, plus the end offset.
    private var offsets: [Int] = []
    private var ends: [Int] = []
    private var cache: [[UInt8]: [Int32]] = [:]
    /// SentencePiece: the escaped fragment, and the merge buffers.
    private var escaped: [UInt8] = []
    private var spmScratch = SPMScratch()

    init(vocab: Vocabulary) { self.vocab = vocab }

    /// Appends the ids of `bytes[range]` (valid UTF-8) to `out`. `afterSpecial`: the fragment
    /// starts the text or follows a special token (SentencePiece then adds its space prefix).
    mutating func encode(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, afterSpecial: Bool,
                         into out: inout [Int32]) {
        switch vocab.model {
        case let .sentencePiece(spm, addSpacePrefix):
            escaped.removeAll(keepingCapacity: true)
            escaped.reserveCapacity(range.count + 3)
            if addSpacePrefix && afterSpecial { Self.appendSpaceMark(&escaped) }
            for b in bytes[range] {
                if b == 0x20 { Self.appendSpaceMark(&escaped) } else { escaped.append(b) }
            }
            spm.encode(escaped, scratch: &spmScratch, into: &out)
        case let .byteLevel(bpe):
            decodeScalars(bytes, range)
            ends.removeAll(keepingCapacity: true)
            bpe.pre.split(cps, cls, into: &ends)
            var start = 0
            for end in ends {
                let piece = UnsafeBufferPointer(rebasing: bytes[offsets[start]..<offsets[end]])
                encodeWord(piece, bpe, into: &out)
                start = end
            }
        }
    }

    /// `▁` (U+2581), SentencePiece's spelling of a space.
    @inline(__always)
    private static func appendSpaceMark(_ text: inout [UInt8]) {
        text.append(0xE2); text.append(0x96); text.append(0x81)
    }

    private mutating func encodeWord(_ word: UnsafeBufferPointer<UInt8>, _ bpe: ByteLevelBPE, into out: inout [Int32]) {
        if word.count == 1 {
            let id = bpe.merges.byteToken[Int(word[0])]
            if id >= 0 { out.append(id) }
            return
        }
        let key = Array(word)
        if let ids = cache[key] { out.append(contentsOf: ids); return }
        var ids: [Int32] = []
        if bpe.ignoreMerges, let id = bpe.idForBytes[key] {
            ids = [id]
        } else {
            bpe.merges.encode(word, into: &ids)
        }
        if cache.count > 200_000 { cache.removeAll(keepingCapacity: true) }
        cache[key] = ids
        out.append(contentsOf: ids)
    }

    /// Fills `cps`, `cls` and `offsets` from valid UTF-8 `bytes[range]`.
    private mutating func decodeScalars(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) {
        cps.removeAll(keepingCapacity: true)
        cls.removeAll(keepingCapacity: true)
        offsets.removeAll(keepingCapacity: true)
        var i = range.lowerBound
        let hi = range.upperBound
        while i < hi {
            let b0 = UInt32(bytes[i])
            var cp: UInt32
            var n: Int
            if b0 < 0x80 {
                cp = b0; n = 1
            } else if b0 < 0xE0 {
                cp = b0 & 0x1F; n = 2
            } else if b0 < 0xF0 {
                cp = b0 & 0x0F; n = 3
            } else {
                cp = b0 & 0x07; n = 4
            }
            n = min(n, hi - i)
            for k in 1..<max(n, 1) { cp = cp << 6 | (UInt32(bytes[i + k]) & 0x3F) }
            offsets.append(i)
            cps.append(cp)
            cls.append(CharClass.of(cp))
            i += n
        }
        offsets.append(hi)
    }
}
