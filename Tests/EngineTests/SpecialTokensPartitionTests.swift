import Foundation
import XCTest
@testable import KVStashEngine

/// `SpecialTokens.partition` tries a position only against the candidates sharing its first two
/// bytes; it must split texts exactly as the scan of every candidate with the first byte did.
final class SpecialTokensPartitionTests: XCTestCase {
    /// Candidates by first byte, longest first (the table before the two-byte buckets).
    static func byFirstByte(tokens: [String], types: [Int]) -> [[SpecialTokens.Entry]] {
        var map: [UInt8: [SpecialTokens.Entry]] = [:]
        for (i, t) in tokens.enumerated() where !t.isEmpty {
            let type = i < types.count ? types[i] : TokenType.normal
            guard type == TokenType.control || type == TokenType.userDefined || type == TokenType.unknown else { continue }
            let b = Array(t.utf8)
            map[b[0], default: []].append(.init(bytes: b, id: Int32(i), control: type != TokenType.userDefined))
        }
        return (0..<256).map { b in (map[UInt8(b)] ?? []).sorted { $0.bytes.count > $1.bytes.count } }
    }

    /// The partition before the two-byte buckets: every candidate with the first byte is tried.
    static func reference(_ byFirstByte: [[SpecialTokens.Entry]], _ bytes: [UInt8], parseSpecial: Bool,
                          plain: [Range<Int>]) -> [SpecialTokens.Segment] {
        var out: [SpecialTokens.Segment] = []
        var textStart = 0, i = 0, nextPlain = 0
        let n = bytes.count
        while i < n {
            while nextPlain < plain.count, plain[nextPlain].upperBound <= i { nextPlain += 1 }
            guard let hit = byFirstByte[Int(bytes[i])].first(where: { e in
                (!e.control || parseSpecial && !(nextPlain < plain.count
                    && plain[nextPlain].overlaps(i..<(i + e.bytes.count))))
                    && e.bytes.count <= n - i && Array(bytes[i..<(i + e.bytes.count)]) == e.bytes
            }) else { i += 1; continue }
            if textStart < i { out.append(.text(textStart..<i)) }
            out.append(.special(hit.id))
            i += hit.bytes.count
            textStart = i
        }
        if textStart < n { out.append(.text(textStart..<n)) }
        return out
    }

    func testGemma3PartitionEqualsScanOfEveryCandidate() throws {
        let vocab = try Tokenizer(gguf: GGUFFile(path: TestSupport.gemma3ModelPath())).vocab
        let specials = SpecialTokens(tokens: vocab.tokens, types: vocab.types)
        let candidates = vocab.tokens.indices.filter { [2, 3, 4].contains(vocab.types[$0]) }.map { vocab.tokens[$0] }
        let table = Self.byFirstByte(tokens: vocab.tokens, types: vocab.types)
        var rng = SplitMix64(seed: 2026)
        let next = { () -> Int in Int(rng.next() >> 33) }
        let parts = ["the", " ", "  ", "\n", "\n\n", "\t", "<", "<b", "</", "<u", "<unused", "<start_of", "x", "é", "🦀"]
        var specialHits = 0
        for round in 0..<400 {
            var text = ""
            for _ in 0..<(next() % 60) {
                switch next() % 3 {
                case 0: text += candidates[next() % candidates.count]
                case 1: text += String(candidates[next() % candidates.count].prefix(1 + next() % 6))
                default: text += parts[next() % parts.count]
                }
            }
            let bytes = Array(text.utf8)
            var plain: [Range<Int>] = []
            var at = 0
            while at < bytes.count, next() % 3 != 0 {
                let lo = at + next() % 20, hi = lo + next() % 40
                if hi > bytes.count { break }
                if lo < hi { plain.append(lo..<hi) }
                at = hi
            }
            for parse in [false, true] {
                let got = bytes.withUnsafeBufferPointer { specials.partition($0, parseSpecial: parse, plain: plain) }
                let want = Self.reference(table, bytes, parseSpecial: parse, plain: plain)
                XCTAssertEqual(got, want, "round \(round), parseSpecial \(parse): \(text.debugDescription)")
                specialHits += got.filter { if case .special = $0 { return true } else { return false } }.count
            }
        }
        XCTAssertGreaterThan(specialHits, 1_000)
    }
}
