import XCTest
@testable import KVStash

/// The registry of prompts being prefilled: shared prefixes are counted within a namespace
/// only, and a removed prompt no longer counts.
final class InflightPromptsTests: XCTestCase {
    func testSharedPrefixIsPerNamespaceAndEndsWithTheRegistration() {
        let inflight = InflightPrompts()
        let ns = RadixNamespace(modelFingerprint: [1, 2, 3])
        let tenant = RadixNamespace(modelFingerprint: [1, 2, 3], tenantSalt: [9])
        XCTAssertEqual(inflight.sharedPrefix([1, 2, 3], namespace: ns), 0)
        let a = inflight.register(Array(0..<40), namespace: ns)
        let b = inflight.register(Array(0..<10) + [99], namespace: ns)
        XCTAssertEqual(inflight.sharedPrefix(Array(0..<30) + [7], namespace: ns), 30, "the longest of the two")
        XCTAssertEqual(inflight.sharedPrefix(Array(0..<30), namespace: tenant), 0, "another tenant's prompts do not count")
        XCTAssertEqual(inflight.sharedPrefix([5, 1, 2], namespace: ns), 0)
        inflight.remove(a)
        XCTAssertEqual(inflight.sharedPrefix(Array(0..<30), namespace: ns), 10)
        inflight.remove(b)
        inflight.remove(b)
        XCTAssertEqual(inflight.count, 0)
        XCTAssertEqual(inflight.sharedPrefix(Array(0..<30), namespace: ns), 0)
    }
}
