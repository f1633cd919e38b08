// Store benchmark: put/get MB/s at the real value sizes of the default model's 256-token
// chunk, blob files on vs off, and probe latency for a 32-chunk chain.
// Usage: kvstash-storebench [OUT.json] [--quick]
//        kvstash-storebench --cold [OUT.json] [--runs N]   (page-cache-cold reads, ColdReads.swift)
// Writes JSON (default bench/results/store.json, or store-cold.json) and prints a markdown table.
import Foundation
import KVStashStore

// SmolLM2-135M: 30 layers × (K,V) × 3 kv heads × 64 head dim × 256 tokens.
let elements = 30 * 2 * 192 * 256
let sizes: [(String, Int)] = [
    ("f32", elements * 4),                          // 11,796,480 B
    ("f16", elements * 2),                          //  5,898,240 B
    ("int4-g64", elements / 2 + elements / 64 * 4), //  1,658,880 B (packed nibbles + fp16 scale & zero per 64)
]
let args = CommandLine.arguments.dropFirst()
let quick = args.contains("--quick")
let outPath = args.first { !$0.hasPrefix("--") && Int($0) == nil }
    ?? (args.contains("--cold") ? "bench/results/store-cold.json" : "bench/results/store.json")
let totalBytesPerCase = quick ? 60_000_000 : 240_000_000

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// User + system CPU seconds of this process (all threads, RocksDB's background ones included).
func cpu() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
}

func randomBytes(_ n: Int) -> [UInt8] {
    var g = SystemRandomNumberGenerator()
    var out = [UInt8](repeating: 0, count: n)
    out.withUnsafeMutableBytes { raw in
        let words = raw.bindMemory(to: UInt64.self)
        for i in words.indices { words[i] = g.next() }
    }
    return out
}

struct Case: Codable {
    var codec: String
    var valueBytes: Int
    var blobFiles: Bool
    var count: Int
    var putMBps: Double
    var putThenFlushMBps: Double
    var getMBps: Double
    var getColdReopenMBps: Double
    /// MB per CPU-second (put includes the flush), robust to other load on the machine.
    var putMBperCPUs: Double
    var getMBperCPUs: Double
}

func runCase(name: String, size: Int, blob: Bool) throws -> Case {
    let dir = NSTemporaryDirectory() + "kvstash-bench-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let count = max(4, totalBytesPerCase / size)
    let value = randomBytes(size)
    let keyer = ChunkKeyer(modelFingerprint: [1], chunkSize: 256)
    let keys = (0..<count).map { keyer.key(parent: .root, tokens: [$0][...]) }
    let options = StoreOptions(chunkSize: 256, blobFiles: blob, flushInterval: 0)
    var store = try ChunkStore(path: dir, options: options)
    let t0 = now(), c0 = cpu()
    for (i, k) in keys.enumerated() {
        try store.put(k, value: value, meta: ChunkMeta(parent: .root, chainIndex: i, tokens: [i], codec: name, modelFingerprint: [1]))
    }
    let tPut = now() - t0
    try store.flush()
    let tFlush = now() - t0, cPut = cpu() - c0
    let mb = Double(size * count) / 1e6
    var t1 = now()
    let c1 = cpu()
    for k in keys.shuffled() { let n = try store.get(k)?.count; precondition(n == size) }
    let tGet = now() - t1, cGet = cpu() - c1
    try store.close()
    store = try ChunkStore(path: dir, options: options)
    t1 = now()
    for k in keys.shuffled() { let n = try store.get(k)?.count; precondition(n == size) }
    let tCold = now() - t1
    try store.close()
    return Case(codec: name, valueBytes: size, blobFiles: blob, count: count, putMBps: mb / tPut,
                putThenFlushMBps: mb / tFlush, getMBps: mb / tGet, getColdReopenMBps: mb / tCold,
                putMBperCPUs: mb / cPut, getMBperCPUs: mb / cGet)
}

struct Probe: Codable {
    var chainLength: Int
    var storedEntries: Int
    var iterations: Int
    var hitP50us: Double
    var hitP99us: Double
    var missP50us: Double
    var missP99us: Double
}

func percentile(_ xs: [Double], _ p: Double) -> Double {
    let s = xs.sorted()
    return s[min(s.count - 1, Int(Double(s.count - 1) * p))]
}

func runProbe() throws -> Probe {
    let dir = NSTemporaryDirectory() + "kvstash-bench-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let store = try ChunkStore(path: dir, options: StoreOptions(chunkSize: 256, flushInterval: 0))
    defer { try? store.close() }
    let keyer = ChunkKeyer(modelFingerprint: [2], chunkSize: 256)
    // 64 chains of 32 chunks with 256 real-looking token ids each; small values (probe reads meta only).
    var chains: [[ChunkKey]] = []
    for c in 0..<64 {
        let tokens = (0..<(32 * 256)).map { ($0 * 7919 + c * 104729) % 49152 }
        let keys = keyer.chain(tokens)
        for (i, k) in keys.enumerated() {
            let meta = ChunkMeta(parent: i == 0 ? .root : keys[i - 1], chainIndex: i,
                                 tokens: Array(tokens[i * 256..<(i + 1) * 256]), codec: "int4", modelFingerprint: [2])
            try store.put(k, value: [UInt8](repeating: UInt8(i), count: 1024), meta: meta)
        }
        chains.append(keys)
    }
    try store.flush()
    let misses = (0..<64).map { c in keyer.chain((0..<(32 * 256)).map { ($0 * 31 + c) % 49152 + 1 }) }
    var hit: [Double] = [], miss: [Double] = []
    let iterations = quick ? 500 : 2000
    for i in 0..<iterations {
        var t = now()
        precondition(store.probe(chains[i % 64]).allSatisfy { $0 })
        hit.append((now() - t) * 1e6)
        t = now()
        precondition(!store.probe(misses[i % 64]).contains(true))
        miss.append((now() - t) * 1e6)
    }
    return Probe(chainLength: 32, storedEntries: 64 * 32, iterations: iterations,
                 hitP50us: percentile(hit, 0.5), hitP99us: percentile(hit, 0.99),
                 missP50us: percentile(miss, 0.5), missP99us: percentile(miss, 0.99))
}

func cpuModel() -> String {
    guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }) else { return "unknown" }
    return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
}

struct Fingerprint: Codable {
    var modelBytes: Int
    var seconds: Double
    var cachedSeconds: Double
}

/// Time to fingerprint the default model (SHA-256 of the whole file), cold and from the cache.
func runFingerprint() throws -> Fingerprint? {
    let env = ProcessInfo.processInfo.environment
    let path = env["KVSTASH_MODEL"] ?? NSHomeDirectory() + "/.cache/kvstash/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    guard FileManager.default.fileExists(atPath: path) else { return nil }
    let dir = NSTemporaryDirectory() + "kvstash-bench-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
    var t = now()
    _ = try ModelFingerprint.compute(path: path, cacheDir: dir)
    let cold = now() - t
    t = now()
    _ = try ModelFingerprint.compute(path: path, cacheDir: dir)
    return Fingerprint(modelBytes: size, seconds: cold, cachedSeconds: now() - t)
}

struct Result: Codable {
    var machine: String
    var note: String
    var cases: [Case]
    var probe: Probe
    var fingerprint: Fingerprint?
}

if args.contains("--cold") {
    let runs = args.firstIndex(of: "--runs").flatMap { Int(args[$0 + 1]) } ?? 5
    let cold = try runColdReads(runs: runs, threadCounts: [1, 2, 4, 8])
    try writeJSON(cold, to: outPath)
    print("Machine: \(cold.machine). \(cold.note). \(cold.chunks) values of \(cold.valueBytes) B.\n")
    print("| read | threads | MB | ms (median) | MB/s |\n| --- | ---: | ---: | ---: | ---: |")
    for r in cold.rows {
        print(String(format: "| %@ | %d | %.1f | %.1f | %.0f |", r.kind, r.threads, r.megabytes, r.milliseconds, r.megabytesPerSecond))
    }
    print(String(format: "\nstore (2 workers) / sequential: %.2f", cold.storeOverSequential))
    exit(0)
}

var cases: [Case] = []
for (name, size) in sizes {
    for blob in [false, true] {
        let c = try runCase(name: name, size: size, blob: blob)
        cases.append(c)
        FileHandle.standardError.write(Data("\(name) blob=\(blob): put \(Int(c.putMBps)) MB/s get \(Int(c.getMBps)) MB/s\n".utf8))
    }
}
let probe = try runProbe()
let fingerprint = try runFingerprint()
let result = Result(machine: cpuModel(), note: "1 thread; other builds shared the 2 cores; page cache warm; no fsync per put",
                    cases: cases, probe: probe, fingerprint: fingerprint)
try writeJSON(result, to: outPath)

print("Machine: \(result.machine). \(result.note).\n")
print("| codec | value | blob files | n | put MB/s | put+flush MB/s | get MB/s | get after reopen MB/s | put+flush MB/CPU-s | get MB/CPU-s |")
print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for c in cases {
    print(String(format: "| %@ | %.2f MB | %@ | %d | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |", c.codec, Double(c.valueBytes) / 1e6,
                 c.blobFiles ? "on" : "off", c.count, c.putMBps, c.putThenFlushMBps, c.getMBps, c.getColdReopenMBps,
                 c.putMBperCPUs, c.getMBperCPUs))
}
print(String(format: "\nProbe of a 32-chunk chain (%d entries stored, %d iterations): all present p50 %.1f µs, p99 %.1f µs; all absent p50 %.1f µs, p99 %.1f µs",
             probe.storedEntries, probe.iterations, probe.hitP50us, probe.hitP99us, probe.missP50us, probe.missP99us))
if let f = fingerprint {
    print(String(format: "Model fingerprint (SHA-256 of %.1f MB): %.3f s; from the cache: %.4f s", Double(f.modelBytes) / 1e6, f.seconds, f.cachedSeconds))
}
