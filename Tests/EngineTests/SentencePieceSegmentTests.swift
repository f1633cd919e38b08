import Foundation
import XCTest
@testable import KVStashEngine

/// `SentencePieceModel.encode` cuts the text where no piece holds two adjacent characters and
/// merges the segments one by one; it must give exactly the ids of merging the whole text at once
/// (`encodeWhole`, the algorithm before the cuts).
final class SentencePieceSegmentTests: XCTestCase {
    static let mark = "\u{2581}"

    /// The text as `FragmentEncoder` hands it over: spaces escaped to `▁`.
    static func escaped(_ text: String) -> [UInt8] {
        Array(text.replacingOccurrences(of: " ", with: mark).utf8)
    }

    static func segments(_ spm: SentencePieceModel, _ text: [UInt8]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        spm.forEachSegment(text) { out.append($0) }
        return out
    }

    /// Asserts that the cut encode equals the whole-text encode on `text`: with a fresh segment
    /// table, with `table` (kept across texts) and with it again (every segment a hit); returns the
    /// number of segments.
    @discardableResult
    static func check(_ spm: SentencePieceModel, _ text: [UInt8], table: SegmentTable,
                      _ what: String, file: StaticString = #filePath, line: UInt = #line) -> Int {
        var whole: [Int32] = []
        spm.encodeWhole(text, into: &whole)
        var scratch = SPMScratch()
        for (name, t) in [("fresh table", SegmentTable()), ("kept table", table), ("kept table again", table)] {
            var ids: [Int32] = []
            spm.encode(text, table: t, scratch: &scratch, into: &ids)
            XCTAssertEqual(ids, whole, "\(what): cut encode, \(name)", file: file, line: line)
        }
        let cuts = segments(spm, text)
        XCTAssertEqual(cuts.first?.lowerBound ?? 0, 0, file: file, line: line)
        XCTAssertEqual(cuts.last?.upperBound ?? 0, text.count, file: file, line: line)
        for (a, b) in zip(cuts, cuts.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound, file: file, line: line) }
        return cuts.count
    }

    /// `encode` with a fresh segment table.
    static func encode(_ spm: SentencePieceModel, _ text: [UInt8]) -> [Int32] {
        var ids: [Int32] = [], scratch = SPMScratch()
        spm.encode(text, table: SegmentTable(), scratch: &scratch, into: &ids)
        return ids
    }

    // MARK: Gemma 3

    func testGemma3CutEncodeEqualsWholeEncode() throws {
        let tokenizer = try Tokenizer(gguf: GGUFFile(path: TestSupport.gemma3ModelPath()))
        guard case let .sentencePiece(spm, _) = tokenizer.vocab.model else { return XCTFail("not SentencePiece") }
        let url = TestSupport.repoRoot.appendingPathComponent("Tests/EngineTests/Resources/gemma3_tokenizer_golden.json")
        let golden = try JSONDecoder().decode(Gemma3TokenizerTests.Golden.self, from: Data(contentsOf: url))
        var texts = golden.strings.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        texts.append(("generated", Self.mixedText(bytes: 40_000, seed: 7)))
        if let gpl = try? String(contentsOfFile: "/usr/share/common-licenses/GPL-3", encoding: .utf8) {
            texts.append(("GPL-3", gpl))
        }
        let table = SegmentTable()
        for (name, text) in texts {
            let bytes = Self.escaped(text)
            let n = Self.check(spm, bytes, table: table, name)
            if bytes.count > 10_000 {
                // Not a vacuous pass: long texts are cut into many short segments.
                XCTAssertGreaterThan(n, bytes.count / 30, "'\(name)' was cut into \(n) segments")
            }
            if name == "generated" {
                var ids: [Int32] = []
                spm.encodeWhole(bytes, into: &ids)
                XCTAssertTrue(ids.contains { spm.byteToken.contains($0) }, "some characters fall back to bytes")
            }
        }
    }

    /// The piece table answers as a dictionary of byte strings -> first id does, for every piece
    /// and for slices of a text (pieces and non-pieces).
    func testGemma3PieceTableEqualsDictionary() throws {
        let tokens = try Tokenizer(gguf: GGUFFile(path: TestSupport.gemma3ModelPath())).vocab.tokens
        let table = PieceTable(tokens)
        var dict: [[UInt8]: Int32] = [:]
        for (i, t) in tokens.enumerated() where dict[Array(t.utf8)] == nil { dict[Array(t.utf8)] = Int32(i) }
        for t in tokens {
            let b = Array(t.utf8)
            XCTAssertEqual(table.id(b, b.indices), dict[b], "piece '\(t)'")
        }
        let text = Self.escaped(Self.mixedText(bytes: 20_000, seed: 3))
        var rng = SplitMix64(seed: 11)
        var hits = 0
        for _ in 0..<200_000 {
            let lo = Int(rng.next() % UInt64(text.count)), n = 1 + Int(rng.next() % 12)
            let r = lo..<min(lo + n, text.count)
            let expected = dict[Array(text[r])]
            XCTAssertEqual(table.id(text, r), expected)
            if expected != nil { hits += 1 }
        }
        XCTAssertGreaterThan(hits, 10_000)
        XCTAssertLessThan(hits, 190_000)
    }

    /// Prose, code, whitespace runs, digits, newlines, repeated words and non-Latin scripts.
    static func mixedText(bytes: Int, seed: UInt64) -> String {
        var rng = SplitMix64(seed: seed)
        let parts = [
            "the", "The", "cache", "prefix", "tokenizer", "tokenizer", "tokenizer", "isn't", "co-operate",
            "func encode(_ text: [UInt8]) -> [Int32] {", "    return ids.map { $0 * 2 }", "}", "if (a[i] != b[j]) {",
            "x+=1;", "#include <stdio.h>", "<div class=\"x\">", "</div>", "SELECT * FROM t WHERE id = 42;",
            "0", "7", "42", "1234567890", "3.14159", "2026-12-03", "0x7FFF", "1e-9", "100%",
            "日本語のテキスト", "中文分词", "Привет, мир", "مرحبا بالعالم", "한국어", "naïve café", "Ünïcödé",
            "e\u{301}", "🦀", "🚀🚀", "👨‍👩‍👧", "\u{FFFD}", "\u{2581}", "Ω≈ç√", "ﬁ", "\u{200B}",
            "\u{10FFFD}", "\u{E000}x", "𓀀𓀁", "\u{1F9FF}\u{1FAE8}",
            "\t", "\t\t", "  ", "   ", "        ", "\n", "\n\n", "\r\n", " \n ", ".", ",", "!?", "...", "--", "''",
        ]
        let separators = [" ", " ", " ", "", "\n", "  ", "\t", ", "]
        var text = ""
        while text.utf8.count < bytes {
            text += parts[Int(rng.next() % UInt64(parts.count))]
            text += separators[Int(rng.next() % UInt64(separators.count))]
        }
        return text
    }

    // MARK: Synthetic vocabularies

    /// Byte pieces `<0x00>`...`<0xFF>` first, then `pieces` with `scores`.
    static func model(_ pieces: [String], scores: [Float]) -> SentencePieceModel {
        let bytes = (0..<256).map { String(format: "<0x%02X>", $0) }
        return SentencePieceModel(tokens: bytes + pieces, scores: [Float](repeating: 0, count: 256) + scores)
    }

    func testPieceSpanningASpaceIsNotCut() {
        let pieces = ["a", "b", "c", Self.mark, "a\(Self.mark)b", "\(Self.mark)b"]
        let spm = Self.model(pieces, scores: [-5, -5, -5, -5, 10, 5])
        let id = { (p: String) in Int32(256 + pieces.firstIndex(of: p)!) }
        let table = SegmentTable()

        let ab = Self.escaped("a b")
        XCTAssertEqual(Self.segments(spm, ab), [0..<ab.count], "(a, ▁) and (▁, b) are inside 'a▁b': no cut")
        XCTAssertEqual(Self.encode(spm, ab), [id("a\(Self.mark)b")])
        Self.check(spm, ab, table: table, "a b")

        let cb = Self.escaped("c b")
        XCTAssertEqual(Self.segments(spm, cb), [0..<1, 1..<cb.count], "(c, ▁) is in no piece: cut")
        XCTAssertEqual(Self.encode(spm, cb), [id("c"), id("\(Self.mark)b")])
        Self.check(spm, cb, table: table, "c b")

        let fallback = Self.escaped("cé a b")
        XCTAssertEqual(Self.encode(spm, fallback), [id("c"), 0xC3, 0xA9, id(Self.mark), id("a\(Self.mark)b")],
                       "é falls back to bytes")
        Self.check(spm, fallback, table: table, "cé a b")
    }

    func testRepeatedPieceTakesItsFirstId() {
        let table = PieceTable(["a", "ab", "b", "ab", "", "abc"])
        let text = Array("abc".utf8)
        XCTAssertEqual(table.id(text, 0..<2), 1)
        XCTAssertEqual(table.id(text, 0..<3), 5)
        XCTAssertEqual(table.id(text, 1..<3), nil)
        XCTAssertEqual(table.id(text, 2..<3), nil)
    }

    /// Random vocabularies over a small alphabet (pieces spanning `▁`, multi-byte characters,
    /// tied scores) and random texts over it: cut encode == whole encode, with cuts happening.
    func testRandomVocabulariesCutEncodeEqualsWholeEncode() {
        var rng = SplitMix64(seed: 2026)
        let alphabet = ["a", "b", "c", Self.mark, "é", "日", "\n", "🦀"]
        let pick = { (rng: inout SplitMix64) in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
        var totalRuns = 0, totalTexts = 0, cutTexts = 0
        for v in 0..<40 {
            var pieces = ["a", "b", "c", Self.mark, "\n"]
            var seen = Set(pieces)
            let size = pieces.count + 4 + Int(rng.next() % 40)
            while pieces.count < size {
                let p = (0..<(2 + rng.next() % 4)).map { _ in pick(&rng) }.joined()
                if seen.insert(p).inserted { pieces.append(p) }
            }
            let spm = Self.model(pieces, scores: pieces.map { _ in Float(Int(rng.next() % 6)) - 3 })
            let table = SegmentTable()
            for t in 0..<60 {
                let text = (0..<(rng.next() % 50)).map { _ in pick(&rng) }.joined()
                let n = Self.check(spm, Array(text.utf8), table: table, "vocab \(v) text \(t): \(text)")
                totalRuns += n
                totalTexts += 1
                if n > 1 { cutTexts += 1 }
            }
        }
        XCTAssertGreaterThan(cutTexts, totalTexts / 2, "most texts are cut")
        XCTAssertGreaterThan(totalRuns, 3 * totalTexts)
    }
}
