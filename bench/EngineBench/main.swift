// Engine benchmark: prefill tokens/s at several prompt lengths and decode tokens/s,
// each on several BLAS thread counts, written as JSON (bench/results/engine.json).
//
// usage: kvstash-enginebench [--model PATH] [--lengths 512,2048,4096] [--threads 1,2]
//                            [--decode 64] [--decode-after 512,4096] [--out FILE]
//        kvstash-enginebench --teacher-force TOKENS --context N [--score-by decode|prefill] --logits-out FILE
//        (TeacherForce.swift)
import Foundation
import KVStashCore
import KVStashEngine

struct Options {
    var model = DefaultModel.path
    var lengths = [512, 2048, 4096]
    var threads = [1, 2]
    var decodeSteps = 64
    /// Context lengths the decode rows start after.
    var decodeAfter = [512]
    /// Contexts for the suffix rows: prefill of `suffix` tokens after spliced (unrotated) KV.
    var contexts = [1024, 4096]
    var suffix = 16
    var suffixReps = 5
    var out: String?
    /// Teacher-forced decode logits instead of the timings (`teacherForce`).
    var teacherForce: String?
    var context = 512
    /// `--score-by prefill`: the teacher-forced tokens go through one prefill, not decode steps.
    var scoreByPrefill = false
    var logitsOut = "logits.f32"

    init(_ args: [String]) {
        var i = 1
        func next() -> String { i += 1; return args[i] }
        while i < args.count {
            switch args[i] {
            case "--model": model = next()
            case "--lengths": lengths = next().split(separator: ",").compactMap { Int($0) }
            case "--threads": threads = next().split(separator: ",").compactMap { Int($0) }
            case "--decode": decodeSteps = Int(next())!
            case "--decode-after": decodeAfter = next().split(separator: ",").compactMap { Int($0) }
            case "--contexts": contexts = next().split(separator: ",").compactMap { Int($0) }
            case "--suffix": suffix = Int(next())!
            case "--suffix-reps": suffixReps = Int(next())!
            case "--out": out = next()
            case "--teacher-force": teacherForce = next()
            case "--score-by": scoreByPrefill = next() == "prefill"
            case "--context": context = Int(next())!
            case "--logits-out": logitsOut = next()
            default: FileHandle.standardError.write(Data("unknown option \(args[i])\n".utf8)); exit(2)
            }
            i += 1
        }
    }
}

struct Row: Codable {
    let threads: Int
    let kind: String        // "prefill", "decode" or "sgemm"
    let tokens: Int         // prompt length, or decode steps (sgemm: rows)
    let context: Int        // positions in the cache before the measured tokens
    let seconds: Double
    let tokensPerSecond: Double
    /// Useful floating-point work per second (matrix products and attention).
    let gflops: Double
}

/// FLOPs of a prefill of `n` tokens after `past`: every weight matrix once per token,
/// causal attention (QK^T and PV), and the output head for the last row.
func prefillFlops(_ c: ModelConfig, n: Int, past: Int = 0) -> Double {
    let perToken = Double(c.dim * (c.qDim + 2 * c.kvDim) + c.qDim * c.dim + 3 * c.dim * c.ffnDim) * 2
    let pairs = Double(n) * Double(past) + Double(n) * Double(n + 1) / 2
    let attention = 4 * Double(c.headDim * c.heads) * pairs
    return Double(n) * perToken * Double(c.layers) + attention * Double(c.layers) + 2 * Double(c.dim * c.vocabSize)
}

/// sgemm GFLOP/s on the model's largest prefill product (512 x 2 ffn x dim), the ceiling.
func sgemmGflops(_ c: ModelConfig) -> Double {
    let m = 512, n = 2 * c.ffnDim, k = c.dim
    let a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.25, count: n * k)
    var out = [Float](repeating: 0, count: m * n)
    var best = Double.infinity
    for _ in 0..<5 {
        let t0 = Date()
        for _ in 0..<4 { benchSgemm(m: m, n: n, k: k, a: a, b: b, c: &out) }
        best = min(best, Date().timeIntervalSince(t0) / 4)
    }
    return 2 * Double(m * n * k) / best / 1e9
}

func machine() -> String {
    let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    let line = info.split(separator: "\n").first { $0.hasPrefix("model name") }
    return line.map { String($0.split(separator: ":", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces) } ?? "unknown"
}

BLASCore.reexecWithBetterCoreIfNeeded()
let opts = Options(CommandLine.arguments)
let model = try LlamaModel(path: opts.model)
if let tokens = opts.teacherForce {
    try teacherForce(model: model, tokensFile: tokens, context: opts.context, byPrefill: opts.scoreByPrefill,
                     out: opts.logitsOut)
    exit(0)
}
var rng = SplitMix64(seed: 1)
let promptLength = max(opts.lengths.max() ?? 512, (opts.contexts.max() ?? 0) + opts.suffix, opts.decodeAfter.max() ?? 0)
let prompt = (0..<promptLength).map { _ in Int(rng.next() % UInt64(model.config.vocabSize)) }
/// A cache hit's remaining work: `suffix` tokens prefilled after `past` positions spliced
/// in, as the request path's splice leaves them (f16, K rotated as it landed). The spliced
/// KV is seeded noise of a realistic scale: the timing does not depend on its values.
func suffixRow(threads t: Int, past: Int) throws -> Row {
    var full = model.newCache(capacity: past)
    full.extend(by: past)
    var noise = SplitMix64(seed: 7)
    for layer in 0..<model.config.layers {
        for kind in [KVKind.key, .value] {
            full.withMutableRows(layer: layer, kind, 0..<past) { rows in
                for i in rows.indices { rows[i] = Float(Int(noise.next() % 2001) - 1000) / 500 }
            }
        }
    }
    let tail = Array(prompt[past..<(past + opts.suffix)])
    var best = Double.infinity
    for _ in 0..<opts.suffixReps {
        var cache = model.newCache(capacity: past + opts.suffix)
        cache.append(contentsOf: full, 0..<past)
        let t0 = Date()
        _ = try model.prefill(tail, cache: &cache)
        best = min(best, Date().timeIntervalSince(t0))
    }
    let gf = prefillFlops(model.config, n: opts.suffix, past: past) / best / 1e9
    print(String(format: "threads %d suffix %d tokens after %5d spliced: %7.1f ms (%.1f GFLOP/s)", t, opts.suffix, past, best * 1000, gf))
    return Row(threads: t, kind: "suffix", tokens: opts.suffix, context: past, seconds: best,
               tokensPerSecond: Double(opts.suffix) / best, gflops: gf)
}

var rows: [Row] = []
// The KV cache's memory faulted in before the timed runs, as `kvstash serve` does at start
// and llama-bench when it creates its context (it clears the KV buffer).
KVCache.prewarm(shape: model.config.kvShape,
                capacity: max(opts.lengths.max() ?? 0, (opts.decodeAfter.max() ?? 0) + opts.decodeSteps))
for t in opts.threads {
    setThreads(t)
    // One chunk's worth first, as llama-bench runs each test once before timing it: the
    // worker team started, the kernels bound and a full chunk's scratch in place.
    var warm = model.newCache()
    _ = try model.prefill(Array(prompt.prefix(min(opts.lengths.max() ?? 64, LlamaModel.chunkSize))), cache: &warm)
    for n in opts.lengths {
        var cache = model.newCache(capacity: n)
        let t0 = Date()
        _ = try model.prefill(Array(prompt.prefix(n)), cache: &cache)
        let s = Date().timeIntervalSince(t0)
        let gf = prefillFlops(model.config, n: n) / s / 1e9
        rows.append(Row(threads: t, kind: "prefill", tokens: n, context: 0, seconds: s, tokensPerSecond: Double(n) / s, gflops: gf))
        print(String(format: "threads %d prefill %5d tokens: %7.1f tok/s (%.2f s, %.1f GFLOP/s)", t, n, Double(n) / s, s, gf))
    }
    for past in opts.contexts where past + opts.suffix <= prompt.count {
        rows.append(try suffixRow(threads: t, past: past))
    }
    let peak = sgemmGflops(model.config)
    rows.append(Row(threads: t, kind: "sgemm", tokens: 512, context: 0, seconds: 0, tokensPerSecond: 0, gflops: peak))
    print(String(format: "threads %d sgemm 512x%dx%d: %.1f GFLOP/s", t, 2 * model.config.ffnDim, model.config.dim, peak))
    for past in opts.decodeAfter where past <= prompt.count {
        // Room for the answer up front, as a server reserves prompt + max tokens (and llama.cpp
        // its context): a cache grown at the first decode step copied the whole prefill's KV
        // inside the measurement (0.39 s after 4,096 Gemma 3 tokens).
        var cache = model.newCache(capacity: past + opts.decodeSteps)
        var logits = try model.prefill(Array(prompt.prefix(past)), cache: &cache)
        let t0 = Date()
        for _ in 0..<opts.decodeSteps { logits = try model.decode(Sampler.argmax(logits), cache: &cache) }
        let s = Date().timeIntervalSince(t0)
        rows.append(Row(threads: t, kind: "decode", tokens: opts.decodeSteps, context: past, seconds: s,
                        tokensPerSecond: Double(opts.decodeSteps) / s,
                        gflops: Double(opts.decodeSteps) * prefillFlops(model.config, n: 1, past: past) / s / 1e9))
        print(String(format: "threads %d decode %d steps after %d: %7.1f tok/s", t, opts.decodeSteps, past,
                     Double(opts.decodeSteps) / s))
    }
}

struct Report: Codable {
    let note: String
    let machine: String
    let blasCore: String
    let kernelISA: String
    let model: String
    let date: String
    let results: [Row]
}
let report = Report(note: "the host is shared and its speed drifts: compare rows of one run",
                    machine: machine(), blasCore: blasCoreName(), kernelISA: kernelISA(),
                    model: (opts.model as NSString).lastPathComponent,
                    date: ISO8601DateFormatter().string(from: Date()), results: rows)
let enc = JSONEncoder()
enc.outputFormatting = [.prettyPrinted, .sortedKeys]
let data = try enc.encode(report)
if let out = opts.out { try data.write(to: URL(fileURLWithPath: out)) } else { print(String(decoding: data, as: UTF8.self)) }
