import KVStashCodec
import KVStashCore
import KVStashStore
import Logging

/// Reads chunks from the store and decodes them into a sequence's cache.
///
/// The codec checks the block's header (chunk key, model fingerprint, shape, checksums)
/// before the cache is touched. A block that fails is reported to the store (counted and
/// removed) and treated as a miss: the caller recomputes those tokens.
struct ChunkFetcher: Sendable {
    let store: ChunkStore
    let fingerprint: [UInt8]
    /// Where a chunk that could not be read or decoded is logged, with the cause.
    let logger: Logger
    /// The payload checksum guards what was read; the frame's content checksum was
    /// checked when the block was written (`WriteBack` validates before it stores).
    let decoder = KVBlockDecoder(verifiesFrameContent: false)

    enum Outcome: Sendable {
        /// Spliced: rows `[start, start + chunkSize)` now hold the chunk's KV.
        case spliced
        /// Not in the store (evicted since the probe, or a hole).
        case missing
        /// In the store but rejected by the codec; reported and treated as a miss.
        case corrupt
    }

    /// Which of `keys` the store holds (one multi-get over the small meta records).
    func probe(_ keys: [ChunkKey]) -> [Bool] {
        keys.isEmpty ? [] : store.probe(keys)
    }

    /// Fetches consecutive entries `keys`, `tokens` tokens each, and splices them at
    /// `cache.count` onwards: every entry is read, verified and decoded on its own worker,
    /// straight into its rows, with K rotated there by the cache's RoPE for the rows'
    /// positions (row r at `r + positionOffset`). Returns each entry's outcome; the cache
    /// then holds the rows up to the first entry that was not spliced (later ones are
    /// dropped, to be fetched again after it).
    func fetchRun(_ keys: ArraySlice<ChunkKey>, tokens: Int, into cache: inout KVCache) -> [Outcome] {
        fetchRun(keys.map { Entry(key: $0, tokens: tokens) }, into: &cache)
    }

    /// A stored entry and the tokens it holds (a full chunk, or a document's tail).
    struct Entry: Sendable {
        let key: ChunkKey
        let tokens: Int
    }

    /// `fetchRun` of entries of any lengths (full chunks, then a tail).
    func fetchRun(_ entries: [Entry], into cache: inout KVCache, positionOffset: Int = 0) -> [Outcome] {
        let start = cache.count
        var ranges: [Range<Int>] = []
        for entry in entries { ranges.append((ranges.last?.upperBound ?? start)..<((ranges.last?.upperBound ?? start) + entry.tokens)) }
        let outcomes = cache.writeConcurrently(ranges, positionOffset: positionOffset) { i, writer in
            fetch(entries[i].key, into: writer)
        }
        let spliced = outcomes.prefix { $0 == .spliced }.count
        cache.truncate(to: spliced == 0 ? start : ranges[spliced - 1].upperBound)
        return outcomes
    }

    /// One worker of `fetchRun`: decodes the value where the store holds it (no copy).
    private func fetch(_ key: ChunkKey, into writer: KVRowWriter) -> Outcome {
        let decoded: Result<Void, Error>?
        do {
            // The decoder checks every byte (header and payload checksums, chunk key), so
            // RocksDB need not hash the value again.
            decoded = try store.withValue(key, selfChecked: true) { raw in
                Result { _ = try decoder.decode(raw, expectedChunkKey: key.bytes, expectedFingerprint: fingerprint, into: writer) }
            }
        } catch {
            logger.warning("store read failed; recomputing the chunk", metadata: ["chunk": "\(key)", "error": "\(error)"])
            return .missing
        }
        switch decoded {
        case nil: return .missing
        case .success?: return .spliced
        case .failure(let error)?:
            logger.warning("stored chunk rejected by the codec; removing and recomputing it",
                           metadata: ["chunk": "\(key)", "error": "\(error)"])
            do {
                try store.reportCorrupt(key, reason: "request path: \(error)")
            } catch {
                logger.error("could not remove a corrupt chunk", metadata: ["chunk": "\(key)", "error": "\(error)"])
            }
            return .corrupt
        }
    }

    /// Fetches the entry `key` of `tokens` tokens whose first rows are already in the cache
    /// (from RAM): `start` lies inside the entry, before `cache.count`, and only the rows
    /// past `cache.count` are appended.
    func fetchTail(_ key: ChunkKey, start: Int, tokens: Int, into cache: inout KVCache) -> Outcome {
        var scratch = KVCache(shape: cache.shape, capacity: tokens, rotation: cache.rotation)
        let outcome = fetchRun([Entry(key: key, tokens: tokens)], into: &scratch, positionOffset: start)[0]
        if outcome == .spliced { cache.append(contentsOf: scratch, (cache.count - start)..<scratch.count) }
        return outcome
    }
}
