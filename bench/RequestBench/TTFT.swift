import Foundation
import KVStash
import KVStashCodec
import KVStashStore

struct TTFTRow: Codable {
    var promptTokens: Int
    var codec: String
    var missMs: Double
    var coldHitMs: Double
    var hotHitMs: Double
    var coldSpeedup: Double
    var hotSpeedup: Double
    var coldFromDisk: Int
    var hotFromRAM: Int
    var prefilledOnHit: Int
    /// Cold hit, step by step (median run): store fetch+decode+splice, and prefill of the rest.
    var coldDiskMs: Double
    var coldPrefillMs: Double
    var hotRAMMs: Double
    var hotPrefillMs: Double
}

/// TTFT of a miss (full prefill) against a hit cold (RAM tier empty, store reopened from
/// disk: the OS page cache may still hold its files) and hot (RAM tier), per prompt length.
func ttftBench() throws {
    let lengths = option("lengths", "1024,4096,8000").split(separator: ",").compactMap { Int($0) }
    let codec = KVCodec(name: option("codec", "int8")) ?? .int8
    let reps = Int(option("reps", "3")) ?? 3
    var rows: [TTFTRow] = []
    for length in lengths {
        let doc = documentOf(tokens: length - 30, seed: UInt64(length))
        let prompt = PromptTemplate.chatSystem.query(document: doc, question: "What is the first town named?", chat: chat)
        let dir = NSTemporaryDirectory() + "kvstash-ttft-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Miss: empty store, no RAM tier. Its write-back (after the answer, outside TTFT) stores
        // the document's chunks, admitted at once, so the hits below reuse exactly this KV.
        var store = try ChunkStore(path: dir, options: StoreOptions(admission: AdmitAll()))
        let missCache = PrefixCache(model: model, tokenizer: tokenizer, store: store, modelFingerprint: fingerprint,
                                    options: PrefixCacheOptions(codec: codec, ramBudgetBytes: 0, writeBackQueries: true))
        let miss = try missCache.generate(prompt: prompt, options: GenerationOptions(maxTokens: 1))
        try store.close()
        var cold: [Double] = [], hot: [Double] = []
        var coldDisk = 0, hotRAM = 0, prefilled = 0
        var coldSteps: [AssemblyTimings] = [], hotSteps: [AssemblyTimings] = []
        for _ in 0..<reps {
            store = try ChunkStore(path: dir)  // reopened, RAM tier empty
            let pc = prefixCache(store, codec: codec, ram: 2 << 30)
            let c = try pc.generate(prompt: prompt, options: GenerationOptions(maxTokens: 1))
            let h = try pc.generate(prompt: prompt, options: GenerationOptions(maxTokens: 1))
            cold.append(c.timeToFirstToken); hot.append(h.timeToFirstToken)
            coldSteps.append(c.timings); hotSteps.append(h.timings)
            coldDisk = c.sources.disk; hotRAM = h.sources.ram; prefilled = c.sources.prefilled
            try store.close()
        }
        let row = TTFTRow(promptTokens: miss.sources.prompt, codec: codec.name, missMs: miss.timeToFirstToken * 1000,
                          coldHitMs: median(cold) * 1000, hotHitMs: median(hot) * 1000,
                          coldSpeedup: miss.timeToFirstToken / median(cold), hotSpeedup: miss.timeToFirstToken / median(hot),
                          coldFromDisk: coldDisk, hotFromRAM: hotRAM, prefilledOnHit: prefilled,
                          coldDiskMs: median(coldSteps.map(\.disk)) * 1000, coldPrefillMs: median(coldSteps.map(\.prefill)) * 1000,
                          hotRAMMs: median(hotSteps.map(\.ram)) * 1000, hotPrefillMs: median(hotSteps.map(\.prefill)) * 1000)
        note("\(row)")
        rows.append(row)
    }
    struct Out: Codable { var machine = Machine(); var reps: Int; var rows: [TTFTRow] }
    try write(Out(reps: reps, rows: rows), "ttft")
    print("| prompt tokens | codec | miss TTFT | hit cold (disk) | hit hot (RAM) | cold speedup | hot speedup |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows {
        print("| \(r.promptTokens) | \(r.codec) | " + String(format: "%.0f ms | %.1f ms | %.1f ms | %.0f× | %.0f× |",
                     r.missMs, r.coldHitMs, r.hotHitMs, r.coldSpeedup, r.hotSpeedup))
    }
}
