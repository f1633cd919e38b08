import KVStash
/// One chat turn as the server hands it to a backend.
public struct ChatTurn: Sendable, Hashable {
    /// `system`, `user`, `assistant` or `tool`.
    public var role: String
    /// The text of the turn.
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// What a backend is asked to complete.
public struct CompletionJob: Sendable {
    /// Raw text for `/v1/completions`, or messages for `/v1/chat/completions`.
    public enum Prompt: Sendable {
        /// A raw prompt, tokenized as is (special tokens such as `<|im_start|>` are parsed).
        case text(String)
        /// Chat messages, rendered with the model's chat template plus the generation prompt.
        case chat([ChatTurn])
    }

    /// The prompt.
    public var prompt: Prompt
    /// Maximum number of tokens to generate; nil means as many as fit, up to `defaultMaxTokens`.
    public var maxTokens: Int?
    /// Cap when `maxTokens` is nil.
    public var defaultMaxTokens: Int
    /// Sampling temperature; 0 is greedy.
    public var temperature: Double
    /// Nucleus sampling mass in (0, 1].
    public var topP: Double
    /// Top-k cut-off; 0 disables it.
    public var topK: Int
    /// Seed of the sampler; nil picks one.
    public var seed: UInt64?
    /// Tenant salt (`cache_salt`): prefixes cached under one salt are invisible to another.
    public var salt: String

    public init(prompt: Prompt, maxTokens: Int?, defaultMaxTokens: Int = 1024, temperature: Double = 1,
                topP: Double = 1, topK: Int = 0, seed: UInt64? = nil, salt: String = "") {
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.defaultMaxTokens = defaultMaxTokens
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.seed = seed
        self.salt = salt
    }
}

extension CompletionJob {
    /// How many tokens this job may generate after a prompt of `promptTokens` tokens, or a
    /// 400 `context_length_exceeded` when prompt plus `max_tokens` do not fit the context.
    public func completionLimit(promptTokens: Int, contextLength: Int) throws -> Int {
        let room = contextLength - promptTokens
        guard room > 0 else {
            throw APIError.badRequest(
                "this model's maximum context length is \(contextLength) tokens, but the prompt has \(promptTokens) tokens",
                param: "messages", code: "context_length_exceeded")
        }
        guard let maxTokens else { return min(room, defaultMaxTokens) }
        guard maxTokens <= room else {
            throw APIError.badRequest(
                "this model's maximum context length is \(contextLength) tokens, but you requested "
                    + "\(promptTokens) tokens in the prompt and \(maxTokens) for the completion",
                param: "max_tokens", code: "context_length_exceeded")
        }
        return maxTokens
    }
}

/// Why a generation ended: the request path's own reason (`stop` also covers a stop
/// sequence the server matched).
public typealias FinishReason = KVStash.FinishReason

/// What a finished generation reports.
public struct CompletionUsage: Sendable, Hashable {
    /// Tokens of the prompt.
    public var promptTokens: Int
    /// Tokens generated.
    public var completionTokens: Int
    /// Prompt tokens whose KV came from the RAM tier (radix tree).
    public var cachedTokensRAM: Int
    /// Prompt tokens whose KV came from the disk tier (store).
    public var cachedTokensDisk: Int
    /// Prompt tokens whose KV came from the shared tier.
    public var cachedTokensShared = 0
    /// Time from the start of the job to the first generated token.
    public var timeToFirstToken: Duration?
    /// Why the generation ended.
    public var finishReason: FinishReason
    /// Where the request's time went, step by step (nil where the backend does not tell).
    public var timings: CompletionTimings?

    public init(promptTokens: Int, completionTokens: Int, cachedTokensRAM: Int = 0, cachedTokensDisk: Int = 0,
                timeToFirstToken: Duration? = nil, finishReason: FinishReason) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cachedTokensRAM = cachedTokensRAM
        self.cachedTokensDisk = cachedTokensDisk
        self.timeToFirstToken = timeToFirstToken
        self.finishReason = finishReason
    }

    /// Prompt tokens that skipped prefill.
    public var cachedTokens: Int { cachedTokensRAM + cachedTokensDisk + cachedTokensShared }
}

/// Where a completion's time went: the steps before its first token, then decode. The
/// server reports them as the answer's `timings` (llama-server's names where it has them).
public struct CompletionTimings: Sendable, Hashable {
    /// Rendering the chat template and tokenizing the prompt.
    public var tokenize: Duration = .zero
    /// Matching the radix tree and splicing its pages (the RAM tier).
    public var ram: Duration = .zero
    /// Probing, reading, verifying and splicing stored chunks (the disk and shared tiers).
    public var store: Duration = .zero
    /// Prompt tokens prefilled (the prompt minus the cached tokens).
    public var prefilledTokens = 0
    /// Prefilling them.
    public var prefill: Duration = .zero
    /// From the first token to the end of generation.
    public var decode: Duration = .zero

    public init() {}
}

/// A job the backend has tokenized and accepted: it fits the context.
public struct PreparedCompletion: Sendable {
    /// The job as asked.
    public var job: CompletionJob
    /// Prompt token ids.
    public var tokens: [Int]
    /// `job.maxTokens`, reduced so that prompt + completion fit the context.
    public var maxTokens: Int
    /// How long rendering and tokenizing the prompt took.
    public var tokenizing: Duration

    public init(job: CompletionJob, tokens: [Int], maxTokens: Int, tokenizing: Duration = .zero) {
        self.job = job
        self.tokens = tokens
        self.maxTokens = maxTokens
        self.tokenizing = tokenizing
    }
}

/// Progress of a precompute job.
public struct PrecomputeProgress: Sendable, Hashable {
    /// Documents finished.
    public var documentsDone: Int
    /// Tokens whose KV is now stored.
    public var tokensDone: Int
    /// Tokens that were already stored and skipped.
    public var tokensCached: Int

    public init(documentsDone: Int = 0, tokensDone: Int = 0, tokensCached: Int = 0) {
        self.documentsDone = documentsDone
        self.tokensDone = tokensDone
        self.tokensCached = tokensCached
    }
}

/// One document to precompute.
public struct PrecomputeDocument: Sendable, Hashable {
    /// Optional caller-given id (the store records it).
    public var id: String?
    /// Its text.
    public var text: String

    public init(id: String?, text: String) {
        self.id = id
        self.text = text
    }
}

/// What the HTTP layer needs from the thing that runs the model.
///
/// `prepare` is cheap (tokenize, check limits) and lets the server answer 4xx before it
/// commits to a 200 or a stream; `generate` runs prefill and decode, calling `onToken`
/// with each new piece of text, outside any lock that other requests wait on. Returning
/// `false` from `onToken` stops the generation (its usage then says `.cancelled`).
/// Task cancellation also stops it between steps. `generate` may return before the
/// backend has finished keeping the request's prompt for later ones (later requests see
/// it); `settled` returns once that is done for every request answered before the call.
public protocol CompletionBackend: Sendable {
    /// The model id clients pass as `model`.
    var modelID: String { get }
    /// Context length of the model in tokens.
    var contextLength: Int { get }
    /// Tokenizes and checks a job; throws `APIError` (4xx) when it cannot be served.
    func prepare(_ job: CompletionJob) async throws -> PreparedCompletion
    /// Runs a prepared job to its end.
    func generate(_ prepared: PreparedCompletion,
                  onToken: @Sendable (String) async -> Bool) async throws -> CompletionUsage
    /// Computes and stores the KV of documents under `salt`, reporting progress.
    func precompute(_ documents: [PrecomputeDocument], salt: String,
                    onProgress: @Sendable (PrecomputeProgress) async -> Void) async throws -> PrecomputeProgress
    /// Returns once every request answered so far has kept what it keeps (store, RAM tier).
    func settled() async
}

extension CompletionBackend {
    /// A backend that keeps nothing after its answers is always settled.
    public func settled() async {}
}
