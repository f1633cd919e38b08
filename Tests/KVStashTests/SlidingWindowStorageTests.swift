import Foundation
import XCTest
@testable import KVStash
import KVStashCodec
import KVStashCore
import KVStashEngine
import KVStashStore

/// Sliding-window-aware storage (`LayerSplit`): each chunk of a gemma3 model is a block of
/// its global layers and a block of its sliding layers; a hit reads every global block and
/// the sliding blocks of the window before the first new token only; the rows it leaves out
/// are filled with NaN (`poisonsSkippedRows`) before every attention, so an answer equal to
/// the uncached one proves attention never reads them. f32 codec: answers are exact.
final class SlidingWindowStorageTests: XCTestCase {
    /// A tiny gemma3 with a window of 40, 16-token chunks and a 100-token document.
    private struct Setup {
        let m: LoadedModel
        let store: ChunkStore
        let sequence: [Int]
        let question: [Int]
        let chunk = 16
        let window = 40

        init() throws {
            var spec = TinyModelSpec.gemma3
            spec.slidingWindow = 40
            m = try LoadedModel(path: try tinyModelPath(spec))
            store = try ChunkStore(path: temporaryDirectory(), options: StoreOptions(chunkSize: 16))
            sequence = Array(m.documentTokens(syntheticDocument(seed: 41, words: 200), .raw).prefix(100))
            question = Array(m.tokenizer.encode(" What now?").dropFirst(m.tokenizer.encode("").count))
        }

        /// A request path over the store with a tree of its own, poisoning left-out rows.
        func prefixCache(ram: Int = 1 << 30) -> PrefixCache {
            var options = PrefixCacheOptions(codec: .f32, ramBudgetBytes: ram, writeBackQueries: false)
            options.poisonsSkippedRows = true
            return PrefixCache(model: m.model, tokenizer: m.tokenizer, store: store, modelFingerprint: m.fingerprint,
                               options: options)
        }

        var keys: [ChunkKey] { m.prefixCache(store: store).keyer.chain(sequence) }

        func reference(_ tokens: [Int]) throws -> [Int] {
            try referenceGreedy(m.model, m.tokenizer, tokens, maxTokens: 10)
        }

        func bytesRead(_ pc: PrefixCache) -> Int { pc.tiers.counters.reduce(0) { $0 + $1.counters.bytesRead } }

        /// Bytes a cold hit whose spliced prefix ends at `end` (a chunk boundary) must read,
        /// from the stored values' sizes: every global block before `end`, and the sliding
        /// block of each chunk with a row in `[end - window, end)`.
        func expectedBytes(end: Int, everyLayer: Bool = false) throws -> Int {
            try (0..<(end / chunk)).reduce(0) { total, j in
                let global = try XCTUnwrap(store.get(keys[j], recordAccess: false)).count
                let sliding = try XCTUnwrap(store.get(LayerSplit.slidingKey(keys[j]), recordAccess: false)).count
                return total + global + (everyLayer || (j + 1) * chunk > end - window ? sliding : 0)
            }
        }
    }

    func testStoredBlocksSplitTheLayers() throws {
        let s = try Setup()
        defer { try? s.store.close() }
        _ = try s.prefixCache().precompute(tokens: s.sequence, id: "doc", name: "doc")
        let attention = s.m.model.config.layerAttention
        let sliding = attention.indices.filter { attention[$0].window != nil }
        let global = attention.indices.filter { attention[$0].window == nil }
        XCTAssertFalse(sliding.isEmpty)
        XCTAssertFalse(global.isEmpty)
        for key in s.keys {
            let g = try KVBlockDecoder().validate(try XCTUnwrap(s.store.get(key)))
            XCTAssertEqual(g.carriedLayers, global)
            XCTAssertEqual(g.chunkKey, key.bytes)
            let slidingKey = LayerSplit.slidingKey(key)
            XCTAssertNotEqual(slidingKey, key)
            let h = try KVBlockDecoder().validate(try XCTUnwrap(s.store.get(slidingKey)))
            XCTAssertEqual(h.carriedLayers, sliding)
            XCTAssertEqual(h.chunkKey, slidingKey.bytes)
        }
        // A model without sliding layers keeps one block of every layer per chunk.
        let llama = try LoadedModel(path: try tinyModelPath())
        XCTAssertNil(LayerSplit(llama.model.config.layerAttention))
    }

    /// Cold hits (new tree) at prefixes ending before, at and after the window and off chunk
    /// boundaries read the global blocks of every spliced chunk and the sliding blocks of the
    /// window's chunks only; then a hot hit from the tree (whose pages lack the sliding rows
    /// the cold hit left out); both equal the uncached answer.
    func testColdHitReadsGlobalWholeAndSlidingWindowOnly() throws {
        let s = try Setup()
        defer { try? s.store.close() }
        _ = try s.prefixCache().precompute(tokens: s.sequence, id: "doc", name: "doc")
        for cut in [20, 32, 40, 48, 57, 80, 96] {
            let tokens = Array(s.sequence[..<cut]) + s.question
            let reference = try s.reference(tokens)
            let pc = s.prefixCache()
            let cold = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: 10))
            let end = cut / s.chunk * s.chunk
            XCTAssertEqual(cold.tokens, reference, "cold, cut \(cut)")
            XCTAssertEqual(cold.sources.disk, end, "cut \(cut)")
            XCTAssertEqual(s.bytesRead(pc), try s.expectedBytes(end: end), "cut \(cut)")
            if end > s.window + s.chunk {
                XCTAssertLessThan(s.bytesRead(pc), try s.expectedBytes(end: end, everyLayer: true), "cut \(cut)")
            }
            let hot = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: 10))
            XCTAssertEqual(hot.tokens, reference, "hot, cut \(cut)")
            XCTAssertEqual(hot.sources.ram, tokens.count - 1, "cut \(cut)")
        }
    }

    /// A hot match that is shorter than the cold hit that filled the tree needs sliding rows
    /// the tree's pages lack: they are read from the sliding blocks; without them (RAM only)
    /// the match is cut back and recomputed.
    func testShorterHotMatchReadsTheSlidingRowsItLacks() throws {
        let s = try Setup()
        defer { try? s.store.close() }
        _ = try s.prefixCache().precompute(tokens: s.sequence, id: "doc", name: "doc")
        let pc = s.prefixCache()
        _ = try pc.generate(tokens: s.sequence + s.question, options: GenerationOptions(maxTokens: 4))
        let tokens = Array(s.sequence[..<53]) + s.question
        let before = s.bytesRead(pc)
        let r = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: 10))
        XCTAssertEqual(r.tokens, try s.reference(tokens))
        XCTAssertEqual(r.sources.ram, 53)
        XCTAssertGreaterThan(s.bytesRead(pc) - before, 0, "the window's sliding blocks came from the store")

        let ramOnly = PrefixCache(model: s.m.model, tokenizer: s.m.tokenizer, store: nil, modelFingerprint: s.m.fingerprint,
                                  options: pc.options, tree: pc.tree)
        pc.tree.evictAll()
        _ = try pc.generate(tokens: s.sequence + s.question, options: GenerationOptions(maxTokens: 4))  // cold: skips rows
        let shorter = try ramOnly.generate(tokens: tokens, options: GenerationOptions(maxTokens: 10))
        XCTAssertEqual(shorter.tokens, try s.reference(tokens))
        XCTAssertLessThan(shorter.sources.ram, 53 - s.window + s.chunk, "cut back before the window it cannot fill")
    }

    /// The sliding rows a shorter hot match reads back (or recomputes, without a store)
    /// complete the tree's pages that lacked them: the same request again reads nothing from
    /// the store and splices every reusable token from RAM; each answer is the uncached one.
    func testRowsReadOrRecomputedCompleteTheTreePages() throws {
        let s = try Setup()
        defer { try? s.store.close() }
        _ = try s.prefixCache().precompute(tokens: s.sequence, id: "doc", name: "doc")
        let pc = s.prefixCache()
        let tokens = Array(s.sequence[..<53]) + s.question
        let reference = try s.reference(tokens)
        _ = try pc.generate(tokens: s.sequence + s.question, options: GenerationOptions(maxTokens: 4))  // cold: skips rows
        var before = s.bytesRead(pc)
        let second = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: 10))
        XCTAssertEqual(second.tokens, reference)
        XCTAssertGreaterThan(s.bytesRead(pc) - before, 0, "the window's sliding rows came from the store")
        XCTAssertEqual(pc.tree.stats().completedPages, 3, "the pages of rows 0..<48")
        before = s.bytesRead(pc)
        let third = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: 10))
        XCTAssertEqual(third.tokens, reference)
        XCTAssertEqual(third.sources.ram, tokens.count - 1)
        XCTAssertEqual(s.bytesRead(pc) - before, 0, "every row it needs is in RAM")
        XCTAssertEqual(pc.tree.core.withLock { $0.recount().bytes }, pc.tree.stats().bytes)

        // RAM only: the rows are recomputed, and the pages completed by them.
        let ramOnly = PrefixCache(model: s.m.model, tokenizer: s.m.tokenizer, store: nil, modelFingerprint: s.m.fingerprint,
                                  options: pc.options, tree: pc.tree)
        pc.tree.evictAll()
        _ = try pc.generate(tokens: s.sequence + s.question, options: GenerationOptions(maxTokens: 4))
        let recomputed = try ramOnly.generate(tokens: tokens, options: GenerationOptions(maxTokens: 10))
        XCTAssertEqual(recomputed.tokens, reference)
        XCTAssertLessThan(recomputed.sources.ram, 53 - s.window + s.chunk, "cut back before the window it cannot fill")
        let again = try ramOnly.generate(tokens: tokens, options: GenerationOptions(maxTokens: 10))
        XCTAssertEqual(again.tokens, reference)
        XCTAssertEqual(again.sources.ram, tokens.count - 1, "the recomputed rows completed the pages")
    }

    /// A store whose byte budget forces eviction while a document is precomputed keeps each
    /// chunk's two blocks together (a chunk is stored whole or not at all), its counters
    /// agree with what it holds, and a query over what is left still answers exactly.
    func testBudgetEvictionKeepsEachChunksBlocksTogether() throws {
        let s = try Setup()
        defer { try? s.store.close() }
        _ = try s.prefixCache().precompute(tokens: s.sequence, id: "doc", name: "doc")
        let whole = try s.store.stats().bytes
        let store = try ChunkStore(path: temporaryDirectory(), options: StoreOptions(chunkSize: 16, byteBudget: whole / 2))
        defer { try? store.close() }
        var options = PrefixCacheOptions(codec: .f32, ramBudgetBytes: 0, writeBackQueries: false)
        options.poisonsSkippedRows = true
        let pc = PrefixCache(model: s.m.model, tokenizer: s.m.tokenizer, store: store, modelFingerprint: s.m.fingerprint,
                             options: options)
        _ = try pc.precompute(tokens: s.sequence, id: "doc", name: "doc")
        let stats = try store.stats()
        XCTAssertGreaterThan(stats.evictions, 0)
        let listed = try store.list()
        let firsts = Set(listed.map(\.key).filter { key in listed.contains { $0.key == key.slidingLayersKey } })
        XCTAssertEqual(Set(listed.map(\.key)), firsts.union(firsts.map(\.slidingLayersKey)), "no block without its pair")
        XCTAssertFalse(firsts.isEmpty)
        XCTAssertEqual(stats.entries, listed.count)
        XCTAssertEqual(stats.bytes, listed.reduce(0) { $0 + $1.meta.byteSize })
        let tokens = s.sequence + s.question
        let r = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: 10))
        XCTAssertEqual(r.tokens, try s.reference(tokens))
        XCTAssertGreaterThan(r.sources.disk, 0)
    }

    /// A missing, then a damaged, sliding block of a chunk the window needs makes that chunk
    /// a hole: it is recomputed, the chunks after it still splice, the answer is unchanged;
    /// the damaged block is counted and removed.
    func testMissingOrDamagedSlidingBlockEndsThePrefixThere() throws {
        let s = try Setup()
        defer { try? s.store.close() }
        _ = try s.prefixCache().precompute(tokens: s.sequence, id: "doc", name: "doc")
        let tokens = Array(s.sequence[..<80]) + s.question  // window [40, 80): chunks 2, 3, 4
        let reference = try s.reference(tokens)
        let slidingKey = LayerSplit.slidingKey(s.keys[3])
        let value = try XCTUnwrap(s.store.get(slidingKey))
        let meta = try XCTUnwrap(s.store.meta(slidingKey))

        try s.store.evict(.keys([slidingKey]))
        var r = try s.prefixCache(ram: 0).generate(tokens: tokens, options: GenerationOptions(maxTokens: 10))
        XCTAssertEqual(r.tokens, reference, "missing")
        XCTAssertEqual(r.sources.disk, 4 * s.chunk, "chunk 3 is recomputed like a hole, chunk 4 still spliced")

        var damaged = value
        damaged[damaged.count - 9] ^= 0x40
        try s.store.put(slidingKey, value: damaged, meta: meta)
        r = try s.prefixCache(ram: 0).generate(tokens: tokens, options: GenerationOptions(maxTokens: 10))
        XCTAssertEqual(r.tokens, reference, "damaged")
        XCTAssertEqual(r.sources.corruptChunks, 1)
        XCTAssertEqual(r.sources.disk, 4 * s.chunk)
        XCTAssertNil(try s.store.get(slidingKey), "the damaged block is removed")

        // A hole in the global chain before the window: the chunks after it still splice.
        try s.store.evict(.keys([s.keys[1]]))
        r = try s.prefixCache(ram: 0).generate(tokens: tokens, options: GenerationOptions(maxTokens: 10))
        XCTAssertEqual(r.tokens, reference, "global hole")
        XCTAssertEqual(r.sources.disk, 3 * s.chunk, "chunks 0, 2 and 4 (1 and 3 recomputed)")
    }

    /// The store's admin operations see both blocks: a document links them (evicting the
    /// document removes both), and a deep verify (as `kvstash verify --deep` runs it)
    /// finds and removes a damaged sliding block.
    func testAdminSeesBothBlocks() throws {
        let s = try Setup()
        defer { try? s.store.close() }
        _ = try s.prefixCache().precompute(tokens: s.sequence, id: "doc", name: "doc")
        let keys = s.keys
        let slidingKey = LayerSplit.slidingKey(keys[2])
        let linked = Set(try s.store.list(filter: ChunkFilter(docID: "doc")).map(\.key))
        XCTAssertTrue(linked.contains(keys[2]) && linked.contains(slidingKey))
        var damaged = try XCTUnwrap(s.store.get(slidingKey))
        damaged[damaged.count / 2] ^= 0x11
        let meta = try XCTUnwrap(s.store.meta(slidingKey))
        try s.store.evict(.keys([slidingKey]))  // a put never replaces a stored value
        try s.store.put(slidingKey, value: damaged, meta: meta)
        let report = try s.store.verify(keyedValidator: { key, value in
            (try? KVBlockDecoder().validate(value)).map { $0.chunkKey == key.bytes } ?? false
        })
        XCTAssertEqual(report.corrupt, [slidingKey])
        XCTAssertNil(try s.store.get(slidingKey))
        _ = try s.store.evict(.document("doc"))
        XCTAssertNil(try s.store.get(keys[3]))
        XCTAssertNil(try s.store.get(LayerSplit.slidingKey(keys[3])))
    }
}
