import XCTest
@testable import KVStashEngine

final class GGUFTests: XCTestCase {
    func testRejectsNonGGUF() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("notgguf-\(UUID()).bin")
        try Data("hello world, not a model".utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        XCTAssertThrowsError(try GGUFFile(path: url.path)) { error in
            XCTAssertEqual(error as? GGUFError, .notGGUF(path: url.path))
        }
    }
}
