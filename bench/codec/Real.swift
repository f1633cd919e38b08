import Foundation
import KVStashCodec
import KVStashCore
import KVStashEngine

/// Loads the model, tokenizes the corpus, measures size and speed on real KV, then
/// runs the quality loop (Quality.swift). Writes bench/results/codec-real.json (`--name`).
func runReal(_ options: Options) throws {
    guard !options.model.isEmpty else { fatalError("pass --model PATH or set KVSTASH_MODEL") }
    setThreads(options.threads)
    let model = try LlamaModel(path: options.model)
    let tokenizer = try Tokenizer(gguf: model.gguf)
    let text = try options.texts.map { try String(contentsOfFile: $0, encoding: .utf8) }.joined(separator: "\n\n")
    let tokens = tokenizer.encode(text, parseSpecial: false)
    print("corpus: \(options.texts.joined(separator: " + ")): \(tokens.count) tokens; BLAS \(blasCoreName()), "
          + "\(blasThreads()) thread(s); kernels \(kernelISA())")

    if options.firstWindow > 0 {  // a continuation of an earlier run's perplexity windows only
        let ppl = try quality(model, tokens).perplexity(scoredTokens: options.pplTokens, budget: options.pplSeconds,
                                                        firstWindow: options.firstWindow)
        try writeJSON(ppl, to: "\(options.out)/\(options.name)-windows-from-\(options.firstWindow).json")
        return
    }
    // Size and speed: KV of the first 1024 tokens (GPL-3 text), 4 chunks of 256.
    var kv = model.newCache(capacity: 1024)
    kv.keepsRawKeys = true  // what the codecs encode
    let t0 = Date()
    _ = try model.prefill(Array(tokens[0..<1024]), cache: &kv)
    print("prefill 1024 tokens: \(fmt(Date().timeIntervalSince(t0), 1)) s")
    let modelName = URL(fileURLWithPath: options.model).lastPathComponent
    let speed = try speedReport(plainRows(kv), label: "real KV: \(modelName) on the first 1024 tokens of the corpus",
                                reps: options.reps)
    printSpeedTable(speed)

    let quality = quality(model, tokens)
    let ppl = try quality.perplexity(scoredTokens: options.pplTokens, budget: options.pplSeconds,
                                     firstWindow: options.firstWindow)
    let greedy = try quality.greedyAgreement(prompts: options.prompts, startAt: ppl.tokensUsed, budget: options.greedySeconds)
    let report = RealReport(speed: speed, blasCore: blasCoreName(), blasThreads: blasThreads(),
                            corpus: options.texts, corpusTokens: tokens.count, perplexity: ppl, greedy: greedy)
    try writeJSON(report, to: "\(options.out)/\(options.name).json")
    printQualityTable(report)
}

/// The store's view of `cache` (K before RoPE, V) as plain f32 rows.
func plainRows(_ cache: KVCache) -> KVRows {
    var rows = KVRows(shape: cache.shape)
    rows.extend(by: cache.count)
    for layer in 0..<cache.shape.layers {
        for kind in [KVKind.key, .value] {
            cache.withRows(layer: layer, kind, 0..<cache.count) { src in
                rows.withMutableRows(layer: layer, kind, 0..<cache.count) { _ = $0.update(fromContentsOf: src) }
            }
        }
    }
    return rows
}

func quality(_ model: LlamaModel, _ tokens: [Int]) -> QualityLoop {
    QualityLoop(model: model, tokens: tokens, configs: CodecConfig.quality(kvDim: model.config.kvShape.kvDim))
}

struct RealReport: Codable {
    var speed: SpeedReport
    var blasCore: String
    var blasThreads: Int
    var corpus: [String]
    var corpusTokens: Int
    var perplexity: PerplexityReport
    var greedy: GreedyReport
}

func printQualityTable(_ r: RealReport) {
    let p = r.perplexity, g = r.greedy
    print("\nPerplexity over \(p.scoredTokens) tokens (\(p.windows) windows of \(p.contextTokens) context tokens "
          + "round-tripped in \(p.chunkTokens)-token chunks + \(p.scoredPerWindow) scored); f32 PPL \(fmt(p.baselinePPL, 4))")
    print("Greedy: \(g.prompts) prompts of \(g.contextTokens)+1 tokens, \(g.continuationTokens)-token f32 greedy continuations")
    print("\n| codec | bytes/token (real KV, lz4) | × f16 | PPL | ΔPPL | mean KL (nats) | top-1 agree (PPL positions) | greedy top-1 agreement |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (i, c) in p.codecs.enumerated() {
        let a = g.codecs[i]
        print("| \(c.label) | \(fmt(c.bytesPerToken, 0)) | \(fmt(c.ratioToF16, 3)) | \(fmt(c.ppl, 4)) | "
              + "\(fmt(100 * c.deltaPPL, 3))% | \(String(format: "%.2e", c.meanKL)) | \(fmt(100 * c.top1, 2))% | "
              + "\(fmt(100 * a.agreement, 2))% |")
    }
}
