import KVStashCodec
import KVStashCore
import KVStashStore

/// Reads chunks from the store and decodes them into a sequence's cache.
///
/// The codec checks the block's header (chunk key, model fingerprint, shape, checksums)
/// before the cache is touched. A block that fails is reported to the store (counted and
/// removed) and treated as a miss: the caller recomputes those tokens.
struct ChunkFetcher {
    let store: ChunkStore
    let fingerprint: [UInt8]
    let decoder = KVBlockDecoder()

    enum Outcome {
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

    /// Fetches the entry `key` of `tokens` tokens and splices it at `start`, which must equal `cache.count` or
    /// lie inside the chunk (the head of the chunk is then already in the cache, from RAM,
    /// and only the rows past `cache.count` are appended).
    func fetch(_ key: ChunkKey, start: Int, tokens: Int, into cache: inout KVCache) -> Outcome {
        guard let bytes = (try? store.get(key)) ?? nil else { return .missing }
        do {
            let header = try decoder.readHeader(bytes)
            guard header.tokenCount == tokens else {
                throw KVBlockError.invalidHeader("\(header.tokenCount) tokens in an entry of \(tokens)")
            }
            if cache.count == start {
                // On failure the decoder leaves the cache at its old count.
                try decoder.decode(bytes, expectedChunkKey: key.bytes, expectedFingerprint: fingerprint,
                                   into: &cache, at: start)
            } else {
                var scratch = KVCache(shape: cache.shape, capacity: tokens)
                try decoder.decode(bytes, expectedChunkKey: key.bytes, expectedFingerprint: fingerprint,
                                   into: &scratch, at: 0)
                cache.append(contentsOf: scratch, (cache.count - start)..<scratch.count)
            }
            return .spliced
        } catch {
            try? store.reportCorrupt(key, reason: "request path: \(error)")
            return .corrupt
        }
    }
}
