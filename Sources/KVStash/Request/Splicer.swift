import Foundation
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
    /// Whether the last spliced chunk came from the shared tier.
    var lastFromShared = false
    /// Hold on the radix-tree nodes spliced from RAM.
    var lease: RadixLease?
    /// Rows of sliding layers left out of the cache (see `PrefixCache.ensureSlidingRows`).
    var skipped = SkippedRows()
    /// Where the assembly time went.
    public internal(set) var timings = AssemblyTimings()
    /// Lets other requests take a step (between prefill chunks); false once the request's
    /// consumer wants no more. See `PrefixCache.generate`.
    var passTurn: @Sendable () -> Bool = { true }
    /// The prompt's registration in `tree.inflight` while it is prefilled.
    var inflight: InflightPrompts.Ticket?
}

/// Seconds spent in each step of building a prompt's KV.
public struct AssemblyTimings: Sendable, Codable, Equatable {
    /// Radix-tree match and splice of its pages.
    public var ram = 0.0
    /// Store probe, fetch, verify, decode and splice.
    public var disk = 0.0
    /// Prefill.
    public var prefill = 0.0

    public init() {}
}

/// Runs `body` and adds its duration to `seconds`.
func timed<T>(_ seconds: inout Double, _ body: () throws -> T) rethrows -> T {
    let start = ContinuousClock.now
    defer { seconds += (ContinuousClock.now - start).seconds }
    return try body()
}

extension PrefixCache {
    /// Builds the KV of `tokens`: RAM pages first, then stored chunks past them (a hole is
    /// recomputed and probing goes on), then prefill of whatever is left.
    ///
    /// With `needLogits`, at least the last token is prefilled so that `logits` hold the
    /// next-token distribution. The returned state holds a lease on tree nodes: call
    /// `finish(_:)` when done with it.
    ///
    /// With `passTurn` (requests taking turns at the model) and a RAM tier, a prompt that
    /// shares more with one another request is prefilling than the tree holds waits for that
    /// prompt to land in the tree, passing the turn, and a prompt this request prefills is
    /// registered in `tree.inflight` until `finish` (or its first token, `generate`).
    func assemble(_ tokens: [Int], needLogits: Bool, capacity: Int,
                  passTurn: (@Sendable () -> Bool)? = nil) throws -> SequenceState {
        guard !tokens.isEmpty else { throw KVStashError.emptyPrompt }
        let limit = model.config.contextLength
        guard tokens.count + (needLogits ? 1 : 0) <= limit else {
            throw KVStashError.contextOverflow(promptTokens: tokens.count, limit: limit)
        }
        let reusable = needLogits ? tokens.count - 1 : tokens.count
        // Waiting for another request's prompt pays only where it lands in the tree.
        let sharesPrefills = passTurn != nil && options.ramBudgetBytes > 0
        if sharesPrefills, let passTurn { try awaitSharedPrefill(Array(tokens[..<reusable]), passTurn: passTurn) }
        // Room rounded up to a chunk, so that the next request over the same prefix (a question
        // a few tokens longer) can take this cache over from `tree.resident` without growing it.
        let room = min(limit, (capacity + chunkSize - 1) / chunkSize * chunkSize)
        var state = SequenceState(tokens: tokens, cache: model.newCache(capacity: room))
        state.passTurn = passTurn ?? { true }
        state.skipped.layers = layerSplit?.sliding ?? []
        state.sources.prompt = tokens.count
        state.cache.keepsRawKeys = store != nil  // the prompt's K before RoPE, for write-back
        do {
            var ram = 0.0
            timed(&ram) { spliceFromRAM(&state, reusable: reusable) }
            state.timings.ram = ram
            let probed = try spliceFromDisk(&state, reusable: reusable)
            spliceTail(&state, reusable: reusable, probed: probed)
            if state.cache.count > reusable {  // the last token is recomputed for its logits
                if state.lastFromShared { state.sources.shared -= state.cache.count - reusable } else { state.sources.disk -= state.cache.count - reusable }
                state.cache.truncate(to: reusable)
            }
            ensureSlidingRows(&state)
            if state.cache.count < tokens.count {
                if sharesPrefills { state.inflight = tree.inflight.register(tokens, namespace: namespace) }
                try prefill(&state, upTo: tokens.count)
            }
            state.cache.keepsRawKeys = false  // not for the tokens decoded next
            return state
        } catch {
            finish(state)
            throw error
        }
    }

    /// Releases what `assemble` holds (the tree lease, the prompt's registration).
    func finish(_ state: SequenceState) {
        if let lease = state.lease { tree.release(lease) }
        if let ticket = state.inflight { tree.inflight.remove(ticket) }
    }

    /// While a prompt another request is prefilling shares a page or more of `tokens` beyond
    /// what the tree holds, lets the other requests run: that prompt lands in the tree after
    /// its first token, and this request then splices it instead of computing it again.
    private func awaitSharedPrefill(_ tokens: [Int], passTurn: () -> Bool) throws {
        while true {
            let shared = tree.inflight.sharedPrefix(tokens, namespace: namespace)
            guard shared >= KVPage.size else { return }
            guard shared >= tree.heldTokens(tokens, namespace: namespace) + KVPage.size else { return }
            guard passTurn() else { throw CancellationError() }
        }
    }

    /// Step 2: the longest prefix in the radix tree (whole pages, then part of one).
    private func spliceFromRAM(_ state: inout SequenceState, reusable: Int) {
        guard options.ramBudgetBytes > 0, reusable > 0 else { return }
        let match = tree.match(Array(state.tokens[..<reusable]), namespace: namespace, lock: true)
        state.lease = match.lease
        state.sources.ram = match.tokenCount
        guard match.tokenCount > 0 else { return }
        // A recent request's cache, when it holds the matched positions, instead of a copy of the pages.
        let capacity = state.cache.capacity, keepsRaw = state.cache.keepsRawKeys
        if tree.resident.take(state.tokens[..<match.tokenCount], namespace: namespace, into: &state.cache,
                              skipped: &state.skipped) {
            state.cache.reserve(capacity)
            state.cache.keepsRawKeys = keepsRaw
            return
        }
        state.cache.splice(match.pages, rows: match.tokenCount)
        for (i, page) in match.pages.enumerated() where !page.skippedLayers.isEmpty {
            state.skipped.add((i * KVPage.size)..<min(match.tokenCount, i * KVPage.size + page.rows))
        }
    }

    /// Steps 3-5: probe every full chunk past the RAM match, then fetch and splice each
    /// run of consecutive stored chunks (decoded in parallel, K rotated and narrowed to f16 as it lands),
    /// prefilling the gaps (holes) between runs and the chunks a run could not splice
    /// (rejected, gone, late) while keeping the ones after them. The last run takes the stored
    /// tail past it along (a document's, or a prompt tail's shared rows: `tailForRun`), so all
    /// of it decodes in one parallel step. Returns that last probe for tails, so `spliceTail`
    /// need not hash and probe again.
    private func spliceFromDisk(_ state: inout SequenceState, reusable: Int) throws -> TailProbe? {
        guard !tiers.levels.isEmpty else { return nil }
        let fetcher = ChunkFetcher(tiers: tiers, fingerprint: modelFingerprint, logger: options.logger)
        let keys = keyer.chain(state.tokens)
        let size = chunkSize
        let first = state.cache.count / size
        guard first < keys.count else { return nil }
        var probed: TailProbe?
        var seconds = 0.0
        defer { state.timings.disk += seconds }
        var found = timed(&seconds) { [Int?](repeating: nil, count: first) + fetcher.probe(Array(keys[first...])) }
        let tokens = state.tokens
        let entry = { (i: Int) in
            self.fetchEntry(keys[i], level: found[i] ?? 0, parent: i == 0 ? .root : keys[i - 1], chainIndex: i,
                       tokens: tokens[(i * size)..<((i + 1) * size)])
        }
        var index = first
        while index < keys.count {
            guard found[index] != nil else { index += 1; continue }
            let start = index * size
            if state.cache.count < start { try prefill(&state, upTo: start) }
            if state.cache.count > start {  // the chunk's head came from RAM
                let before = state.cache.count
                let fetched = entry(index)
                let outcome = timed(&seconds) { fetcher.fetchTail(fetched, start: start, into: &state.cache) }
                record(outcome, chunk: index, tokens: state.cache.count - before, level: fetched.level, in: &state)
                index += 1
                continue
            }
            let end = found[index...].firstIndex(of: nil) ?? keys.count
            var entries = (index..<end).map(entry)
            var tailRows = 0  // of a stored tail the run ends with, the rows the prompt uses
            if !found[end...].contains(where: { $0 != nil }) {
                var probe = timed(&seconds) {
                    probeTails(state.tokens, start: end * size, parent: end > 0 ? keys[end - 1] : .root,
                               reusable: reusable, fetcher: fetcher)
                }
                if let tail = tailForRun(&probe, capacity: state.cache.capacity) {
                    entries.append(tail.entry)
                    tailRows = tail.rows
                }
                probed = probe
            }
            let spliced = try spliceRun(entries, chunks: index..<end, tailRows: tailRows, fetcher: fetcher,
                                        into: &state, seconds: &seconds)
            for i in spliced.recomputed { found[i] = nil }
            if spliced.tailSpliced { probed = TailProbe(start: state.cache.count, untried: []) }  // nothing more to splice
            index = state.cache.count / size
        }
        return probed
    }

    /// The stored tail a run of chunks ending at `probe.start` takes along, out of `probe`: the
    /// prompt tail when its rows fit the cache (in place: its rows past the shared ones are
    /// dropped after the run), else the longest document tail the prompt continues. Nil when
    /// there is none, or the prompt tail is decoded beside the cache later (`spliceTail`).
    private func tailForRun(_ probe: inout TailProbe, capacity: Int) -> (entry: ChunkFetcher.Entry, rows: Int)? {
        if let prompt = probe.prompt {
            guard probe.start + prompt.entry.tokens <= capacity else { return nil }
            probe.prompt = nil
            return (prompt.entry, prompt.rows)
        }
        guard let tail = probe.untried.first else { return nil }
        probe.untried.removeFirst()
        return (tail, tail.tokens)
    }

    /// Fetches one run: the full chunks `chunks` (their entries first in `entries`, starting at
    /// the cache's end), then the stored tail if `entries` has one more, of which `tailRows` rows
    /// are kept. Past an entry that was not spliced, its rows are recomputed and the later ones
    /// put back (each chunk is read once; the chain keeps later ones valid). Returns the chunks
    /// recomputed and whether the tail was spliced.
    private func spliceRun(_ entries: [ChunkFetcher.Entry], chunks: Range<Int>, tailRows: Int, fetcher: ChunkFetcher,
                           into state: inout SequenceState, seconds: inout Double) throws
        -> (recomputed: [Int], tailSpliced: Bool) {
        let start = state.cache.count
        let reuseEnd = entries.reduce(start) { $0 + $1.tokens } - (entries.count > chunks.count ? entries.last!.tokens - tailRows : 0)
        let run = timed(&seconds) { fetcher.fetchRun(onlyNeeded(entries, start: start, end: reuseEnd), into: &state.cache) }
        var recomputed: [Int] = []
        for (offset, outcome) in run.outcomes.enumerated() {
            if outcome == .spliced && state.cache.count < run.ranges[offset].upperBound {
                try prefill(&state, upTo: run.ranges[offset].lowerBound)
                timed(&seconds) { run.appendHeld(offset, to: &state.cache) }
            }
            let isTail = offset == chunks.count, range = run.ranges[offset]
            let rows = isTail ? range.lowerBound..<reuseEnd : range
            if outcome == .spliced { noteSkipped(run.fetched[offset], rows: rows, in: &state) }
            guard !isTail else {
                if outcome == .spliced { state.cache.truncate(to: reuseEnd) }
                recordTail(outcome, tokens: rows.count, level: entries[offset].level, in: &state)
                return (recomputed, outcome == .spliced)
            }
            record(outcome, chunk: chunks.lowerBound + offset, tokens: chunkSize, level: entries[offset].level, in: &state)
            if outcome != .spliced { recomputed.append(chunks.lowerBound + offset) }
        }
        return (recomputed, false)
    }

    /// The fetch of `key` from tier `level`; a shared entry carries the meta of its local copy.
    func fetchEntry(_ key: ChunkKey, level: Int, parent: ChunkKey, chainIndex: Int,
                    tokens: ArraySlice<Int>) -> ChunkFetcher.Entry {
        let meta = tiers.levels[level].isShared
            ? ChunkMeta(parent: parent, chainIndex: chainIndex, tokens: Array(tokens), codec: "", modelFingerprint: modelFingerprint)
            : nil
        var entry = ChunkFetcher.Entry(key: key, tokens: tokens.count, level: level, meta: meta)
        if let split = layerSplit {  // both blocks; `onlyNeeded` drops the sliding one where no query sees it
            entry.layers = split.global
            entry.second = (LayerSplit.slidingKey(key), split.sliding)
        }
        return entry
    }

    /// What is stored past the chunk boundary `start`: the tails not fetched yet that the
    /// prompt continues (longest first), and a prompt tail it shares more rows with.
    struct TailProbe {
        let start: Int
        var untried: [ChunkFetcher.Entry]
        var prompt: PromptTailMatch?
        /// Stored tails after `parent` of at most `upTo` tokens were not looked for (the prompt
        /// tail shares more rows): `spliceTail` looks for them if that prompt tail does not splice.
        var unprobed: (parent: ChunkKey, upTo: Int)?
    }

    /// Counts a fetched chunk in the sources.
    func record(_ outcome: ChunkFetcher.Outcome, chunk: Int, tokens: Int, level: Int, in state: inout SequenceState) {
        recordTail(outcome, tokens: tokens, level: level, in: &state)
        if outcome == .spliced { state.chunksFromDisk.insert(chunk) }
    }

    /// Counts a fetched tail in the sources (it is not a full chunk: write-back may still
    /// store the chunk it starts, once the sequence fills it).
    func recordTail(_ outcome: ChunkFetcher.Outcome, tokens: Int, level: Int, in state: inout SequenceState) {
        switch outcome {
        case .spliced:
            if tiers.levels[level].isShared { state.sources.shared += tokens } else { state.sources.disk += tokens }
            state.lastFromShared = tiers.levels[level].isShared
        case .corrupt: state.sources.corruptChunks += 1
        case .unknownVersion: state.sources.unknownVersionChunks += 1
        case .missing: break
        }
    }

    /// A precomputed document's partial last chunk (its "tail", stored by `precompute`
    /// under `key(parent, tail tokens)`) starting at `start`, a chunk boundary: the keys of
    /// every possible tail length longer than `longerThan` are hashed and probed in one
    /// multi-get per tier. Returns the stored ones, longest first.
    private func storedTails(_ tokens: [Int], start: Int, parent: ChunkKey, reusable: Int, longerThan: Int = 0,
                             fetcher: ChunkFetcher) -> [ChunkFetcher.Entry] {
        let longest = min(chunkSize - 1, reusable - start)
        guard longest > longerThan else { return [] }
        let lengths = Array(((longerThan + 1)...longest).reversed())
        let keys = lengths.map { keyer.key(parent: parent, tokens: tokens[start..<(start + $0)]) }
        return zip(fetcher.probe(keys), zip(keys, lengths)).compactMap { level, candidate in
            level.map { fetchEntry(candidate.0, level: $0, parent: parent, chainIndex: start / chunkSize,
                                   tokens: tokens[start..<(start + candidate.1)]) }
        }
    }

    /// The tails stored at chunk boundary `start` (after chunk `parent`, if known): those the
    /// prompt continues, and the prompt tail sharing the most rows with it when that is more
    /// than the longest of them. Tails shorter than that prompt tail's shared rows are looked
    /// for only when it does not splice (`unprobed`).
    private func probeTails(_ tokens: [Int], start: Int, parent: ChunkKey? = nil, reusable: Int,
                            fetcher: ChunkFetcher) -> TailProbe {
        guard start % chunkSize == 0, start < reusable else { return TailProbe(start: start, untried: []) }
        let parent = parent ?? keyer.chain(Array(tokens[..<start])).last ?? .root
        let prompt = promptTailMatch(tokens, start: start, parent: parent, reusable: reusable, fetcher: fetcher)
        // A stored tail as long as the prompt tail's shared rows still wins (a document's own
        // tail), so lengths from those rows on are looked for.
        let shorter = max(0, (prompt?.rows ?? 0) - 1)
        let exact = storedTails(tokens, start: start, parent: parent, reusable: reusable, longerThan: shorter, fetcher: fetcher)
        return TailProbe(start: start, untried: exact, prompt: exact.isEmpty ? prompt : nil,
                         unprobed: shorter > 0 ? (parent, shorter) : nil)
    }

    /// Step 5b: the stored tail past a chain that `spliceFromDisk` did not fetch it with
    /// (the chain ended in RAM, or holes came after its last run, or its tail was lost, or
    /// a prompt tail shares more of the prompt): the prompt tail's shared rows, else the
    /// longest tail that splices. Where `probed` was taken at the cache's end, it is used
    /// instead of probing again.
    private func spliceTail(_ state: inout SequenceState, reusable: Int, probed: TailProbe?) {
        guard !tiers.levels.isEmpty else { return }
        var seconds = 0.0
        defer { state.timings.disk += seconds }
        let fetcher = ChunkFetcher(tiers: tiers, fingerprint: modelFingerprint, logger: options.logger)
        let probe = probed.flatMap { $0.start == state.cache.count ? $0 : nil }
            ?? timed(&seconds) { probeTails(state.tokens, start: state.cache.count, reusable: reusable, fetcher: fetcher) }
        if let prompt = probe.prompt, timed(&seconds, { splicePromptTail(&state, prompt, fetcher: fetcher) }) { return }
        let spliceFirst = { (tails: [ChunkFetcher.Entry], state: inout SequenceState) -> Bool in
            for tail in tails {
                let outcome = timed(&seconds) { fetcher.fetchRun([tail], into: &state.cache).outcomes[0] }
                self.recordTail(outcome, tokens: tail.tokens, level: tail.level, in: &state)
                if outcome == .spliced { return true }
            }
            return false
        }
        guard !spliceFirst(probe.untried, &state), let unprobed = probe.unprobed else { return }
        // The longer tails did not splice: the shorter ones, not looked for yet.
        let start = probe.start
        let shorter = timed(&seconds) {
            storedTails(state.tokens, start: start, parent: unprobed.parent, reusable: min(reusable, start + unprobed.upTo),
                        fetcher: fetcher)
        }
        _ = spliceFirst(shorter, &state)
    }

    /// Step 6: prefill `tokens[cache.count ..< end]`, one engine chunk (`LlamaModel.chunkSize`
    /// tokens, as the engine would split them anyway) at a time, with `state.passTurn` between
    /// chunks: a long prompt lets the other requests of a server take their steps meanwhile,
    /// and stops there (`CancellationError`) once its client is gone.
    func prefill(_ state: inout SequenceState, upTo end: Int) throws {
        guard end > state.cache.count else { return }
        ensureSlidingRows(&state)
        let start = state.cache.count
        var seconds = 0.0
        var at = start
        while at < end {
            let next = min(at + LlamaModel.chunkSize, end)
            state.logits = try timed(&seconds) { try model.prefill(Array(state.tokens[at..<next]), cache: &state.cache) }
            at = next
            if at < end, !state.passTurn() { throw CancellationError() }
        }
        state.timings.prefill += seconds
        tiers.notePrefill(tokens: end - start, seconds: seconds)
        state.sources.prefilled += end - start
    }
}
