import KVStashCore
import KVStashStore

/// A query prompt's partial last chunk (its "prompt tail") in the store, and its reuse: the
/// rows of a stored tail that a new prompt shares (the chat template's next turn and a
/// question's common words after the same document), as llama.cpp's server reuses a saved
/// slot's longest common prefix. A chunk key commits to a whole tail's tokens, so the store
/// records the tails after each chunk (`ChunkStore.recordPromptTail`) and a request picks
/// the one sharing the most tokens with its own.
extension PrefixCache {
    /// A prompt tail holds fewer tokens than this many chunks.
    static var promptTailChunks: Int { 2 }

    /// A stored prompt tail at a chunk boundary and the rows of it the prompt can use.
    struct PromptTailMatch {
        /// The tail's block(s): `entry.tokens` rows are decoded.
        let entry: ChunkFetcher.Entry
        /// Leading rows the prompt shares (and may reuse), at least 1.
        let rows: Int
    }

    /// Step 7b: stores `state`'s prompt tail under `key(parent, tail tokens)` and records it
    /// as the most recent tail after `parent`; a tail already stored is only moved to the
    /// front. The tail is the prompt past its stored chain of full chunks (`parent` is the
    /// last of them), where a later prompt's hit on that chain stops: usually the partial
    /// last chunk, and a full chunk before it too while the admission policy has not let
    /// that chunk in yet. A prompt that continues no stored chunk keeps no tail, so tails
    /// number at most `promptTails` per stored chunk however many prompts, salts or tenants
    /// a client sends; nor does a tail of two chunks or more. Not shared with other tiers.
    func storePromptTail(_ state: SequenceState, promptCount: Int) -> WriteBackReport {
        var report = WriteBackReport()
        guard let store, options.promptTails > 0, options.writeBackQueries, state.cache.count >= promptCount
        else { return report }
        let keys = keyer.chain(Array(state.tokens[..<promptCount]))
        let stored = storedChunks(keys).prefix { $0 }.count
        let start = stored * chunkSize
        guard stored > 0, promptCount > start, promptCount - start < Self.promptTailChunks * chunkSize
        else { return report }
        let parent = keys[stored - 1]
        let tokens = Array(state.tokens[start..<promptCount])
        let key = keyer.key(parent: parent, tokens: tokens[...])
        if !storedChunks([key])[0] {
            storeEntry(key, parent: parent, chainIndex: stored, range: start..<promptCount, state: state,
                       origin: .promptTail, report: &report)
            guard report.chunks > 0 else { return report }
        }
        do {
            try store.recordPromptTail(PromptTail(key: key, tokens: tokens), after: parent, limit: options.promptTails)
        } catch {
            options.logger.warning("could not record a prompt tail; it is stored but not found by later prompts",
                                   metadata: ["chunk": "\(key)", "error": "\(error)"])
        }
        return report
    }

    /// The stored prompt tail after chunk `parent` (starting at `start`, a chunk boundary)
    /// that shares the most tokens with `tokens[start..<reusable]`, if one is in the store.
    func promptTailMatch(_ tokens: [Int], start: Int, parent: ChunkKey, reusable: Int,
                         fetcher: ChunkFetcher) -> PromptTailMatch? {
        guard let store, options.promptTails > 0, start > 0, start < reusable else { return nil }
        let tails: [PromptTail]
        do {
            // Only tails whose key this request's keyer gives their tokens: its tenant's and
            // model's (the parent key commits to both already; this holds whatever a record says).
            tails = try store.promptTails(after: parent)
                .filter { keyer.key(parent: parent, tokens: $0.tokens[...]) == $0.key }
        } catch {
            options.logger.warning("could not read the prompt tails; prefilling instead",
                                   metadata: ["parent": "\(parent)", "error": "\(error)"])
            return nil
        }
        let wanted = tokens[start..<reusable]
        let ranked = tails.map { ($0, $0.sharedPrefix(with: wanted)) }.filter { $0.1 > 0 }.sorted { $0.1 > $1.1 }
        guard !ranked.isEmpty else { return nil }
        let levels = fetcher.probe(ranked.map(\.0.key))
        guard let i = levels.indices.first(where: { levels[$0] != nil }) else { return nil }
        let (tail, rows) = ranked[i]
        let entry = fetchEntry(tail.key, level: levels[i]!, parent: parent, chainIndex: start / chunkSize,
                               tokens: tail.tokens[...])
        return PromptTailMatch(entry: entry, rows: rows)
    }

    /// Splices the first `match.rows` rows of a prompt tail at the cache's end; false (and
    /// nothing spliced) when its block could not be read. A tail longer than the cache's
    /// room is decoded beside it, then its shared rows are appended.
    func splicePromptTail(_ state: inout SequenceState, _ match: PromptTailMatch, fetcher: ChunkFetcher) -> Bool {
        let start = state.cache.count
        let rows = start..<(start + match.rows)
        let fetched: ChunkFetcher.Fetched
        if start + match.entry.tokens <= state.cache.capacity {
            fetched = fetcher.fetchRun([match.entry], into: &state.cache).fetched[0]
            if fetched.outcome == .spliced { state.cache.truncate(to: rows.upperBound) }
        } else {
            var beside = KVCache(shape: state.cache.shape, capacity: match.entry.tokens, rotation: state.cache.rotation)
            fetched = fetcher.fetchRun([match.entry], into: &beside, positionOffset: start).fetched[0]
            if fetched.outcome == .spliced { state.cache.append(contentsOf: beside, 0..<match.rows) }
        }
        noteSkipped(fetched, rows: rows, in: &state)
        recordTail(fetched.outcome, tokens: match.rows, level: match.entry.level, in: &state)
        return fetched.outcome == .spliced
    }
}
