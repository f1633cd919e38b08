import Foundation
import XCTest
@testable import KVStash
import KVStashCodec
import KVStashCore
import KVStashEngine
@testable import KVStashStore

/// Prompt tails: a query's partial last chunk is stored after its stored chain, and a later
/// prompt that shares part of it splices the shared rows from the store (cold, RAM tier
/// off). With the lossless f32 codec every answer equals the answer computed from scratch.
final class PromptTailTests: XCTestCase {
    let questions = ["In one sentence: what does the document say about the river?",
                     "In one sentence: what does the document say about the harbor?",
                     "In one sentence: what does the document say about the school?",
                     "Which town is named first?"]

    let chunk = 64

    /// A document whose last chunk holds fewer than 16 tokens, so every question's prompt
    /// ends inside that chunk (its tail follows the document's stored chain).
    private func document(_ m: LoadedModel, seed: UInt64) -> String {
        (90...200).lazy.map { syntheticDocument(seed: seed, words: $0) }
            .first { m.documentTokens($0).count % self.chunk < 16 }!
    }

    /// A store with `doc` precomputed (64-token chunks) and a cold request path over it.
    private func setUp(_ m: LoadedModel, _ doc: String, promptTails: Int = 2, salt: String = "",
                       store existing: ChunkStore? = nil) throws -> (PrefixCache, ChunkStore) {
        let store = try existing ?? ChunkStore(path: temporaryDirectory(), options: StoreOptions(chunkSize: chunk))
        var options = PrefixCacheOptions(codec: .f32, ramBudgetBytes: 0, tenantSalt: Array(salt.utf8),
                                         writeBackQueries: true, promptTails: promptTails)
        options.poisonsSkippedRows = true
        let pc = PrefixCache(model: m.model, tokenizer: m.tokenizer, store: store, modelFingerprint: m.fingerprint,
                             options: options, chunkSize: chunk)
        _ = try pc.precompute(tokens: m.documentTokens(doc), id: "doc", name: "doc")
        return (pc, store)
    }

    /// Tokens `b` shares with `a` from the start.
    private func common(_ a: [Int], _ b: [Int]) -> Int { zip(a, b).prefix { $0 == $1 }.count }

    /// Asks `first`, then `second` cold: the second splices every stored chunk and the rows
    /// of the first's tail it shares, prefills the rest, and answers as without a cache.
    private func checkSharedRowsSpliced(_ m: LoadedModel, _ pc: PrefixCache, doc: String) throws {
        let a = m.queryTokens(doc, questions[0]), b = m.queryTokens(doc, questions[1])
        _ = try pc.generate(tokens: a, options: GenerationOptions(maxTokens: 2))
        let shared = common(a, b)
        XCTAssertGreaterThan(shared, m.documentTokens(doc).count + 8, "the questions share the template and a stem")
        let reference = try referenceGreedy(m.model, m.tokenizer, b, maxTokens: 8)
        let r = try pc.generate(tokens: b, options: GenerationOptions(maxTokens: 8))
        XCTAssertEqual(r.tokens, reference)
        XCTAssertEqual(r.sources.disk, shared, "chunks, then the shared rows of the stored prompt tail")
        XCTAssertEqual(r.sources.prefilled, b.count - shared)
        // The same prompt again: its own tail is stored, so all but the last token come from disk.
        let again = try pc.generate(tokens: b, options: GenerationOptions(maxTokens: 8))
        XCTAssertEqual(again.tokens, reference)
        XCTAssertEqual(again.sources.disk, b.count - 1)
    }

    func testNewQuestionSplicesTheRowsItSharesWithAStoredPromptTail() throws {
        let m = try LoadedModel(path: try tinyModelPath())
        let doc = document(m, seed: 61)
        let (pc, store) = try setUp(m, doc)
        defer { try? store.close() }
        try checkSharedRowsSpliced(m, pc, doc: doc)
    }

    /// A sliding-window model (window 40, shorter than the document): the tail's sliding rows
    /// come with it, the window's earlier rows from the chunks' sliding blocks.
    func testSlidingWindowModelSplicesSharedPromptTailRows() throws {
        var spec = TinyModelSpec.gemma3
        spec.slidingWindow = 40
        let m = try LoadedModel(path: try tinyModelPath(spec))
        let doc = document(m, seed: 62)
        let (pc, store) = try setUp(m, doc)
        defer { try? store.close() }
        try checkSharedRowsSpliced(m, pc, doc: doc)
    }

    /// At most `promptTails` tails are kept after a chunk: the oldest one's entry is removed.
    /// With 0, none is stored.
    func testTailsPerChunkAreBoundedAndTheOldestIsRemoved() throws {
        let m = try LoadedModel(path: try tinyModelPath())
        let doc = document(m, seed: 63)
        let (pc, store) = try setUp(m, doc, promptTails: 2)
        defer { try? store.close() }
        let prompts = questions.prefix(3).map { m.queryTokens(doc, $0) }
        for p in prompts { _ = try pc.generate(tokens: p, options: GenerationOptions(maxTokens: 1)) }
        let docChunks = m.documentTokens(doc).count / chunk
        let parent = pc.keyer.chain(m.documentTokens(doc))[docChunks - 1]
        let tails = try store.promptTails(after: parent)
        XCTAssertEqual(tails.map(\.tokens), prompts[1...].reversed().map { Array($0[(docChunks * chunk)...]) })
        let oldest = pc.keyer.key(parent: parent, tokens: prompts[0][(docChunks * chunk)...])
        XCTAssertEqual(store.probe([oldest] + tails.map(\.key)), [false, true, true])
        // The admin listing marks the two tails, and only them; stats count them.
        let entries = try store.list()
        let marked = entries.filter { $0.promptTail == true }
        XCTAssertEqual(Set(marked.map(\.key)), Set(tails.map(\.key)))
        XCTAssertGreaterThanOrEqual(entries.filter { !$0.meta.docIDs.isEmpty }.count, docChunks, "the document's entries")
        XCTAssertTrue(marked.allSatisfy { $0.meta.docIDs.isEmpty }, "no document entry is marked")
        let stats = try store.stats()
        XCTAssertEqual(stats.promptTailEntries, 2)
        XCTAssertEqual(stats.promptTailBytes, marked.reduce(0) { $0 + $1.meta.byteSize })

        // Asking the most recent prompt again keeps the record as it is; an older one moves
        // to the front.
        _ = try pc.generate(tokens: prompts[2], options: GenerationOptions(maxTokens: 1))
        XCTAssertEqual(try store.promptTails(after: parent), tails)
        _ = try pc.generate(tokens: prompts[1], options: GenerationOptions(maxTokens: 1))
        XCTAssertEqual(try store.promptTails(after: parent), tails.reversed())

        let (off, offStore) = try setUp(m, doc, promptTails: 0)
        defer { try? offStore.close() }
        _ = try off.generate(tokens: prompts[0], options: GenerationOptions(maxTokens: 1))
        XCTAssertEqual(try offStore.promptTails(after: parent), [])
    }

    /// Another tenant with the same document and template never splices this tenant's tail.
    func testAnotherTenantDoesNotSeeThePromptTail() throws {
        let m = try LoadedModel(path: try tinyModelPath())
        let doc = document(m, seed: 64)
        let (pc, store) = try setUp(m, doc, salt: "tenant-a")
        defer { try? store.close() }
        let (other, _) = try setUp(m, doc, salt: "tenant-b", store: store)
        _ = try pc.generate(tokens: m.queryTokens(doc, questions[0]), options: GenerationOptions(maxTokens: 1))
        let b = m.queryTokens(doc, questions[1])
        let r = try other.generate(tokens: b, options: GenerationOptions(maxTokens: 4))
        XCTAssertEqual(r.sources.disk, m.documentTokens(doc).count, "its own document only")
        XCTAssertEqual(r.tokens, try referenceGreedy(m.model, m.tokenizer, b, maxTokens: 4))
    }

    /// A prompt that continues no stored chunk keeps no tail (tails are bounded per stored
    /// chunk, so a client cannot fill the store with one per request by varying its prompts or
    /// salts), and another tenant's short prompt finds nothing either.
    func testPromptsWithoutAStoredChunkKeepNoTail() throws {
        let m = try LoadedModel(path: try tinyModelPath())
        let store = try ChunkStore(path: temporaryDirectory(), options: StoreOptions(chunkSize: chunk))
        defer { try? store.close() }
        let caches = ["tenant-a", "tenant-b"].map { salt in
            PrefixCache(model: m.model, tokenizer: m.tokenizer, store: store, modelFingerprint: m.fingerprint,
                        options: PrefixCacheOptions(codec: .f32, ramBudgetBytes: 0, tenantSalt: Array(salt.utf8)),
                        chunkSize: chunk)
        }
        let doc = "The river town had a market."
        let a = m.queryTokens(doc, questions[0]), b = m.queryTokens(doc, questions[1])
        XCTAssertLessThan(b.count, chunk, "no full chunk")
        let first = try caches[0].generate(tokens: a, options: GenerationOptions(maxTokens: 1))
        XCTAssertEqual(first.chunksStored, 0)
        XCTAssertEqual(try store.stats().entries, 0)
        for cache in caches {
            let r = try cache.generate(tokens: b, options: GenerationOptions(maxTokens: 4))
            XCTAssertEqual(r.sources.disk, 0)
            XCTAssertEqual(r.tokens, try referenceGreedy(m.model, m.tokenizer, b, maxTokens: 4))
        }
    }

    /// A damaged prompt tail is detected, counted, removed and recomputed, never served.
    func testDamagedPromptTailIsRecomputed() throws {
        let m = try LoadedModel(path: try tinyModelPath())
        let doc = document(m, seed: 65)
        let (pc, store) = try setUp(m, doc)
        defer { try? store.close() }
        let a = m.queryTokens(doc, questions[0])
        _ = try pc.generate(tokens: a, options: GenerationOptions(maxTokens: 1))
        let docChunks = m.documentTokens(doc).count / chunk
        let parent = pc.keyer.chain(m.documentTokens(doc))[docChunks - 1]
        let key = try XCTUnwrap(try store.promptTails(after: parent).first?.key)
        var value = try XCTUnwrap(try store.get(key))
        let meta = try XCTUnwrap(try store.meta(key))
        value[value.count / 2] ^= 0x5A
        try store.evict(.keys([key]))
        try store.put(key, value: value, meta: meta)
        let b = m.queryTokens(doc, questions[1])
        let r = try pc.generate(tokens: b, options: GenerationOptions(maxTokens: 8))
        XCTAssertEqual(r.tokens, try referenceGreedy(m.model, m.tokenizer, b, maxTokens: 8))
        XCTAssertEqual(r.sources.corruptChunks, 1)
        // The document's own tail, shorter than the rows the prompt tail shared and not looked
        // for while that one was to splice, serves instead.
        XCTAssertEqual(r.sources.disk, m.documentTokens(doc).count)
        XCTAssertEqual(store.probe([key]), [false], "reported to the store, which removed it")
    }

    /// A stored prompt tail longer than a new prompt's cache (a long question, then a short
    /// one sharing its opening) is decoded beside the cache and its shared rows appended.
    func testLongStoredPromptTailSplicesBesideAShortPrompt() throws {
        let m = try LoadedModel(path: try tinyModelPath())
        let doc = document(m, seed: 66)
        let (pc, store) = try setUp(m, doc)
        defer { try? store.close() }
        let long = m.queryTokens(doc, questions[0] + " And what about the market, the bridge, the mill, the old chapel, "
                                     + "the orchard by the road, the ferry and the lighthouse on the point? Answer for each "
                                     + "of them in turn, naming the street, the year and the people the document gives.")
        let start = m.documentTokens(doc).count / chunk * chunk
        XCTAssertGreaterThan(long.count - start, chunk, "the long question's tail is over a chunk")
        _ = try pc.generate(tokens: long, options: GenerationOptions(maxTokens: 1))
        let b = m.queryTokens(doc, "In one sentence: what")
        let shared = common(long, b)
        XCTAssertGreaterThan(shared, m.documentTokens(doc).count)
        let r = try pc.generate(tokens: b, options: GenerationOptions(maxTokens: 4))
        XCTAssertGreaterThan(long.count, (b.count + 4 + chunk - 1) / chunk * chunk,
                             "the short prompt's cache (rounded up to a chunk) has no room for the whole stored tail")
        XCTAssertEqual(r.tokens, try referenceGreedy(m.model, m.tokenizer, b, maxTokens: 4))
        XCTAssertEqual(r.sources.disk, shared)
    }

    /// However large a limit a caller asks for, a chunk keeps at most
    /// `promptTailsPerChunkLimit` tails, and its record stays readable (its count is 16 bits).
    func testTailsPerChunkStayBoundedWhateverTheLimit() throws {
        let store = try ChunkStore(path: temporaryDirectory(), options: StoreOptions(chunkSize: chunk))
        defer { try? store.close() }
        let parent = ChunkKey(bytes: [UInt8](repeating: 7, count: 32))!
        let limit = ChunkStore.promptTailsPerChunkLimit
        for i in 0..<(limit + 10) {
            var bytes = [UInt8](repeating: 0, count: 32)
            bytes[0] = UInt8(i & 0xFF); bytes[1] = UInt8(i >> 8); bytes[31] = 1
            try store.recordPromptTail(PromptTail(key: ChunkKey(bytes: bytes)!, tokens: [i]), after: parent, limit: Int.max)
        }
        let tails = try store.promptTails(after: parent)
        XCTAssertEqual(tails.count, limit)
        XCTAssertEqual(tails.first?.tokens, [limit + 9], "the most recent first")
        XCTAssertEqual(PrefixCacheOptions(promptTails: Int.max).promptTails, limit)
    }

    /// The record of tails round-trips, and a malformed one reads as none.
    func testPromptTailRecordRoundTripsAndRejectsMalformedBytes() throws {
        let keys = (1...3).map { i in ChunkKey(bytes: [UInt8](repeating: UInt8(i), count: 32))! }
        let tails = [PromptTail(key: keys[0], tokens: [1, 2, 3]), PromptTail(key: keys[1], tokens: []),
                     PromptTail(key: keys[2], tokens: [70_000, 0, 262_143])]
        let bytes = ChunkStore.encodePromptTails(tails)
        XCTAssertEqual(ChunkStore.decodePromptTails(bytes), tails)
        XCTAssertNil(ChunkStore.decodePromptTails(Array(bytes.dropLast())), "truncated")
        XCTAssertNil(ChunkStore.decodePromptTails(bytes + [0]), "trailing bytes")
        XCTAssertNil(ChunkStore.decodePromptTails([2] + bytes.dropFirst()), "unknown version")
        var huge = bytes
        huge[1 + 2 + 32] = 0xFF; huge[1 + 2 + 32 + 1] = 0xFF; huge[1 + 2 + 32 + 2] = 0xFF  // a token count past the bytes
        XCTAssertNil(ChunkStore.decodePromptTails(huge))
    }
}
