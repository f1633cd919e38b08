import Foundation
import XCTest

/// Our XXH64 against the system libxxhash, called from Python (independent implementation).
final class HashTests: XCTestCase {
    func testXXH64MatchesLibxxhash() throws {
        var rng = SplitMix(seed: 5)
        for length in [0, 1, 3, 4, 7, 8, 31, 32, 33, 100, 1000, 4099] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let url = tempFile("hash-\(length)")
            defer { try? FileManager.default.removeItem(at: url) }
            try Data(bytes).write(to: url)
            let want = try runReference(["xxh64", url.path]).trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertEqual(String(xxh64Reference(bytes)), want, "length \(length)")
        }
    }
}
