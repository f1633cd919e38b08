import Foundation
import KVStashCore

/// One generated token as the generation loop hands it out.
public struct GeneratedToken: Sendable {
    /// Token id.
    public let id: Int
    /// Text that became complete with this token (empty while a UTF-8 character is unfinished).
    public let text: String
    /// 0-based index among the generated tokens.
    public let index: Int
}

/// Why a generation loop ended.
public enum GenerationEnd: Sendable, Equatable {
    /// An end-of-generation token was sampled (it is not part of the output).
    case endOfGeneration
    /// `maxTokens`, or the context, was reached.
    case length
    /// The token callback returned false.
    case cancelled
}

/// What one run of the generation loop produced.
public struct GenerationOutcome: Sendable {
    /// The generated token ids (without an end-of-generation token).
    public var tokens: [Int] = []
    /// Their text, including `tail`.
    public var text = ""
    /// Text the stream decoder held back until the end (an unfinished character's bytes);
    /// it was not handed to the token callback. Empty when the run was cancelled.
    public var tail = ""
    public var end = GenerationEnd.length
    /// When the first token was sampled (see `GenerationLoop`); nil if none was.
    public var firstTokenAt: ContinuousClock.Instant?
    /// When the loop ended.
    public var endedAt = ContinuousClock.now
    /// Model decode calls (the first token comes from the prefill's logits).
    public var decodeSteps = 0
}

/// The token-generation loop every caller runs: `kvstash generate` (`GenerationRun`), the
/// request path (`PrefixCache.generate`), the server's engine backend and the tests'
/// greedy references.
///
/// Starting from the logits of the last prefilled position, each step samples a token,
/// stops on an end-of-generation token (if `stopAtEndOfGeneration`), hands the token and
/// its text to the callback, and decodes it into the cache unless the budget is spent.
/// The budget is `maxTokens`, clipped to the positions the cache still has room for in the
/// model's context.
///
/// **Time to first token** (`GenerationOutcome.firstTokenAt`) is stamped as soon as the
/// first token is sampled, before the end-of-generation check and before the callback: it
/// is when the answer's first token (or its end, for an empty answer) is known.
public struct GenerationLoop: Sendable {
    public let model: LlamaModel
    public let tokenizer: Tokenizer
    public var sampling: SamplingParams
    public var maxTokens: Int
    /// Stop at an end-of-generation token (`<|im_end|>`, EOS). Off: generate exactly the budget.
    public var stopAtEndOfGeneration: Bool

    public init(model: LlamaModel, tokenizer: Tokenizer, sampling: SamplingParams = .greedy, maxTokens: Int,
                stopAtEndOfGeneration: Bool = true) {
        self.model = model
        self.tokenizer = tokenizer
        self.sampling = sampling
        self.maxTokens = maxTokens
        self.stopAtEndOfGeneration = stopAtEndOfGeneration
    }

    /// Runs the loop after a prefill that left `logits` and `cache`. `onToken` gets each
    /// token and the cache as it is at that moment (holding every position before the
    /// token); returning false stops the run (`.cancelled`).
    public func run(logits prefillLogits: [Float], cache: inout KVCache,
                    onToken: (GeneratedToken, KVCache) throws -> Bool = { _, _ in true }) throws -> GenerationOutcome {
        var out = GenerationOutcome()
        let budget = min(maxTokens, model.config.contextLength - cache.count)
        var sampler = Sampler(sampling)
        var stream = StreamDecoder(tokenizer: tokenizer)
        var logits = prefillLogits
        while out.tokens.count < budget {
            let next = sampler.sample(logits)
            if out.firstTokenAt == nil { out.firstTokenAt = .now }
            if stopAtEndOfGeneration && tokenizer.isEndOfGeneration(next) {
                out.end = .endOfGeneration
                break
            }
            out.tokens.append(next)
            let piece = stream.push(next)
            out.text += piece
            guard try onToken(GeneratedToken(id: next, text: piece, index: out.tokens.count - 1), cache) else {
                out.end = .cancelled
                break
            }
            guard out.tokens.count < budget else { break }
            logits = try model.decode(next, cache: &cache)
            out.decodeSteps += 1
        }
        if out.end != .cancelled {
            out.tail = stream.flush()
            out.text += out.tail
        }
        out.endedAt = .now
        return out
    }
}

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

/// A prefill, then the `GenerationLoop`, handing out text as soon as it forms whole UTF-8
/// characters (`kvstash generate`).
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
    /// `prompt` then runs the loop. Stops early at the context limit.
    public func generate(prompt: [Int], cache: inout KVCache, maxTokens: Int,
                         emit: (String) -> Void) throws -> GenerationStats {
        let start = ContinuousClock.now
        let logits = try model.prefill(prompt, cache: &cache)
        let prefilled = ContinuousClock.now
        let loop = GenerationLoop(model: model, tokenizer: tokenizer, sampling: sampling, maxTokens: maxTokens)
        let out = try loop.run(logits: logits, cache: &cache) { token, _ in
            emit(token.text)
            return true
        }
        emit(out.tail)
        return GenerationStats(promptTokens: prompt.count, generatedTokens: out.tokens.count,
                               prefillSeconds: (prefilled - start).seconds,
                               decodeSeconds: (out.endedAt - prefilled).seconds, decodeSteps: out.decodeSteps)
    }
}

extension Duration {
    /// The duration in seconds.
    public var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }
}
