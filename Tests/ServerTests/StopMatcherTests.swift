import XCTest
@testable import KVStashServer

/// The stop matcher against a direct definition: the output is the text before the
/// earliest occurrence of any stop sequence, however the text is split into pieces.
final class StopMatcherTests: XCTestCase {
    /// Reference: cut the whole text at the earliest stop occurrence.
    private func reference(_ text: String, _ stops: [String]) -> (String, Bool) {
        let hits = stops.compactMap { text.range(of: $0)?.lowerBound }
        guard let first = hits.min() else { return (text, false) }
        return (String(text[..<first]), true)
    }

    private func run(_ pieces: [String], _ stops: [String]) -> (String, Bool) {
        var m = StopMatcher(stops)
        var out = ""
        for p in pieces { out += m.feed(p) }
        out += m.finish()
        return (out, m.stopped)
    }

    func testEverySplitMatchesReference() {
        let texts = ["Hello world. The end. Bye", "aaab", "no stop here", "x<|im_end|>y", "héllo wörld€"]
        let stopSets = [["."], ["end", "world"], ["ab"], ["<|im_end|>"], ["wö", "€"], ["zz"], []]
        for text in texts {
            for stops in stopSets {
                let chars = text.map(String.init)
                // All two-way and three-way character splits.
                for i in 0...chars.count {
                    for j in i...chars.count {
                        let pieces = [chars[..<i].joined(), chars[i..<j].joined(), chars[j...].joined()]
                        let got = run(pieces, stops)
                        let want = reference(text, stops)
                        XCTAssertEqual(got.0, want.0, "text \(text) stops \(stops) split \(pieces)")
                        XCTAssertEqual(got.1, want.1, "text \(text) stops \(stops) split \(pieces)")
                    }
                }
            }
        }
    }

    func testHeldBackTextIsReleasedOnlyWhenSafe() {
        var m = StopMatcher(["STOP"])
        XCTAssertEqual(m.feed("abc ST"), "abc ")
        XCTAssertEqual(m.feed("O"), "")
        XCTAssertEqual(m.feed("x"), "STOx")
        XCTAssertEqual(m.feed(" ST"), " ")
        XCTAssertEqual(m.feed("OP and more"), "")
        XCTAssertTrue(m.stopped)
        XCTAssertEqual(m.feed("later"), "")
    }
}
