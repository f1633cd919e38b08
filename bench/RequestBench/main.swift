// Request-path benchmarks on the default model.
//   kvstash-requestbench ttft [--lengths 1024,4096,8000] [--codec int8] [--reps 3]
//   kvstash-requestbench precompute [--docs 100] [--words 220] [--codec int8]
//   kvstash-requestbench agreement [--prompts 8] [--tokens 32]
//   kvstash-requestbench swa-bytes [--lengths 1024,4096,8192] [--codec int8]   (a sliding-window model)
// Every command takes --note TEXT, stored with the results (say how loaded the machine was).
// The model is $KVSTASH_MODEL. Each writes bench/results/request-<name>.json and prints a
// markdown table. Run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`.
import Foundation
import KVStash
import KVStashCodec
import KVStashEngine
import KVStashStore

let args = Array(CommandLine.arguments.dropFirst())
func option(_ name: String, _ fallback: String) -> String {
    guard let i = args.firstIndex(of: "--" + name), i + 1 < args.count else { return fallback }
    return args[i + 1]
}
/// Options any command reads; anything else that looks like one is refused, so a typo
/// or `--help` does not start a long run with defaults.
let knownOptions: Set<String> = ["chunk-size", "codec", "docs", "lengths", "miss-reps", "note", "profile-cold",
                                 "prompts", "reps", "tokens", "words"]
do {  // after the command: pairs of a known option and its value
    var i = 1
    while i < args.count {
        guard args[i].hasPrefix("--"), knownOptions.contains(String(args[i].dropFirst(2))), i + 1 < args.count else {
            note("unexpected \(args[i]); options (each with a value): "
                 + knownOptions.sorted().map { "--" + $0 }.joined(separator: " "))
            exit(2)
        }
        i += 2
    }
}
func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
func note(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

guard let modelPath = ProcessInfo.processInfo.environment["KVSTASH_MODEL"] else {
    note("set KVSTASH_MODEL to the default model"); exit(2)
}

/// Machine facts every result carries.
struct Machine: Codable {
    var cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
        .split(separator: "\n").first { $0.hasPrefix("model name") }
        .map { String($0.split(separator: ":", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces) } ?? "?"
    var blasCore = KVStashEngine.blasCoreName()
    var threads = KVStashEngine.blasThreads()
    var isa = KVStashEngine.kernelISA()
    /// `--note`: the conditions of the run (load on the machine), recorded with the results.
    var note = option("note", "ratios were measured in one run; absolute times drift on shared machines")
}

/// Peak and current resident memory of this process, in MB.
func memory() -> (rss: Double, peak: Double) {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    func field(_ name: String) -> Double {
        let line = status.split(separator: "\n").first { $0.hasPrefix(name) } ?? ""
        return (Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
    }
    return (field("VmRSS:"), field("VmHWM:"))
}

/// English-like filler of about `tokens` tokens (seeded).
func document(seed: UInt64, words: Int) -> String {
    let vocabulary = """
        river town market bridge winter summer harbor mountain village school teacher letter \
        council garden library station engineer doctor painter farmer baker north south east \
        west old new small large quiet busy early late green blue red golden stone wooden \
        built opened closed moved sold bought wrote painted repaired visited named founded
        """.split(separator: " ").map(String.init)
    var rng = SplitMix64(seed: seed)
    return (0..<words).map { i -> String in
        let w = vocabulary[Int(rng.next() % UInt64(vocabulary.count))]
        return i % 12 == 11 ? w + "." : w
    }.joined(separator: " ")
}

func write<T: Encodable>(_ value: T, _ name: String) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    try FileManager.default.createDirectory(atPath: "bench/results", withIntermediateDirectories: true)
    try enc.encode(value).write(to: URL(fileURLWithPath: "bench/results/request-\(name).json"))
    note("wrote bench/results/request-\(name).json")
}

let model = try LlamaModel(path: modelPath)
let tokenizer = try Tokenizer(gguf: model.gguf)
let chat = try ChatTemplate(gguf: model.gguf)
let fingerprint = try ModelFingerprint.compute(path: modelPath, cacheDir: nil)
func prefixCache(_ store: ChunkStore?, codec: KVCodec, ram: Int) -> PrefixCache {
    PrefixCache(model: model, tokenizer: tokenizer, store: store, modelFingerprint: fingerprint,
                options: PrefixCacheOptions(codec: codec, ramBudgetBytes: ram, writeBackQueries: false))
}
/// A chat-system document of about `target` prompt tokens.
func documentOf(tokens target: Int, seed: UInt64) -> String {
    var words = target * 3 / 4
    while true {
        let d = document(seed: seed, words: words)
        let n = tokenizer.encode(PromptTemplate.chatSystem.prefix(document: d, chat: chat)).count
        if n >= target - 40 { return d }
        words += max((target - n) * 3 / 4, 8)
    }
}
func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

switch args.first ?? "" {
case "ttft": try ttftBench()
case "precompute": try precomputeBench()
case "agreement": try agreementBench()
case "swa-bytes": try slidingBytesBench()
default: note("usage: kvstash-requestbench ttft|precompute|agreement|swa-bytes [options]"); exit(2)
}
