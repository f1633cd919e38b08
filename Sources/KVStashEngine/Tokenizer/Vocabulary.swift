/// The segmentation model behind a `Tokenizer`.
enum TokenizerModel: Sendable {
    /// `gpt2`: pre-tokenizer + byte-level BPE merges.
    case byteLevel(ByteLevelBPE)
    /// `llama`: SentencePiece BPE over the whole escaped text.
    case sentencePiece(SentencePieceModel, addSpacePrefix: Bool)
}

/// Byte-level BPE settings.
struct ByteLevelBPE: Sendable {
    let merges: BPEMerges
    let pre: PreTokenizerKind
    /// llama3-style: a pre-token that is itself in the vocabulary is one token, merges or not.
    let ignoreMerges: Bool
    /// Normal tokens by raw bytes (for `ignoreMerges`).
    let idForBytes: [[UInt8]: Int32]
}

/// The immutable tables behind a `Tokenizer`, shared by all its copies.
final class Vocabulary: Sendable {
    let tokens: [String]
    let types: [Int]
    /// Raw bytes of every token as it appears in text.
    let bytes: [[UInt8]]
    let model: TokenizerModel
    let specials: SpecialTokens
    let preName: String
    let bos: Int?
    let eos: Int
    let addBOS: Bool
    let endOfGeneration: Set<Int>

    init(gguf: GGUFFile, preName override: String?) throws {
        let kind = try gguf.string("tokenizer.ggml.model")
        guard kind == "gpt2" || kind == "llama" else { throw TokenizerError.unsupportedModel(kind) }
        guard let toks = gguf["tokenizer.ggml.tokens"]?.array?.compactMap(\.string), !toks.isEmpty else {
            throw GGUFError.missingKey("tokenizer.ggml.tokens")
        }
        tokens = toks
        let rawTypes = gguf["tokenizer.ggml.token_type"]?.array?.compactMap(\.int) ?? []
        let typeList = rawTypes.count == toks.count ? rawTypes : [Int](repeating: TokenType.normal, count: toks.count)
        types = typeList
        // Byte-level BPE looks every merge's pieces up by text; SentencePiece only the names of
        // the end tokens, all of which start with `<` or `_` (hashing all 262,144 pieces of
        // Gemma 3 to find them took a fifth of the tokenizer's load).
        let textToID = Vocabulary.firstIDs(toks, kind == "gpt2" ? { _ in true } : { t in
            t.utf8.first == UInt8(ascii: "<") || t.utf8.first == UInt8(ascii: "_")
        })
        let defaultAddBOS: Bool
        if kind == "gpt2" {
            preName = override ?? gguf["tokenizer.ggml.pre"]?.string ?? "default"
            let bpe = try Vocabulary.byteLevel(gguf: gguf, tokens: toks, types: typeList, textToID: textToID,
                                               pre: override ?? gguf["tokenizer.ggml.pre"]?.string ?? "default")
            model = .byteLevel(bpe)
            bytes = toks.indices.map { i in
                Vocabulary.isSpecialType(typeList[i]) ? Array(toks[i].utf8) : ByteLevel.decode(toks[i])
            }
            defaultAddBOS = bpe.ignoreMerges
        } else {
            preName = "spm"
            let scores = gguf["tokenizer.ggml.scores"]?.array?.compactMap(\.double).map(Float.init) ?? []
            model = .sentencePiece(SentencePieceModel(tokens: toks, scores: scores),
                                   addSpacePrefix: gguf["tokenizer.ggml.add_space_prefix"]?.bool ?? true)
            bytes = toks.indices.map { i in Vocabulary.spmBytes(toks[i], type: typeList[i]) }
            defaultAddBOS = true
        }
        specials = SpecialTokens(tokens: toks, types: typeList)
        // An id a tokenizer would emit or stop at must name a token of the vocabulary.
        for key in ["bos", "eos", "eot", "eom"].map({ "tokenizer.ggml.\($0)_token_id" }) {
            if let id = gguf[key]?.int, !toks.indices.contains(id) {
                throw TokenizerError.badVocabulary("\(key) \(id) is outside the vocabulary of \(toks.count) tokens")
            }
        }
        bos = gguf["tokenizer.ggml.bos_token_id"]?.int
        guard let eosID = gguf["tokenizer.ggml.eos_token_id"]?.int ?? textToID["<|endoftext|>"] else {
            throw GGUFError.missingKey("tokenizer.ggml.eos_token_id")
        }
        eos = eosID
        addBOS = (gguf["tokenizer.ggml.add_bos_token"]?.bool ?? defaultAddBOS) && bos != nil
        endOfGeneration = Vocabulary.endOfGenerationSet(gguf: gguf, eos: eosID, textToID: textToID, types: typeList)
    }

    /// The first id of every token text that `include` accepts.
    private static func firstIDs(_ tokens: [String], _ include: (String) -> Bool) -> [String: Int] {
        var ids: [String: Int] = [:]
        for (i, t) in tokens.enumerated() where include(t) {
            if ids[t] == nil { ids[t] = i }
        }
        return ids
    }

    static func isSpecialType(_ t: Int) -> Bool { t == TokenType.control || t == TokenType.userDefined }

    private static func byteLevel(gguf: GGUFFile, tokens: [String], types: [Int], textToID: [String: Int],
                                  pre: String) throws -> ByteLevelBPE {
        guard let kind = PreTokenizerKind(ggufName: pre) else { throw TokenizerError.unsupportedPreTokenizer(pre) }
        let mergeList = gguf["tokenizer.ggml.merges"]?.array?.compactMap(\.string) ?? []
        var byBytes: [[UInt8]: Int32] = [:]
        for (i, t) in tokens.enumerated() where !isSpecialType(types[i]) {
            let b = ByteLevel.decode(t)
            if byBytes[b] == nil { byBytes[b] = Int32(i) }
        }
        return ByteLevelBPE(merges: try BPEMerges(merges: mergeList, vocab: textToID), pre: kind,
                            ignoreMerges: pre == "llama-bpe" || pre == "llama3", idForBytes: byBytes)
    }

    /// Text bytes of a SentencePiece token: `▁` is a space, `<0xXX>` is that byte.
    private static func spmBytes(_ text: String, type: Int) -> [UInt8] {
        if type == TokenType.byte, let b = SentencePieceModel.byteValue(text) { return [b] }
        if type == TokenType.control || type == TokenType.unknown { return Array(text.utf8) }
        return spaces(for: text)
    }

    /// The UTF-8 of `text` with every `▁` (U+2581, bytes E2 96 81) as a space, byte by byte
    /// (Foundation's string replacement took half a second over Gemma 3's 262,144 pieces).
    static func spaces(for text: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        var pending = 0  // bytes of E2 96 seen so far
        for b in text.utf8 {
            switch (pending, b) {
            case (0, 0xE2), (1, 0x96):
                pending += 1
            case (2, 0x81):
                out.append(0x20)
                pending = 0
            default:
                out.append(contentsOf: [0xE2, 0x96].prefix(pending))
                pending = 0
                if b == 0xE2 { pending = 1 } else { out.append(b) }
            }
        }
        out.append(contentsOf: [0xE2, 0x96].prefix(pending))
        return out
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
            if let id = textToID[name], isSpecialType(types[id]) { set.insert(id) }
        }
        return set
    }
}
