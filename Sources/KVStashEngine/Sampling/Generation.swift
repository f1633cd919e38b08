import Foundation
import KVStashCore

/// Timings of one generation.
public struct GenerationStats: Sendable, Codable {
    public var promptTokens = 0
    public var generatedTokens = 0
    public var prefillSeconds = 0.0
    public var decodeSeconds = 0.0
    /// Model decode calls (the first generated token comes from the prefill logits).
    public var decodeSteps = 0

    public var prefillTokensPerSecond: Double { prefillSeconds > 0 ? Double(promptTokens) / prefillSeconds : 0 }
    public var decodeTokensPerSecond: Double { decodeSeconds > 0 ? Double(decodeSteps) / decodeSeconds : 0 }

    /// One human-readable line.
    public var summary: String {
        String(format: "prompt tokens: %d, prefill: %.1f tok/s (%.3f s), generated: %d, decode: %.1f tok/s",
               promptTokens, prefillTokensPerSecond, prefillSeconds, generatedTokens, decodeTokensPerSecond)
    }
}

/// Prefill then sample-and-decode until an end-of-generation token or `maxTokens`,
/// handing out text as soon as it forms whole UTF-8 characters.
public struct GenerationRun: Sendable {
    public let model: LlamaModel
    public let tokenizer: Tokenizer
    public let sampling: SamplingParams

    public init(model: LlamaModel, tokenizer: Tokenizer, sampling: SamplingParams = .greedy) {
        self.model = model
        self.tokenizer = tokenizer
        self.sampling = sampling
    }

    /// Generates from `prompt` (token ids) into a fresh cache, calling `emit` with text pieces.
    @discardableResult
    public func generate(prompt: [Int], maxTokens: Int, emit: (String) -> Void) throws -> GenerationStats {
        // Bounded by the context before any arithmetic: `maxTokens` may be as large as Int.max.
        let room = max(0, min(maxTokens, model.config.contextLength - prompt.count))
        var cache = model.newCache(capacity: prompt.count + room)
        return try generate(prompt: prompt, cache: &cache, maxTokens: maxTokens, emit: emit)
    }

    /// Generates after `cache` (which may already hold a spliced prefix): prefills
    /// `prompt` then decodes. Stops early at the context limit.
    public func generate(prompt: [Int], cache: inout KVCache, maxTokens: Int,
                         emit: (String) -> Void) throws -> GenerationStats {
        var stats = GenerationStats(promptTokens: prompt.count)
        var sampler = Sampler(sampling)
        var stream = StreamDecoder(tokenizer: tokenizer)
        let t0 = Date()
        var logits = try model.prefill(prompt, cache: &cache)
        stats.prefillSeconds = Date().timeIntervalSince(t0)
        let t1 = Date()
        while stats.generatedTokens < maxTokens {
            let next = sampler.sample(logits)
            if tokenizer.isEndOfGeneration(next) { break }
            stats.generatedTokens += 1
            emit(stream.push(next))
            guard cache.count < model.config.contextLength, stats.generatedTokens < maxTokens else { break }
            logits = try model.decode(next, cache: &cache)
            stats.decodeSteps += 1
        }
        emit(stream.flush())
        stats.decodeSeconds = Date().timeIntervalSince(t1)
        return stats
    }
}
