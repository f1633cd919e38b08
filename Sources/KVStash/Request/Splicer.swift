import KVStashCore
import KVStashEngine
import KVStashStore

/// The per-request state: one sequence's tokens, its KV cache and where the KV came from.
/// A value: each request owns its own.
public struct SequenceState: Sendable {
    /// The sequence so far (prompt, then generated tokens as they are decoded).
    public internal(set) var tokens: [Int]
    /// The sequence's KV.
    public internal(set) var cache: KVCache
    /// Where the prompt's KV came from.
    public internal(set) var sources = PromptSources()
    /// Logits after the last prefilled position (empty when none were needed).
    public internal(set) var logits: [Float] = []
    /// Indices of full chunks spliced from the store (no need to write them back).
    var chunksFromDisk: Set<Int> = []
    /// Hold on the radix-tree nodes spliced from RAM.
    var lease: RadixLease?
}

extension PrefixCache {
    /// Builds the KV of `tokens`: RAM pages first, then stored chunks past them (a hole is
    /// recomputed and probing goes on), then prefill of whatever is left.
    ///
    /// With `needLogits`, at least the last token is prefilled so that `logits` hold the
    /// next-token distribution. The returned state holds a lease on tree nodes: call
    /// `finish(_:)` when done with it.
    func assemble(_ tokens: [Int], needLogits: Bool, capacity: Int) throws -> SequenceState {
        guard !tokens.isEmpty else { throw KVStashError.emptyPrompt }
        let limit = model.config.contextLength
        guard tokens.count + (needLogits ? 1 : 0) <= limit else {
            throw KVStashError.contextOverflow(promptTokens: tokens.count, limit: limit)
        }
        var state = SequenceState(tokens: tokens, cache: model.newCache(capacity: min(capacity, limit)))
        state.sources.prompt = tokens.count
        let reusable = needLogits ? tokens.count - 1 : tokens.count
        do {
            spliceFromRAM(&state, reusable: reusable)
            try spliceFromDisk(&state)
            if state.cache.count > reusable {  // the last token is recomputed for its logits
                state.sources.disk -= state.cache.count - reusable
                state.cache.truncate(to: reusable)
            }
            if state.cache.count < tokens.count {
                try prefill(&state, upTo: tokens.count)
            }
            return state
        } catch {
            finish(state)
            throw error
        }
    }

    /// Releases what `assemble` holds (the tree lease).
    func finish(_ state: SequenceState) {
        if let lease = state.lease { tree.release(lease) }
    }

    /// Step 2: the longest page-granular prefix in the radix tree.
    private func spliceFromRAM(_ state: inout SequenceState, reusable: Int) {
        guard options.ramBudgetBytes > 0, reusable >= KVPage.size else { return }
        let match = tree.match(Array(state.tokens[..<reusable]), namespace: namespace, lock: true)
        state.lease = match.lease
        state.cache.splice(match.pages)
        state.sources.ram = match.tokenCount
    }

    /// Steps 3-5: probe every full chunk past the RAM match, fetch and splice the present
    /// ones in order, prefilling the gaps (holes) between them.
    private func spliceFromDisk(_ state: inout SequenceState) throws {
        guard let store else { return }
        let fetcher = ChunkFetcher(store: store, fingerprint: modelFingerprint)
        let keys = keyer.chain(state.tokens)
        let size = chunkSize
        let first = state.cache.count / size
        guard first < keys.count else { return }
        let present = fetcher.probe(Array(keys[first...]))
        for (offset, index) in (first..<keys.count).enumerated() where present[offset] {
            let start = index * size
            if state.cache.count < start { try prefill(&state, upTo: start) }
            let before = state.cache.count
            switch fetcher.fetch(keys[index], start: start, chunkSize: size, into: &state.cache) {
            case .spliced:
                state.sources.disk += state.cache.count - before
                state.chunksFromDisk.insert(index)
            case .corrupt:
                state.sources.corruptChunks += 1
            case .missing:
                break
            }
        }
    }

    /// Step 6: prefill `tokens[cache.count ..< end]` (the engine rotates spliced K first).
    func prefill(_ state: inout SequenceState, upTo end: Int) throws {
        let start = state.cache.count
        guard end > start else { return }
        state.logits = try model.prefill(Array(state.tokens[start..<end]), cache: &state.cache)
        state.sources.prefilled += end - start
    }
}
