import Foundation
import KVStashEngine

/// How the next token is picked. Temperature 0 (the default) is greedy.
public struct RequestSampling: Sendable, Hashable {
    public var temperature: Float
    /// Keep the `topK` most likely tokens (0: all).
    public var topK: Int
    /// Keep the smallest set of tokens whose probability reaches `topP` (1: all).
    public var topP: Float
    /// Seed of the random generator (sampling is reproducible per request).
    public var seed: UInt64

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
    }

    public static let greedy = RequestSampling()
}

/// Picks tokens from logits according to `RequestSampling`.
struct TokenPicker {
    let params: RequestSampling
    var rng: SplitMix64

    init(_ params: RequestSampling) {
        self.params = params
        rng = SplitMix64(seed: params.seed)
    }

    mutating func pick(_ logits: [Float]) -> Int {
        guard params.temperature > 0 else { return Self.argmax(logits) }
        var order = logits.indices.sorted { logits[$0] > logits[$1] }
        if params.topK > 0 { order = Array(order.prefix(params.topK)) }
        let top = logits[order[0]]
        var probs = order.map { exp((logits[$0] - top) / params.temperature) }
        let total = probs.reduce(0, +)
        probs = probs.map { $0 / total }
        if params.topP < 1 {
            var acc: Float = 0
            let keep = (probs.firstIndex { acc += $0; return acc >= params.topP } ?? probs.count - 1) + 1
            order = Array(order.prefix(keep))
            probs = Array(probs.prefix(keep))
        }
        var u = rng.nextUnitFloat() * probs.reduce(0, +)
        for (i, p) in probs.enumerated() {
            u -= p
            if u <= 0 { return order[i] }
        }
        return order[order.count - 1]
    }

    /// Index of the largest logit (the first one on ties).
    static func argmax(_ logits: [Float]) -> Int {
        var best = 0
        for i in logits.indices where logits[i] > logits[best] { best = i }
        return best
    }
}
