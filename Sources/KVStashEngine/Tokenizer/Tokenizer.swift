/// Errors raised while building a tokenizer or chat template from GGUF metadata.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case unsupportedModel(String)
    case unsupportedPreTokenizer(String)
    case badVocabulary(String)

    public var description: String {
        switch self {
        case let .unsupportedModel(m):
            return "unsupported tokenizer model '\(m)' (supported: gpt2 byte-level BPE, llama SentencePiece BPE)"
        case let .unsupportedPreTokenizer(p):
            return "unsupported pre-tokenizer '\(p)' (supported: smollm, llama-bpe, qwen2, gpt2 and their aliases)"
        case let .badVocabulary(why): return "bad tokenizer vocabulary: \(why)"
        }
    }
}

/// A tokenizer read from GGUF metadata: byte-level BPE (`tokenizer.ggml.model == "gpt2"`) or
/// SentencePiece BPE (`"llama"`).
///
/// Token ids equal llama.cpp's for the same text: the pre-tokenizer follows `tokenizer.ggml.pre`,
/// special tokens in the text become single tokens, and BOS is added only when
/// `tokenizer.ggml.add_bos_token` (or llama.cpp's default for the model) asks for it.
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
    /// The pre-tokenizer in use (`tokenizer.ggml.pre`, e.g. `"smollm"`; `"spm"` for SentencePiece).
    public var preTokenizer: String { vocab.preName }

    /// The pre-tokens of plain `text` (no special-token matching) in vocabulary spelling
    /// (`" hi"` -> `"Ġhi"`): what BPE runs on, exposed for tests and debugging.
    public func preTokenize(_ text: String) -> [String] {
        guard case let .byteLevel(bpe) = vocab.model else { return [text] }
        var cps: [UInt32] = [], cls: [UInt8] = [], ends: [Int] = []
        var scalars: [Unicode.Scalar] = []
        for s in text.unicodeScalars { scalars.append(s); cps.append(s.value); cls.append(CharClass.of(s.value)) }
        bpe.pre.split(cps, cls, into: &ends)
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
        encode(text, parseSpecial: parseSpecial, plain: [])
    }

    /// Token ids of a rendered chat: the template's markers are special tokens, while
    /// special-token text inside a message's content is tokenized as plain text. A chat
    /// without such text gets the same ids as `encode(chat.text)`.
    public func encode(_ chat: RenderedChat) -> [Int] {
        encode(chat.text, parseSpecial: true, plain: chat.contentRanges)
    }

    private func encode(_ text: String, parseSpecial: Bool, plain: [Range<Int>]) -> [Int] {
        var text = text
        var out: [Int32] = []
        if vocab.addBOS, let bos = vocab.bos { out.append(Int32(bos)) }
        text.withUTF8 { bytes in
            var enc = FragmentEncoder(vocab: vocab)
            out.reserveCapacity(bytes.count / 3)
            if vocab.specials.isEmpty {
                enc.encode(bytes, 0..<bytes.count, afterSpecial: true, into: &out)
                return
            }
            var afterSpecial = true
            for seg in vocab.specials.partition(bytes, parseSpecial: parseSpecial, plain: plain) {
                switch seg {
                case let .special(id): out.append(id)
                case let .text(r): enc.encode(bytes, r, afterSpecial: afterSpecial, into: &out)
                }
                if case .special = seg { afterSpecial = true } else { afterSpecial = false }
            }
        }
        return out.map(Int.init)
    }

    /// The text of `ids`. Special tokens are rendered as their text; invalid UTF-8 (a character
    /// cut between tokens) becomes U+FFFD. Ids out of range are skipped. For SentencePiece models
    /// that add a space prefix, the first token's leading space is dropped (as llama.cpp does).
    public func decode(_ ids: [Int]) -> String {
        var bytes: [UInt8] = []
        for id in ids where vocab.bytes.indices.contains(id) { bytes.append(contentsOf: vocab.bytes[id]) }
        if case let .sentencePiece(_, addSpacePrefix) = vocab.model, addSpacePrefix,
           let first = ids.first, vocab.bytes.indices.contains(first), vocab.bytes[first].first == 0x20 {
            bytes.removeFirst()
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
