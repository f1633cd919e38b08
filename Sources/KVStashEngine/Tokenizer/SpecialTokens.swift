/// Finds special-token text (`<|im_start|>`, …) inside a prompt so it becomes one token.
///
/// Candidates are the vocabulary's CONTROL, USER_DEFINED and UNKNOWN tokens. USER_DEFINED tokens are
/// always matched; CONTROL and UNKNOWN only when `parseSpecial` is set (llama.cpp's `parse_special`). Matching is
/// left to right, longest token first at each position (Hugging Face's added-token matching; the
/// same as llama.cpp's longest-first partition unless two special tokens overlap in the text).
struct SpecialTokens: Sendable {
    struct Entry: Sendable {
        let bytes: [UInt8]
        let id: Int32
        let control: Bool
    }

    /// A piece of the input: plain text bytes to run through BPE, or one special token.
    enum Segment: Equatable {
        case text(Range<Int>)
        case special(Int32)
    }

    /// Candidates by first byte, longest first.
    private let byFirstByte: [[Entry]]
    /// Whether there is any special token to look for.
    let isEmpty: Bool

    init(tokens: [String], types: [Int]) {
        var map: [UInt8: [Entry]] = [:]
        for (i, t) in tokens.enumerated() where !t.isEmpty {
            let type = i < types.count ? types[i] : TokenType.normal
            guard type == TokenType.control || type == TokenType.userDefined || type == TokenType.unknown else { continue }
            let bytes = Array(t.utf8)
            map[bytes[0], default: []].append(Entry(bytes: bytes, id: Int32(i), control: type != TokenType.userDefined))
        }
        byFirstByte = (0..<256).map { b in (map[UInt8(b)] ?? []).sorted { $0.bytes.count > $1.bytes.count } }
        isEmpty = map.isEmpty
    }

    /// Splits `bytes` into text and special-token segments. Control tokens are matched only
    /// with `parseSpecial`, and never where they would overlap one of the `plain` ranges
    /// (sorted byte ranges that must stay text, such as chat message contents).
    func partition(_ bytes: UnsafeBufferPointer<UInt8>, parseSpecial: Bool, plain: [Range<Int>] = []) -> [Segment] {
        var out: [Segment] = []
        var textStart = 0, i = 0
        var nextPlain = 0
        let n = bytes.count
        while i < n {
            while nextPlain < plain.count, plain[nextPlain].upperBound <= i { nextPlain += 1 }
            let cands = byFirstByte[Int(bytes[i])]
            guard !cands.isEmpty, let hit = cands.first(where: { e in
                      (!e.control || parseSpecial && !(nextPlain < plain.count
                          && plain[nextPlain].overlaps(i..<(i + e.bytes.count))))
                          && e.bytes.count <= n - i
                          && e.bytes.withUnsafeBufferPointer { eb in
                              (0..<eb.count).allSatisfy { bytes[i + $0] == eb[$0] }
                          }
                  })
            else { i += 1; continue }
            if textStart < i { out.append(.text(textStart..<i)) }
            out.append(.special(hit.id))
            i += hit.bytes.count
            textStart = i
        }
        if textStart < n { out.append(.text(textStart..<n)) }
        return out
    }
}

/// GGUF `tokenizer.ggml.token_type` values.
enum TokenType {
    static let normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
}
