import XCTest
@testable import KVStashEngine

final class TokenizerStreamTests: XCTestCase {
    /// The single-byte tokens of 🦀 (F0 9F A6 80) pushed one by one: nothing until the last byte.
    func testStreamHoldsBackSplitCharacter() throws {
        let tok = try Tokenizer(gguf: try requireModelGGUF())
        let ids = Array("🦀".utf8).map { b in
            (0..<tok.vocabSize).first { tok.tokenBytes($0) == [b] && !tok.isSpecial($0) }!
        }
        var dec = StreamDecoder(tokenizer: tok)
        XCTAssertEqual(dec.push(ids[0]), "")
        XCTAssertEqual(dec.push(ids[1]), "")
        XCTAssertEqual(dec.push(ids[2]), "")
        XCTAssertEqual(dec.push(ids[3]), "🦀")
        XCTAssertEqual(dec.flush(), "")
    }

    /// Streaming the ids of emoji-heavy text yields exactly the text, and no piece has U+FFFD.
    func testStreamOfEmojiTextEqualsText() throws {
        let tok = try Tokenizer(gguf: try requireModelGGUF())
        let text = "family 👨‍👩‍👧‍👦, crab 🦀, flag 🇫🇷, skin 👍🏽, CJK 你好世界, é"
        let ids = tok.encode(text)
        XCTAssertTrue(ids.contains { id in String(validating: tok.tokenBytes(id), as: UTF8.self) == nil },
                      "test needs a token that splits a character")
        var dec = StreamDecoder(tokenizer: tok)
        var out = ""
        for id in ids {
            let piece = dec.push(id)
            XCTAssertFalse(piece.unicodeScalars.contains("\u{FFFD}"), "half a character emitted")
            out += piece
        }
        out += dec.flush()
        XCTAssertEqual(out, text)
    }

    /// An incomplete character left at the end comes out of `flush` as U+FFFD, then state resets.
    func testFlushEmitsIncompleteTail() throws {
        let tok = try Tokenizer(gguf: try requireModelGGUF())
        let f0 = (0..<tok.vocabSize).first { tok.tokenBytes($0) == [0xF0] }!
        var dec = StreamDecoder(tokenizer: tok)
        XCTAssertEqual(dec.push(f0), "")
        XCTAssertEqual(dec.flush(), "\u{FFFD}")
        XCTAssertEqual(dec.push(tok.encode("ok")[0]), "ok")
    }
}
