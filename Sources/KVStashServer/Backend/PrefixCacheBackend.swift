import Foundation
import KVStash
import KVStashEngine
import KVStashStore
import Synchronization

/// The serving backend: the request path (`PrefixCache`) with its radix tree (RAM) and
/// chunk store (disk). Every tenant salt gets a `PrefixCache` view over the same model,
/// store and radix tree: the tree keeps one namespace per salt under one global byte
/// budget, and a namespace whose nodes are evicted costs nothing, so idle salts hold no
/// memory.
///
/// Requests run on threads of the work pool (`WorkThreads`, one each while they run) and
/// take the model's `FairTurn` step by step, so concurrent generations interleave
/// round-robin; requests that share a prefix share its KV through the tree and the store.
public final class PrefixCacheBackend: TemplatedBackend {
    public let modelID: String
    public let model: LlamaModel
    public let tokenizer: Tokenizer
    public let template: ChatTemplate
    public let store: ChunkStore?
    public let turn: FairTurn
    public let defaultSystem: Bool
    private let fingerprint: [UInt8]
    private let options: PrefixCacheOptions
    /// The RAM tier of every salt, bounded by `options.ramBudgetBytes` in all.
    public let tree: RadixTree
    /// The chunk tiers below the tree (the store, then the shared tier), shared by every salt.
    public let tiers: ChunkTiers
    /// Requests answered whose prompt is still being kept.
    public let keeps = KeepLedger()

    public var contextLength: Int { model.config.contextLength }

    /// Loads the model at `modelPath` and wires the request path over `store`.
    public convenience init(modelPath: String, store: ChunkStore?, shared: (any SharedChunkTier)? = nil,
                            options: PrefixCacheOptions = PrefixCacheOptions(),
                            turn: FairTurn = FairTurn(), defaultSystem: Bool = true,
                            prefillInputs: PrefillInputs = .sixteen) throws {
        try self.init(model: LlamaModel(path: modelPath, prefillInputs: prefillInputs), modelPath: modelPath, store: store, shared: shared,
                      options: options, turn: turn, defaultSystem: defaultSystem)
    }

    /// Wires the request path for an already loaded `model` (read from `modelPath`, whose
    /// fingerprint keys the store).
    public init(model: LlamaModel, modelPath: String, store: ChunkStore?, shared: (any SharedChunkTier)? = nil,
                options: PrefixCacheOptions = PrefixCacheOptions(), turn: FairTurn = FairTurn(),
                defaultSystem: Bool = true) throws {
        self.model = model
        tokenizer = try Tokenizer(gguf: model.gguf)
        template = try ChatTemplate(gguf: model.gguf)
        modelID = EngineBackend.modelID(path: modelPath)
        fingerprint = try ModelFingerprint.compute(path: modelPath, cacheDir: store?.path)
        self.store = store
        self.options = options
        self.turn = turn
        self.defaultSystem = defaultSystem
        tree = RadixTree(budgetBytes: options.ramBudgetBytes)
        tiers = ChunkTiers(local: store, shared: shared, logger: options.logger)
    }

    /// Warms up the model (`LlamaModel.warmUp`) on a thread of the pool requests run on
    /// (`WorkThreads`), so the first request finds that thread's stack, malloc arena and
    /// kernel scratch faulted in, then the tokenizer's caches (`Tokenizer.warmUp`).
    public func warmUp() throws {
        let model = model
        try WorkThreads.shared.run { try model.warmUp() }
        tokenizer.warmUp()
    }

    /// The request path of tenant `salt`: a light view (keyer, codec, namespace) over the
    /// shared model, store and tree, made per request.
    public func prefixCache(salt: String) -> PrefixCache {
        var options = self.options
        options.tenantSalt = Array(salt.utf8)
        return PrefixCache(model: model, tokenizer: tokenizer, store: store, modelFingerprint: fingerprint,
                           options: options, tree: tree, tiers: tiers)
    }

    public func generate(_ prepared: PreparedCompletion,
                         onToken: @Sendable (String) async -> Bool) async throws -> CompletionUsage {
        let cache = prefixCache(salt: prepared.job.salt)
        let job = prepared.job
        let options = GenerationOptions(
            maxTokens: prepared.maxTokens,
            sampling: samplingParams(job))
        let (tokens, keeps) = (prepared.tokens, self.keeps)
        // The answer goes out once its last token is; the prompt is kept after it, on the
        // request's thread, still holding the turn.
        let result = try await TurnRunner.run(turn: turn, onPiece: onToken) { emit, answer in
            var answered = false
            defer { if answered { keeps.kept() } }
            return try cache.generate(tokens: tokens, options: options, passTurn: emit.pass, onAnswer: { result in
                answered = true
                keeps.answered()
                answer(.success(result))
            }) { piece in
                emit.send(piece.text.isEmpty ? nil : piece.text)
            }
        }
        var usage = CompletionUsage(promptTokens: result.sources.prompt, completionTokens: result.tokens.count,
                                    cachedTokensRAM: result.sources.ram, cachedTokensDisk: result.sources.disk,
                                    timeToFirstToken: .seconds(result.timeToFirstToken), finishReason: result.finishReason)
        usage.cachedTokensShared = result.sources.shared
        usage.timings = Self.timings(result, tokenizing: prepared.tokenizing)
        return usage
    }

    /// The steps of `result`, after `tokenizing`.
    static func timings(_ result: RequestResult, tokenizing: Duration) -> CompletionTimings {
        var t = CompletionTimings()
        t.tokenize = tokenizing
        t.ram = .seconds(result.timings.ram)
        t.store = .seconds(result.timings.disk)
        t.prefilledTokens = result.sources.prefilled
        t.prefill = .seconds(result.timings.prefill)
        t.decode = .seconds(result.decodeSeconds)
        return t
    }

    public func settled() async {
        await keeps.settled()
    }

    public func precompute(_ documents: [PrecomputeDocument], salt: String,
                           onProgress: @Sendable (PrecomputeProgress) async -> Void) async throws -> PrecomputeProgress {
        guard store != nil else {
            throw APIError(.notImplemented, "precompute needs a store")
        }
        let cache = prefixCache(salt: salt)
        let docs = documents
        return try await TurnRunner.run(turn: turn, onPiece: { (p: PrecomputeProgress) in
            await onProgress(p)
            return true
        }) { [self] emit -> PrecomputeProgress in
            var p = PrecomputeProgress()
            for doc in docs {
                // What a chat opening with the document as its system message starts with,
                // tokenized as a chat request's is (the document is plain text), so the
                // chat's first chunks are these (Gemma: the first user turn's start).
                let tokens = tokenizer.encode(template.renderSystemPrefix(doc.text, defaultSystem: defaultSystem))
                let id = doc.id ?? Self.documentID(doc.text, salt: salt)
                var stop = false
                let r = try cache.precompute(tokens: tokens, id: id, name: id,
                                             shouldStop: { stop }) { tokens in
                    p.tokensDone += tokens
                    stop = !emit(p)
                }
                p.tokensCached += r.tokensAlreadyStored
                p.documentsDone += 1
                guard emit(p) else { break }
            }
            return p
        }
    }

    /// A stable id for an unnamed document: FNV-1a of salt and text.
    static func documentID(_ text: String, salt: String) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in salt.utf8 + [0] + text.utf8 {
            h = (h ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return "doc-" + String(h, radix: 16)
    }
}
