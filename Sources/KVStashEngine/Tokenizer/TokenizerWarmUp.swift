extension Tokenizer {
    /// Encodes the vocabulary's first `words` word-initial pieces (those spelled with a
    /// leading space), one after the other, so that a server's first request finds the
    /// merge caches (SentencePiece's segment table, byte-level BPE's pre-token cache) holding
    /// the most frequent words: both kinds of vocabulary list their pieces roughly by
    /// frequency. Changes no result of `encode`, only how soon the first ones come.
    public func warmUp(words: Int = 8192) {
        var text: [UInt8] = []
        var taken = 0
        for id in 0..<vocabSize where taken < words && !isSpecial(id) {
            let bytes = tokenBytes(id)
            guard bytes.count > 1, bytes.first == 0x20 else { continue }
            text += bytes
            taken += 1
        }
        _ = encode(String(decoding: text, as: UTF8.self), parseSpecial: false)
    }
}
