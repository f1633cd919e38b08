import Foundation
import KVStashEngine
import KVStashStore

extension PrefixCache {
    /// Answers `prompt` (already rendered by a template; special tokens are parsed),
    /// streaming each token to `onToken` (return false to stop). The prompt's KV comes
    /// from RAM and disk where cached; new full chunks are written back afterwards.
    public func generate(prompt: String, options: GenerationOptions = GenerationOptions(),
                         onToken: (TokenPiece) -> Bool = { _ in true }) throws -> RequestResult {
        let start = ContinuousClock.now
        return try generate(tokens: tokenize(prompt), options: options, startedAt: start, onToken: onToken)
    }

    /// Answers a tokenized prompt; see `generate(prompt:options:onToken:)`.
    public func generate(tokens: [Int], options: GenerationOptions = GenerationOptions(),
                         startedAt start: ContinuousClock.Instant = .now,
                         onToken: (TokenPiece) -> Bool = { _ in true }) throws -> RequestResult {
        let promptCount = tokens.count
        var state = try assemble(tokens, needLogits: true, capacity: promptCount + options.maxTokens)
        defer { finish(state) }
        let prefillEnd = ContinuousClock.now
        let budget = min(options.maxTokens, model.config.contextLength - promptCount)
        var sampler = Sampler(options.sampling)
        var stream = StreamDecoder(tokenizer: tokenizer)
        var generated: [Int] = []
        var text = ""
        var reason = FinishReason.length
        var firstToken: ContinuousClock.Instant?
        var cached = 0
        var logits = state.logits
        while generated.count < budget {
            let next = sampler.sample(logits)
            if firstToken == nil { firstToken = .now }
            if options.stopAtEndOfGeneration && tokenizer.isEndOfGeneration(next) { reason = .stop; break }
            generated.append(next)
            let piece = stream.push(next)
            text += piece
            guard onToken(TokenPiece(id: next, text: piece, index: generated.count - 1)) else { reason = .cancelled; break }
            if generated.count == 1 { cached += insertIntoTree(state) }  // the prompt, once the first token is out
            guard generated.count < budget else { break }
            logits = try model.decode(next, cache: &state.cache)
            state.tokens.append(next)
        }
        text += stream.flush()
        let end = ContinuousClock.now
        let first = firstToken ?? end
        let stored = writeBack(state, promptCount: promptCount, origin: .query).chunks
        cached += insertIntoTree(state)
        let decodeSteps = max(generated.count - 1, 0)
        return RequestResult(
            sources: state.sources, tokens: generated, text: text, finishReason: reason,
            timeToFirstToken: (first - start).seconds, prefillSeconds: (prefillEnd - start).seconds, timings: state.timings,
            decodeTokensPerSecond: decodeSteps > 0 ? Double(decodeSteps) / (end - first).seconds : 0,
            chunksStored: stored, tokensCached: cached)
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }
}
