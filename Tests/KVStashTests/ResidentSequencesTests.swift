import XCTest
import KVStashCore
@testable import KVStash

/// The last requests' caches kept beside the radix tree: one is taken only by a request of
/// the same namespace whose tokens it holds, cut to them, once; at most `maxCaches` and a
/// byte limit, the oldest of the namespace keeping the most dropped first; gone with the tree's contents.
final class ResidentSequencesTests: XCTestCase {
    let shape = RadixTreeTests.shape
    let ns = RadixNamespace(modelFingerprint: [1, 2, 3])
    let tokens = Array(0..<50).map { $0 * 7 % 23 }
    var cacheBytes: Int { 50 * shape.cacheBytesPerPosition }  // a 50-row cache's buffers

    private func taken(_ resident: ResidentSequences, _ query: ArraySlice<Int>,
                       ns: RadixNamespace? = nil) -> (KVCache, SkippedRows)? {
        var cache = KVCache(shape: shape)
        var skipped = SkippedRows()
        guard resident.take(query, namespace: ns ?? self.ns, into: &cache, skipped: &skipped) else { return nil }
        return (cache, skipped)
    }

    private func keep(_ resident: ResidentSequences, _ tokens: [Int], limit: Int = 1 << 30) {
        resident.keep(tokens, cache: syntheticCache(tokens, shape: shape), skipped: SkippedRows(), namespace: ns,
                      limitBytes: limit)
    }

    func testTakesTheKeptRowsOfAPrefixOnce() throws {
        let resident = ResidentSequences()
        let full = syntheticCache(tokens, shape: shape)
        var skipped = SkippedRows(layers: [1])
        skipped.add(3..<9)
        skipped.add(40..<45)
        resident.keep(tokens, cache: full, skipped: skipped, namespace: ns, limitBytes: 1 << 30)
        XCTAssertEqual(resident.tokenCount, 50)
        XCTAssertEqual(resident.byteCount, cacheBytes)
        let (cache, left) = try XCTUnwrap(taken(resident, tokens[..<37]))
        XCTAssertEqual(cache.count, 37)
        assertSameKV(cache, full, 0..<37)
        XCTAssertEqual(left.layers, [1])
        XCTAssertEqual(left.ranges, [3..<9], "left-out rows past the cut are forgotten")
        XCTAssertEqual(resident.count, 0, "taken: no longer kept")
        XCTAssertNil(taken(resident, tokens[..<37]))
        XCTAssertEqual(resident.takes, 1)
    }

    func testOnlyTheSameNamespaceAndTokensTakeIt() {
        let resident = ResidentSequences()
        keep(resident, tokens)
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

    func testTheMostRecentCoveringCacheIsTakenAndEachOtherStays() throws {
        let resident = ResidentSequences()
        let a = tokens, b = Array(tokens[..<30]) + Array(repeating: 5, count: 20), c = tokens.map { $0 + 100 }
        keep(resident, a)
        keep(resident, b)
        keep(resident, c)
        XCTAssertEqual(resident.count, 3)
        // Both a and b hold the first 30 tokens: the more recent (b) is taken.
        let (cache, _) = try XCTUnwrap(taken(resident, tokens[..<30]))
        assertSameKV(cache, syntheticCache(b, shape: shape), 0..<30)
        XCTAssertNil(taken(resident, b[..<40]), "b was taken")
        XCTAssertNotNil(taken(resident, a[..<40]), "a is still kept")
        XCTAssertNotNil(taken(resident, c[...]))
        XCTAssertEqual(resident.count, 0)
    }

    func testTheOldestGoPastTheCountOrTheByteLimit() throws {
        let resident = ResidentSequences(maxCaches: 2)
        let seqs = (0..<3).map { i in tokens.map { $0 + 100 * i } }
        seqs.forEach { keep(resident, $0) }
        XCTAssertEqual(resident.count, 2)
        XCTAssertNil(taken(resident, seqs[0][..<10]), "the oldest went past maxCaches")
        XCTAssertNotNil(taken(resident, seqs[1][..<10]))

        let bounded = ResidentSequences()
        seqs.forEach { keep(bounded, $0, limit: 2 * cacheBytes + 1) }
        XCTAssertEqual(bounded.count, 2)
        XCTAssertEqual(bounded.byteCount, 2 * cacheBytes)
        XCTAssertNil(taken(bounded, seqs[0][..<10]), "the oldest went past the byte limit")
        keep(bounded, tokens, limit: cacheBytes - 1)
        XCTAssertEqual(bounded.count, 2, "a cache larger than the limit alone is not kept")
        XCTAssertNil(taken(bounded, tokens[..<10]))

        // A cache holding fewer rows than tokens keeps the rows' tokens only.
        var short = syntheticCache(tokens, shape: shape)
        short.truncate(to: 30)
        let one = ResidentSequences()
        one.keep(tokens, cache: short, skipped: SkippedRows(), namespace: ns, limitBytes: 1 << 30)
        XCTAssertEqual(one.tokenCount, 30)
        XCTAssertNil(taken(one, tokens[..<31]))
        let (cache, _) = try XCTUnwrap(taken(one, tokens[..<30]))
        assertSameKV(cache, syntheticCache(tokens, shape: shape), 0..<30)
    }

    /// A burst of one tenant's requests replaces that tenant's own caches first: another
    /// tenant's single cache stays, though it is the oldest, under the count and the byte limit.
    func testABurstOfOneNamespaceDropsItsOwnCachesFirst() throws {
        let other = RadixNamespace(modelFingerprint: [1, 2, 3], tenantSalt: Array("other".utf8))
        let seqs = (0..<5).map { i in tokens.map { $0 + 100 * i } }
        for limit in [1 << 30, 3 * cacheBytes] {
            let resident = ResidentSequences(maxCaches: 3)
            resident.keep(seqs[0], cache: syntheticCache(seqs[0], shape: shape), skipped: SkippedRows(), namespace: other,
                          limitBytes: limit)
            seqs[1...].forEach { keep(resident, $0, limit: limit) }
            XCTAssertEqual(resident.count, 3, "limit \(limit)")
            XCTAssertNotNil(taken(resident, seqs[0][..<10], ns: other), "the other tenant's cache stays, limit \(limit)")
            XCTAssertNil(taken(resident, seqs[1][..<10]), "the bursting tenant's oldest went, limit \(limit)")
            XCTAssertNil(taken(resident, seqs[2][..<10]), "limit \(limit)")
            XCTAssertNotNil(taken(resident, seqs[3][..<10]), "limit \(limit)")
            XCTAssertNotNil(taken(resident, seqs[4][..<10]), "limit \(limit)")
        }
    }

    func testTheTreeKeepsThemWithinAQuarterOfItsBudgetAndDropsThemWithItsContents() {
        let tree = RadixTree(budgetBytes: 1 << 30)
        tree.keepResident(tokens, cache: syntheticCache(tokens, shape: shape), skipped: SkippedRows(), namespace: ns)
        XCTAssertEqual(tree.stats().residentTokens, 50)
        XCTAssertEqual(tree.stats().residentBytes, cacheBytes)
        tree.evictAll()
        XCTAssertEqual(tree.stats().residentTokens, 0)
        tree.keepResident(tokens, cache: syntheticCache(tokens, shape: shape), skipped: SkippedRows(), namespace: ns)
        tree.setBudget(1 << 20)
        XCTAssertEqual(tree.stats().residentTokens, 0)
        let small = RadixTree(budgetBytes: 4 * cacheBytes - 1)
        small.keepResident(tokens, cache: syntheticCache(tokens, shape: shape), skipped: SkippedRows(), namespace: ns)
        XCTAssertEqual(small.stats().residentTokens, 0, "more than a quarter of the budget")
        let none = RadixTree(budgetBytes: 0)
        none.keepResident(tokens, cache: syntheticCache(tokens, shape: shape), skipped: SkippedRows(), namespace: ns)
        XCTAssertEqual(none.stats().residentTokens, 0, "no RAM tier, nothing kept")
    }
    func testTheTreeMakesRoomForThemInItsBudgetLeastRecentlyUsedFirst() {
        let budget = 4 * cacheBytes
        let tree = RadixTree(budgetBytes: budget)
        // Four 48-token documents of pages (192 rows in a budget of 200); the first is used least recently.
        let docs = (1...4).map { d in Array(0..<48).map { 100 * d + $0 } }
        for doc in docs { tree.insert(doc, from: syntheticCache(doc, shape: shape), namespace: ns) }
        let pages = tree.stats().bytes
        XCTAssertGreaterThan(pages, budget - cacheBytes, "the pages alone leave no room for a resident cache")
        XCTAssertLessThanOrEqual(pages, budget)
        tree.keepResident(tokens, cache: syntheticCache(tokens, shape: shape), skipped: SkippedRows(), namespace: ns)
        let s = tree.stats()
        XCTAssertEqual(s.residentBytes, cacheBytes)
        XCTAssertLessThanOrEqual(s.bytes + s.residentBytes, budget, "pages and resident caches share one budget")
        XCTAssertLessThan(tree.heldTokens(docs[0], namespace: ns), 48, "the least recently used pages went")
        XCTAssertEqual(tree.heldTokens(docs[3], namespace: ns), 48, "the most recent document stays")
        // A taken cache gives its room back to the pages.
        var cache = KVCache(shape: shape)
        var skipped = SkippedRows()
        XCTAssertTrue(tree.resident.take(tokens[...], namespace: ns, into: &cache, skipped: &skipped))
        XCTAssertEqual(tree.stats().residentBytes, 0)
        tree.insert(docs[0], from: syntheticCache(docs[0], shape: shape), namespace: ns)
        XCTAssertEqual(tree.heldTokens(docs[0], namespace: ns), 48)
        XCTAssertLessThanOrEqual(tree.stats().bytes, budget)
    }
}
