import Foundation
import XCTest

/// Our XXH64 against the system libxxhash, called from Python (independent implementation).
final class HashTests: XCTestCase {
    func testXXH64MatchesLibxxhash() throws {
        var rng = SplitMix(seed: 5)
        let lengths = [0, 1, 3, 4, 7, 8, 31, 32, 33, 100, 1000, 4099]
        let inputs = lengths.map { n in (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) } }
        let urls = lengths.map { tempFile("hash-\($0)") }
        defer { urls.forEach { try? FileManager.default.removeItem(at: $0) } }
        for (bytes, url) in zip(inputs, urls) { try Data(bytes).write(to: url) }
        let want = try runReference(["xxh64"] + urls.map(\.path)).split(separator: "\n").map(String.init)
        XCTAssertEqual(want.count, lengths.count)
        for (i, bytes) in inputs.enumerated() where i < want.count {
            XCTAssertEqual(String(xxh64Reference(bytes)), want[i], "length \(lengths[i])")
        }
    }
}
