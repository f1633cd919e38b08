import Foundation
import XCTest
@testable import KVStash
import KVStashStore

/// Precompute against the store: tenants, progress of tails, and refused writes.
final class PrecomputeStoreTests: XCTestCase {
    private func cache(_ m: LoadedModel, _ store: ChunkStore, salt: String) -> PrefixCache {
        PrefixCache(model: m.model, tokenizer: m.tokenizer, store: store, modelFingerprint: m.fingerprint,
                    options: PrefixCacheOptions(codec: .int8, ramBudgetBytes: 0, tenantSalt: Array(salt.utf8)),
                    chunkSize: store.chunkSize)
    }

    /// Tenant B's `manual` is computed even though tenant A stored a `manual`.
    func testTenantsWithTheSameDocumentIDAreKeptApart() throws {
        let m = try LoadedModel(path: try tinyModelPath())
        let store = try ChunkStore(path: temporaryDirectory(), options: StoreOptions(chunkSize: 32))
        defer { try? store.close() }
        let a = try cache(m, store, salt: "tenant-a").precompute(tokens: m.documentTokens(syntheticDocument(seed: 1, words: 60)),
                                                                  id: "manual", name: "manual")
        let tokensB = m.documentTokens(syntheticDocument(seed: 2, words: 60))
        let pcB = cache(m, store, salt: "tenant-b")
        let b = try pcB.precompute(tokens: tokensB, id: "manual", name: "manual")
        XCTAssertFalse(b.skipped, "another tenant's id does not hide this one's")
        XCTAssertEqual(b.written.chunks, b.chunks + (b.tailTokens > 0 ? 1 : 0))
        XCTAssertGreaterThan(a.written.chunks, 0)
        let recordB = try XCTUnwrap(try store.document(id: "manual", salt: Array("tenant-b".utf8)))
        XCTAssertEqual(Array(recordB.chunkKeys.prefix(b.chunks)), pcB.keyer.chain(tokensB))
        XCTAssertNil(try store.document(id: "manual"), "the default tenant sees neither")
        XCTAssertTrue(try pcB.precompute(tokens: tokensB, id: "manual", name: "manual").skipped)
    }

    /// Progress counts the tail's tokens; a stored tail counts as its tokens, not a chunk.
    func testProgressAndStoredTokensIncludeTails() throws {
        let m = try LoadedModel(path: try tinyModelPath())
        let store = try ChunkStore(path: temporaryDirectory(), options: StoreOptions(chunkSize: 32))
        defer { try? store.close() }
        let pc = cache(m, store, salt: "")
        for (seed, words) in [(3, 5), (4, 80)] {
            let tokens = m.documentTokens(syntheticDocument(seed: UInt64(seed), words: words))
            var done = 0
            let first = try pc.precompute(tokens: tokens, id: "doc-\(seed)", name: "d", progress: { done += $0 })
            XCTAssertGreaterThan(first.tailTokens, 0, "the document ends inside a chunk")
            XCTAssertEqual(done, tokens.count, "every token computed is reported, the tail's too")
            XCTAssertEqual(first.tokensAlreadyStored, 0)
            var again = 0
            let second = try pc.precompute(tokens: tokens, id: "copy-\(seed)", name: "d", progress: { again += $0 })
            XCTAssertEqual(again, 0)
            XCTAssertEqual(second.tokensAlreadyStored, tokens.count, "chunks and tail were stored")
        }
    }

    /// A store that refuses writes (full disk, byte budget) fails the precompute with the reason.
    func testRefusedWritesFailThePrecompute() throws {
        let m = try LoadedModel(path: try tinyModelPath())
        let tokens = m.documentTokens(syntheticDocument(seed: 5, words: 80))
        for options in [StoreOptions(chunkSize: 32, minFreeBytes: 1 << 60), StoreOptions(chunkSize: 32, byteBudget: 100)] {
            let path = temporaryDirectory()
            try ChunkStore(path: path, options: StoreOptions(chunkSize: 32)).close()   // created with room
            let store = try ChunkStore(path: path, options: options)
            defer { try? store.close() }
            XCTAssertThrowsError(try cache(m, store, salt: "").precompute(tokens: tokens, id: "d", name: "d")) { error in
                guard case KVStashError.storeFull(let why)? = error as? KVStashError else {
                    return XCTFail("\(error)")
                }
                XCTAssertTrue(why.contains("disk is full") || why.contains("byte budget"), why)
            }
            XCTAssertNil(try store.document(id: "d"))
            XCTAssertEqual(store.counters.entries, 0)
        }
    }
}
