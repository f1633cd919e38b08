/// Errors raised while building a tokenizer or chat template from GGUF metadata.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case unsupportedModel(String)
    case unsupportedPreTokenizer(String)
    case badVocabulary(String)

    public var description: String {
        switch self {
        case let .unsupportedModel(m):
            return "unsupported tokenizer model '\(m)' (supported: gpt2 byte-level BPE)"
        case let .unsupportedPreTokenizer(p):
            return "unsupported pre-tokenizer '\(p)' (supported: smollm, llama-bpe, qwen2, gpt2 and their aliases)"
        case let .badVocabulary(why): return "bad tokenizer vocabulary: \(why)"
        }
    }
}

/// A byte-level BPE tokenizer (`tokenizer.ggml.model == "gpt2"`) read from GGUF metadata.
///
/// Token ids equal llama.cpp's for the same text: the pre-tokenizer follows `tokenizer.ggml.pre`,
/// special tokens in the text become single tokens, and BOS is added only when
/// `tokenizer.ggml.add_bos_token` (or the pre-tokenizer's llama.cpp default) asks for it.
public struct Tokenizer: Sendable {
    let vocab: Vocabulary

    /// Reads the vocabulary, merges and special tokens of `gguf`.
    public init(gguf: GGUFFile) throws {
        try self.init(gguf: gguf, preTokenizer: nil)
    }

    /// Reads `gguf` but treats `tokenizer.ggml.pre` as `preTokenizer` (e.g. `"qwen2"`), for tests
    /// of the other pre-tokenizers on a real vocabulary.
    public init(gguf: GGUFFile, preTokenizer: String?) throws {
        vocab = try Vocabulary(gguf: gguf, preName: preTokenizer)
    }

    /// Number of tokens in the vocabulary.
    public var vocabSize: Int { vocab.tokens.count }
    /// The BOS id that `encode` prepends; nil when the model asks for no automatic BOS.
    public var bosToken: Int? { vocab.addBOS ? vocab.bos : nil }
    /// The BOS id the GGUF declares, whether or not it is added automatically.
    public var declaredBOSToken: Int? { vocab.bos }
    /// The end-of-sequence id.
    public var eosToken: Int { vocab.eos }
    /// The pre-tokenizer in use (`tokenizer.ggml.pre`, e.g. `"smollm"`).
    public var preTokenizer: String { vocab.preName }

    /// The pre-tokens of plain `text` (no special-token matching) in vocabulary spelling
    /// (`" hi"` -> `"Ġhi"`): what BPE runs on, exposed for tests and debugging.
    public func preTokenize(_ text: String) -> [String] {
        var cps: [UInt32] = [], cls: [UInt8] = [], ends: [Int] = []
        var scalars: [Unicode.Scalar] = []
        for s in text.unicodeScalars { scalars.append(s); cps.append(s.value); cls.append(CharClass.of(s.value)) }
        vocab.pre.split(cps, cls, into: &ends)
        var start = 0
        return ends.map { end in
            defer { start = end }
            return ByteLevel.encode(String(String.UnicodeScalarView(scalars[start..<end])).utf8)
        }
    }

    /// Whether generation should stop at `id`: EOS, EOT/EOM, and end-of-turn tokens such as
    /// `<|im_end|>`, `<|eot_id|>`, `<|endoftext|>` (llama.cpp's end-of-generation set).
    public func isEndOfGeneration(_ id: Int) -> Bool { vocab.endOfGeneration.contains(id) }

    /// The vocabulary entry of `id` as stored in the GGUF (byte-level spelling, e.g. `"Ġthe"`);
    /// empty for an id out of range.
    public func tokenText(_ id: Int) -> String {
        vocab.tokens.indices.contains(id) ? vocab.tokens[id] : ""
    }

    /// The raw bytes `id` stands for in text (special tokens: their own text); empty if out of range.
    public func tokenBytes(_ id: Int) -> [UInt8] {
        vocab.bytes.indices.contains(id) ? vocab.bytes[id] : []
    }

    /// Whether `id` is a special (CONTROL or USER_DEFINED) token.
    public func isSpecial(_ id: Int) -> Bool {
        vocab.types.indices.contains(id)
            && (vocab.types[id] == TokenType.control || vocab.types[id] == TokenType.userDefined)
    }

    /// Token ids of `text`. With `parseSpecial`, special-token text such as `<|im_start|>` becomes
    /// that single token (what llama.cpp does for chat prompts); without it, only USER_DEFINED
    /// tokens are matched and CONTROL token text is tokenized as plain text.
    public func encode(_ text: String, parseSpecial: Bool = true) -> [Int] {
        var text = text
        var out: [Int32] = []
        if vocab.addBOS, let bos = vocab.bos { out.append(Int32(bos)) }
        text.withUTF8 { bytes in
            var enc = FragmentEncoder(vocab: vocab)
            out.reserveCapacity(bytes.count / 3)
            if vocab.specials.isEmpty {
                enc.encode(bytes, 0..<bytes.count, into: &out)
                return
            }
            for seg in vocab.specials.partition(bytes, parseSpecial: parseSpecial) {
                switch seg {
                case let .special(id): out.append(id)
                case let .text(r): enc.encode(bytes, r, into: &out)
                }
            }
        }
        return out.map(Int.init)
    }

    /// The text of `ids`. Special tokens are rendered as their text; invalid UTF-8 (a character
    /// cut between tokens) becomes U+FFFD. Ids out of range are skipped.
    public func decode(_ ids: [Int]) -> String {
        var bytes: [UInt8] = []
        for id in ids where vocab.bytes.indices.contains(id) { bytes.append(contentsOf: vocab.bytes[id]) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// The immutable tables behind a `Tokenizer`, shared by all its copies.
final class Vocabulary: Sendable {
    let tokens: [String]
    let types: [Int]
    /// Raw bytes of every token.
    let bytes: [[UInt8]]
    /// Normal tokens by raw bytes (for `ignoreMerges`).
    let idForBytes: [[UInt8]: Int32]
    let merges: BPEMerges
    let specials: SpecialTokens
    let pre: PreTokenizerKind
    let preName: String
    /// llama3-style: a pre-token that is itself in the vocabulary is one token, merges or not.
    let ignoreMerges: Bool
    let bos: Int?
    let eos: Int
    let addBOS: Bool
    let endOfGeneration: Set<Int>

    init(gguf: GGUFFile, preName override: String?) throws {
        let model = try gguf.string("tokenizer.ggml.model")
        guard model == "gpt2" else { throw TokenizerError.unsupportedModel(model) }
        let preName = override ?? gguf["tokenizer.ggml.pre"]?.string ?? "default"
        guard let kind = PreTokenizerKind(ggufName: preName) else {
            throw TokenizerError.unsupportedPreTokenizer(preName)
        }
        pre = kind
        self.preName = preName
        guard let toks = gguf["tokenizer.ggml.tokens"]?.array?.compactMap(\.string), !toks.isEmpty else {
            throw GGUFError.missingKey("tokenizer.ggml.tokens")
        }
        tokens = toks
        let rawTypes = gguf["tokenizer.ggml.token_type"]?.array?.compactMap(\.int) ?? []
        types = rawTypes.count == toks.count ? rawTypes : [Int](repeating: TokenType.normal, count: toks.count)
        let mergeList = gguf["tokenizer.ggml.merges"]?.array?.compactMap(\.string) ?? []

        var textToID: [String: Int] = [:]
        textToID.reserveCapacity(toks.count)
        var byBytes: [[UInt8]: Int32] = [:]
        var raw: [[UInt8]] = []
        raw.reserveCapacity(toks.count)
        for (i, t) in toks.enumerated() {
            if textToID[t] == nil { textToID[t] = i }
            let special = types[i] == TokenType.control || types[i] == TokenType.userDefined
            let b = special ? Array(t.utf8) : ByteLevel.decode(t)
            raw.append(b)
            if !special && byBytes[b] == nil { byBytes[b] = Int32(i) }
        }
        bytes = raw
        idForBytes = byBytes
        merges = try BPEMerges(merges: mergeList, vocab: textToID)
        specials = SpecialTokens(tokens: toks, types: types)
        ignoreMerges = preName == "llama-bpe" || preName == "llama3" || preName == "tekken"
        bos = gguf["tokenizer.ggml.bos_token_id"]?.int
        guard let eosID = gguf["tokenizer.ggml.eos_token_id"]?.int ?? textToID["<|endoftext|>"] else {
            throw GGUFError.missingKey("tokenizer.ggml.eos_token_id")
        }
        eos = eosID
        addBOS = (gguf["tokenizer.ggml.add_bos_token"]?.bool ?? ignoreMerges) && bos != nil
        endOfGeneration = Vocabulary.endOfGenerationSet(gguf: gguf, eos: eos, textToID: textToID, types: types)
    }

    /// llama.cpp's end-of-generation ids: eos, eot, eom, and known end-of-turn token texts.
    private static func endOfGenerationSet(gguf: GGUFFile, eos: Int, textToID: [String: Int], types: [Int]) -> Set<Int> {
        var set: Set<Int> = [eos]
        for key in ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
            if let id = gguf[key]?.int { set.insert(id) }
        }
        let names = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
                     "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>"]
        for name in names {
            if let id = textToID[name], types[id] == TokenType.control || types[id] == TokenType.userDefined {
                set.insert(id)
            }
        }
        return set
    }
}
