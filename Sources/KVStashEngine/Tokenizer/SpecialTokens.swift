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

    /// Candidates of two bytes or more by their first two bytes (`first << 8 | second`), and
    /// one-byte candidates by their byte; each list longest first, as one list per first byte
    /// sorted by length would order them. A position is tried only against the candidates that
    /// share its first two bytes (Gemma 3 has 6,321 starting with `<` and 30 with a space);
    /// 65,536 lists, 512 KB of array references, nearly all empty.
    private let byFirstTwo: [[Entry]]
    private let oneByte: [[Entry]]
    /// Whether any candidate starts with the byte.
    private let starts: [Bool]
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
        var two = [[Entry]](repeating: [], count: 1 << 16), one = [[Entry]](repeating: [], count: 256)
        for (first, entries) in map {
            for e in entries.sorted(by: { $0.bytes.count > $1.bytes.count }) {
                if e.bytes.count == 1 { one[Int(first)].append(e) } else { two[Int(first) << 8 | Int(e.bytes[1])].append(e) }
            }
        }
        byFirstTwo = two
        oneByte = one
        starts = (0..<256).map { map[UInt8($0)] != nil }
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
            guard starts[Int(bytes[i])] else { i += 1; continue }
            while nextPlain < plain.count, plain[nextPlain].upperBound <= i { nextPlain += 1 }
            let accept = { (e: Entry) in
                (!e.control || parseSpecial && !(nextPlain < plain.count
                    && plain[nextPlain].overlaps(i..<(i + e.bytes.count))))
                    && e.bytes.count <= n - i
                    && e.bytes.withUnsafeBufferPointer { eb in (0..<eb.count).allSatisfy { bytes[i + $0] == eb[$0] } }
            }
            let first = Int(bytes[i])
            guard let hit = (i + 1 < n ? byFirstTwo[first << 8 | Int(bytes[i + 1])].first(where: accept) : nil)
                    ?? oneByte[first].first(where: accept)
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
