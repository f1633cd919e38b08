/// Turns a stream of token ids into text without ever emitting half a UTF-8 character.
///
/// A byte-level token can end in the middle of a multi-byte character (emoji are often split
/// over two or three tokens); those trailing bytes are held back until the character completes.
public struct StreamDecoder: Sendable {
    private let tokenizer: Tokenizer
    private var pending: [UInt8] = []

    public init(tokenizer: Tokenizer) { self.tokenizer = tokenizer }

    /// Adds one token; returns the text that is now complete (possibly empty).
    public mutating func push(_ id: Int) -> String {
        pending.append(contentsOf: tokenizer.tokenBytes(id))
        let cut = completePrefixLength(pending)
        guard cut > 0 else { return "" }
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Returns whatever is still held back (an incomplete character becomes U+FFFD) and resets.
    public mutating func flush() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of the longest prefix of `b` that does not end inside an incomplete UTF-8 sequence.
    private func completePrefixLength(_ b: [UInt8]) -> Int {
        let n = b.count
        // Look back over at most 3 continuation bytes for the lead byte of the last sequence.
        var i = n - 1
        while i >= 0, i >= n - 4, b[i] & 0xC0 == 0x80 { i -= 1 }
        guard i >= 0, i >= n - 4 else { return n }  // only continuation bytes: invalid, emit as is
        let lead = b[i]
        let need = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
        return n - i < need ? i : n
    }
}
