import XCTest
import KVStashCore
@testable import KVStash

/// The last request's cache kept beside the radix tree: taken only by a request of the same
/// namespace whose tokens it holds, cut to them, once; bounded by the tree's budget; gone
/// with the tree's contents.
final class ResidentSequenceTests: XCTestCase {
    let shape = RadixTreeTests.shape
    let ns = RadixNamespace(modelFingerprint: [1, 2, 3])
    let tokens = Array(0..<50).map { $0 * 7 % 23 }

    private func taken(_ resident: ResidentSequence, _ query: ArraySlice<Int>,
                       ns: RadixNamespace? = nil) -> (KVCache, SkippedRows)? {
        var cache = KVCache(shape: shape)
        var skipped = SkippedRows()
        guard resident.take(query, namespace: ns ?? self.ns, into: &cache, skipped: &skipped) else { return nil }
        return (cache, skipped)
    }

    func testTakesTheKeptRowsOfAPrefixOnce() throws {
        let resident = ResidentSequence()
        let full = syntheticCache(tokens, shape: shape)
        var skipped = SkippedRows(layers: [1])
        skipped.add(3..<9)
        skipped.add(40..<45)
        resident.keep(tokens, cache: full, skipped: skipped, namespace: ns, budgetBytes: 1 << 30)
        XCTAssertEqual(resident.tokenCount, 50)
        let (cache, left) = try XCTUnwrap(taken(resident, tokens[..<37]))
        XCTAssertEqual(cache.count, 37)
        assertSameKV(cache, full, 0..<37)
        XCTAssertEqual(left.layers, [1])
        XCTAssertEqual(left.ranges, [3..<9], "left-out rows past the cut are forgotten")
        XCTAssertEqual(resident.tokenCount, 0, "taken: no longer kept")
        XCTAssertNil(taken(resident, tokens[..<37]))
        XCTAssertEqual(resident.takes, 1)
    }

    func testOnlyTheSameNamespaceAndTokensTakeIt() {
        let resident = ResidentSequence()
        resident.keep(tokens, cache: syntheticCache(tokens, shape: shape), skipped: SkippedRows(), namespace: ns,
                      budgetBytes: 1 << 30)
        let otherTenant = RadixNamespace(modelFingerprint: [1, 2, 3], tenantSalt: Array("b".utf8))
        XCTAssertNil(taken(resident, tokens[..<20], ns: otherTenant), "another tenant never sees it")
        var diverging = Array(tokens[..<20])
        diverging[19] += 1
        XCTAssertNil(taken(resident, diverging[...]))
        XCTAssertNil(taken(resident, (tokens + [1])[...]), "longer than what it holds")
        XCTAssertNil(taken(resident, [][...]))
        XCTAssertEqual(resident.tokenCount, 50, "refusals leave it kept")
        XCTAssertNotNil(taken(resident, tokens[...]))
    }

    func testAKeptCacheReplacesTheLastAndTheBudgetBoundsIt() throws {
        let resident = ResidentSequence()
        let other = tokens.map { $0 + 100 }
        let bytes = 50 * shape.cacheBytesPerPosition
        resident.keep(tokens, cache: syntheticCache(tokens, shape: shape), skipped: SkippedRows(), namespace: ns,
                      budgetBytes: bytes)
        resident.keep(other, cache: syntheticCache(other, shape: shape), skipped: SkippedRows(), namespace: ns,
                      budgetBytes: bytes)
        XCTAssertNil(taken(resident, tokens[..<10]), "only the last is kept")
        resident.keep(tokens, cache: syntheticCache(tokens, shape: shape), skipped: SkippedRows(), namespace: ns,
                      budgetBytes: bytes - 1)
        XCTAssertEqual(resident.tokenCount, 0, "a cache larger than the budget is not kept, and drops the last")
        // A cache holding more tokens than its rows keeps the rows' tokens only.
        var short = syntheticCache(tokens, shape: shape)
        short.truncate(to: 30)
        resident.keep(tokens, cache: short, skipped: SkippedRows(), namespace: ns, budgetBytes: 1 << 30)
        XCTAssertEqual(resident.tokenCount, 30)
        XCTAssertNil(taken(resident, tokens[..<31]))
        let (cache, _) = try XCTUnwrap(taken(resident, tokens[..<30]))
        assertSameKV(cache, syntheticCache(tokens, shape: shape), 0..<30)
    }

    func testTheTreeDropsItWithItsContents() {
        let tree = RadixTree(budgetBytes: 1 << 30)
        tree.keepResident(tokens, cache: syntheticCache(tokens, shape: shape), skipped: SkippedRows(), namespace: ns)
        XCTAssertEqual(tree.stats().residentTokens, 50)
        tree.evictAll()
        XCTAssertEqual(tree.stats().residentTokens, 0)
        tree.keepResident(tokens, cache: syntheticCache(tokens, shape: shape), skipped: SkippedRows(), namespace: ns)
        tree.setBudget(1 << 20)
        XCTAssertEqual(tree.stats().residentTokens, 0)
        let none = RadixTree(budgetBytes: 0)
        none.keepResident(tokens, cache: syntheticCache(tokens, shape: shape), skipped: SkippedRows(), namespace: ns)
        XCTAssertEqual(none.stats().residentTokens, 0, "no RAM tier, nothing kept")
    }
}
