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

    /// Answers a tokenized prompt; see `generate(prompt:options:onToken:)`. Tokens come from
    /// the engine's `GenerationLoop`, which says when the time to first token is stamped.
    /// `passTurn` (a server's, whose requests take turns at the model) runs between the
    /// prompt's prefill chunks and after each token's own work, and while the prompt waits
    /// for another request that is prefilling the same prefix (`assemble`): after its first
    /// token, that prompt is in the radix tree, and the waiting request splices it instead of
    /// computing it again. `passTurn` returns false once the request's consumer wants no more:
    /// the request then stops at the next prefill chunk (`CancellationError`) or token.
    /// `onAnswer` receives the result once the last token is out, before the prompt and
    /// answer are kept for later requests (write-back, prompt tail, radix tree, resident
    /// cache), so a server can answer first; its `chunksStored` is 0 and its `tokensCached`
    /// counts only the prompt inserted after the first token. The returned result is final.
    public func generate(tokens: [Int], options: GenerationOptions = GenerationOptions(),
                         startedAt start: ContinuousClock.Instant = .now, passTurn: (@Sendable () -> Bool)? = nil,
                         onAnswer: (RequestResult) -> Void = { _ in },
                         onToken: (TokenPiece) -> Bool = { _ in true }) throws -> RequestResult {
        let promptCount = tokens.count
        // Bounded by the context before any arithmetic: `maxTokens` may be as large as Int.max.
        let budget = max(0, min(options.maxTokens, model.config.contextLength - promptCount))
        var state = try assemble(tokens, needLogits: true, capacity: promptCount + budget, passTurn: passTurn)
        defer { finish(state) }
        let prefillEnd = ContinuousClock.now
        let loop = GenerationLoop(model: model, tokenizer: tokenizer, sampling: options.sampling,
                                  maxTokens: budget, stopAtEndOfGeneration: options.stopAtEndOfGeneration)
        var cached = 0
        let skipped = state.skipped, inflight = state.inflight
        let out = try loop.run(logits: state.logits, cache: &state.cache) { token, cache in
            guard onToken(TokenPiece(id: token.id, text: token.text, index: token.index)) else { return false }
            // The prompt, once its first token is out (the copy is not on the time to first
            // token). A one-token answer ends there: its prompt goes in after the answer.
            if token.index == 0, budget > 1 {
                cached += insertIntoTree(tokens, from: cache, skipped: skipped)
                if let inflight { tree.inflight.remove(inflight) }
            }
            return passTurn?() ?? true
        }
        state.tokens += out.tokens
        let first = out.firstTokenAt ?? out.endedAt
        let reason: FinishReason = switch out.end {
        case .endOfGeneration: .stop
        case .length: .length
        case .cancelled: .cancelled
        }
        var result = RequestResult(
            sources: state.sources, tokens: out.tokens, text: out.text, finishReason: reason,
            timeToFirstToken: (first - start).seconds, prefillSeconds: (prefillEnd - start).seconds, timings: state.timings,
            decodeTokensPerSecond: out.decodeSteps > 0 ? Double(out.decodeSteps) / (out.endedAt - first).seconds : 0,
            decodeSeconds: (out.endedAt - first).seconds, chunksStored: 0, tokensCached: cached)
        onAnswer(result)
        result.chunksStored = writeBack(state, promptCount: promptCount, origin: .query).chunks
            + storePromptTail(state, promptCount: promptCount).chunks
        result.tokensCached += insertIntoTree(state)
        keepResident(&state)
        return result
    }
}
