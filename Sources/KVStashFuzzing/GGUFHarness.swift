import Foundation
import KVStashEngine

/// A model file. The product opens one at start (`--model`), so a bad file must end in a
/// clear error, never a crash or an unbounded allocation. What loads is used as the server
/// would: the configuration, the tokenizer and chat template, the weights, and a short
/// prefill and decode.
enum GGUFHarness {
    /// Largest file the harness loads as a model (bigger ones are parsed only).
    static let modelByteLimit = 4 << 20
    private static let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("kvstash-fuzz-\(ProcessInfo.processInfo.processIdentifier).gguf").path

    static func run(_ input: [UInt8]) -> String? {
        guard FileManager.default.createFile(atPath: path, contents: Data(input)) else {
            return nil  // the harness's own scratch file, not the input's doing
        }
        defer { try? FileManager.default.removeItem(atPath: path) }
        guard let gguf = try? GGUFFile(path: path) else { return nil }
        if let tokenizer = try? Tokenizer(gguf: gguf) {
            if let finding = useTokenizer(tokenizer, gguf) { return finding }
        }
        guard input.count <= modelByteLimit, let model = try? LlamaModel(gguf: gguf) else { return nil }
        return useModel(model)
    }

    private static let sample = "Hello, world! 1234 <s> naïve 日本語 \u{1F600}\n\n\tend "

    private static func useTokenizer(_ tokenizer: Tokenizer, _ gguf: GGUFFile) -> String? {
        let ids = tokenizer.encode(sample)
        guard tokenizer.inVocabulary(ids) else { return "encode gave an id out of the vocabulary" }
        _ = tokenizer.decode(ids)
        _ = tokenizer.decode([-1, tokenizer.vocabSize, Int.max])
        if let template = try? ChatTemplate(gguf: gguf) {
            let chat = template.renderMarked([ChatMessage(role: "system", content: sample), ChatMessage(role: "user", content: "Why?")],
                                             addGenerationPrompt: true, defaultSystem: true)
            guard tokenizer.inVocabulary(tokenizer.encode(chat)) else {
                return "a rendered chat encoded to an id out of the vocabulary"
            }
        }
        return nil
    }

    private static func useModel(_ model: LlamaModel) -> String? {
        let vocab = model.config.vocabSize
        var cache = model.newCache()
        do {
            let logits = try model.prefill([0, 1 % vocab, 2 % vocab], cache: &cache)
            guard logits.count == vocab else { return "prefill gave \(logits.count) logits for \(vocab) tokens" }
            _ = try model.decode(vocab - 1, cache: &cache)
        } catch {
            return nil
        }
        return nil
    }

    static func seeds() throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        for spec in [TinyModelSpec.llama, .qwen2, .gemma3, .kQuants] {
            var s = spec
            s.vocabSize = 64
            s.layers = 1
            try TinyModel.write(s, to: path)
            out.append(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        }
        try? FileManager.default.removeItem(atPath: path)
        out.append(tokenizerFile(spm: true))
        out.append(tokenizerFile(spm: false))
        return out
    }

    /// A file with only a small vocabulary: SentencePiece with byte fallback, or byte-level
    /// BPE with a few merges.
    private static func tokenizerFile(spm: Bool) -> [UInt8] {
        var w = GGUFWriter()
        var tokens: [String], types: [Int32], scores: [Float] = []
        if spm {
            tokens = ["<unk>", "<s>", "</s>"] + (0..<256).map { String(format: "<0x%02X>", $0) }
                + ["▁", "a", "b", "▁a", "ab", "▁ab", "<start_of_turn>", "<end_of_turn>"]
            types = [2, 3, 3] + Array(repeating: 6, count: 256) + [1, 1, 1, 1, 1, 1, 3, 3]
            scores = tokens.indices.map { -Float($0) }
            w.set("tokenizer.ggml.model", .string("llama"))
            w.set("tokenizer.ggml.scores", .array(scores.map { .float32($0) }))
        } else {
            tokens = (0..<256).map { byteLevel(UInt8($0)) } + ["ab", "Ġa", "<|im_start|>", "<|im_end|>"]
            types = Array(repeating: 1, count: 258) + [3, 3]
            w.set("tokenizer.ggml.model", .string("gpt2"))
            w.set("tokenizer.ggml.merges", .array(["a b", "Ġ a"].map { .string($0) }))
            w.set("tokenizer.chat_template", .string("<|im_start|>{{ m }}<|im_end|>"))
        }
        w.set("tokenizer.ggml.tokens", .array(tokens.map { .string($0) }))
        w.set("tokenizer.ggml.token_type", .array(types.map { .int32($0) }))
        w.set("tokenizer.ggml.bos_token_id", .uint32(1))
        w.set("tokenizer.ggml.eos_token_id", .uint32(2))
        return w.serialized()
    }

    /// GPT-2's byte-to-character map: printable bytes stand for themselves, the others for
    /// the characters from U+0100 on, in byte order.
    private static func byteLevel(_ b: UInt8) -> String {
        let printable = (33...126).contains(b) || (161...172).contains(b) || b >= 174
        if printable { return String(UnicodeScalar(b)) }
        let rank = (0..<Int(b)).filter { x in !((33...126).contains(x) || (161...172).contains(x) || x >= 174) }.count
        return String(UnicodeScalar(UInt32(256 + rank))!)
    }
}
