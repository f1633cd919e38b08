import Foundation
import XCTest
@testable import KVStash
import KVStashCodec
import KVStashCore
import KVStashEngine
import KVStashStore

/// Exactness of the request path for a sliding-window model (gemma3) with the lossless f32
/// codec: answers with spliced KV equal answers computed from scratch when the spliced
/// prefix ends before, at and after the window, on and off chunk boundaries, through a hole
/// in the chain, and with the store's K re-rotated by each layer's own RoPE table (sliding
/// and global layers use different bases). The sliding-layer rows a hit leaves out are
/// filled with NaN before every attention.
final class SlidingWindowRequestTests: XCTestCase {
    /// Precomputes `sequence` with `chunk`-token chunks, then for each cut asks
    /// `sequence[..<cut] + question`: cold from disk (full chunks below the cut, or the
    /// whole sequence with its tail), then again hot from RAM. Then a hole: chunk 1 evicted.
    private func checkCuts(_ m: LoadedModel, sequence: [Int], chunk: Int, cuts: [Int], question: [Int],
                           maxTokens: Int) throws {
        let dir = temporaryDirectory()
        let store = try ChunkStore(path: dir, options: StoreOptions(chunkSize: chunk))
        defer { try? store.close() }
        var options = PrefixCacheOptions(codec: .f32, writeBackQueries: false)
        options.poisonsSkippedRows = true  // the sliding rows a hit leaves out are NaN: never read
        let pc = PrefixCache(model: m.model, tokenizer: m.tokenizer, store: store, modelFingerprint: m.fingerprint,
                             options: options)
        _ = try pc.precompute(tokens: sequence, id: "doc", name: "doc")
        for cut in cuts {
            let tokens = Array(sequence[..<cut]) + question
            let reference = try referenceGreedy(m.model, m.tokenizer, tokens, maxTokens: maxTokens)
            pc.tree.evictAll()
            let cold = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: maxTokens))
            XCTAssertEqual(cold.tokens, reference, "cold, cut \(cut)")
            XCTAssertEqual(cold.sources.disk, cut == sequence.count ? cut : cut / chunk * chunk, "cut \(cut)")
            // Hot in the cold request's own cache (`RadixTree.resident`, with the rows it left
            // out), then from the tree's pages.
            for resident in [true, false] {
                if !resident { pc.tree.resident.clear() }
                let takes = pc.tree.stats().residentTakes
                let hot = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: maxTokens))
                XCTAssertEqual(hot.tokens, reference, "hot, cut \(cut), resident \(resident)")
                XCTAssertEqual(hot.sources.ram, tokens.count - 1, "cut \(cut)")
                XCTAssertEqual(pc.tree.stats().residentTakes, takes + (resident ? 1 : 0))
            }
        }
        let keys = pc.keyer.chain(sequence)
        try store.evict(.keys([keys[1]]))
        pc.tree.evictAll()
        let tokens = sequence + question
        let r = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: maxTokens))
        XCTAssertEqual(r.tokens, try referenceGreedy(m.model, m.tokenizer, tokens, maxTokens: maxTokens), "hole")
        XCTAssertEqual(r.sources.disk, sequence.count - chunk, "chunks after the hole still come from disk")
    }

    /// Token ids of `text` to append to a prompt: without the BOS the tokenizer may add.
    private func continuation(_ m: LoadedModel, _ text: String) -> [Int] {
        Array(m.tokenizer.encode(text).dropFirst(m.tokenizer.encode("").count))
    }

    /// A tiny gemma3 with a window of 40 and 16-token chunks: cuts at 20 (inside the window),
    /// 32, 40 (the window), 41, 48, 57 and the whole 100-token sequence.
    func testTinyGemma3CutsAroundTheWindowEqualNoCache() throws {
        var spec = TinyModelSpec.gemma3
        spec.slidingWindow = 40
        let m = try LoadedModel(path: try tinyModelPath(spec))
        XCTAssertEqual(m.model.config.layerAttention.compactMap(\.window), [40, 40, 40, 40, 40])
        XCTAssertEqual(Set(m.model.rotary.tableOfLayer).count, 2, "sliding and global layers rotate differently")
        let sequence = Array(m.documentTokens(syntheticDocument(seed: 40, words: 200), .raw).prefix(100))
        XCTAssertEqual(sequence.count, 100)
        try checkCuts(m, sequence: sequence, chunk: 16, cuts: [20, 32, 40, 41, 48, 57, 100],
                      question: continuation(m, " What now?"), maxTokens: 12)
    }

    /// Gemma 3 270M, window 512, 64-token chunks: the spliced prefix ends at 448, 512 and
    /// 576 (before, at and after the window), inside a chunk at 530, and with the tail at 700.
    func testGemma3CutsAroundTheWindowEqualNoCache() throws {
        let m = try LoadedModel(path: try gemma3ModelPath())
        let text = (0..<3).map { syntheticDocument(seed: 50 + UInt64($0), words: 300) }.joined(separator: "\n\n")
        let sequence = Array(m.documentTokens(text, .raw).prefix(700))
        XCTAssertEqual(sequence.count, 700)
        try checkCuts(m, sequence: sequence, chunk: 64, cuts: [448, 512, 530, 576, 700],
                      question: continuation(m, "\n\nWhich town is named first?"), maxTokens: 8)
    }

    /// Gemma 3 270M, 64-token chunks: after a cold hit on the whole 700-token sequence (whose
    /// tree pages lack the sliding rows of the chunks ending before 700 - 512), a hit on its first 530 tokens reads
    /// the sliding rows its window needs from the store and completes the tree's pages with
    /// them; the same request again reads nothing from the store. Every answer is the uncached one.
    func testGemma3RowsReadBackCompleteTheTreePages() throws {
        let m = try LoadedModel(path: try gemma3ModelPath())
        let text = (0..<3).map { syntheticDocument(seed: 50 + UInt64($0), words: 300) }.joined(separator: "\n\n")
        let sequence = Array(m.documentTokens(text, .raw).prefix(700))
        let store = try ChunkStore(path: temporaryDirectory(), options: StoreOptions(chunkSize: 64))
        defer { try? store.close() }
        var options = PrefixCacheOptions(codec: .f32, writeBackQueries: false)
        options.poisonsSkippedRows = true
        let pc = PrefixCache(model: m.model, tokenizer: m.tokenizer, store: store, modelFingerprint: m.fingerprint,
                             options: options)
        _ = try pc.precompute(tokens: sequence, id: "doc", name: "doc")
        let question = continuation(m, "\n\nWhich town is named first?")
        let bytesRead = { pc.tiers.counters.reduce(0) { $0 + $1.counters.bytesRead } }
        _ = try pc.generate(tokens: sequence + question, options: GenerationOptions(maxTokens: 2))
        let tokens = Array(sequence[..<530]) + question
        let reference = try referenceGreedy(m.model, m.tokenizer, tokens, maxTokens: 8)
        var before = bytesRead()
        let second = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: 8))
        XCTAssertEqual(second.tokens, reference)
        XCTAssertGreaterThan(bytesRead() - before, 0)
        XCTAssertGreaterThan(pc.tree.stats().completedPages, 0)
        before = bytesRead()
        let third = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: 8))
        XCTAssertEqual(third.tokens, reference)
        XCTAssertEqual(third.sources.ram, tokens.count - 1)
        XCTAssertEqual(bytesRead() - before, 0, "every row it needs is in RAM")
    }

    /// Gemma's chat form (recognized from its vocabulary: the GGUF has no template) puts the
    /// document in the first user turn; the precomputed document is still an exact token
    /// prefix of the query, so a cold query splices all of it and answers as without a cache.
    func testGemma3ChatDocumentIsAnExactPrefixOfTheQuery() throws {
        let m = try LoadedModel(path: try gemma3ModelPath())
        XCTAssertEqual(m.chat.form, .gemma)
        let doc = syntheticDocument(seed: 60, words: 200)
        let docTokens = m.documentTokens(doc), tokens = m.queryTokens(doc, "Which town is named first?")
        XCTAssertEqual(Array(tokens.prefix(docTokens.count)), docTokens)
        XCTAssertEqual(PromptTemplate.chatSystem.query(document: doc, question: "Q?", chat: m.chat),
                       "<start_of_turn>user\n" + doc + "\n\nQ?<end_of_turn>\n<start_of_turn>model\n")
        let store = try ChunkStore(path: temporaryDirectory(), options: StoreOptions(chunkSize: 64))
        defer { try? store.close() }
        let pc = m.prefixCache(store: store, ram: 0)
        _ = try pc.precompute(tokens: docTokens, id: "doc", name: "doc")
        let r = try pc.generate(tokens: tokens, options: GenerationOptions(maxTokens: 8))
        XCTAssertEqual(r.sources.disk, docTokens.count)
        XCTAssertEqual(r.tokens, try referenceGreedy(m.model, m.tokenizer, tokens, maxTokens: 8))
    }
}
