import KVStashEngine
import KVStashStore

/// The outcome of precomputing one document.
public struct PrecomputeResult: Sendable {
    public var id: String
    /// Tokens of the document's prefix (after truncation to the context length).
    public var tokens: Int
    /// Full chunks of the prefix.
    public var chunks: Int
    /// Tokens of the partial last chunk, stored as a tail entry (0: none).
    public var tailTokens: Int
    /// Where the chunks' KV came from (`disk`: already stored, fetched to extend the chain).
    public var sources: PromptSources
    /// What was written.
    public var written: WriteBackReport
    /// True when the prefix was longer than the model's context and was cut.
    public var truncated: Bool
    /// Prompt tokens whose KV was already stored (full chunks and the tail).
    public var tokensAlreadyStored: Int
    /// True when the document was already stored and skipped.
    public var skipped: Bool
    /// True when `shouldStop` ended it early; its document record is then not written.
    public var interrupted: Bool
    public var seconds: Double
}

extension PrefixCache {
    /// Precomputes and stores the KV of every full chunk of `tokens` (a document's prefix,
    /// already wrapped in its template) and of its partial last chunk (a tail entry), then
    /// records document `id` in the store. With a shared tier, the document's chunks found
    /// in the local store are published too when the shared tier lacks them.
    ///
    /// Chunks already stored are reused (fetched only when a later chunk must be computed
    /// after them); the others are prefilled and written one at a time, so memory is one
    /// document's KV and an interruption keeps every chunk written so far. `shouldStop` is
    /// checked before each chunk; `progress` gets the tokens of each chunk (and of the tail)
    /// computed. A write the store refuses for want of space (full disk, byte budget)
    /// throws `KVStashError.storeFull`; the chunks written before it stay.
    public func precompute(tokens: [Int], id: String, name: String, skipExisting: Bool = true,
                           shouldStop: () -> Bool = { false },
                           progress: (Int) -> Void = { _ in }) throws -> PrecomputeResult {
        guard let store else { throw KVStashError.invalid("precompute needs a store") }
        let start = ContinuousClock.now
        let capped = Array(tokens.prefix(model.config.contextLength))
        let keys = keyer.chain(capped)
        let tail = capped.count - keys.count * chunkSize
        var result = PrecomputeResult(id: id, tokens: capped.count, chunks: keys.count, tailTokens: tail,
                                      sources: PromptSources(),
                                      written: WriteBackReport(), truncated: capped.count < tokens.count,
                                      tokensAlreadyStored: 0,
                                      skipped: false, interrupted: false, seconds: 0)
        // Skipped only when the stored record is this model's chain (keys carry the model
        // fingerprint): the same document precomputed for another model is not this one's.
        if skipExisting, let stored = try store.document(id: id, salt: options.tenantSalt),
           keys.isEmpty || stored.chunkKeys.first == keys.first {
            tiers.publishStored(stored.chunkKeys)
            result.skipped = true
            result.tokensAlreadyStored = capped.count
            return result
        }
        var state = SequenceState(tokens: capped, cache: model.newCache(capacity: capped.count))
        state.cache.keepsRawKeys = true  // what the chunks encode
        let fetcher = ChunkFetcher(tiers: tiers, fingerprint: modelFingerprint, logger: options.logger)
        var found = fetcher.probe(keys)  // a chunk in any tier need not be computed
        let storedLocally = keys.indices.filter { tiers.isLocal(found[$0]) }
        tiers.publishStored(storedLocally.flatMap { LayerSplit.blocks(keys[$0], layerSplit).map(\.key) })
        if layerSplit != nil {  // with its sliding block too
            found = zip(found, fetcher.probe(keys.map(LayerSplit.slidingKey))).map { $1 == nil ? nil : $0 }
        }
        var present = found.map { $0 != nil }
        for index in keys.indices where !present[index] {
            if shouldStop() { result.interrupted = true; break }
            try catchUp(&state, to: index, keys: keys, found: &found, written: &result.written)
            try prefill(&state, upTo: (index + 1) * chunkSize)
            storeChunk(index, keys: keys, state: state, origin: .precompute, report: &result.written)
            try Self.checkRefusal(result.written)
            progress(chunkSize)
        }
        present = found.map { $0 != nil }
        result.written.alreadyStored = present.filter { $0 }.count
        result.tokensAlreadyStored = result.written.alreadyStored * chunkSize
        var entries = keys
        if tail > 0 && !result.interrupted && !shouldStop() {
            let storedBefore = result.written.alreadyStored
            entries.append(try storeTail(&state, keys: keys, found: &found, written: &result.written))
            try Self.checkRefusal(result.written)
            if result.written.alreadyStored > storedBefore { result.tokensAlreadyStored += tail } else { progress(tail) }
        }
        result.interrupted = result.interrupted || (tail > 0 && entries.count == keys.count)
        result.sources = state.sources
        result.sources.prompt = capped.count
        if layerSplit != nil {  // linked too, so document-wide evict, pin and ls cover both blocks
            entries += entries.map(LayerSplit.slidingKey)
        }
        if !result.interrupted {
            try store.putDocument(DocumentRecord(id: id, name: name, tokenCount: capped.count, chunkKeys: entries,
                                                  salt: options.tenantSalt))
        }
        result.seconds = (ContinuousClock.now - start).seconds
        return result
    }

    /// Throws when the store refused a write for want of space.
    private static func checkRefusal(_ written: WriteBackReport) throws {
        if let why = written.refusal { throw KVStashError.storeFull(why) }
    }

    /// Stores the partial last chunk (the tail) under `key(last full chunk, tail tokens)`,
    /// so a query that continues the document splices it too (see `spliceTail`).
    private func storeTail(_ state: inout SequenceState, keys: [ChunkKey], found: inout [Int?],
                           written: inout WriteBackReport) throws -> ChunkKey {
        let start = keys.count * chunkSize
        let key = keyer.key(parent: keys.last ?? .root, tokens: state.tokens[start...])
        let blockKeys = LayerSplit.blocks(key, layerSplit).map(\.key)
        let levels = tiers.probe(blockKeys)
        guard store != nil, levels.contains(nil) else {
            tiers.publishStored(zip(blockKeys, levels).filter { tiers.isLocal($0.1) }.map(\.0))
            written.alreadyStored += 1
            return key
        }
        try catchUp(&state, to: keys.count, keys: keys, found: &found, written: &written)
        try prefill(&state, upTo: state.tokens.count)
        storeEntry(key, parent: keys.last ?? .root, chainIndex: keys.count, range: start..<state.tokens.count,
                   state: state, origin: .precompute, report: &written)
        return key
    }

    /// Brings `state.cache` up to chunk `index`: stored chunks are fetched (from the shared
    /// tier: and copied into the local store); a chunk that fails verification is
    /// recomputed and written again.
    private func catchUp(_ state: inout SequenceState, to index: Int, keys: [ChunkKey], found: inout [Int?],
                         written: inout WriteBackReport) throws {
        let fetcher = ChunkFetcher(tiers: tiers, fingerprint: modelFingerprint, logger: options.logger)
        while state.cache.count < index * chunkSize {
            let j = state.cache.count / chunkSize
            let entry = fetchEntry(keys[j], level: found[j] ?? 0, parent: j == 0 ? .root : keys[j - 1], chainIndex: j,
                                   tokens: state.tokens[(j * chunkSize)..<((j + 1) * chunkSize)])
            let outcome = found[j] == nil ? .missing : fetcher.fetchRun([entry], into: &state.cache).outcomes[0]
            record(outcome, chunk: j, tokens: chunkSize, level: entry.level, in: &state)
            if outcome != .spliced {
                found[j] = nil
                try prefill(&state, upTo: (j + 1) * chunkSize)
                storeChunk(j, keys: keys, state: state, origin: .precompute, report: &written)
            }
        }
    }
}
