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
        var textToID: [String: Int] = [:]
        textToID.reserveCapacity(toks.count)
        for (i, t) in toks.enumerated() where textToID[t] == nil { textToID[t] = i }
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
        bos = gguf["tokenizer.ggml.bos_token_id"]?.int
        guard let eosID = gguf["tokenizer.ggml.eos_token_id"]?.int ?? textToID["<|endoftext|>"] else {
            throw GGUFError.missingKey("tokenizer.ggml.eos_token_id")
        }
        eos = eosID
        addBOS = (gguf["tokenizer.ggml.add_bos_token"]?.bool ?? defaultAddBOS) && bos != nil
        endOfGeneration = Vocabulary.endOfGenerationSet(gguf: gguf, eos: eosID, textToID: textToID, types: typeList)
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
        return Array(text.replacingOccurrences(of: "\u{2581}", with: " ").utf8)
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
