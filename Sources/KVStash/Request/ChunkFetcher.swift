import KVStashCodec
import KVStashCore
import KVStashStore
import Logging

/// Reads chunks from the ordered tiers (local store, then shared) and decodes them into a
/// sequence's cache.
///
/// The codec checks the block's header (chunk key, model fingerprint, shape, checksums)
/// before the cache is touched. A damaged block is rejected to its tier (counted and
/// removed) and treated as a miss: the caller recomputes those tokens. A block of a format
/// or codec version this reader does not know is a miss too, but stays in its tier.
struct ChunkFetcher: Sendable {
    let tiers: ChunkTiers
    let fingerprint: [UInt8]
    /// Where a chunk that could not be read or decoded is logged, with the cause.
    let logger: Logger
    /// The payload checksum guards what was read; the frame's content checksum was
    /// checked when the block was written (`WriteBack` validates before it stores).
    let decoder = KVBlockDecoder(verifiesFrameContent: false)

    enum Outcome: Sendable {
        /// Spliced: rows `[start, start + chunkSize)` now hold the chunk's KV.
        case spliced
        /// Not in the tier (evicted since the probe, a hole, the tier failed or was too slow).
        case missing
        /// In the tier but rejected by the codec; reported and treated as a miss.
        case corrupt
        /// Written by a newer format or codec version; a miss, left in its tier.
        case unknownVersion
    }

    /// Which tier holds each of `keys` first (nil: none).
    func probe(_ keys: [ChunkKey]) -> [Int?] {
        keys.isEmpty ? [] : tiers.probe(keys)
    }

    /// A stored entry, the tokens it holds (a full chunk, or a document's tail) and the
    /// tier level to read it from. `meta` describes it for the local copy of a shared hit.
    struct Entry: Sendable {
        let key: ChunkKey
        let tokens: Int
        var level = 0
        var meta: ChunkMeta?
        /// Layers the block under `key` must carry (nil: a block of every layer).
        var layers: [Int]? = nil
        /// A second block of the same rows to read from the same tier, with the layers it
        /// must carry: a sliding-window model's sliding layers (see `LayerSplit`). Not read
        /// when the first block carries every layer.
        var second: (key: ChunkKey, layers: [Int])? = nil
    }

    /// What one worker of a fetch read.
    struct Fetched: Sendable {
        var outcome: Outcome
        /// The rows now hold every layer (false: only the entry's `layers`).
        var complete = false
    }

    /// The outcome of `fetchRun`: each entry's outcome and the rows spliced after the first
    /// entry that was not.
    struct Run {
        /// What each entry's read gave.
        var fetched: [Fetched]
        var outcomes: [Outcome] { fetched.map(\.outcome) }
        /// Each entry's rows in the sequence.
        var ranges: [Range<Int>]
        /// The rows from the end of the first entry not spliced to the end of the run, when
        /// a later entry was spliced (nil otherwise); row 0 is sequence row `heldStart`.
        /// Their keys commit to the tokens before them, not to those tokens' KV, so they
        /// stay valid while the entry before them is recomputed: `appendHeld` puts them back.
        var held: KVCache?
        var heldStart = 0

        /// Appends the held rows of entry `i` (spliced, after the first one that was not)
        /// to `cache`, which must end where the entry starts.
        func appendHeld(_ i: Int, to cache: inout KVCache) {
            guard let held else { preconditionFailure("no rows held") }
            precondition(cache.count == ranges[i].lowerBound && outcomes[i] == .spliced)
            cache.append(contentsOf: held, (ranges[i].lowerBound - heldStart)..<(ranges[i].upperBound - heldStart))
        }
    }

    /// Fetches consecutive `entries` and splices them at `cache.count` onwards: every entry
    /// is read once, verified and decoded on its own worker, straight into its rows, with K
    /// rotated there by the cache's RoPE for the rows' positions (row r at `r +
    /// positionOffset`). The cache then holds the rows up to the first entry that was not
    /// spliced; the rows of later entries that were are held in the result (see `Run.held`).
    /// Reads from the shared tier share one deadline: the time recomputing their tokens
    /// would take.
    func fetchRun(_ entries: [Entry], into cache: inout KVCache, positionOffset: Int = 0) -> Run {
        let start = cache.count
        var ranges: [Range<Int>] = []
        for entry in entries { ranges.append((ranges.last?.upperBound ?? start)..<((ranges.last?.upperBound ?? start) + entry.tokens)) }
        var run = Run(fetched: fetch(entries, at: ranges, into: &cache, positionOffset: positionOffset), ranges: ranges)
        let outcomes = run.outcomes
        let spliced = outcomes.prefix { $0 == .spliced }.count
        if spliced < outcomes.count, outcomes[(spliced + 1)...].contains(.spliced) {
            let rows = ranges[spliced].upperBound..<ranges[ranges.count - 1].upperBound
            var held = KVCache(shape: cache.shape, capacity: rows.count, rotation: cache.rotation)
            held.append(contentsOf: cache, rows)
            run.held = held
            run.heldStart = rows.lowerBound
        }
        cache.truncate(to: spliced == 0 ? start : ranges[spliced - 1].upperBound)
        return run
    }

    /// Reads `entries` into rows `ranges` of `cache` (sorted, disjoint, the first starting at
    /// or before `cache.count`), each on its own worker, the entries with the most rows and
    /// layers to decode first; rows of an entry that fails are left unspecified. Reads from
    /// the shared tier share one deadline.
    func fetch(_ entries: [Entry], at ranges: [Range<Int>], into cache: inout KVCache,
               positionOffset: Int = 0) -> [Fetched] {
        let remoteTokens = entries.filter { tiers.levels[$0.level].isShared }.reduce(0) { $0 + $1.tokens }
        let deadline = remoteTokens > 0 ? tiers.fetchDeadline(tokens: remoteTokens) : nil
        let layers = cache.shape.layers
        let work = entries.map { $0.tokens * (($0.layers?.count ?? layers) + ($0.second?.layers.count ?? 0)) }
        let order = entries.indices.sorted { work[$0] != work[$1] ? work[$0] > work[$1] : $0 < $1 }
        return cache.writeConcurrently(ranges, positionOffset: positionOffset, order: order) { i, writer in
            fetch(entries[i], deadline: deadline, into: writer)
        }
    }

    /// One worker of `fetchRun`: the entry's block, then its second block if it has one
    /// and the first did not carry every layer.
    private func fetch(_ entry: Entry, deadline: ContinuousClock.Instant?, into writer: KVRowWriter) -> Fetched {
        let (outcome, header) = read(entry.key, layers: entry.layers, entry, deadline: deadline, into: writer)
        guard outcome == .spliced, let header else { return Fetched(outcome: outcome) }
        guard header.carriedLayers != nil else { return Fetched(outcome: .spliced, complete: true) }
        guard let second = entry.second else { return Fetched(outcome: .spliced) }
        let (secondOutcome, _) = read(second.key, layers: second.layers, entry, deadline: deadline, into: writer)
        return Fetched(outcome: secondOutcome, complete: secondOutcome == .spliced)
    }

    /// Reads block `key` of `entry`'s rows from its tier, decoding the value where the tier
    /// holds it (no copy); the block must carry `layers` (nil: every layer).
    private func read(_ key: ChunkKey, layers: [Int]?, _ entry: Entry, deadline: ContinuousClock.Instant?,
                      into writer: KVRowWriter) -> (Outcome, KVBlockHeader?) {
        let level = tiers.levels[entry.level]
        let started = ContinuousClock.now
        var bytes = 0
        let decoded: Result<KVBlockHeader, Error>?
        do {
            decoded = try level.tier.withBlock(key, deadline: level.isShared ? deadline : nil) { raw in
                bytes = raw.count
                let result = Result {
                    try decoder.decode(raw, expectedChunkKey: key.bytes, expectedFingerprint: fingerprint,
                                       requiredLayers: layers ?? Array(0..<writer.shape.layers), into: writer)
                }
                if level.isShared, case .success(let header) = result, var meta = entry.meta {
                    meta.codec = header.codec.name
                    tiers.copyToLocal(key, value: Array(raw.bindMemory(to: UInt8.self)), meta: meta, from: level)
                }
                return result
            }
        } catch {
            let late = deadline.map { ContinuousClock.now >= $0 } ?? false
            level.meter.update {
                $0.errors += 1
                if late { $0.deadlines += 1 }
            }
            logger.warning("chunk read failed; recomputing the chunk",
                           metadata: ["tier": "\(level.tier.tierName)", "chunk": "\(key)", "error": "\(error)"])
            return (.missing, nil)
        }
        let seconds = (ContinuousClock.now - started).seconds
        level.meter.update {
            $0.fetches += 1
            $0.fetchSeconds += seconds
            $0.bytesRead += bytes
        }
        switch decoded {
        case nil:
            level.meter.update { $0.misses += 1 }
            return (.missing, nil)
        case .success(let header)?:
            level.meter.update { $0.hits += 1 }
            return (.spliced, header)
        case .failure(let error)?:
            if let blockError = error as? KVBlockError, Self.isUnknownVersion(blockError) {
                level.meter.update { $0.unknownVersion += 1 }
                logger.info("chunk of an unknown format or codec version; recomputing it, leaving it in its tier",
                            metadata: ["tier": "\(level.tier.tierName)", "chunk": "\(key)", "error": "\(error)"])
                level.tier.reject(key, .unknownVersion("\(error)"))
                return (.unknownVersion, nil)
            }
            level.meter.update { $0.damaged += 1 }
            logger.warning("chunk rejected by the codec; removing and recomputing it",
                           metadata: ["tier": "\(level.tier.tierName)", "chunk": "\(key)", "error": "\(error)"])
            level.tier.reject(key, .damaged("\(error)"))
            return (.corrupt, nil)
        }
    }

    /// Errors that mean "written by a newer version" (the header checksum passed, or the
    /// version field itself is newer), not damage.
    static func isUnknownVersion(_ error: KVBlockError) -> Bool {
        switch error {
        case .unsupportedVersion, .unknownCodec, .unsupportedFlags: true
        default: false
        }
    }

    /// Fetches `entry` whose first rows are already in the cache (from RAM): `start` lies
    /// inside the entry, before `cache.count`, and only the rows past `cache.count` are
    /// appended.
    func fetchTail(_ entry: Entry, start: Int, into cache: inout KVCache) -> Outcome {
        var scratch = KVCache(shape: cache.shape, capacity: entry.tokens, rotation: cache.rotation)
        let outcome = fetchRun([entry], into: &scratch, positionOffset: start).outcomes[0]
        if outcome == .spliced { cache.append(contentsOf: scratch, (cache.count - start)..<scratch.count) }
        return outcome
    }
}
