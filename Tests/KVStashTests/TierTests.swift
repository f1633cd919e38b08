import Foundation
import XCTest
@testable import KVStash
import KVStashCodec
import KVStashEngine
import KVStashStore

/// Frontends with local stores of their own over one shared tier, on the tiny model.
struct SharedTierHarness {
    let m: LoadedModel
    let chunkSize = 32

    init() throws { m = try LoadedModel(path: tinyModelPath()) }

    /// A frontend: its local store and the shared tier.
    struct Frontend {
        let store: ChunkStore
        let tiers: ChunkTiers
        let cache: PrefixCache
    }

    /// A frontend with its own local store: a new one, or the one at `storePath`.
    func frontend(shared: (any SharedChunkTier)?, ram: Int = 0, storePath: String? = nil,
                  options: SharedTierOptions = SharedTierOptions()) throws -> Frontend {
        let store = try ChunkStore(path: storePath ?? temporaryDirectory(), options: StoreOptions(chunkSize: chunkSize))
        let tiers = ChunkTiers(local: store, shared: shared, options: options)
        let cache = PrefixCache(model: m.model, tokenizer: m.tokenizer, store: store, modelFingerprint: m.fingerprint,
                                options: PrefixCacheOptions(codec: .f32, ramBudgetBytes: ram, writeBackQueries: true),
                                tiers: tiers)
        return Frontend(store: store, tiers: tiers, cache: cache)
    }

    /// Precomputes `doc` on a new frontend A and waits until its chunks reached `shared`.
    func precomputeOnA(_ doc: String, shared: any SharedChunkTier) throws -> (keys: [ChunkKey], result: PrecomputeResult) {
        let a = try frontend(shared: shared)
        defer { try? a.store.close() }
        let tokens = m.documentTokens(doc)
        let r = try a.cache.precompute(tokens: tokens, id: "doc", name: "doc")
        a.tiers.flush()
        XCTAssertEqual(a.tiers.publisher?.counters.published, r.chunks + 1, "every chunk and the tail published")
        return (a.cache.keyer.chain(tokens), r)
    }

    /// Asks `question` about `doc` on `b`: the answer must equal the uncached one.
    func ask(_ b: Frontend, _ doc: String, _ question: String, maxTokens: Int = 16) throws -> RequestResult {
        let tokens = m.queryTokens(doc, question)
        let reference = try referenceGreedy(m.model, m.tokenizer, tokens, maxTokens: maxTokens)
        let r = try b.cache.generate(tokens: tokens, options: GenerationOptions(maxTokens: maxTokens))
        XCTAssertEqual(r.tokens, reference, question)
        XCTAssertEqual(r.sources.ram + r.sources.disk + r.sources.shared + r.sources.prefilled, tokens.count)
        return r
    }
}

/// Two frontends with separate local stores over one in-memory shared tier: what one
/// precomputes the other splices, token for token equal to the uncached answer (f32), past
/// holes, damaged blocks, blocks of an unknown version and a tier that is down.
final class TierTests: XCTestCase {
    func testColdQueryOnSecondFrontendTakesTheSharedPrefix() throws {
        let h = try SharedTierHarness()
        let shared = MemoryChunkTier(name: "shared")
        let doc = syntheticDocument(seed: 7, words: 150)
        let (keys, pre) = try h.precomputeOnA(doc, shared: shared)
        XCTAssertGreaterThan(pre.tailTokens, 0)
        let b = try h.frontend(shared: shared)
        defer { try? b.store.close() }
        let cold = try h.ask(b, doc, "What is the document about?")
        XCTAssertEqual(cold.sources.shared, pre.tokens, "every full chunk and the tail from the shared tier")
        XCTAssertEqual(cold.sources.disk, 0)
        XCTAssertEqual(b.store.probe(keys), keys.map { _ in true }, "shared hits copied into B's store")
        let counters = try XCTUnwrap(b.tiers.counters.first { $0.name == "shared" }?.counters)
        XCTAssertEqual(counters.hits, keys.count + 1)
        XCTAssertEqual(counters.copiedToLocal, keys.count + 1)
        XCTAssertGreaterThan(counters.bytesRead, 0)
        // The same question again, RAM off: now from B's own store, with the prompt tail the
        // first answer left there (all but the last token).
        let local = try h.ask(b, doc, "What is the document about?")
        XCTAssertEqual(local.sources.disk, h.m.queryTokens(doc, "What is the document about?").count - 1)
        XCTAssertEqual(local.sources.shared, 0)
    }

    func testHoleDamageAndUnknownVersionInTheSharedTier() throws {
        let h = try SharedTierHarness()
        let shared = MemoryChunkTier(name: "shared")
        let doc = syntheticDocument(seed: 8, words: 200)
        let (keys, pre) = try h.precomputeOnA(doc, shared: shared)
        XCTAssertGreaterThanOrEqual(keys.count, 5)
        shared.overwrite(keys[1], with: nil)  // a hole (evicted)
        var damaged = try XCTUnwrap(shared.value(keys[2]))
        damaged[damaged.count / 2] ^= 0x5A
        shared.overwrite(keys[2], with: damaged)
        var newer = try XCTUnwrap(shared.value(keys[3]))
        newer[4] = 3  // format version 3: unknown here
        shared.overwrite(keys[3], with: newer)
        let b = try h.frontend(shared: shared)
        defer { try? b.store.close() }
        let r = try h.ask(b, doc, "Which town is named first?")
        XCTAssertEqual(r.sources.corruptChunks, 1)
        XCTAssertEqual(r.sources.unknownVersionChunks, 1)
        // The chunks after the rejected ones are kept from their one read while those are
        // recomputed.
        XCTAssertEqual(r.sources.shared, pre.tokens - 3 * h.chunkSize, "all but the hole, the damaged and the newer chunk")
        XCTAssertEqual(r.sources.disk, 0)
        XCTAssertEqual(r.sources.prefilled, 3 * h.chunkSize + (r.sources.prompt - pre.tokens))
        XCTAssertEqual(shared.rejected[keys[2]], .damaged("KV block payload checksum mismatch"))
        XCTAssertNil(shared.value(keys[2]), "the damaged block is removed")
        XCTAssertEqual(shared.value(keys[3]), newer, "the newer block is kept for the readers that know it")
        if case .unknownVersion? = shared.rejected[keys[3]] {} else { XCTFail("unknown version reported") }
        let counters = try XCTUnwrap(b.tiers.counters.first { $0.name == "shared" }?.counters)
        XCTAssertEqual(counters.damaged, 1)
        XCTAssertEqual(counters.unknownVersion, 1)
        XCTAssertEqual(counters.fetches, keys.count, "each stored chunk and the tail read once (the hole never)")
        XCTAssertEqual(counters.hits, keys.count - 3 + 1)
        XCTAssertEqual(counters.copiedToLocal, keys.count - 3 + 1)
    }

    func testRejectedChunksInOneRunAreRecomputedAndTheRestReadOnce() throws {
        let h = try SharedTierHarness()
        let shared = MemoryChunkTier(name: "shared")
        let doc = syntheticDocument(seed: 10, words: 220)
        let (keys, pre) = try h.precomputeOnA(doc, shared: shared)
        XCTAssertGreaterThanOrEqual(keys.count, 6)
        // One run of stored chunks with two damaged ones apart (the second and the fifth).
        for i in [1, 4] {
            var damaged = try XCTUnwrap(shared.value(keys[i]))
            damaged[damaged.count / 2] ^= 0x01
            shared.overwrite(keys[i], with: damaged)
        }
        let b = try h.frontend(shared: shared)
        defer { try? b.store.close() }
        let r = try h.ask(b, doc, "Which town is named last?")
        XCTAssertEqual(r.sources.corruptChunks, 2)
        XCTAssertEqual(r.sources.shared, pre.tokens - 2 * h.chunkSize)
        XCTAssertEqual(r.sources.prefilled, 2 * h.chunkSize + (r.sources.prompt - pre.tokens))
        let counters = try XCTUnwrap(b.tiers.counters.first { $0.name == "shared" }?.counters)
        XCTAssertEqual(counters.fetches, keys.count + 1, "every chunk and the tail read once")
        XCTAssertEqual(counters.damaged, 2)
        XCTAssertEqual(counters.hits, keys.count - 2 + 1)
        XCTAssertEqual(b.store.probe(keys), keys.indices.map { ![1, 4].contains($0) }, "the good chunks copied to B's store")
    }

    func testSharedTierDownIsAMissAndCounted() throws {
        let h = try SharedTierHarness()
        let shared = MemoryChunkTier(name: "shared")
        let doc = syntheticDocument(seed: 9, words: 120)
        _ = try h.precomputeOnA(doc, shared: shared)
        let b = try h.frontend(shared: shared)
        defer { try? b.store.close() }
        shared.setFailing(true)
        for _ in 0..<2 {  // the second sighting admits the query's chunks to B's store, then to the publisher
            let down = try h.ask(b, doc, "Summarize it in one sentence.")
            XCTAssertEqual(down.sources.shared, 0)
        }
        b.tiers.flush()
        XCTAssertGreaterThan(b.tiers.publisher?.counters.failed ?? 0, 0, "publishing to a tier that is down fails, counted")
    }

    func testDocumentRecordIsShared() throws {
        let shared = MemoryChunkTier(name: "shared")
        let tiers = ChunkTiers(local: nil, shared: shared)
        let text = DocumentText(id: "a/b.txt", name: "b.txt", template: .chatSystem, text: "Some text.")
        let key = try XCTUnwrap(ChunkKey(bytes: [UInt8](repeating: 7, count: 32)))
        try tiers.publishDocument(text, record: DocumentRecord(id: "a/b.txt", name: "b.txt", tokenCount: 40, chunkKeys: [key]))
        let back = try XCTUnwrap(try tiers.sharedDocument(id: "a/b.txt"))
        XCTAssertEqual(back.documentText, text)
        XCTAssertEqual(back.chunkKeys, [key])
        XCTAssertNil(try tiers.sharedDocument(id: "a/b.txt", salt: Array("tenant".utf8)), "another tenant's namespace")
        XCTAssertNil(try tiers.sharedDocument(id: "other"))
    }
}
