import Foundation
import XCTest
@testable import KVStash
import KVStashCodec
import KVStashCore
import KVStashEngine
import KVStashStore

/// Exactness of the request path with the lossless f32 codec: the greedy answer with
/// cached KV equals the answer computed from scratch, token for token, whether the KV came
/// from disk (fresh tree, reopened store), from RAM, through a hole in the chain, for a
/// prompt diverging mid-chunk, past a corrupt block, or next to another model's blocks.
final class RequestPathTests: XCTestCase {
    let questions = ["What is the document about?", "Which town is named first?",
                     "Summarize it in one sentence.", "List three words from it."]

    /// Precomputes `docs` into a new f32 store with `chunkSize`, then closes it.
    private func precomputed(_ m: LoadedModel, _ docs: [String], chunkSize: Int) throws -> String {
        let dir = temporaryDirectory()
        let store = try ChunkStore(path: dir, options: StoreOptions(chunkSize: chunkSize))
        let pc = m.prefixCache(store: store, ram: 0)
        for (i, doc) in docs.enumerated() {
            let r = try pc.precompute(tokens: m.documentTokens(doc), id: "doc\(i)", name: "doc\(i)")
            XCTAssertEqual(r.written.chunks, r.chunks + (r.tailTokens > 0 ? 1 : 0), "every full chunk and the tail written")
            XCTAssertGreaterThanOrEqual(r.chunks, 2, "documents span several chunks")
        }
        try store.close()
        return dir
    }

    /// Replaces the value under `key` with a copy that has one byte flipped at
    /// `fraction` of its length, meta unchanged (the store's own checks see a good value).
    private func storeDamagedCopy(_ store: ChunkStore, _ key: ChunkKey, at fraction: Double) throws {
        var value = try XCTUnwrap(try store.get(key))
        let meta = try XCTUnwrap(try store.meta(key))
        value[Int(Double(value.count) * fraction)] ^= 0x5A
        try store.evict(.keys([key]))
        try store.put(key, value: value, meta: meta)
    }

    /// Answers `tokens` past one damaged entry `key`: the answer equals the reference, one
    /// corrupt entry is counted, `disk` tokens still come from the store, and the entry is
    /// gone from it.
    private func checkRecomputedPastDamage(_ m: LoadedModel, _ pc: PrefixCache, _ store: ChunkStore, _ tokens: [Int],
                                           damaged key: ChunkKey, disk: Int) throws {
        let reference = try referenceGreedy(m.model, m.tokenizer, tokens, maxTokens: 16)
        let r = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: 16))
        XCTAssertEqual(r.tokens, reference)
        XCTAssertEqual(r.sources.corruptChunks, 1)
        XCTAssertEqual(r.sources.disk, disk)
        XCTAssertEqual(r.sources.prefilled, tokens.count - disk)
        XCTAssertEqual(store.probe([key]), [false], "reported to the store, which removed it")
    }

    /// Asks every question about every doc: cold from disk (tree emptied first), then hot
    /// from RAM; both must equal the reference.
    private func checkColdAndHot(_ m: LoadedModel, docs: [String], questions: [String], chunkSize: Int,
                                 maxTokens: Int) throws {
        let dir = try precomputed(m, docs, chunkSize: chunkSize)
        let store = try ChunkStore(path: dir)  // reopened: a new process state
        defer { try? store.close() }
        let pc = m.prefixCache(store: store)
        for doc in docs {
            for q in questions {
                let tokens = m.queryTokens(doc, q)
                let reference = try referenceGreedy(m.model, m.tokenizer, tokens, maxTokens: maxTokens)
                pc.tree.evictAll()
                let cold = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: maxTokens))
                XCTAssertEqual(cold.tokens, reference, "cold from disk: \(q)")
                XCTAssertEqual(cold.sources.ram, 0)
                XCTAssertEqual(cold.sources.disk, m.documentTokens(doc).count, "full chunks and the tail")
                XCTAssertEqual(cold.sources.ram + cold.sources.disk + cold.sources.prefilled, tokens.count)
                // Hot twice: in the cache the last request left (`RadixTree.resident`), then
                // from the tree's pages with that cache dropped.
                for resident in [true, false] {
                    let takes = pc.tree.stats().residentTakes
                    if !resident { pc.tree.resident.clear() }
                    let hot = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: maxTokens))
                    XCTAssertEqual(hot.tokens, reference, "hot from RAM (resident: \(resident)): \(q)")
                    XCTAssertEqual(pc.tree.stats().residentTakes, takes + (resident ? 1 : 0))
                    // An exact repeat: RAM holds every token, the last page's partial rows
                    // included, so only the last token is prefilled (for its logits).
                    XCTAssertEqual(hot.sources.ram, tokens.count - 1)
                    XCTAssertEqual(hot.sources.prefilled, 1)
                    XCTAssertEqual(hot.sources.ram + hot.sources.disk + hot.sources.prefilled, tokens.count)
                }
            }
        }
    }

    func testTinyModelColdAndHotEqualNoCache() throws {
        let m = try LoadedModel(path: try tinyModelPath())
        let docs = (0..<5).map { syntheticDocument(seed: UInt64($0), words: 150 + 60 * $0) }
        try checkColdAndHot(m, docs: docs, questions: questions, chunkSize: 32, maxTokens: 24)
    }

    func testRealModelColdAndHotEqualNoCache() throws {
        let m = try LoadedModel(path: try realModelPath())
        let docs = (0..<2).map { syntheticDocument(seed: 100 + UInt64($0), words: 420) }
        try checkColdAndHot(m, docs: docs, questions: Array(questions.prefix(2)), chunkSize: 128, maxTokens: 16)
    }

    /// A new question over the same document takes the last request's cache over (cut to
    /// the positions the tree matches) and answers as from scratch; another tenant's request
    /// over the same tree never does.
    func testNewQuestionTakesTheLastRequestsCache() throws {
        let m = try LoadedModel(path: try tinyModelPath())
        let doc = syntheticDocument(seed: 7, words: 300)
        let pc = m.prefixCache(store: nil)
        var options = pc.options
        options.tenantSalt = Array("other".utf8)
        let other = PrefixCache(model: m.model, tokenizer: m.tokenizer, store: nil, modelFingerprint: m.fingerprint,
                                options: options, tree: pc.tree)
        let first = m.queryTokens(doc, questions[0])
        let answer = try pc.generate(tokens: first, options: GenerationOptions(maxTokens: 8)).tokens
        XCTAssertEqual(pc.tree.stats().residentTokens, first.count + answer.count - 1,
                       "the prompt and the answer but its last token")
        for (i, q) in questions.dropFirst().enumerated() {
            let tokens = m.queryTokens(doc, q)
            let shared = zip(tokens, first).prefix { $0 == $1 }.count
            let reference = try referenceGreedy(m.model, m.tokenizer, tokens, maxTokens: 12)
            let r = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: 12))
            XCTAssertEqual(r.tokens, reference, q)
            XCTAssertEqual(r.sources.ram, shared, "the document and the template's start")
            XCTAssertEqual(pc.tree.stats().residentTakes, i + 1)
        }
        let r = try other.generate(tokens: first, options: GenerationOptions(maxTokens: 4))
        XCTAssertEqual(r.sources.ram, 0, "another tenant's namespace")
        XCTAssertEqual(pc.tree.stats().residentTakes, questions.count - 1)
    }

    /// Two users in turn, each over a document of their own: each new question continues in
    /// the cache of that user's last request and answers as from scratch.
    func testTwoDocumentsInTurnEachContinueInTheirOwnCache() throws {
        let m = try LoadedModel(path: try tinyModelPath())
        let docs = [syntheticDocument(seed: 8, words: 250), syntheticDocument(seed: 9, words: 280)]
        let pc = m.prefixCache(store: nil)
        for doc in docs { _ = try pc.generate(tokens: m.queryTokens(doc, questions[0]), options: GenerationOptions(maxTokens: 4)) }
        for (turn, q) in questions.dropFirst().enumerated() {
            for (i, doc) in docs.enumerated() {
                let tokens = m.queryTokens(doc, q)
                let r = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: 8))
                XCTAssertEqual(r.tokens, try referenceGreedy(m.model, m.tokenizer, tokens, maxTokens: 8), "doc \(i): \(q)")
                XCTAssertEqual(pc.tree.stats().residentTakes, 2 * turn + i + 1, "doc \(i) continued in its own cache")
            }
        }
        XCTAssertEqual(pc.tree.resident.count, 2)
    }

    /// A chat's next turn: the prompt repeats the first turn and its answer, so the hit covers
    /// rows decode computed one by one. Where rows are batch-invariant (`LlamaModel.batchInvariant`),
    /// its answer equals the uncached one, which computes the same rows in one prefill.
    func testNextTurnContinuesIntoTheDecodedAnswer() throws {
        for path in [try realModelPath(), try gemma3ModelPath()] {
            let m = try LoadedModel(path: path)
            try XCTSkipUnless(m.model.batchInvariant, "rows are not batch-invariant on this CPU")
            let pc = m.prefixCache(store: nil)
            let first = m.queryTokens(syntheticDocument(seed: 31, words: 400), questions[0])
            let answer = try pc.generate(tokens: first, options: GenerationOptions(maxTokens: 24)).tokens
            // (Gemma's tokenizer puts BOS first, the first prompt's first token: not mid-prompt.)
            let turn = m.tokenizer.encode("\n" + questions[1], parseSpecial: true).drop { $0 == first[0] }
            let next = first + answer + turn
            let r = try pc.generate(tokens: next, options: GenerationOptions(maxTokens: 16))
            XCTAssertGreaterThanOrEqual(r.sources.ram, first.count + answer.count - 1, "the answer's rows reused")
            XCTAssertEqual(r.tokens, try referenceGreedy(m.model, m.tokenizer, next, maxTokens: 16), path)
        }
    }

    /// The worst a client can ask for, an answer of `Int.max` tokens, sizes each cache to the
    /// whole context; the caches kept stay within a quarter of the RAM budget (none when one
    /// does not fit) and the requests still answer.
    func testResidentCachesStayWithinTheBudgetForTheLongestAnswers() throws {
        let m = try LoadedModel(path: try tinyModelPath())
        let full = m.model.config.contextLength * m.model.config.kvShape.cacheBytesPerPosition
        for budget in [3 * full, 9 * full] {
            let pc = m.prefixCache(store: nil, ram: budget)
            for seed in 0..<5 {
                let tokens = m.queryTokens(syntheticDocument(seed: 20 + UInt64(seed), words: 60), questions[0])
                var seen = 0
                let r = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: Int.max), onToken: { _ in
                    seen += 1
                    return seen < 2
                })
                XCTAssertFalse(r.tokens.isEmpty)
                let s = pc.tree.stats()
                XCTAssertLessThanOrEqual(s.residentBytes, budget / 4, "budget \(budget), request \(seed)")
                XCTAssertEqual(s.residentBytes > 0, budget / 4 >= full, "a whole-context cache kept only where it fits")
            }
            XCTAssertLessThanOrEqual(pc.tree.resident.count, 2)
        }
    }

    func testHoleInTheChainIsRecomputedAndProbingGoesOn() throws {
        for path in [try tinyModelPath(), try realModelPath()] {
            let m = try LoadedModel(path: path)
            let doc = syntheticDocument(seed: 7, words: 400)
            let chunk = 64
            let dir = try precomputed(m, [doc], chunkSize: chunk)
            let store = try ChunkStore(path: dir)
            defer { try? store.close() }
            let pc = m.prefixCache(store: store, ram: 0)
            let keys = pc.keyer.chain(m.documentTokens(doc))
            XCTAssertGreaterThanOrEqual(keys.count, 4)
            try store.evict(.keys([keys[1]]))
            let tokens = m.queryTokens(doc, questions[0])
            let reference = try referenceGreedy(m.model, m.tokenizer, tokens, maxTokens: 16)
            let r = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: 16))
            XCTAssertEqual(r.tokens, reference)
            let stored = m.documentTokens(doc).count - chunk
            XCTAssertEqual(r.sources.disk, stored, "chunks after the hole (and the tail) still come from disk")
            XCTAssertEqual(r.sources.prefilled, tokens.count - stored)
        }
    }

    func testPromptDivergingMidChunk() throws {
        for path in [try tinyModelPath(), try realModelPath()] {
            let m = try LoadedModel(path: path)
            let doc = syntheticDocument(seed: 8, words: 300)
            let chunk = 64
            let dir = try precomputed(m, [doc], chunkSize: chunk)
            let store = try ChunkStore(path: dir)
            defer { try? store.close() }
            let pc = m.prefixCache(store: store)
            let cut = chunk + chunk / 2 + 5  // inside the second chunk and inside a page
            let tokens = Array(m.documentTokens(doc)[..<cut]) + m.tokenizer.encode(" Something else entirely: what now?")
            let reference = try referenceGreedy(m.model, m.tokenizer, tokens, maxTokens: 16)
            let cold = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: 16))
            XCTAssertEqual(cold.tokens, reference, "cold")
            XCTAssertEqual(cold.sources.disk, chunk, "only the first chunk matches on disk")
            // RAM now holds the whole document; the divergent prompt matches it page-granularly.
            _ = try pc.generate(tokens: m.queryTokens(doc, questions[1]), options: GenerationOptions(maxTokens: 4))
            let hot = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: 16))
            XCTAssertEqual(hot.tokens, reference, "hot")
            XCTAssertGreaterThanOrEqual(hot.sources.ram, cut / KVPage.size * KVPage.size)
        }
    }

    func testCorruptBlockIsDetectedReportedAndRecomputed() throws {
        let m = try LoadedModel(path: try tinyModelPath())
        let doc = syntheticDocument(seed: 9, words: 300)
        let chunk = 64
        let dir = try precomputed(m, [doc], chunkSize: chunk)
        let store = try ChunkStore(path: dir)
        defer { try? store.close() }
        let pc = m.prefixCache(store: store, ram: 0)
        let keys = pc.keyer.chain(m.documentTokens(doc))
        try storeDamagedCopy(store, keys[1], at: 0.5)  // one flipped byte in the payload
        try checkRecomputedPastDamage(m, pc, store, m.queryTokens(doc, questions[2]), damaged: keys[1],
                                      disk: m.documentTokens(doc).count - chunk)
        XCTAssertGreaterThanOrEqual(try store.stats().corruptFound, 1)
    }

    /// Damage to a stored block's bytes in its SST file, under RocksDB: the request path
    /// reads values without RocksDB's block checksum (the block's own checksums cover every
    /// byte), so the codec must catch it, and the chunk is counted, removed and recomputed.
    func testBlockDamagedOnDiskIsCaughtByTheCodec() throws {
        let m = try LoadedModel(path: try tinyModelPath())
        let doc = syntheticDocument(seed: 12, words: 300)
        let chunk = 64
        let dir = try precomputed(m, [doc], chunkSize: chunk)
        let keys: [ChunkKey], needle: [UInt8]
        do {
            let store = try ChunkStore(path: dir)
            keys = ChunkKeyer(modelFingerprint: m.fingerprint, chunkSize: chunk).chain(m.documentTokens(doc))
            let value = try XCTUnwrap(try store.get(keys[1], recordAccess: false))
            needle = Array(value[(value.count / 2)..<(value.count / 2 + 64)])
            try store.flush()
            try store.close()
        }
        var damaged = false
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) where name.hasSuffix(".sst") && !damaged {
            let url = URL(fileURLWithPath: dir + "/" + name)
            var data = try Data(contentsOf: url)
            guard let range = data.firstRange(of: Data(needle)) else { continue }
            for i in 0..<8 { data[range.lowerBound + 28 + i] ^= 0xFF }
            try data.write(to: url)
            damaged = true
        }
        XCTAssertTrue(damaged, "the block's bytes were not found in an SST file")
        let store = try ChunkStore(path: dir)
        defer { try? store.close() }
        let log = LogSink()
        try checkRecomputedPastDamage(m, m.prefixCache(store: store, ram: 0, logger: log.logger), store,
                                      m.queryTokens(doc, questions[1]),
                                      damaged: keys[1], disk: m.documentTokens(doc).count - chunk)
        let logged = log.entries.filter { $0.level == .warning && $0.metadata["chunk"] == "\(keys[1])" }
        XCTAssertEqual(logged.count, 1, "the rejected chunk is logged once, with its key")
        XCTAssertNotNil(logged.first?.metadata["error"], "with the codec's error as the cause")
        // The damaged block stays in its table file until repaired: the store asks for it.
        XCTAssertTrue(store.needsRepair)
        XCTAssertFalse(store.counters.writable)
    }

    /// The document's tail is fetched in the same parallel run as the chunks before it;
    /// a damaged tail is caught there, counted, removed and recomputed like a chunk.
    func testCorruptTailIsDetectedReportedAndRecomputed() throws {
        let m = try LoadedModel(path: try tinyModelPath())
        let doc = syntheticDocument(seed: 11, words: 300)
        let chunk = 64
        let dir = try precomputed(m, [doc], chunkSize: chunk)
        let store = try ChunkStore(path: dir)
        defer { try? store.close() }
        let pc = m.prefixCache(store: store, ram: 0)
        let docTokens = m.documentTokens(doc)
        let keys = pc.keyer.chain(docTokens)
        let tailStart = keys.count * chunk
        XCTAssertLessThan(tailStart, docTokens.count, "the document ends inside a chunk")
        let tailKey = pc.keyer.key(parent: keys[keys.count - 1], tokens: docTokens[tailStart...])
        let tokens = m.queryTokens(doc, questions[3])
        let whole = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: 16))
        XCTAssertEqual(whole.tokens, try referenceGreedy(m.model, m.tokenizer, tokens, maxTokens: 16))
        XCTAssertEqual(whole.sources.disk, docTokens.count, "chunks and tail in one run")
        try storeDamagedCopy(store, tailKey, at: 0.33)
        try checkRecomputedPastDamage(m, pc, store, tokens, damaged: tailKey, disk: tailStart)
    }

    func testAnotherModelsBlocksAreNeverSpliced() throws {
        let m = try LoadedModel(path: try tinyModelPath())
        let doc = syntheticDocument(seed: 10, words: 300)
        let chunk = 64
        let dir = try precomputed(m, [doc], chunkSize: chunk)
        let store = try ChunkStore(path: dir)
        defer { try? store.close() }
        let tokens = m.queryTokens(doc, questions[3])
        let reference = try referenceGreedy(m.model, m.tokenizer, tokens, maxTokens: 16)
        // Another fingerprint: other keys, nothing found.
        var other = m.fingerprint
        other[0] ^= 1
        let foreign = try m.prefixCache(store: store, ram: 0, fingerprint: other)
            .generate(tokens: tokens, options: GenerationOptions(maxTokens: 16))
        XCTAssertEqual(foreign.sources.disk, 0)
        XCTAssertEqual(foreign.tokens, reference)
        // A block whose header names another model, stored under our key: rejected.
        let pc = m.prefixCache(store: store, ram: 0)
        let keys = pc.keyer.chain(m.documentTokens(doc))
        var cache = m.model.newCache()
        _ = try m.model.prefill(Array(m.documentTokens(doc)[..<chunk]), cache: &cache)
        let block = try KVBlockEncoder(codec: .f32).encode(cache, range: 0..<chunk, chunkKey: keys[0].bytes,
                                                             modelFingerprint: other)
        let meta = try XCTUnwrap(try store.meta(keys[0]))
        try store.evict(.keys([keys[0]]))
        try store.put(keys[0], value: block, meta: meta)
        let r = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: 16))
        XCTAssertEqual(r.sources.corruptChunks, 1)
        XCTAssertEqual(r.sources.disk, m.documentTokens(doc).count - chunk, "later chunks still spliced after the recomputed one")
        XCTAssertEqual(r.tokens, reference)
    }

    func testContextOverflowIsAClearError() throws {
        let m = try LoadedModel(path: try tinyModelPath())
        let pc = m.prefixCache(store: nil)
        let tokens = [Int](repeating: 42, count: m.model.config.contextLength)
        XCTAssertThrowsError(try pc.generate(tokens: tokens)) { error in
            XCTAssertEqual(error as? KVStashError,
                           .contextOverflow(promptTokens: tokens.count, limit: m.model.config.contextLength))
        }
        XCTAssertEqual(pc.tree.stats().lockedNodes, 0)
    }

    func testConcurrentRequestsShareTheCacheAndAgree() async throws {
        let m = try LoadedModel(path: try tinyModelPath())
        let docs = (0..<2).map { syntheticDocument(seed: 20 + UInt64($0), words: 250) }
        let dir = try precomputed(m, docs, chunkSize: 32)
        let store = try ChunkStore(path: dir)
        defer { try? store.close() }
        let pc = m.prefixCache(store: store, ram: 1 << 26, writeBack: true)
        let prompts = docs.flatMap { d in questions.map { m.queryTokens(d, $0) } }
        let references = try prompts.map { try referenceGreedy(m.model, m.tokenizer, $0, maxTokens: 12) }
        let answers = try await withThrowingTaskGroup(of: (Int, [Int]).self) { group in
            for (i, p) in (prompts + prompts).enumerated() {
                group.addTask { (i % prompts.count, try pc.generate(tokens: p, options: GenerationOptions(maxTokens: 12)).tokens) }
            }
            return try await group.reduce(into: [(Int, [Int])]()) { $0.append($1) }
        }
        for (i, tokens) in answers { XCTAssertEqual(tokens, references[i], "prompt \(i)") }
        XCTAssertEqual(pc.tree.stats().lockedNodes, 0)
    }

    func testPrecomputeIsResumableAndReusesStoredChunks() throws {
        let m = try LoadedModel(path: try tinyModelPath())
        let dir = temporaryDirectory()
        let store = try ChunkStore(path: dir, options: StoreOptions(chunkSize: 32))
        defer { try? store.close() }
        let pc = m.prefixCache(store: store, ram: 0)
        let doc = syntheticDocument(seed: 30, words: 200)
        let tokens = m.documentTokens(doc)
        var calls = 0
        let stopped = try pc.precompute(tokens: tokens, id: "a", name: "a", shouldStop: { calls += 1; return calls > 2 })
        XCTAssertTrue(stopped.interrupted)
        XCTAssertEqual(stopped.written.chunks, 2)
        XCTAssertNil(try store.document(id: "a"), "an interrupted document is not recorded")
        let resumed = try pc.precompute(tokens: tokens, id: "a", name: "a")
        XCTAssertFalse(resumed.interrupted)
        let tailEntries = resumed.tailTokens > 0 ? 1 : 0
        XCTAssertEqual(resumed.written.chunks, resumed.chunks - 2 + tailEntries, "the two stored chunks are reused")
        XCTAssertEqual(resumed.sources.disk, 2 * 32)
        XCTAssertNotNil(try store.document(id: "a"))
        XCTAssertTrue(try pc.precompute(tokens: tokens, id: "a", name: "a").skipped)
        // The resumed chain splices into a cache equal to one prefilled from scratch.
        let fresh = temporaryDirectory()
        let store2 = try ChunkStore(path: fresh, options: StoreOptions(chunkSize: 32))
        defer { try? store2.close() }
        let one = try m.prefixCache(store: store2, ram: 0).precompute(tokens: tokens, id: "a", name: "a")
        XCTAssertEqual(one.written.chunks, resumed.chunks + tailEntries)
        for key in pc.keyer.chain(tokens) {
            XCTAssertEqual(try store.get(key), try store2.get(key), "same bytes, interrupted or not")
        }
    }
}
