import Foundation
import KVStash
import KVStashCodec
import KVStashCore
import KVStashStore

/// Greedy continuations with the document's KV restored from disk through each codec,
/// against the lossless f32 path (which the test suite proves equal to no cache at all):
/// the share of prompts whose whole answer is identical, and the mean share of positions
/// that agree (top-1 agreement). Each document is prefilled once, stored in f32, and
/// transcoded into one store per codec, so every codec sees the same KV.
func agreementBench() throws {
    let prompts = Int(option("prompts", "6")) ?? 6
    let n = Int(option("tokens", "32")) ?? 32
    let questions = ["What is the document about?", "Which town is named first?",
                     "Summarize it in one sentence.", "Who built the bridge?"]
    let cases = (0..<prompts).map { i -> (doc: String, prompt: [Int]) in
        let doc = document(seed: 500 + UInt64(i), words: 300 + 40 * (i % 4))
        let q = PromptTemplate.chatSystem.query(document: doc, question: questions[i % questions.count], chat: chat)
        return (doc, tokenizer.encode(q))
    }
    let base = NSTemporaryDirectory() + "kvstash-agree-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: base) }
    let lossless = try ChunkStore(path: base + "/f32")
    let pc32 = prefixCache(lossless, codec: .f32, ram: 0)
    var references: [[Int]] = []
    var keys: [ChunkKey] = []
    for (i, c) in cases.enumerated() {
        let prefix = tokenizer.encode(PromptTemplate.chatSystem.prefix(document: c.doc, chat: chat))
        _ = try pc32.precompute(tokens: prefix, id: "d\(i)", name: "d\(i)")
        keys += pc32.keyer.chain(prefix)
        references.append(try pc32.generate(tokens: c.prompt, options: GenerationOptions(maxTokens: n)).tokens)
    }
    struct Row: Codable { var codec: String; var identicalAnswers: Double; var positionAgreement: Double; var diskTokens: Int; var bytes: Int }
    var rows: [Row] = []
    for codec in [KVCodec.f16, .int8, .int4] {
        let store = try ChunkStore(path: base + "/" + codec.name)
        let bytes = try transcode(keys, from: lossless, to: store, codec: codec)
        let pc = prefixCache(store, codec: codec, ram: 0)
        var identical = 0, agree = 0.0, disk = 0
        for (i, c) in cases.enumerated() {
            let r = try pc.generate(tokens: c.prompt, options: GenerationOptions(maxTokens: n))
            disk += r.sources.disk
            let ref = references[i]
            if r.tokens == ref { identical += 1 }
            let same = zip(r.tokens, ref).filter { $0 == $1 }.count
            agree += Double(same) / Double(max(ref.count, r.tokens.count, 1))
        }
        try store.close()
        rows.append(Row(codec: codec.name, identicalAnswers: Double(identical) / Double(prompts),
                        positionAgreement: agree / Double(prompts), diskTokens: disk, bytes: bytes))
        note("\(rows.last!)")
    }
    try lossless.close()
    struct Out: Codable { var machine = Machine(); var prompts: Int; var tokens: Int; var rows: [Row] }
    try write(Out(prompts: prompts, tokens: n, rows: rows), "agreement")
    print("| codec | identical \(n)-token greedy answers | top-1 agreement by position | stored bytes |")
    print("| --- | ---: | ---: | ---: |")
    for r in rows {
        print("| \(r.codec) | " + String(format: "%.0f%% | %.1f%% | %.1f MB |", r.identicalAnswers * 100,
                                          r.positionAgreement * 100, Double(r.bytes) / 1e6))
    }
}

/// Re-encodes the f32 chunks `keys` of `source` with `codec` into `target`; returns the bytes written.
func transcode(_ keys: [ChunkKey], from source: ChunkStore, to target: ChunkStore, codec: KVCodec) throws -> Int {
    var total = 0
    for key in keys {
        guard let value = try source.get(key), var meta = try source.meta(key) else { continue }
        var cache = model.newCache()
        let header = try KVBlockDecoder().decode(value, expectedChunkKey: key.bytes, expectedFingerprint: fingerprint,
                                                 into: &cache, at: 0)
        let encoded = try KVBlockEncoder(codec: codec).encode(cache, range: 0..<header.tokenCount, chunkKey: key.bytes,
                                                             modelFingerprint: fingerprint)
        meta.codec = codec.name
        try target.put(key, value: encoded, meta: meta)
        total += encoded.count
    }
    return total
}
