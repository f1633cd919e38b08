import Foundation
import XCTest
@testable import KVStashEngine

/// The `llama` (SentencePiece BPE) tokenizer on a vocabulary trained by the `sentencepiece` package
/// (Tests/reference/spm_reference.py), written here as a GGUF with our own writer. Golden ids come
/// from sentencepiece itself; llama.cpp agrees on them (llamacpp_tokenize_check.py --spm).
final class TokenizerSentencePieceTests: XCTestCase {
    struct Golden: Decodable {
        struct Vocab: Decodable {
            let tokens: [String]
            let scores: [Float]
            let types: [Int]
            let bos: Int
            let eos: Int
            let unk: Int
        }
        let vocab: Vocab
        let strings: [String: String]
        let ids: [String: [Int]]
        let ids_parse_special: [String: [Int]]
    }

    static let golden: Golden = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../reference/spm_golden.json")
        return try! JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
    }()

    /// A vocabulary-only GGUF with `tokenizer.ggml.model = llama`.
    func makeTokenizer(addBOS: Bool) throws -> Tokenizer {
        let v = Self.golden.vocab
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        w.set("tokenizer.ggml.model", .string("llama"))
        w.set("tokenizer.ggml.tokens", .array(v.tokens.map { .string($0) }))
        w.set("tokenizer.ggml.scores", .array(v.scores.map { .float32($0) }))
        w.set("tokenizer.ggml.token_type", .array(v.types.map { .int32(Int32($0)) }))
        w.set("tokenizer.ggml.bos_token_id", .uint32(UInt32(v.bos)))
        w.set("tokenizer.ggml.eos_token_id", .uint32(UInt32(v.eos)))
        w.set("tokenizer.ggml.unknown_token_id", .uint32(UInt32(v.unk)))
        w.set("tokenizer.ggml.add_bos_token", .bool(addBOS))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("spm-\(UUID()).gguf").path
        try w.write(to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try Tokenizer(gguf: GGUFFile(path: path))
    }

    /// A special id outside the vocabulary (found by `scripts/fuzz.sh gguf`: BOS 167772161 of
    /// 267 tokens, which `encode` then emitted) is a load error naming the key.
    func testSpecialIDsOutsideTheVocabularyAreRefused() throws {
        let v = Self.golden.vocab
        for key in ["bos", "eos", "eot", "eom"] {
            for id in [v.tokens.count, 167_772_161] {
                var w = GGUFWriter()
                w.set("tokenizer.ggml.model", .string("llama"))
                w.set("tokenizer.ggml.tokens", .array(v.tokens.map { .string($0) }))
                w.set("tokenizer.ggml.scores", .array(v.scores.map { .float32($0) }))
                w.set("tokenizer.ggml.\(key)_token_id", .uint32(UInt32(id)))
                if key != "eos" { w.set("tokenizer.ggml.eos_token_id", .uint32(UInt32(v.eos))) }
                let path = FileManager.default.temporaryDirectory.appendingPathComponent("spm-\(UUID()).gguf").path
                try w.write(to: path)
                defer { try? FileManager.default.removeItem(atPath: path) }
                XCTAssertThrowsError(try Tokenizer(gguf: GGUFFile(path: path))) {
                    XCTAssertEqual($0 as? TokenizerError, .badVocabulary(
                        "tokenizer.ggml.\(key)_token_id \(id) is outside the vocabulary of \(v.tokens.count) tokens"))
                }
            }
        }
        XCTAssertNoThrow(try makeTokenizer(addBOS: true))
    }

    /// A piece's text bytes: every `▁` a space, every other character as it is, against
    /// Foundation's string replacement on random strings of `▁`, its UTF-8 neighbours (which
    /// share its first two bytes) and other text.
    func testLowLinesBecomeSpaces() {
        let parts = ["\u{2581}", "\u{2580}", "\u{2582}", "\u{2500}", "\u{E2}", "a", " ", "é", "▁▁", "日本", "\u{1F600}"]
        var rng = SplitMix64(seed: 2581)
        for _ in 0..<2000 {
            let text = (0..<Int(rng.next() % 9)).map { _ in parts[Int(rng.next() % UInt64(parts.count))] }.joined()
            XCTAssertEqual(Vocabulary.spaces(for: text), Array(text.replacingOccurrences(of: "\u{2581}", with: " ").utf8), text)
        }
    }

    func testIdsMatchSentencePiece() throws {
        let tok = try makeTokenizer(addBOS: false)
        XCTAssertEqual(tok.preTokenizer, "spm")
        XCTAssertNil(tok.bosToken)
        XCTAssertEqual(Self.golden.ids.count, Self.golden.strings.count)
        for (name, ids) in Self.golden.ids.sorted(by: { $0.key < $1.key }) {
            let text = try XCTUnwrap(Self.golden.strings[name])
            XCTAssertEqual(tok.encode(text, parseSpecial: false), ids, "'\(name)'")
        }
    }

    func testSpecialTokensAndBOS() throws {
        let tok = try makeTokenizer(addBOS: true)
        XCTAssertEqual(tok.bosToken, 1)
        XCTAssertEqual(tok.eosToken, 2)
        XCTAssertTrue(tok.isEndOfGeneration(2))
        let text = try XCTUnwrap(Self.golden.strings["special"])
        XCTAssertEqual(tok.encode(text), [1] + Self.golden.ids_parse_special["special"]!)
        XCTAssertEqual(tok.encode("hi")[0], 1, "BOS first when the GGUF asks for it")
    }

    func testDecodeRoundTripsAndStreams() throws {
        let tok = try makeTokenizer(addBOS: false)
        for (name, text) in Self.golden.strings where name != "special" {
            XCTAssertEqual(tok.decode(tok.encode(text)), text, "round trip of '\(name)'")
        }
        let ids = tok.encode("crab 🦀 ok")
        var dec = StreamDecoder(tokenizer: tok)
        var out = ""
        for id in ids {
            let piece = dec.push(id)
            XCTAssertFalse(piece.unicodeScalars.contains("\u{FFFD}"))
            out += piece
        }
        XCTAssertEqual(out + dec.flush(), " crab 🦀 ok", "streaming keeps the prefix space, as llama.cpp's pieces do")
    }
}
