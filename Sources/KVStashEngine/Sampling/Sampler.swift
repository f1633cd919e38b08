import Foundation

/// How the next token is chosen from logits.
public struct SamplingParams: Sendable, Hashable, Codable {
    /// Softmax temperature; 0 means greedy (argmax).
    public var temperature: Float
    /// Keep only the `topK` most likely tokens (0 = no limit).
    public var topK: Int
    /// Keep the smallest set of most likely tokens whose probability reaches `topP` (1 = no limit).
    public var topP: Float
    /// Seed of the random generator.
    public var seed: UInt64

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
    }

    /// Greedy decoding.
    public static let greedy = SamplingParams()
}

/// Picks tokens from logits: greedy at temperature 0, else temperature-scaled softmax
/// restricted by top-k then top-p, drawn with a seeded deterministic generator.
/// The same params and logits always give the same sequence of tokens.
public struct Sampler: Sendable {
    public let params: SamplingParams
    private var rng: SplitMix64

    public init(_ params: SamplingParams = .greedy) {
        self.params = params
        rng = SplitMix64(seed: params.seed)
    }

    /// The next token for `logits`.
    public mutating func sample(_ logits: [Float]) -> Int {
        precondition(!logits.isEmpty, "no logits to sample from")
        if params.temperature <= 0 || params.topK == 1 { return Self.argmax(logits) }
        let candidates = Self.candidates(logits, params: params)
        var u = rng.nextUnitFloat() * candidates.reduce(0) { $0 + $1.p }
        for c in candidates {
            u -= c.p
            if u < 0 { return c.id }
        }
        return candidates.last!.id
    }

    /// Index of the largest logit (the first one on ties).
    public static func argmax(_ logits: [Float]) -> Int {
        var best = 0
        for i in logits.indices where logits[i] > logits[best] { best = i }
        return best
    }

    /// Tokens that survive top-k and top-p, most likely first, with unnormalized probabilities.
    static func candidates(_ logits: [Float], params: SamplingParams) -> [(id: Int, p: Float)] {
        var order = Array(logits.indices)
        if params.topK > 0 && params.topK < order.count {
            order = Array(order.sorted { logits[$0] > logits[$1] }.prefix(params.topK))
        } else {
            order.sort { logits[$0] > logits[$1] }
        }
        let maxLogit = logits[order[0]]
        var probs = order.map { (id: $0, p: Float(exp(Double((logits[$0] - maxLogit) / params.temperature)))) }
        if params.topP < 1 {
            let total = probs.reduce(0) { $0 + $1.p }
            var cumulative: Float = 0
            var keep = 0
            while keep < probs.count {
                cumulative += probs[keep].p
                keep += 1
                if cumulative >= params.topP * total { break }
            }
            probs = Array(probs.prefix(keep))
        }
        return probs
    }
}
