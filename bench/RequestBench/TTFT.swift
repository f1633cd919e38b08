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
    /// Process CPU time of the same calls (robust to other load on the machine).
    var missCPUMs: Double
    var coldHitCPUMs: Double
    var hotHitCPUMs: Double
    var coldCPUSpeedup: Double
    var hotCPUSpeedup: Double
    /// Fastest and slowest miss and cold hit (the medians above are the headline).
    var missRangeMs: [Double]
    var coldRangeMs: [Double]
}

/// CPU time of this process (all threads), in seconds.
func cpuNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Runs `body`, returning its result and the process CPU seconds it used.
func cpuTimed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let start = cpuNow()
    let r = try body()
    return (r, cpuNow() - start)
}

/// The first token of `prompt` through `cache`: one TTFT measurement.
func firstToken(_ cache: PrefixCache, _ prompt: String) throws -> RequestResult {
    try cache.generate(prompt: prompt, options: GenerationOptions(maxTokens: 1))
}

/// TTFT of a miss (full prefill) against a hit cold (RAM tier empty, store reopened from
/// disk: the OS page cache may still hold its files) and hot (RAM tier), per prompt length:
/// medians of `--reps` hits and `--miss-reps` misses (at most `--reps`), run alternately.
func ttftBench() throws {
    let lengths = option("lengths", "1024,4096,8000").split(separator: ",").compactMap { Int($0) }
    let codec = KVCodec(name: option("codec", "int8")) ?? .int8
    let reps = Int(option("reps", "3")) ?? 3
    let missReps = max(1, min(reps, Int(option("miss-reps", "3")) ?? 3))
    let profileRuns = Int(option("profile-cold", "0")) ?? 0
    var rows: [TTFTRow] = []
    for length in lengths {
        let doc = documentOf(tokens: length - 30, seed: UInt64(length))
        let prompt = PromptTemplate.chatSystem.query(document: doc, question: "What is the first town named?", chat: chat)
        let dir = NSTemporaryDirectory() + "kvstash-ttft-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Precompute the document (full chunks and tail), as `kvstash precompute` does.
        var store = try ChunkStore(path: dir)
        _ = try prefixCache(store, codec: codec, ram: 0)
            .precompute(tokens: tokenizer.encode(PromptTemplate.chatSystem.prefix(document: doc, chat: chat)), id: "d", name: "d")
        try store.close()
        if profileRuns > 0 {  // for a profiler: cold hits only, nothing written
            try profileCold(dir: dir, prompt: prompt, codec: codec, runs: profileRuns)
            continue
        }
        var cold: [Double] = [], hot: [Double] = [], coldCPU: [Double] = [], hotCPU: [Double] = []
        var misses: [Double] = [], missCPUs: [Double] = [], promptTokens = 0
        var coldDisk = 0, hotRAM = 0, prefilled = 0
        var coldSteps: [AssemblyTimings] = [], hotSteps: [AssemblyTimings] = []
        for rep in 0..<reps {
            // Miss: no store, no RAM tier: the whole prompt is prefilled. Misses and hits
            // alternate, so a change in the machine's speed during the run hits both.
            if rep < missReps {
                let (miss, missCPU) = try cpuTimed {
                    try firstToken(prefixCache(nil, codec: codec, ram: 0), prompt)
                }
                misses.append(miss.timeToFirstToken); missCPUs.append(missCPU); promptTokens = miss.sources.prompt
            }
            store = try ChunkStore(path: dir)  // reopened, RAM tier empty
            // Cold: a RAM tier of size 0, so the call does nothing after its first token.
            let (c, cCPU) = try cpuTimed {
                try firstToken(prefixCache(store, codec: codec, ram: 0), prompt)
            }
            // Hot: fill the RAM tier with one request, then time a second one.
            let pc = prefixCache(store, codec: codec, ram: 2 << 30)
            _ = try firstToken(pc, prompt)
            let (h, hCPU) = try cpuTimed { try firstToken(pc, prompt) }
            cold.append(c.timeToFirstToken); hot.append(h.timeToFirstToken)
            coldCPU.append(cCPU); hotCPU.append(hCPU)
            coldSteps.append(c.timings); hotSteps.append(h.timings)
            coldDisk = c.sources.disk; hotRAM = h.sources.ram; prefilled = c.sources.prefilled
            try store.close()
        }
        let miss = median(misses), missCPU = median(missCPUs)
        let row = TTFTRow(promptTokens: promptTokens, codec: codec.name, missMs: miss * 1000,
                          coldHitMs: median(cold) * 1000, hotHitMs: median(hot) * 1000,
                          coldSpeedup: miss / median(cold), hotSpeedup: miss / median(hot),
                          coldFromDisk: coldDisk, hotFromRAM: hotRAM, prefilledOnHit: prefilled,
                          coldDiskMs: median(coldSteps.map(\.disk)) * 1000, coldPrefillMs: median(coldSteps.map(\.prefill)) * 1000,
                          hotRAMMs: median(hotSteps.map(\.ram)) * 1000, hotPrefillMs: median(hotSteps.map(\.prefill)) * 1000,
                          missCPUMs: missCPU * 1000, coldHitCPUMs: median(coldCPU) * 1000, hotHitCPUMs: median(hotCPU) * 1000,
                          coldCPUSpeedup: missCPU / median(coldCPU), hotCPUSpeedup: missCPU / median(hotCPU),
                          missRangeMs: [misses.min()!, misses.max()!].map { $0 * 1000 },
                          coldRangeMs: [cold.min()!, cold.max()!].map { $0 * 1000 })
        note("\(row)")
        rows.append(row)
    }
    guard profileRuns == 0 else { return }
    struct Out: Codable { var machine = Machine(); var reps: Int; var missReps: Int; var rows: [TTFTRow] }
    try write(Out(reps: reps, missReps: missReps, rows: rows), "ttft")
    print("| prompt tokens | codec | miss TTFT | hit cold (disk) | hit hot (RAM) | cold speedup | hot speedup | CPU: miss / cold / hot | CPU speedup cold / hot |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows {
        print("| \(r.promptTokens) | \(r.codec) | " + String(format: "%.0f ms | %.1f ms | %.1f ms | %.0f× | %.0f× |",
                     r.missMs, r.coldHitMs, r.hotHitMs, r.coldSpeedup, r.hotSpeedup)
              + String(format: " %.0f / %.0f / %.0f ms | %.0f× / %.0f× |", r.missCPUMs, r.coldHitCPUMs, r.hotHitCPUMs,
                       r.coldCPUSpeedup, r.hotCPUSpeedup))
    }
}

/// `--profile-cold N`: N cold hits of `prompt` (store reopened each time), for a profiler.
func profileCold(dir: String, prompt: String, codec: KVCodec, runs: Int) throws {
    var steps: [AssemblyTimings] = [], ttft: [Double] = [], cpu: [Double] = []
    for _ in 0..<runs {
        let store = try ChunkStore(path: dir)
        let (r, seconds) = try cpuTimed {
            try firstToken(prefixCache(store, codec: codec, ram: 0), prompt)
        }
        ttft.append(r.timeToFirstToken); steps.append(r.timings); cpu.append(seconds)
        try store.close()
    }
    note(String(format: "cold x%d: TTFT %.1f ms (disk %.1f, prefill %.1f), CPU %.1f ms", runs, median(ttft) * 1000,
                median(steps.map(\.disk)) * 1000, median(steps.map(\.prefill)) * 1000, median(cpu) * 1000))
}
