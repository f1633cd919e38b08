// Codec benchmarks: size, speed and (with the real model) quality of every KV codec.
//
//   codec-bench synthetic [--reps N]           size + speed on synthetic KV of the default shape
//   codec-bench real --model PATH --text FILE... [--reps N] [--ppl-tokens N] [--prompts N] [--threads N]
//                  [--ppl-seconds S] [--greedy-seconds S]   (time budgets: the CPU is shared)
//                  [--first-window W]   only perplexity windows W... (to extend an earlier run)
//                  [--name NAME]   results file name (default codec-real: NAME.json, NAME-windows-from-W.json)
//                                              size + speed + quality on real KV (see Quality.swift)
//   codec-bench profile --label LABEL          decode loop for `perf`
//
// Writes bench/results/codec-<mode>.json and prints a markdown table.
import Foundation
import KVStashCodec
import KVStashCore

struct Options {
    var mode = "synthetic"
    var reps = 3
    var model = ProcessInfo.processInfo.environment["KVSTASH_MODEL"] ?? ""
    var pplTokens = 20480
    var prompts = 50
    var out = "bench/results"
    var label = "int4-kivi-g32/lz4"
    var threads = 1
    var pplSeconds = 2400.0
    var firstWindow = 0
    var greedySeconds = 1500.0
    var texts: [String] = []
    var name = "codec-real"

    init(_ args: [String]) {
        var it = args.dropFirst().makeIterator()
        if let m = it.next() { mode = m }
        while let a = it.next() {
            let v = it.next() ?? ""
            switch a {
            case "--reps": reps = Int(v) ?? reps
            case "--model": model = v
            case "--ppl-tokens": pplTokens = Int(v) ?? pplTokens
            case "--prompts": prompts = Int(v) ?? prompts
            case "--out": out = v
            case "--label": label = v
            case "--threads": threads = Int(v) ?? threads
            case "--ppl-seconds": pplSeconds = Double(v) ?? pplSeconds
            case "--first-window": firstWindow = Int(v) ?? firstWindow
            case "--greedy-seconds": greedySeconds = Double(v) ?? greedySeconds
            case "--text": texts.append(v)
            case "--name": name = v
            default: fatalError("unknown option \(a)")
            }
        }
    }
}

struct SpeedReport: Codable {
    var machine: String
    var kernelISA: String
    var threads = 1
    var pplSeconds = 2400.0
    var firstWindow = 0
    var greedySeconds = 1500.0
    var source: String
    var chunkTokens: Int
    var memcpyGBps: Double
    /// memcpy of as many bytes as a splice writes (the f16 cache of every chunk), one thread.
    var memcpyCacheGBps: Double
    var results: [SpeedResult]
}

func speedReport(_ source: KVRows, label: String, reps: Int) throws -> SpeedReport {
    let configs = CodecConfig.all(kvDim: source.shape.kvDim)
    print("KV source: \(label), \(source.count) tokens, \(source.shape)")
    let memcpy = memcpyBaseline(source, chunk: 256, reps: reps)
    print("memcpy of the same rows: \(fmt(memcpy)) GB/s")
    let cacheBytes = source.count / 256 * 256 * source.shape.cacheBytesPerPosition
    let memcpyCache = memcpySpeed(bytes: cacheBytes, reps: reps)
    print("memcpy of \(cacheBytes >> 20) MiB (a splice's f16 cache): \(fmt(memcpyCache)) GB/s")
    let results = try measureSpeed(source, chunk: 256, configs: configs, reps: reps)
    return SpeedReport(machine: cpuModel(), kernelISA: kernelISA(), source: label, chunkTokens: 256,
                       memcpyGBps: memcpy, memcpyCacheGBps: memcpyCache, results: results)
}

func printSpeedTable(_ r: SpeedReport) {
    print("\n| config | bytes/token | uncompressed | frame gain | × f16 | encode GB/s | decode GB/s | splice GB/s | splice / memcpy |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for x in r.results {
        print("| \(x.label) | \(fmt(x.bytesPerToken, 0)) | \(fmt(x.rawBytesPerToken, 0)) | \(fmt(x.frameGain, 3)) | "
              + "\(fmt(x.ratioToF16, 3)) | \(fmt(x.encodeGBps)) | \(fmt(x.decodeGBps)) | \(fmt(x.spliceGBps)) | "
              + "\(fmt(x.spliceGBps / r.memcpyCacheGBps, 3)) |")
    }
    print("\nmemcpy of the same rows: \(fmt(r.memcpyGBps)) GB/s; of a splice's f16 cache: \(fmt(r.memcpyCacheGBps)) GB/s; "
          + "machine \(r.machine); kernels \(r.kernelISA); 1 thread")
}


let options = Options(CommandLine.arguments)
switch options.mode {
case "synthetic":
    let shape = KVShape(layers: 30, kvHeads: 3, headDim: 64)  // SmolLM2-135M
    let source = syntheticKV(shape, tokens: 2048)
    let report = try speedReport(source, label: "synthetic (Gaussian, per-channel offsets and outliers)", reps: options.reps)
    try writeJSON(report, to: "\(options.out)/codec-synthetic.json")
    printSpeedTable(report)
case "profile":
    try profileDecode(options.label, seconds: 5)
case "real":
    try runReal(options)
default:
    FileHandle.standardError.write(Data("codec-bench: unknown mode '\(options.mode)'; use synthetic, real or profile\n".utf8))
    exit(2)
}
