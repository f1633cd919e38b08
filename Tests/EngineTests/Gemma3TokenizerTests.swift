import Foundation
import XCTest
@testable import KVStashEngine

/// Gemma 3's SentencePiece tokenizer (262,144 pieces, USER_DEFINED whitespace runs and HTML
/// tags, BOS 2 added) against ids from the `sentencepiece` package on a model built from the
/// same GGUF vocabulary (Tests/reference/gemma3_tokenizer_reference.py), which equal llama.cpp's
/// own `llama_tokenize` on every string (`llamacpp_tokenize_check.py --gemma3`).
final class Gemma3TokenizerTests: XCTestCase {
    struct Golden: Decodable {
        let strings: [String: String]
        let ids: [String: [Int]]
        let ids_parse_special: [String: [Int]]
    }

    func testIdsMatchSentencePiece() throws {
        let tokenizer = try Tokenizer(gguf: GGUFFile(path: TestSupport.gemma3ModelPath()))
        XCTAssertEqual(tokenizer.vocabSize, 262_144)
        XCTAssertEqual(tokenizer.bosToken, 2)
        XCTAssertEqual(tokenizer.eosToken, 1)
        XCTAssertEqual(tokenizer.preTokenizer, "spm")
        let url = TestSupport.repoRoot.appendingPathComponent("Tests/EngineTests/Resources/gemma3_tokenizer_golden.json")
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
        XCTAssertEqual(golden.ids.count, golden.strings.count)
        for (name, expected) in golden.ids.sorted(by: { $0.key < $1.key }) {
            let text = try XCTUnwrap(golden.strings[name])
            let ids = tokenizer.encode(text, parseSpecial: false)
            XCTAssertEqual(ids, expected, "'\(name)'")
            XCTAssertEqual(tokenizer.decode(Array(ids.dropFirst())), text, "round trip of '\(name)'")
        }
        // Generation ends at `<eos>` and `<end_of_turn>` (found in the file's token list here),
        // and at no other id, as llama.cpp's end-of-generation set for this vocabulary.
        let gguf = try GGUFFile(path: TestSupport.gemma3ModelPath())
        let pieces = try XCTUnwrap(gguf["tokenizer.ggml.tokens"]?.array?.compactMap(\.string))
        let endOfTurn = try XCTUnwrap(pieces.firstIndex(of: "<end_of_turn>"))
        XCTAssertEqual((0..<tokenizer.vocabSize).filter(tokenizer.isEndOfGeneration), [1, endOfTurn].sorted())
        for (name, expected) in golden.ids_parse_special {
            XCTAssertEqual(tokenizer.encode(try XCTUnwrap(golden.strings[name])), expected, "'\(name)', special tokens parsed")
        }
    }

    /// After the warm-up a server runs at start (the vocabulary's frequent words encoded once),
    /// every id is still the reference's.
    func testWarmedUpTokenizerMatchesSentencePiece() throws {
        let tokenizer = try Tokenizer(gguf: GGUFFile(path: TestSupport.gemma3ModelPath()))
        tokenizer.warmUp()
        let url = TestSupport.repoRoot.appendingPathComponent("Tests/EngineTests/Resources/gemma3_tokenizer_golden.json")
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
        for (name, expected) in golden.ids {
            XCTAssertEqual(tokenizer.encode(try XCTUnwrap(golden.strings[name]), parseSpecial: false), expected, "'\(name)'")
        }
    }
}
