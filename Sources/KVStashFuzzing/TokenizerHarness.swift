import Foundation
import KVStashEngine

/// Text from a client, through a real model's tokenizer (the GGUF at `KVSTASH_FUZZ_MODEL`, else
/// `KVSTASH_MODEL`). Every id lies in the vocabulary, and the ids of text encoded without
/// special tokens decode back to the text: exactly for byte-level BPE, and with U+2581 read as
/// the space it stands for in SentencePiece. Text with a byte that has no token of its own is
/// left out of that check: SmolLM2's vocabulary lacks 0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, 0xF1
/// and 0xF2 (and bytes UTF-8 never uses), and such a byte is dropped unless a merge covers it,
/// as llama.cpp drops it.
enum TokenizerHarness {
    struct Loaded: Sendable {
        let tokenizer: Tokenizer
        let sentencePiece: Bool
        /// Bytes with no token of their own.
        let untokened: Set<UInt8>
    }

    /// The tokenizer, loaded once per process (nil: no model named).
    static let loaded: Loaded? = {
        let env = ProcessInfo.processInfo.environment
        guard let path = env["KVSTASH_FUZZ_MODEL"] ?? env["KVSTASH_MODEL"],
              let gguf = try? GGUFFile(path: path), let tokenizer = try? Tokenizer(gguf: gguf) else { return nil }
        let tokened = Set((0..<tokenizer.vocabSize).lazy.map { tokenizer.tokenBytes($0) }.filter { $0.count == 1 }.map { $0[0] })
        return Loaded(tokenizer: tokenizer, sentencePiece: gguf["tokenizer.ggml.model"]?.string == "llama",
                      untokened: Set(0...255).subtracting(tokened))
    }()

    static func run(_ input: [UInt8]) -> String? {
        guard let loaded else { return nil }
        let tokenizer = loaded.tokenizer
        // A JSON string reaches the tokenizer as valid Unicode.
        let text = String(decoding: input, as: UTF8.self)
        let withSpecial = tokenizer.encode(text)
        guard tokenizer.inVocabulary(withSpecial) else {
            return "an id outside the vocabulary"
        }
        var plain = tokenizer.encode(text, parseSpecial: false)
        if let bos = tokenizer.bosToken, plain.first == bos { plain.removeFirst() }
        guard !text.utf8.contains(where: loaded.untokened.contains) else { return nil }
        let decoded = tokenizer.decode(plain)
        // Scalar by scalar: U+2581 followed by a combining mark is one Character.
        let expected = loaded.sentencePiece
            ? String(String.UnicodeScalarView(text.unicodeScalars.map { $0 == "\u{2581}" ? " " : $0 })) : text
        guard decoded == expected else {
            return "decode(encode(text)) differs: \(String(reflecting: expected).prefix(300)) in, "
                + "\(String(reflecting: decoded).prefix(300)) out"
        }
        return nil
    }

    static func seeds() -> [[UInt8]] {
        ["Hello, world!", "  two  spaces\tand\ttabs\n\n\nnewlines", "naïve café – “quotes” ½ 日本語 한국어 🙂",
         "<|im_start|>user\nhi<|im_end|>", "<start_of_turn>user\n<bos>x<end_of_turn>", "func f() { return 0x1F; }",
         "3.14159 1000000 0000", "\u{2581}piece\u{2581}", "\u{0}\u{7F}\u{FEFF}\u{200B}"].map { Array($0.utf8) }
    }
}

extension Tokenizer {
    /// Whether every id names a token of this vocabulary.
    func inVocabulary(_ ids: [Int]) -> Bool { ids.allSatisfy { (0..<vocabSize).contains($0) } }
}
