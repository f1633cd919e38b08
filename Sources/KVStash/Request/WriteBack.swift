import KVStashCodec
import KVStashCore
import KVStashStore
import Logging

/// What a write-back did.
public struct WriteBackReport: Sendable, Equatable {
    /// Chunks encoded and written.
    public var chunks = 0
    /// Bytes of the encoded values written.
    public var bytes = 0
    /// Full chunks that were already in the store.
    public var alreadyStored = 0
    /// Chunks the admission policy declined.
    public var declined = 0
    /// Chunks whose encode or put failed (the request still succeeds).
    public var failures = 0
    /// Of the failures, puts the store refused for want of space (full disk, byte budget).
    public var refusedNoSpace = 0
    /// Why the last such put was refused.
    public var refusal: String?
}

extension PrefixCache {
    /// Step 7: writes the full chunks of `state.tokens[..<promptCount]` that are not in the
    /// store yet, encoded with the configured codec, under the store's admission policy
    /// (precompute: always; queries: by default from a chunk's second sighting on).
    /// Failures to write are not fatal to the request: the chunk is simply not stored.
    func writeBack(_ state: SequenceState, promptCount: Int, origin: AdmissionOrigin) -> WriteBackReport {
        var report = WriteBackReport()
        guard store != nil, origin == .precompute || options.writeBackQueries else { return report }
        let usable = min(promptCount, state.cache.count)
        let keys = keyer.chain(Array(state.tokens[..<usable]))
        let candidates = keys.indices.filter { !state.chunksFromDisk.contains($0) }
        let present = candidates.isEmpty ? [] : storedChunks(candidates.map { keys[$0] })
        for (index, there) in zip(candidates, present) {
            if there { report.alreadyStored += 1; continue }
            storeChunk(index, keys: keys, state: state, origin: origin, report: &report)
        }
        report.alreadyStored += state.chunksFromDisk.count
        return report
    }

    /// Encodes full chunk `index` of `state` and puts it with its meta, if the admission
    /// policy agrees. `keys` is the chain of `state.tokens`.
    func storeChunk(_ index: Int, keys: [ChunkKey], state: SequenceState, origin: AdmissionOrigin,
                    report: inout WriteBackReport) {
        storeEntry(keys[index], parent: index == 0 ? .root : keys[index - 1], chainIndex: index,
                   range: (index * chunkSize)..<((index + 1) * chunkSize), state: state, origin: origin,
                   report: &report)
    }

    /// Whether each chunk of `keys` is in the local store: every one of its blocks (a
    /// sliding-window model stores two, see `LayerSplit`).
    func storedChunks(_ keys: [ChunkKey]) -> [Bool] {
        guard let store else { return keys.map { _ in false } }
        let perChunk = layerSplit == nil ? 1 : 2
        let there = store.probe(keys.flatMap { LayerSplit.blocks($0, layerSplit).map(\.key) })
        return keys.indices.map { i in there[(i * perChunk)..<((i + 1) * perChunk)].allSatisfy { $0 } }
    }

    /// Encodes rows `range` of `state` and puts them under `key`, if the admission policy
    /// agrees: one block, or for a sliding-window model each of its two blocks the store
    /// lacks (the sliding one only if the cache holds those rows).
    func storeEntry(_ key: ChunkKey, parent: ChunkKey, chainIndex: Int, range: Range<Int>, state: SequenceState,
                    origin: AdmissionOrigin, report: inout WriteBackReport) {
        guard let store else { return }
        let meta = ChunkMeta(parent: parent, chainIndex: chainIndex, tokens: Array(state.tokens[range]),
                             codec: options.codec.name, modelFingerprint: modelFingerprint)
        guard store.shouldAdmit(key: key, meta: meta, origin: origin) else {
            report.declined += 1
            return
        }
        var blocks = LayerSplit.blocks(key, layerSplit)
        if blocks.count > 1 {
            blocks = zip(blocks, store.probe(blocks.map(\.key))).filter { !$0.1 }.map(\.0)
            if !state.skipped.layers(in: range).isEmpty { blocks.removeAll { $0.layers == layerSplit?.sliding } }
        }
        var written = 0
        for block in blocks {
            let put = putBlock(block.key, layers: block.layers, range: range, state: state, meta: meta, origin: origin,
                               report: &report)
            written += put
            if put == 0 { break }  // a sliding block without its global block is never read
        }
        if written > 0 { report.chunks += 1 }
    }

    /// Encodes `layers` (nil: all) of rows `range`, validates and puts the block under `key`;
    /// returns the blocks written (0 or 1).
    private func putBlock(_ key: ChunkKey, layers: [Int]?, range: Range<Int>, state: SequenceState, meta: ChunkMeta,
                          origin: AdmissionOrigin, report: inout WriteBackReport) -> Int {
        guard let store else { return 0 }
        do {
            let value = try encoder.encode(state.cache, range: range, chunkKey: key.bytes,
                                           modelFingerprint: modelFingerprint, layers: layers)
            // The whole frame, content checksum included, is checked once here, so that
            // readers can rely on the payload checksum alone (see `ChunkFetcher.decoder`).
            _ = try KVBlockDecoder().validate(value)
            try store.put(key, value: value, meta: meta)
            report.bytes += value.count
            // A prompt tail is found through this store's record of tails (not shared).
            if origin != .promptTail { tiers.publish(key, value: value, meta: meta, wait: origin == .precompute) }
            return 1
        } catch let error as StoreError where error.isDiskFull || error.isOverBudget {
            report.failures += 1
            report.refusedNoSpace += 1
            report.refusal = error.description
        } catch {
            options.logger.warning("write-back of a chunk failed; it stays uncached",
                                   metadata: ["chunk": "\(key)", "error": "\(error)"])
            report.failures += 1
        }
        return 0
    }

    /// Inserts the sequence's whole pages into the radix tree; returns the tokens added.
    func insertIntoTree(_ state: SequenceState) -> Int {
        insertIntoTree(state.tokens, from: state.cache, skipped: state.skipped)
    }

    /// Hands the finished sequence's cache to the tree's resident caches (see
    /// `ResidentSequences`); `state` is left with an empty one.
    func keepResident(_ state: inout SequenceState) {
        guard options.ramBudgetBytes > 0 else { return }
        var cache = KVCache(shape: state.cache.shape, rotation: state.cache.rotation)
        swap(&cache, &state.cache)
        tree.keepResident(state.tokens, cache: consume cache, skipped: state.skipped, namespace: namespace)
    }

    /// Inserts the whole pages of `tokens` whose KV `cache` holds (without the rows
    /// `skipped` left out); returns the tokens added.
    func insertIntoTree(_ tokens: [Int], from cache: KVCache, skipped: SkippedRows = SkippedRows()) -> Int {
        guard options.ramBudgetBytes > 0 else { return 0 }
        let n = min(tokens.count, cache.count)
        return tree.insert(Array(tokens[..<n]), from: cache, namespace: namespace, skipped: skipped)
    }
}
