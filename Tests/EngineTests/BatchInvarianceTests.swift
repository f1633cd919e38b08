import CKernels
import XCTest
@testable import KVStashEngine
import KVStashCore

/// A position's KV and logits do not depend on how the positions around it are batched: a
/// prompt prefilled at once against the same prompt prefilled in two parts (a cached prefix
/// and the rest, the rest as one prefill or decoded token by token), compared bit for bit.
/// This is what makes a cache hit's answer the miss's answer, token for token. The splits
/// put the second part's first row on both sides of the attention's key blocks and segments
/// (256 keys at Gemma 3's head dimension, 512 at SmolLM2's), of the few-row path's limit (32 rows), and of Gemma 3's window (512).
final class BatchInvarianceTests: XCTestCase {
    func testTinyKQuantModel() throws {
        let model = try LlamaModel(path: try TestSupport.tinyModelPath(.kQuants))
        try check(model, promptLength: 500, suffixes: [1, 2, 3, 9, 32, 33, 245, 300])
    }

    func testSmolLM2() throws {
        try check(try TestSupport.realModel(), promptLength: 1100, suffixes: [1, 3, 8, 32, 33, 76, 589, 600])
    }

    func testGemma3AcrossTheWindow() throws {
        try check(try TestSupport.gemma3Model(), promptLength: 1300,
                  suffixes: [1, 2, 4, 9, 32, 33, 276, 277, 520, 788, 800])
    }

    /// Prefills `promptLength` random tokens at once, then for each suffix length the prefix
    /// and the suffix apart (suffixes of up to 3 tokens decoded one by one): every K and V
    /// row of every layer and the last logits must be equal bit for bit (the whole prompt's last
    /// layer runs past K and V for its last row only; decode's for its one row). The last logits
    /// of a short prompt must also be the last row of its every-row logits.
    private func check(_ model: LlamaModel, promptLength: Int, suffixes: [Int]) throws {
        try XCTSkipUnless(model.batchInvariant, "this CPU does not compute this model's rows batch-invariantly (LlamaModel.batchInvariant)")
        let prompt = TestSupport.tokens(promptLength, vocab: min(model.config.vocabSize, 30_000), seed: 21).map { max($0, 3) }
        let short = Array(prompt.prefix(45)), vocab = model.config.vocabSize
        var lastOnly = model.newCache(), everyRow = model.newCache()
        let last = try model.prefill(short, cache: &lastOnly)
        let all = try model.prefill(short, cache: &everyRow, allLogits: true)
        // The head itself takes other kernels for many rows than for one (it is not among the
        // batch-invariant products), so the two agree to its rounding, not bit for bit.
        let lastOfAll = Array(all.suffix(vocab)), scale = lastOfAll.map(abs).max() ?? 1
        let gap = zip(last, lastOfAll).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThan(gap, 1e-4 * scale, "last logits of \(short.count) rows")
        XCTAssertEqual(last.indices.max { last[$0] < last[$1] }, lastOfAll.indices.max { lastOfAll[$0] < lastOfAll[$1] })
        var whole = model.newCache()
        let expected = try model.prefill(prompt, cache: &whole)
        for suffix in suffixes {
            var cache = model.newCache()
            let cut = prompt.count - suffix
            _ = try model.prefill(Array(prompt[..<cut]), cache: &cache)
            var logits: [Float] = []
            if suffix <= 3 {
                for token in prompt[cut...] { logits = try model.decode(token, cache: &cache) }
            } else {
                logits = try model.prefill(Array(prompt[cut...]), cache: &cache)
            }
            XCTAssertEqual(logits.map(\.bitPattern), expected.map(\.bitPattern), "logits, suffix of \(suffix)")
            for layer in 0..<model.config.layers {
                for kind in [KVKind.key, .value] {
                    let a = whole.halfRows(layer: layer, kind, 0..<prompt.count)
                    let b = cache.halfRows(layer: layer, kind, 0..<prompt.count)
                    XCTAssertTrue(a == b, "layer \(layer) \(kind) rows differ, suffix of \(suffix)")
                }
            }
        }
    }
}
