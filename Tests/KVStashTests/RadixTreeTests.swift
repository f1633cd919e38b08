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
    var pageBytes: Int { KVPage.size * Self.shape.cacheBytesPerPosition }

    private func invariants(_ tree: RadixTree, file: StaticString = #filePath, line: UInt = #line) {
        let real = tree.core.withLock { $0.recount() }
        let s = tree.stats()
        XCTAssertEqual(real.nodes, s.nodes, "nodes", file: file, line: line)
        XCTAssertEqual(real.tokens, s.tokens, "tokens", file: file, line: line)
        XCTAssertEqual(real.bytes, s.bytes, "bytes", file: file, line: line)
        XCTAssertEqual(real.locked, s.lockedNodes, "locked", file: file, line: line)
        XCTAssertEqual(s.bytes, s.tokens * Self.shape.cacheBytesPerPosition, "bytes per token", file: file, line: line)
    }

    /// Matches `query` and checks the spliced KV equals the KV computed from scratch.
    private func matchAndCheck(_ tree: RadixTree, _ query: [Int], ns: RadixNamespace? = nil,
                               file: StaticString = #filePath, line: UInt = #line) -> Int {
        let m = tree.match(query, namespace: ns ?? self.ns)
        defer { tree.release(m.lease) }
        XCTAssertLessThanOrEqual(m.tokenCount, m.pages.count * KVPage.size, file: file, line: line)
        XCTAssertGreaterThan(m.tokenCount, (m.pages.count - 1) * KVPage.size, file: file, line: line)
        var cache = KVCache(shape: Self.shape)
        cache.splice(m.pages, rows: m.tokenCount)
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
        // Diverges inside the third page: two pages and the rows of the third before it.
        XCTAssertEqual(matchAndCheck(tree, Array(0..<40) + [999, 999, 999, 999]), 40)
        // Diverges inside the first page: its first rows.
        XCTAssertEqual(matchAndCheck(tree, [0, 1, 2, 7]), 3)
        XCTAssertEqual(matchAndCheck(tree, [7]), 0)
        // A query ending inside a page takes that page's leading rows.
        XCTAssertEqual(matchAndCheck(tree, Array(0..<63)), 63)
        let nodes = tree.stats().nodes
        insert(tree, Array(0..<20))
        XCTAssertEqual(tree.stats().tokens, 96, "nothing new: the tree holds all of it already")
        XCTAssertEqual(tree.stats().nodes, nodes, "and nothing was split for it")
        invariants(tree)
    }

    func testThePartialLastPageIsKeptSoAnExactRepeatMatchesEveryToken() {
        let tree = RadixTree(budgetBytes: 1 << 30)
        let a = Array(0..<45)
        insert(tree, a)
        XCTAssertEqual(tree.stats().tokens, 45)
        XCTAssertEqual(matchAndCheck(tree, a), 45)
        XCTAssertEqual(matchAndCheck(tree, Array(a.dropLast())), 44, "the repeat minus the token prefilled for logits")
        XCTAssertEqual(matchAndCheck(tree, a + [7, 7]), 45)
        // A longer run through the partial page replaces it.
        insert(tree, a + [50, 51])
        XCTAssertEqual(tree.stats().tokens, 47)
        XCTAssertEqual(matchAndCheck(tree, a + [50, 51]), 47)
        XCTAssertEqual(matchAndCheck(tree, a), 45)
        // Another continuation after the same whole pages is kept beside it.
        insert(tree, Array(0..<32) + [9, 9, 9])
        XCTAssertEqual(tree.stats().tokens, 50)
        XCTAssertEqual(matchAndCheck(tree, Array(0..<32) + [9, 9, 9]), 35)
        // A whole page through it drops it.
        insert(tree, a + Array(50..<66))
        XCTAssertEqual(matchAndCheck(tree, a + Array(50..<66)), 61)
        invariants(tree)
        tree.evictAll()
        XCTAssertEqual(tree.stats().bytes, 0)
        XCTAssertEqual(tree.stats().tokens, 0)
        invariants(tree)
    }

    /// A radix page holds f16 K after RoPE and V: a third of the three f32 tensors per
    /// layer a position took before (69,120 -> 23,040 bytes per token for SmolLM2-135M).
    func testPagesHoldAThirdOfTheF32Bytes() {
        let smol = KVShape(layers: 30, kvHeads: 3, headDim: 64)
        var cache = KVCache(shape: smol)
        cache.extend(by: KVPage.size)
        let page = KVPage(from: cache, start: 0)
        XCTAssertEqual(page.byteCount / KVPage.size, 23_040)
        XCTAssertEqual(page.byteCount * 3, KVPage.size * 3 * smol.layers * smol.kvDim * MemoryLayout<Float>.size)
    }

    func testRandomInsertMatchAgainstBruteForce() {
        var rng = SystemRandomNumberGenerator()
        let tree = RadixTree(budgetBytes: 1 << 40)
        var inserted: [[Int]] = []
        /// Whole pages shared with an inserted sequence, and the longest common prefix
        /// with one of at least a page (a node keeps a few partial pages, not all).
        func reference(_ q: [Int]) -> (pages: Int, tokens: Int) {
            let common = inserted.filter { $0.count >= KVPage.size }.map { s -> Int in
                var l = 0
                while l < min(s.count, q.count), s[l] == q[l] { l += 1 }
                return l
            }
            let whole = zip(inserted.filter { $0.count >= KVPage.size }, common).map { s, l in
                min(l, s.count - s.count % KVPage.size) / KVPage.size * KVPage.size
            }
            return (whole.max() ?? 0, common.max() ?? 0)
        }
        func check(_ q: [Int], _ what: String) {
            let got = matchAndCheck(tree, q), want = reference(q)
            XCTAssertGreaterThanOrEqual(got, want.pages, what)
            XCTAssertLessThanOrEqual(got, want.tokens, what)
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
                check(q, "step \(step)")
            }
        }
        for s in inserted { check(s, "inserted \(s.count)") }
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

    /// Pages inserted without a layer's rows (`SkippedRows`) are completed by a later insert
    /// whose cache holds them, whole pages and the partial last page, with the bytes
    /// accounted; pages the later cache still lacks stay as they are.
    func testInsertCompletesPagesThatLackLayers() {
        let tokens = Array(0..<56), cache = syntheticCache(tokens)  // 3 whole pages + 8 rows
        let lacking = { (end: Int) in
            var s = SkippedRows(layers: [1])
            s.add(0..<end)
            return s
        }
        let skippedBytes = { (pages: [KVPage]) in pages.reduce(0) { $0 + ($1.skippedLayers.isEmpty ? 0 : 1) } }
        let tree = RadixTree(budgetBytes: 1 << 30)
        XCTAssertEqual(tree.insert(tokens, from: cache, namespace: ns, skipped: lacking(52)), 56)
        var m = tree.match(tokens, namespace: ns, lock: false)
        XCTAssertEqual(m.pages.map(\.skippedLayers), [[1], [1], [1], [1]])
        XCTAssertEqual(tree.stats().bytes, 56 * Self.shape.cacheBytesPerPosition / 2)

        XCTAssertEqual(tree.insert(tokens, from: cache, namespace: ns, skipped: lacking(16)), 0, "nothing added")
        m = tree.match(tokens, namespace: ns, lock: false)
        XCTAssertEqual(m.pages.map(\.skippedLayers), [[1], [], [], []], "pages 1, 2 and the partial page completed")
        XCTAssertEqual(tree.stats().completedPages, 3)
        XCTAssertEqual(tree.stats().bytes, (16 / 2 + 40) * Self.shape.cacheBytesPerPosition)
        XCTAssertEqual(tree.core.withLock { $0.recount().bytes }, tree.stats().bytes)

        XCTAssertEqual(tree.insert(tokens, from: cache, namespace: ns, skipped: lacking(52)), 0)
        XCTAssertEqual(tree.stats().completedPages, 3, "a cache lacking more completes nothing")
        XCTAssertEqual(tree.insert(Array(tokens[..<20]), from: cache, namespace: ns), 0)
        XCTAssertEqual(skippedBytes(tree.match(tokens, namespace: ns, lock: false).pages), 0)
        XCTAssertEqual(tree.stats().completedPages, 4)
        XCTAssertEqual(matchAndCheck(tree, tokens), 56)
        invariants(tree)

        // Completion that exceeds the budget evicts as an insert does.
        let small = RadixTree(budgetBytes: 56 * Self.shape.cacheBytesPerPosition / 2)
        small.insert(tokens, from: cache, namespace: ns, skipped: lacking(56))
        XCTAssertEqual(small.stats().evictedNodes, 0)
        small.insert(tokens, from: cache, namespace: ns)
        XCTAssertLessThanOrEqual(small.stats().bytes, small.stats().budget)
        XCTAssertGreaterThan(small.stats().evictedNodes, 0)
        XCTAssertEqual(small.core.withLock { $0.recount().bytes }, small.stats().bytes)
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
                            c.splice(m.pages, rows: m.tokenCount)
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
