import CKernels
import Foundation
import XCTest
@testable import KVStash
import KVStashEngine
import KVStashStore

/// A model run on 8-bit prefill inputs (`--prefill-inputs 8`) keys its chunks apart: its KV
/// never meets a 16-bit run's, in either direction, and within its own mode an answer from
/// the store equals the same model's answer without any cache.
final class PrefillInputsTests: XCTestCase {
    func testEightBitPrefillInputsKeepTheirChunksApart() throws {
        let path = try tinyModelPath()
        let sixteen = try LoadedModel(path: path)
        let eightModel = try LlamaModel(path: path, prefillInputs: .eight)
        let eight = PrefixCache(model: eightModel, tokenizer: sixteen.tokenizer, store: nil,
                                modelFingerprint: sixteen.fingerprint, options: PrefixCacheOptions(ramBudgetBytes: 0))
        guard kv_gemm_q8_available() == 1 else {
            // Without AVX-512 VNNI both take 16-bit inputs (or f32 products): the same numerics, the same keys.
            XCTAssertNil(eightModel.numericsTag)
            XCTAssertEqual(eight.modelFingerprint, sixteen.fingerprint)
            return
        }
        XCTAssertEqual(eightModel.numericsTag, "prefill-inputs-8")
        XCTAssertNil(sixteen.model.numericsTag)
        XCTAssertEqual(eight.modelFingerprint, ModelFingerprint.variant(sixteen.fingerprint, numerics: "prefill-inputs-8"))
        XCTAssertNotEqual(eight.modelFingerprint, sixteen.fingerprint)

        let store = try ChunkStore(path: temporaryDirectory(), options: StoreOptions(chunkSize: 32))
        defer { try? store.close() }
        func cache(_ model: LlamaModel) -> PrefixCache {
            PrefixCache(model: model, tokenizer: sixteen.tokenizer, store: store, modelFingerprint: sixteen.fingerprint,
                        options: PrefixCacheOptions(codec: .f32, ramBudgetBytes: 0), chunkSize: store.chunkSize)
        }
        let document = syntheticDocument(seed: 11, words: 120)
        let docTokens = sixteen.documentTokens(document), query = sixteen.queryTokens(document, "Which town?")
        _ = try cache(sixteen.model).precompute(tokens: docTokens, id: "doc", name: "doc")
        let onEight = cache(eightModel)
        XCTAssertFalse(store.probe(onEight.keyer.chain(docTokens)).contains(true), "16-bit chunks under 8-bit keys")
        let miss = try onEight.generate(tokens: query, options: GenerationOptions(maxTokens: 8))
        XCTAssertEqual(miss.sources.disk, 0)
        XCTAssertEqual(miss.tokens, try referenceGreedy(eightModel, sixteen.tokenizer, query, maxTokens: 8))

        _ = try onEight.precompute(tokens: docTokens, id: "doc-8", name: "doc-8")
        let hit = try cache(eightModel).generate(tokens: query, options: GenerationOptions(maxTokens: 8))
        XCTAssertGreaterThan(hit.sources.disk, 0, "8-bit chunks serve 8-bit runs")
        XCTAssertEqual(hit.tokens, miss.tokens)
        XCTAssertTrue(store.probe(cache(sixteen.model).keyer.chain(docTokens)).allSatisfy { $0 },
                      "the 16-bit chunks are still there, under their own keys")
    }
}
