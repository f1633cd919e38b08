import Foundation
import XCTest
@testable import KVStashEngine

/// Golden values from Tests/reference/tokenizer_reference.py: a Hugging Face `tokenizers` BPE built
/// independently from the same GGUF vocabulary and merges, and jinja2 renderings of the template.
struct TokenizerGolden: Decodable {
    struct Chat: Decodable {
        let name: String
        let messages: [ChatMessage]
        let add_generation_prompt: Bool
        let default_system: String
        let bare: String
        let default_system_ids: [Int]
        let bare_ids: [Int]
    }

    struct TemplateCase: Decodable {
        let form: String
        let source: String
        let eos_token: String
        let name: String
        let messages: [ChatMessage]
        let add_generation_prompt: Bool
        let expected: String
    }

    let model: String
    let pre: String
    let strings: [String: String]
    let ids: [String: [String: [Int]]]
    let pieces: [String: [String: [String]]]
    let ids_no_parse_special: [String: [Int]]
    let chat: [Chat]
    let templates: [TemplateCase]

    static func load() throws -> TokenizerGolden {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../reference/tokenizer_golden.json")
        return try JSONDecoder().decode(TokenizerGolden.self, from: Data(contentsOf: url))
    }
}

/// The real model from `KVSTASH_MODEL`: skipped when absent, a failure when `CI` is set.
func requireModelGGUF(file: StaticString = #filePath, line: UInt = #line) throws -> GGUFFile {
    let env = ProcessInfo.processInfo.environment
    guard let path = env["KVSTASH_MODEL"], FileManager.default.fileExists(atPath: path) else {
        let msg = "KVSTASH_MODEL is not set to an existing GGUF (run scripts/test.sh, which downloads it)"
        if env["CI"] != nil {
            XCTFail(msg, file: file, line: line)
            throw XCTSkip("failed: \(msg)")
        }
        throw XCTSkip(msg)
    }
    return try GGUFFile(path: path)
}

final class TokenizerTests: XCTestCase {
    static let shared: (GGUFFile, TokenizerGolden)? = {
        guard let path = ProcessInfo.processInfo.environment["KVSTASH_MODEL"],
              let g = try? GGUFFile(path: path), let golden = try? TokenizerGolden.load() else { return nil }
        return (g, golden)
    }()

    func fixture() throws -> (GGUFFile, TokenizerGolden) {
        let gguf = try requireModelGGUF()
        if let s = Self.shared { return s }
        return (gguf, try TokenizerGolden.load())
    }

    func testMetadataOfDefaultModel() throws {
        let (gguf, _) = try fixture()
        let tok = try Tokenizer(gguf: gguf)
        XCTAssertEqual(tok.vocabSize, 49152)
        XCTAssertEqual(tok.preTokenizer, "smollm")
        XCTAssertNil(tok.bosToken, "SmolLM2's GGUF asks for no automatic BOS")
        XCTAssertEqual(tok.declaredBOSToken, 1)
        XCTAssertEqual(tok.eosToken, 2)
        XCTAssertEqual(tok.tokenText(1), "<|im_start|>")
        XCTAssertEqual(tok.tokenText(2), "<|im_end|>")
        XCTAssertTrue(tok.isEndOfGeneration(2), "<|im_end|> ends a ChatML turn")
        XCTAssertTrue(tok.isEndOfGeneration(0), "<|endoftext|> ends generation")
        XCTAssertFalse(tok.isEndOfGeneration(1))
        XCTAssertFalse(tok.isEndOfGeneration(tok.encode(" the")[0]))
        XCTAssertEqual(tok.tokenText(-1), "")
        XCTAssertEqual(tok.tokenText(tok.vocabSize), "")
    }

    func testIdsMatchReferenceForDefaultPreTokenizer() throws {
        let (gguf, golden) = try fixture()
        let tok = try Tokenizer(gguf: gguf)
        XCTAssertEqual(golden.pre, "smollm")
        try assertIds(tok, golden, pre: "smollm")
    }

    /// After the warm-up a server runs at start (the vocabulary's frequent words encoded once),
    /// every id is still the reference's.
    func testWarmedUpTokenizerMatchesReference() throws {
        let (gguf, golden) = try fixture()
        let tok = try Tokenizer(gguf: gguf)
        tok.warmUp()
        try assertIds(tok, golden, pre: "smollm")
    }

    func testIdsMatchReferenceForOtherPreTokenizers() throws {
        let (gguf, golden) = try fixture()
        for pre in ["gpt2", "llama-bpe", "qwen2"] {
            try assertIds(try Tokenizer(gguf: gguf, preTokenizer: pre), golden, pre: pre)
        }
    }

    func testPreTokensMatchReference() throws {
        let (gguf, golden) = try fixture()
        for pre in ["smollm", "gpt2", "llama-bpe", "qwen2"] {
            let tok = try Tokenizer(gguf: gguf, preTokenizer: pre)
            let expected = try XCTUnwrap(golden.pieces[pre])
            for (name, pieces) in expected.sorted(by: { $0.key < $1.key }) {
                let text = try XCTUnwrap(golden.strings[name])
                XCTAssertEqual(tok.preTokenize(text), pieces, "\(pre) pre-tokens of '\(name)'")
            }
        }
    }

    func testSpecialTokenTextWithoutParseSpecial() throws {
        let (gguf, golden) = try fixture()
        let tok = try Tokenizer(gguf: gguf)
        XCTAssertFalse(golden.ids_no_parse_special.isEmpty)
        for (name, ids) in golden.ids_no_parse_special {
            XCTAssertEqual(tok.encode(try XCTUnwrap(golden.strings[name]), parseSpecial: false), ids, name)
        }
        XCTAssertEqual(tok.encode("<|im_start|>user\nhi<|im_end|>")[0], 1)
        XCTAssertNotEqual(tok.encode("<|im_start|>user", parseSpecial: false)[0], 1)
    }

    func testDecodeRoundTrips() throws {
        let (gguf, golden) = try fixture()
        let tok = try Tokenizer(gguf: gguf)
        for (name, text) in golden.strings {
            XCTAssertEqual(tok.decode(tok.encode(text)), text, "round trip of '\(name)'")
            XCTAssertEqual(tok.decode(tok.encode(text, parseSpecial: false)), text, "round trip of '\(name)'")
        }
        XCTAssertEqual(tok.decode([1, -5, 1_000_000, 2]), "<|im_start|><|im_end|>", "bad ids are skipped")
    }

    private func assertIds(_ tok: Tokenizer, _ golden: TokenizerGolden, pre: String,
                           file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = try XCTUnwrap(golden.ids[pre], file: file, line: line)
        XCTAssertEqual(expected.count, golden.strings.count)
        for (name, ids) in expected.sorted(by: { $0.key < $1.key }) {
            let text = try XCTUnwrap(golden.strings[name])
            let got = tok.encode(text)
            if got != ids {
                let i = (0..<min(got.count, ids.count)).first { got[$0] != ids[$0] } ?? min(got.count, ids.count)
                XCTFail("\(pre) '\(name)': first difference at \(i): got \(got[i..<min(i + 8, got.count)]) "
                    + "expected \(ids[i..<min(i + 8, ids.count)])", file: file, line: line)
            }
        }
    }
}
