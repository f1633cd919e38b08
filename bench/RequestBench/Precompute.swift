import Foundation
import KVStash
import KVStashCodec
import KVStashStore

/// Precompute of a corpus: tokens/s, and peak RSS after 10 documents versus after all.
func precomputeBench() throws {
    let docs = Int(option("docs", "100")) ?? 100
    let words = Int(option("words", "220")) ?? 220
    let codec = KVCodec(name: option("codec", "int8")) ?? .int8
    let dir = NSTemporaryDirectory() + "kvstash-precompute-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let chunk = Int(option("chunk-size", "256")) ?? 256
    let store = try ChunkStore(path: dir, options: StoreOptions(chunkSize: chunk))
    let pc = prefixCache(store, codec: codec, ram: 0)
    var tokens = 0, computed = 0, bytes = 0
    var at10 = memory()
    let start = now()
    for i in 0..<docs {
        let text = document(seed: 1000 + UInt64(i), words: words + (i % 7) * 40)
        let t = tokenizer.encode(PromptTemplate.chatSystem.prefix(document: text, chat: chat))
        let r = try pc.precompute(tokens: t, id: "doc\(i)", name: "doc\(i)")
        tokens += r.tokens
        computed += r.sources.prefilled
        bytes += r.written.bytes
        if i == 9 { at10 = memory() }
    }
    let seconds = now() - start
    let atEnd = memory()
    try store.close()
    struct Out: Codable {
        var machine = Machine()
        var codec: String; var chunkSize: Int; var documents: Int; var tokens: Int; var tokensPrefilled: Int; var bytesStored: Int
        var seconds: Double; var tokensPerSecond: Double
        var peakRSSAfter10MB: Double; var peakRSSAfterAllMB: Double; var rssAfterAllMB: Double
    }
    let out = Out(codec: codec.name, chunkSize: chunk, documents: docs, tokens: tokens, tokensPrefilled: computed, bytesStored: bytes,
                  seconds: seconds, tokensPerSecond: Double(computed) / seconds,
                  peakRSSAfter10MB: at10.peak, peakRSSAfterAllMB: atEnd.peak, rssAfterAllMB: atEnd.rss)
    try write(out, "precompute")
    print("| documents | tokens | tokens/s | stored | peak RSS after 10 docs | peak RSS after \(docs) docs |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    print(String(format: "| %d | %d | %.0f | %.1f MB | %.0f MB | %.0f MB |", docs, tokens, out.tokensPerSecond,
                 Double(bytes) / 1e6, at10.peak, atEnd.peak))
}
