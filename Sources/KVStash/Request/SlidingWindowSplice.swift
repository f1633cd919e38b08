import KVStashCore
import KVStashStore

/// The splice of a sliding-window model (see `LayerSplit`): which sliding blocks a hit
/// reads, and the sliding rows it left out.
extension PrefixCache {
    /// `entries` (consecutive rows `start..<end`) without the sliding block of those no
    /// query at `end` or later sees: only entries overlapping `[end - window, end)` keep it.
    func onlyNeeded(_ entries: [ChunkFetcher.Entry], start: Int, end: Int) -> [ChunkFetcher.Entry] {
        guard let split = layerSplit else { return entries }
        var first = start
        return entries.map { entry in
            defer { first += entry.tokens }
            var entry = entry
            if first + entry.tokens <= end - split.window { entry.second = nil }
            return entry
        }
    }

    /// Records `rows`, spliced in the cache by `fetched`, as left out of the sliding layers
    /// when the fetch read the global block only.
    func noteSkipped(_ fetched: ChunkFetcher.Fetched, rows: Range<Int>, in state: inout SequenceState) {
        guard layerSplit != nil, fetched.outcome == .spliced, !fetched.complete else { return }
        state.skipped.add(rows)
    }

    /// Before rows are computed or decoded at `state.cache.count`: makes sure the sliding
    /// layers' rows of `[count - window, count)` are in the cache. Left-out rows there are
    /// read from the chunks' sliding blocks (one parallel fetch per run of chunks); a chunk
    /// whose sliding block is missing or damaged (or a left-out partial chunk, which has no
    /// chunk key) ends the usable prefix at its start, as a hole does, and the check runs
    /// again for the shorter prefix.
    func ensureSlidingRows(_ state: inout SequenceState) {
        guard let split = layerSplit else { return }
        var seconds = 0.0
        defer { state.timings.disk += seconds }
        let fetcher = ChunkFetcher(tiers: tiers, fingerprint: modelFingerprint, logger: options.logger)
        let size = chunkSize
        while true {
            let end = state.cache.count
            state.skipped.clip(to: end)
            let gaps = state.skipped.overlapping(max(0, end - split.window)..<end)
            guard let last = gaps.last?.upperBound else { break }
            let chunks = Array(Set(gaps.flatMap { ($0.lowerBound / size)...(($0.upperBound - 1) / size) })).sorted()
            let keys = keyer.chain(Array(state.tokens[..<min(end, last / size * size + size)]))
            // The first run of consecutive chunks that have a key (full) and a stored sliding block.
            let run = chunks.prefix { $0 < keys.count && $0 - chunks[0] == chunks.firstIndex(of: $0)! }
            let slidingKeys = run.map { LayerSplit.slidingKey(keys[$0]) }
            let levels = tiers.levels.isEmpty ? [] : timed(&seconds) { fetcher.probe(slidingKeys) }
            let readable = zip(run, levels).prefix { $0.1 != nil }.map { ($0.0, $0.1!) }
            let entries = readable.map { j, level in
                ChunkFetcher.Entry(key: LayerSplit.slidingKey(keys[j]), tokens: size, level: level,
                                   meta: fetchEntry(keys[j], level: level, parent: j == 0 ? .root : keys[j - 1], chainIndex: j,
                                                    tokens: state.tokens[(j * size)..<((j + 1) * size)]).meta,
                                   layers: split.sliding)
            }
            let ranges = readable.map { j, _ in (j * size)..<((j + 1) * size) }
            let fetched = entries.isEmpty ? [] : timed(&seconds) { fetcher.fetch(entries, at: ranges, into: &state.cache) }
            for (i, f) in fetched.enumerated() {
                if f.outcome == .spliced { state.skipped.remove(ranges[i]) } else {
                    recordTail(f.outcome, tokens: 0, level: entries[i].level, in: &state)
                }
            }
            let done = fetched.prefix { $0.outcome == .spliced }.count
            if done == run.count && (run.count == chunks.count || chunks[run.count] < keys.count) { continue }  // next run
            drop(&state, to: (done < run.count ? run[run.startIndex + done] : chunks[run.count]) * size)
        }
        if options.poisonsSkippedRows { poisonSkippedRows(&state) }
    }

    /// Drops the cache's rows from `end` on (spliced from RAM or a tier; no row there was
    /// computed, since every computed row had its window checked first) and their count
    /// in the sources.
    private func drop(_ state: inout SequenceState, to end: Int) {
        let removed = state.cache.count - end
        guard removed > 0 else { return }
        let fromRAM = max(0, state.sources.ram - end)
        state.sources.ram -= fromRAM
        if state.lastFromShared { state.sources.shared -= removed - fromRAM } else { state.sources.disk -= removed - fromRAM }
        state.chunksFromDisk = state.chunksFromDisk.filter { ($0 + 1) * chunkSize <= end }
        state.cache.truncate(to: end)
        state.skipped.clip(to: end)
    }

    /// Writes NaN into every left-out row of the sliding layers.
    private func poisonSkippedRows(_ state: inout SequenceState) {
        let d = state.cache.shape.kvDim
        for range in state.skipped.ranges {
            let nan = [Float](repeating: .nan, count: range.count * d)
            for layer in state.skipped.layers {
                for kind in [KVKind.key, .value] {
                    nan.withUnsafeBufferPointer { state.cache.store(layer: layer, kind, range, from: $0.baseAddress!, stride: d) }
                }
            }
        }
    }
}
