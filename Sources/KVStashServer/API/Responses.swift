import Foundation
import KVStashEngine

/// `usage` of a completion, with OpenAI's `prompt_tokens_details.cached_tokens` and
/// KVStash's split of cached tokens by tier.
struct UsageBody: Encodable, Sendable {
    struct PromptDetails: Encodable, Sendable {
        var cached_tokens: Int
        /// KVStash extension: cached tokens that came from RAM (radix tree) and disk (store).
        var cached_tokens_ram: Int
        var cached_tokens_disk: Int
    }

    var prompt_tokens: Int
    var completion_tokens: Int
    var total_tokens: Int
    var prompt_tokens_details: PromptDetails

    init(_ u: CompletionUsage) {
        prompt_tokens = u.promptTokens
        completion_tokens = u.completionTokens
        total_tokens = u.promptTokens + u.completionTokens
        prompt_tokens_details = .init(cached_tokens: u.cachedTokens, cached_tokens_ram: u.cachedTokensRAM,
                                      cached_tokens_disk: u.cachedTokensDisk)
    }
}

/// A message in a chat answer or a delta in a chat chunk.
struct MessageBody: Encodable, Sendable {
    var role: String?
    var content: String?
}

/// `timings` of an answer, as llama-server names them (`cache_n`, `prompt_n`, `prompt_ms`,
/// `predicted_*`), plus KVStash's steps before prefill. Times in milliseconds.
struct TimingsBody: Encodable, Sendable {
    /// Prompt tokens whose KV was reused.
    var cache_n: Int
    /// Prompt tokens prefilled, and the time it took.
    var prompt_n: Int
    var prompt_ms: Double
    var prompt_per_second: Double
    /// Tokens generated; time from the first to the last.
    var predicted_n: Int
    var predicted_ms: Double
    var predicted_per_second: Double
    /// KVStash extension: rendering and tokenizing the prompt, the RAM tier's match and
    /// splice, the stored chunks' read and splice.
    var tokenize_ms: Double
    var ram_ms: Double
    var store_ms: Double

    /// The timings of `u`, or nil when its backend timed nothing.
    init?(_ u: CompletionUsage) {
        guard let t = u.timings else { return nil }
        func ms(_ d: Duration) -> Double { d.seconds * 1e3 }
        func rate(_ n: Int, _ d: Duration) -> Double { d > .zero ? Double(n) / d.seconds : 0 }
        cache_n = u.cachedTokens
        prompt_n = t.prefilledTokens
        prompt_ms = ms(t.prefill)
        prompt_per_second = rate(t.prefilledTokens, t.prefill)
        predicted_n = u.completionTokens
        predicted_ms = ms(t.decode)
        predicted_per_second = rate(max(0, u.completionTokens - 1), t.decode)
        tokenize_ms = ms(t.tokenize)
        ram_ms = ms(t.ram)
        store_ms = ms(t.store)
    }
}

/// One choice of any completion object. Fields that OpenAI sends as `null` are encoded as `null`.
struct ChoiceBody: Encodable, Sendable {
    var index = 0
    var text: String?            // text_completion
    var message: MessageBody?    // chat.completion
    var delta: MessageBody?      // chat.completion.chunk
    var finish_reason: String?

    private enum CodingKeys: String, CodingKey { case index, text, message, delta, finish_reason, logprobs }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encodeIfPresent(text, forKey: .text)
        try c.encodeIfPresent(message, forKey: .message)
        try c.encodeIfPresent(delta, forKey: .delta)
        try c.encode(finish_reason, forKey: .finish_reason)
        try c.encodeNil(forKey: .logprobs)
    }
}

/// `text_completion`, `chat.completion` and their streamed chunks.
struct CompletionBody: Encodable, Sendable {
    var id: String
    var object: String
    var created: Int
    var model: String
    var choices: [ChoiceBody]
    var usage: UsageBody?
    var system_fingerprint: String?
    /// On the whole answer and on a stream's last chunk (where llama-server sends it).
    var timings: TimingsBody?
}

/// `GET /v1/models`.
struct ModelList: Encodable, Sendable {
    struct Model: Encodable, Sendable {
        var id: String
        var object = "model"
        var created: Int
        var owned_by = "kvstash"
        /// KVStash extension: the model's context length.
        var context_length: Int
    }

    var object = "list"
    var data: [Model]
}

/// Shared JSON encoding of answers.
enum JSONBody {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    static func bytes(_ value: some Encodable) throws -> Data { try encoder.encode(value) }
}
