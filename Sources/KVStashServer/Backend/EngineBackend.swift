import Foundation
import KVStashCore
import KVStashEngine

/// A backend that runs the model directly, with no prefix cache: every request prefills
/// its whole prompt. The server tests use it as the reference the cached path must agree
/// with; `kvstash serve` always runs `PrefixCacheBackend`.
public final class EngineBackend: TemplatedBackend {
    public let model: LlamaModel
    public let tokenizer: Tokenizer
    public let template: ChatTemplate
    public let modelID: String
    /// The model's turn: requests take it step by step, round-robin.
    public let turn: FairTurn
    /// Apply the template's default system turn when a chat has none (as transformers does).
    public let defaultSystem: Bool
    /// Prompt tokens per gated prefill step: other requests' decode steps run in between.
    public let prefillSlice: Int

    public var contextLength: Int { model.config.contextLength }

    /// Loads the GGUF model at `path`. The model id is the file name without `.gguf`.
    public convenience init(modelPath: String, turn: FairTurn = FairTurn(), defaultSystem: Bool = true,
                            prefillInputs: PrefillInputs = .sixteen) throws {
        let model = try LlamaModel(path: modelPath, prefillInputs: prefillInputs)
        try self.init(model: model, modelID: Self.modelID(path: modelPath), turn: turn, defaultSystem: defaultSystem)
    }

    public init(model: LlamaModel, modelID: String, turn: FairTurn = FairTurn(), defaultSystem: Bool = true,
                prefillSlice: Int = 128) throws {
        self.model = model
        self.tokenizer = try Tokenizer(gguf: model.gguf)
        self.template = try ChatTemplate(gguf: model.gguf)
        self.modelID = modelID
        self.turn = turn
        self.defaultSystem = defaultSystem
        self.prefillSlice = prefillSlice
    }

    /// The id clients use for the model at `path`: its file name without `.gguf`.
    public static func modelID(path: String) -> String {
        let name = URL(fileURLWithPath: path).lastPathComponent
        return name.hasSuffix(".gguf") ? String(name.dropLast(5)) : name
    }

    public func generate(_ prepared: PreparedCompletion,
                         onToken: @Sendable (String) async -> Bool) async throws -> CompletionUsage {
        let params = samplingParams(prepared.job)
        return try await TurnRunner.run(turn: turn, onToken: onToken) { [self] emit in
            try run(prepared, params: params, emit: emit)
        }
    }

    /// The blocking generation, on the request's thread, holding the turn.
    private func run(_ prepared: PreparedCompletion, params: SamplingParams,
                     emit: (String) -> Bool) throws -> CompletionUsage {
        let start = ContinuousClock.now
        var usage = CompletionUsage(promptTokens: prepared.tokens.count, completionTokens: 0, finishReason: .length)
        var cache = model.newCache(capacity: prepared.tokens.count + prepared.maxTokens)
        guard let logits = try prefill(prepared.tokens, into: &cache, emit: emit) else {
            usage.finishReason = .cancelled
            return usage
        }
        var timings = CompletionTimings()
        timings.tokenize = prepared.tokenizing
        timings.prefilledTokens = prepared.tokens.count
        timings.prefill = ContinuousClock.now - start
        let loop = GenerationLoop(model: model, tokenizer: tokenizer, sampling: params, maxTokens: prepared.maxTokens)
        let out = try loop.run(logits: logits, cache: &cache) { token, _ in emit(token.text) }
        timings.decode = out.endedAt - (out.firstTokenAt ?? out.endedAt)
        usage.timings = timings
        usage.completionTokens = out.tokens.count
        usage.timeToFirstToken = out.firstTokenAt.map { $0 - start }
        usage.finishReason = out.end == .endOfGeneration ? .stop : .length
        if out.end == .cancelled || !emit(out.tail) { usage.finishReason = .cancelled }
        return usage
    }

    /// Prefills in slices of `prefillSlice` tokens, passing the turn between slices so
    /// that other requests' decode steps run in between; nil if asked to stop.
    private func prefill(_ tokens: [Int], into cache: inout KVCache, emit: (String) -> Bool) throws -> [Float]? {
        var logits: [Float] = []
        var start = 0
        while start < tokens.count {
            let end = min(start + prefillSlice, tokens.count)
            logits = try model.prefill(Array(tokens[start..<end]), cache: &cache)
            start = end
            if start < tokens.count, !emit("") { return nil }
        }
        return logits
    }

    public func precompute(_ documents: [PrecomputeDocument], salt: String,
                           onProgress: @Sendable (PrecomputeProgress) async -> Void) async throws -> PrecomputeProgress {
        throw APIError(.notImplemented, "precompute needs a store; this server runs the model without one")
    }
}
