import Foundation
import KVStash
import KVStashCodec
import KVStashStore

/// Bytes one cold hit reads, for a sliding-window model ($KVSTASH_MODEL, e.g. Gemma 3):
/// a document of the longest length is precomputed once; each shorter prefix shares its
/// chunks. For each length, a new request path (empty RAM tier) asks the prefix plus a
/// question and the local tier's counter says what it read. "Every layer whole" is what a
/// store of one block per chunk would read for the same chunks: the sum of both blocks of
/// every spliced chunk (from the stored values' sizes; one block would save one 120-byte
/// header and one frame header per chunk).
struct SlidingBytesRow: Codable {
    var promptTokens: Int
    var splicedTokens: Int
    var chunks: Int
    /// Every spliced chunk's global block, from the stored sizes.
    var globalBytes: Int
    /// The rest of what the hit read: the sliding blocks of the window.
    var slidingBytesRead: Int
    var bytesRead: Int
    var everyLayerWholeBytes: Int
    var ratio: Double
    var coldHitMs: Double
    var prefilled: Int
}

struct SlidingBytesResult: Codable {
    var machine = Machine()
    var model: String
    var codec: String
    var chunkSize: Int
    var window: Int
    var globalLayers: [Int]
    var slidingLayers: [Int]
    var storedBytesPerToken: Double
    var rows: [SlidingBytesRow]
}

func slidingBytesBench() throws {
    guard let split = LayerSplit(model.config.layerAttention) else {
        note("$KVSTASH_MODEL has no sliding-window layers"); exit(2)
    }
    let lengths = option("lengths", "1024,4096,8192").split(separator: ",").compactMap { Int($0) }
    let codec = KVCodec(name: option("codec", "int8")) ?? .int8
    let chunkSize = Int(option("chunk-size", "256"))!
    let longest = lengths.max()!
    var words = longest
    var tokens: [Int] = []
    while tokens.count < longest {
        tokens = tokenizer.encode(document(seed: 7, words: words))
        words += longest / 4
    }
    let question = Array(tokenizer.encode(" Which town is named first?").dropFirst(tokenizer.encode("").count))
    let dir = NSTemporaryDirectory() + "kvstash-swa-bytes-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let store = try ChunkStore(path: dir, options: StoreOptions(chunkSize: chunkSize))
    defer { try? store.close() }
    let started = now()
    let pre = try prefixCache(store, codec: codec, ram: 0)
        .precompute(tokens: Array(tokens.prefix(longest)), id: "doc", name: "doc")
    note("precomputed \(pre.tokens) tokens in \(String(format: "%.1f", now() - started)) s")
    let keys = pre.tokens == longest ? prefixCache(store, codec: codec, ram: 0).keyer.chain(Array(tokens.prefix(longest))) : []
    func size(_ key: ChunkKey) throws -> Int { try store.get(key, recordAccess: false)?.count ?? 0 }
    let stored = try keys.reduce(0) { try $0 + size($1) + size(LayerSplit.slidingKey($1)) }
    var rows: [SlidingBytesRow] = []
    for n in lengths.sorted() {
        let pc = prefixCache(store, codec: codec, ram: 0)
        let prompt = Array(tokens.prefix(n)) + question
        let t0 = now()
        let r = try pc.generate(tokens: prompt, options: GenerationOptions(maxTokens: 1))
        let ms = (now() - t0) * 1000
        let read = pc.tiers.counters.reduce(0) { $0 + $1.counters.bytesRead }
        let chunks = r.sources.disk / chunkSize
        let whole = try keys.prefix(chunks).reduce(0) { try $0 + size($1) + size(LayerSplit.slidingKey($1)) }
        let globalRead = try keys.prefix(chunks).reduce(0) { try $0 + size($1) }
        rows.append(SlidingBytesRow(promptTokens: prompt.count, splicedTokens: r.sources.disk, chunks: chunks,
                                    globalBytes: globalRead, slidingBytesRead: read - globalRead, bytesRead: read, everyLayerWholeBytes: whole,
                                    ratio: Double(read) / Double(max(whole, 1)), coldHitMs: ms,
                                    prefilled: r.sources.prefilled))
    }
    let result = SlidingBytesResult(model: ((ProcessInfo.processInfo.environment["KVSTASH_MODEL"] ?? "") as NSString).lastPathComponent, codec: codec.name,
                                    chunkSize: chunkSize, window: split.window, globalLayers: split.global,
                                    slidingLayers: split.sliding,
                                    storedBytesPerToken: Double(stored) / Double(max(keys.count * chunkSize, 1)), rows: rows)
    try write(result, "swa-bytes")
    print("| prefix tokens | chunks spliced | global bytes | sliding bytes read | bytes read | every layer whole | ratio | cold hit ms |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows {
        print("| \(r.splicedTokens) | \(r.chunks) | \(r.globalBytes) | \(r.slidingBytesRead) | \(r.bytesRead) | \(r.everyLayerWholeBytes) | "
              + String(format: "%.3f | %.0f |", r.ratio, r.coldHitMs))
    }
}
