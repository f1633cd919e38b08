import XCTest
import KVStashCore
@testable import KVStash

/// KV that depends on the whole prefix, like a real model's: row i is a function of
/// tokens[0...i], so a wrong splice (wrong node, wrong split) shows up as wrong values.
func syntheticCache(_ tokens: [Int], shape: KVShape = RadixTreeTests.shape) -> KVCache {
    var cache = KVCache(shape: shape, capacity: tokens.count)
    cache.extend(by: tokens.count)
    var h: UInt64 = 1469598103934665603
    for (i, t) in tokens.enumerated() {
        h = (h ^ UInt64(t &+ 1)) &* 1099511628211
        for layer in 0..<shape.layers {
            for (k, kind) in [KVKind.key, .value].enumerated() {
                cache.withMutableRows(layer: layer, kind, i..<(i + 1)) { row in
                    for j in 0..<row.count {
                        row[j] = Float((h &+ UInt64(layer * 7 + k * 13 + j * 31)) % 10007)
                    }
                }
            }
        }
    }
    return cache
}

func assertSameKV(_ a: KVCache, _ b: KVCache, _ range: Range<Int>, file: StaticString = #filePath, line: UInt = #line) {
    for layer in 0..<a.shape.layers {
        for kind in [KVKind.key, .value] {
            XCTAssertEqual(a.rows(layer: layer, kind, range), b.rows(layer: layer, kind, range),
                           "layer \(layer) \(kind)", file: file, line: line)
        }
    }
}

final class RadixTreeTests: XCTestCase {
    static let shape = KVShape(layers: 2, kvHeads: 1, headDim: 4)
    let ns = RadixNamespace(modelFingerprint: [1, 2, 3])
    var pageBytes: Int { KVPage.size * Self.shape.bytesPerPosition }

    private func invariants(_ tree: RadixTree, file: StaticString = #filePath, line: UInt = #line) {
        let real = tree.core.withLock { $0.recount() }
        let s = tree.stats()
        XCTAssertEqual(real.nodes, s.nodes, "nodes", file: file, line: line)
        XCTAssertEqual(real.tokens, s.tokens, "tokens", file: file, line: line)
        XCTAssertEqual(real.bytes, s.bytes, "bytes", file: file, line: line)
        XCTAssertEqual(real.locked, s.lockedNodes, "locked", file: file, line: line)
        XCTAssertEqual(s.bytes, s.tokens / KVPage.size * pageBytes, "bytes per page", file: file, line: line)
    }

    /// Matches `query` and checks the spliced KV equals the KV computed from scratch.
    private func matchAndCheck(_ tree: RadixTree, _ query: [Int], ns: RadixNamespace? = nil,
                               file: StaticString = #filePath, line: UInt = #line) -> Int {
        let m = tree.match(query, namespace: ns ?? self.ns)
        defer { tree.release(m.lease) }
        XCTAssertEqual(m.pages.count * KVPage.size, m.tokenCount, file: file, line: line)
        var cache = KVCache(shape: Self.shape)
        cache.splice(m.pages)
        XCTAssertEqual(cache.count, m.tokenCount, file: file, line: line)
        if m.tokenCount > 0 {
            assertSameKV(cache, syntheticCache(Array(query[..<m.tokenCount])), 0..<m.tokenCount, file: file, line: line)
        }
        return m.tokenCount
    }

    private func insert(_ tree: RadixTree, _ tokens: [Int], ns: RadixNamespace? = nil) {
        tree.insert(tokens, from: syntheticCache(tokens), namespace: ns ?? self.ns)
    }

    func testSpliceAppendsAtTheEnd() {
        let tokens = Array(0..<48)
        let full = syntheticCache(tokens)
        var cache = KVCache(shape: Self.shape)
        cache.append(contentsOf: full, 0..<16)
        cache.splice(full.pages(16..<48))
        XCTAssertEqual(cache.count, 48)
        assertSameKV(cache, full, 0..<48)
    }

    func testSplitAndDivergence() {
        let tree = RadixTree(budgetBytes: 1 << 30)
        let a = Array(0..<64)
        let b = Array(0..<32) + Array(100..<132)
        insert(tree, a)
        insert(tree, b)
        XCTAssertEqual(tree.stats().nodes, 3, "a split into shared head + two tails")
        XCTAssertEqual(tree.stats().tokens, 96)
        XCTAssertEqual(matchAndCheck(tree, a), 64)
        XCTAssertEqual(matchAndCheck(tree, b), 64)
        // Diverges inside the third page: matches two pages.
        XCTAssertEqual(matchAndCheck(tree, Array(0..<40) + [999, 999, 999, 999]), 32)
        // Diverges inside the first page: nothing.
        XCTAssertEqual(matchAndCheck(tree, [0, 1, 2, 7]), 0)
        // A partial last page is not inserted and not matched.
        XCTAssertEqual(matchAndCheck(tree, Array(0..<63)), 48)
        insert(tree, Array(0..<20))
        XCTAssertEqual(tree.stats().tokens, 96, "nothing new: only the first whole page, already there")
        invariants(tree)
    }

    func testRandomInsertMatchAgainstBruteForce() {
        var rng = SystemRandomNumberGenerator()
        let tree = RadixTree(budgetBytes: 1 << 40)
        var inserted: [[Int]] = []
        func reference(_ q: [Int]) -> Int {
            inserted.map { s -> Int in
                let whole = s.count - s.count % KVPage.size
                var l = 0
                while l < min(whole, q.count), s[l] == q[l] { l += 1 }
                return l - l % KVPage.size
            }.max() ?? 0
        }
        func randomSequence() -> [Int] {
            var base: [Int] = []
            if let s = inserted.randomElement(using: &rng), Bool.random(using: &rng) {
                base = Array(s.prefix(Int.random(in: 0...s.count, using: &rng)))
            }
            return base + (0..<Int.random(in: 0...70, using: &rng)).map { _ in Int.random(in: 0..<3, using: &rng) }
        }
        for step in 0..<600 {
            let q = randomSequence()
            if step % 3 == 0 {
                insert(tree, q)
                inserted.append(q)
            } else {
                XCTAssertEqual(matchAndCheck(tree, q), reference(q), "step \(step)")
            }
        }
        for s in inserted { XCTAssertEqual(matchAndCheck(tree, s), reference(s)) }
        invariants(tree)
        XCTAssertEqual(tree.stats().lockedNodes, 0)
    }

    func testEvictionNeverTouchesLockedNodes() {
        let tree = RadixTree(budgetBytes: 4 * pageBytes)
        let a = Array(0..<64), b = Array(1000..<1064), c = Array(2000..<2064)
        insert(tree, a)
        let held = tree.match(a, namespace: ns)
        XCTAssertEqual(held.tokenCount, 64)
        insert(tree, b)  // over budget: only b is evictable
        XCTAssertEqual(tree.match(a, namespace: ns, lock: false).tokenCount, 64)
        XCTAssertEqual(tree.match(b, namespace: ns, lock: false).tokenCount, 0)
        XCTAssertEqual(tree.stats().lockedNodes, 1)
        invariants(tree)
        tree.release(held.lease)
        XCTAssertEqual(tree.stats().lockedNodes, 0)
        insert(tree, c)  // now a (older) goes
        XCTAssertEqual(tree.match(a, namespace: ns, lock: false).tokenCount, 0)
        XCTAssertEqual(matchAndCheck(tree, c), 64)
        XCTAssertLessThanOrEqual(tree.stats().bytes, 4 * pageBytes)
        invariants(tree)
    }

    func testLockSurvivesLaterSplit() {
        let tree = RadixTree(budgetBytes: 1 << 30)
        let a = Array(0..<64)
        insert(tree, a)
        let held = tree.match(a, namespace: ns)
        insert(tree, Array(0..<32) + Array(500..<532))  // splits the locked node
        XCTAssertEqual(tree.stats().lockedNodes, 2, "the new head inherits the lock")
        tree.setBudget(0)
        XCTAssertEqual(matchAndCheck(tree, a), 64, "locked path kept at budget 0")
        tree.release(held.lease)
        XCTAssertEqual(tree.stats().lockedNodes, 0)
        XCTAssertEqual(tree.stats().bytes, 0, "released at budget 0: all evicted")
        invariants(tree)
    }

    func testLeastRecentlyUsedGoesFirst() {
        let tree = RadixTree(budgetBytes: 3 * 2 * pageBytes)
        let seqs = (0..<4).map { i in Array((i * 100)..<(i * 100 + 32)) }
        insert(tree, seqs[0]); insert(tree, seqs[1]); insert(tree, seqs[2])
        _ = matchAndCheck(tree, seqs[0])  // touch 0: 1 is now least recent
        insert(tree, seqs[3])
        XCTAssertEqual(tree.match(seqs[0], namespace: ns, lock: false).tokenCount, 32)
        XCTAssertEqual(tree.match(seqs[1], namespace: ns, lock: false).tokenCount, 0)
        XCTAssertEqual(tree.match(seqs[2], namespace: ns, lock: false).tokenCount, 32)
        XCTAssertEqual(tree.match(seqs[3], namespace: ns, lock: false).tokenCount, 32)
        XCTAssertEqual(tree.stats().evictedNodes, 1)
        invariants(tree)
    }

    func testEvictionWalksUpToParents() {
        let tree = RadixTree(budgetBytes: 1 << 30)
        insert(tree, Array(0..<64))
        insert(tree, Array(0..<32) + Array(500..<532))
        XCTAssertEqual(tree.stats().nodes, 3)
        tree.evictAll()
        XCTAssertEqual(tree.stats().nodes, 0, "leaves go, then the parent that became a leaf")
        XCTAssertEqual(tree.stats().bytes, 0)
        invariants(tree)
    }

    func testNamespacesNeverShare() {
        let tree = RadixTree(budgetBytes: 1 << 30)
        let a = Array(0..<64)
        let salted = RadixNamespace(modelFingerprint: ns.modelFingerprint, tenantSalt: [9])
        let otherModel = RadixNamespace(modelFingerprint: [4, 5, 6])
        insert(tree, a)
        XCTAssertEqual(matchAndCheck(tree, a, ns: salted), 0)
        XCTAssertEqual(matchAndCheck(tree, a, ns: otherModel), 0)
        insert(tree, a, ns: salted)
        XCTAssertEqual(matchAndCheck(tree, a, ns: salted), 64)
        XCTAssertEqual(tree.stats().tokens, 128, "each namespace holds its own copy")
    }

    func testConcurrentUseKeepsInvariants() async {
        let tree = RadixTree(budgetBytes: 40 * pageBytes)
        let ns = self.ns
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var rng = SystemRandomNumberGenerator()
                    for _ in 0..<150 {
                        let q = Array(0..<(16 * Int.random(in: 0..<3, using: &rng)))
                            + (0..<Int.random(in: 0...64, using: &rng)).map { _ in Int.random(in: 0..<2, using: &rng) + worker % 2 }
                        if Bool.random(using: &rng) {
                            tree.insert(q, from: syntheticCache(q), namespace: ns)
                        } else {
                            let m = tree.match(q, namespace: ns)
                            var c = KVCache(shape: Self.shape)
                            c.splice(m.pages)
                            if m.tokenCount > 0 {
                                let want = syntheticCache(Array(q[..<m.tokenCount]))
                                let ok = c.rows(layer: 1, .value, 0..<m.tokenCount) == want.rows(layer: 1, .value, 0..<m.tokenCount)
                                XCTAssertTrue(ok)
                            }
                            tree.release(m.lease)
                        }
                    }
                }
            }
        }
        XCTAssertEqual(tree.stats().lockedNodes, 0)
        XCTAssertLessThanOrEqual(tree.stats().bytes, 40 * pageBytes)
        invariants(tree)
    }
}
