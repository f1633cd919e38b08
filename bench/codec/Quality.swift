import Foundation
import KVStashCodec
import KVStashCore
import KVStashEngine

/// Quality of one lossy configuration, from the perplexity windows.
struct CodecQuality: Codable {
    var label: String
    /// Stored bytes per token over every round-tripped chunk of real KV.
    var bytesPerToken: Double
    var ratioToF16: Double
    var ppl: Double
    /// (PPL - PPL_f32) / PPL_f32.
    var deltaPPL: Double
    /// Mean KL(f32 || codec) of the next-token distribution, nats.
    var meanKL: Double
    /// Fraction of scored positions whose argmax equals f32's.
    var top1: Double
}

struct PerplexityReport: Codable {
    var scoredTokens: Int
    var windows: Int
    var contextTokens: Int
    var chunkTokens: Int
    var scoredPerWindow: Int
    /// Corpus tokens the windows used (the greedy prompts start after them).
    var tokensUsed: Int
    var baselinePPL: Double
    /// Whether f32 blocks reproduce the f32 logits bit for bit (checked on window 0).
    var f32RoundTripExact: Bool
    var seconds: Double
    var codecs: [CodecQuality]
}

struct GreedyAgreement: Codable {
    var label: String
    /// Fraction of continuation positions (teacher-forced on the f32 greedy continuation)
    /// whose argmax equals the f32 greedy token.
    var agreement: Double
    /// Prompts whose whole continuation agrees.
    var identicalPrompts: Int
}

struct GreedyReport: Codable {
    var prompts: Int
    var contextTokens: Int
    var continuationTokens: Int
    var seconds: Double
    var codecs: [GreedyAgreement]
}

/// The context's KV goes through the codec chunk by chunk (encode, then decode into a
/// fresh cache), and the model then scores the next tokens on top of it.
struct QualityLoop {
    let model: LlamaModel
    let tokens: [Int]
    let configs: [CodecConfig]
    let chunk = 256
    let context = 512
    let scored = 512

    /// `base` re-built from blocks of `encoder`, chunk by chunk; also the stored bytes.
    func roundTrip(_ base: KVCache, _ encoder: KVBlockEncoder) throws -> (KVCache, Int) {
        var out = model.newCache(capacity: base.count + scored + 1)
        var bytes = 0
        for c in 0..<(base.count / chunk) {
            let range = (c * chunk)..<((c + 1) * chunk)
            let block = try encoder.encode(base, range: range, chunkKey: chunkKey(c), modelFingerprint: fingerprint)
            bytes += block.count
            try KVBlockDecoder().decode(block, expectedChunkKey: chunkKey(c), expectedFingerprint: fingerprint,
                                        into: &out, at: range.lowerBound)
        }
        return (out, bytes)
    }

    /// Perplexity over `scoredTokens` tokens, or fewer when `budget` seconds run out
    /// first (the report says how many were scored).
    func perplexity(scoredTokens: Int, budget: Double, firstWindow: Int = 0) throws -> PerplexityReport {
        var windows = (scoredTokens + scored - 1) / scored
        let width = context + scored
        precondition((firstWindow + windows) * width < tokens.count, "corpus too short for \(windows) windows")
        let started = Date()
        var baseNLL = 0.0, exact = false
        var acc = [Stats](repeating: Stats(), count: configs.count)
        for k in 0..<windows {
            if k > 0 && Date().timeIntervalSince(started) > budget { windows = k; break }
            let w = firstWindow + k, start = w * width
            var base = model.newCache(capacity: width + 1)
            base.keepsRawKeys = true  // what the codecs encode
            _ = try model.prefill(Array(tokens[start..<(start + context)]), cache: &base)
            let input = Array(tokens[(start + context)..<(start + width)])
            let targets = Array(tokens[(start + context + 1)...(start + width)])
            var b = base
            let reference = LogProbs(try model.prefill(input, cache: &b, allLogits: true), vocab: model.config.vocabSize)
            baseNLL += reference.nll(targets)
            if k == 0 {
                var (rt, _) = try roundTrip(base, KVBlockEncoder(codec: .f32))
                exact = try model.prefill(input, cache: &rt, allLogits: true) == reference.logits
            }
            for (i, config) in configs.enumerated() {
                var (rt, bytes) = try roundTrip(base, config.encoder)
                let lp = LogProbs(try model.prefill(input, cache: &rt, allLogits: true), vocab: model.config.vocabSize)
                acc[i].add(lp, reference: reference, targets: targets, bytes: bytes, tokens: context)
            }
            let n = Double((k + 1) * scored)
            print("window \(w + 1) (\(k + 1)/\(windows)): f32 PPL \(fmt(exp(baseNLL / n), 4)); "
                  + configs.indices.map { "\(configs[$0].label) \(fmt(exp(acc[$0].nll / n), 4))" }.joined(separator: ", ")
                  + " [\(fmt(Date().timeIntervalSince(started), 0)) s]")
            fflush(nil)
        }
        let n = Double(windows * scored), basePPL = exp(baseNLL / n)
        let f16PerToken = Double(model.config.kvShape.cacheBytesPerPosition)
        let codecs = configs.indices.map { i in
            let s = acc[i], ppl = exp(s.nll / n), perToken = Double(s.bytes) / Double(s.tokens)
            return CodecQuality(label: configs[i].label, bytesPerToken: perToken, ratioToF16: perToken / f16PerToken,
                                ppl: ppl, deltaPPL: (ppl - basePPL) / basePPL, meanKL: s.kl / n, top1: Double(s.top1) / n)
        }
        return PerplexityReport(scoredTokens: Int(n), windows: windows, contextTokens: context, chunkTokens: chunk,
                                scoredPerWindow: scored, tokensUsed: (firstWindow + windows) * width + 1, baselinePPL: basePPL,
                                f32RoundTripExact: exact, seconds: Date().timeIntervalSince(started), codecs: codecs)
    }

    /// f32 greedy continuations of `prompts` prompts (one stored chunk plus one
    /// uncached token), then each codec's argmax, teacher-forced along them. Stops early
    /// when `budget` seconds run out (the report says how many prompts ran).
    func greedyAgreement(prompts: Int, startAt: Int, budget: Double, continuation: Int = 64) throws -> GreedyReport {
        let ctx = chunk, started = Date()
        var prompts = prompts
        precondition(startAt + prompts * (ctx + 1) <= tokens.count, "corpus too short for \(prompts) prompts")
        var matches = [Int](repeating: 0, count: configs.count), identical = matches
        for p in 0..<prompts {
            if p > 0 && Date().timeIntervalSince(started) > budget { prompts = p; break }
            let s = startAt + p * (ctx + 1)
            var base = model.newCache(capacity: ctx + continuation + 1)
            base.keepsRawKeys = true  // what the codecs encode
            _ = try model.prefill(Array(tokens[s..<(s + ctx)]), cache: &base)
            let suffix = tokens[s + ctx]
            var g = base
            var logits = try model.prefill([suffix], cache: &g)
            var cont: [Int] = []
            while cont.count < continuation {
                cont.append(argmax(logits[...]))
                if cont.count < continuation { logits = try model.decode(cont.last!, cache: &g) }
            }
            for (i, config) in configs.enumerated() {
                var (rt, _) = try roundTrip(base, config.encoder)
                let all = try model.prefill([suffix] + cont.dropLast(), cache: &rt, allLogits: true)
                let v = model.config.vocabSize
                let m = (0..<continuation).filter { argmax(all[($0 * v)..<(($0 + 1) * v)]) == cont[$0] }.count
                matches[i] += m
                if m == continuation { identical[i] += 1 }
            }
            print("prompt \(p + 1)/\(prompts): " + configs.indices.map {
                "\(configs[$0].label) \(fmt(100 * Double(matches[$0]) / Double((p + 1) * continuation), 2))%"
            }.joined(separator: ", ") + " [\(fmt(Date().timeIntervalSince(started), 0)) s]")
            fflush(nil)
        }
        let total = Double(prompts * continuation)
        return GreedyReport(prompts: prompts, contextTokens: ctx, continuationTokens: continuation,
                            seconds: Date().timeIntervalSince(started),
                            codecs: configs.indices.map {
                                GreedyAgreement(label: configs[$0].label, agreement: Double(matches[$0]) / total,
                                                identicalPrompts: identical[$0])
                            })
    }
}

/// Running sums of one configuration.
struct Stats {
    var nll = 0.0, kl = 0.0, top1 = 0, bytes = 0, tokens = 0

    mutating func add(_ lp: LogProbs, reference: LogProbs, targets: [Int], bytes: Int, tokens: Int) {
        nll += lp.nll(targets)
        kl += reference.kl(to: lp)
        top1 += (0..<lp.rows).filter { lp.argmax($0) == reference.argmax($0) }.count
        self.bytes += bytes
        self.tokens += tokens
    }
}

/// Log-softmax of `rows` rows of logits.
struct LogProbs {
    let logits: [Float]
    let vocab: Int
    let rows: Int
    /// log Σ exp(logit) per row.
    let logZ: [Double]

    init(_ logits: [Float], vocab: Int) {
        self.logits = logits
        self.vocab = vocab
        rows = logits.count / vocab
        logZ = (0..<rows).map { r in
            let row = logits[(r * vocab)..<((r + 1) * vocab)]
            let m = row.max()!
            var s: Float = 0
            for x in row { s += expf(x - m) }
            return Double(m) + log(Double(s))
        }
    }

    func logp(_ r: Int, _ t: Int) -> Double { Double(logits[r * vocab + t]) - logZ[r] }

    func nll(_ targets: [Int]) -> Double { targets.indices.reduce(0) { $0 - logp($1, targets[$1]) } }

    func argmax(_ r: Int) -> Int { codec_bench.argmax(logits[(r * vocab)..<((r + 1) * vocab)]) }

    /// Σ over rows of KL(self || other).
    func kl(to other: LogProbs) -> Double {
        var total = 0.0
        for r in 0..<rows {
            let a = logZ[r], b = other.logZ[r]
            var s = 0.0
            for i in (r * vocab)..<((r + 1) * vocab) {
                let la = Double(logits[i]) - a
                s += exp(la) * (la - (Double(other.logits[i]) - b))
            }
            total += s
        }
        return total
    }
}

func argmax(_ xs: ArraySlice<Float>) -> Int {
    var best = xs.startIndex
    for i in xs.indices where xs[i] > xs[best] { best = i }
    return best - xs.startIndex
}
