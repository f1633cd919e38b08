import Foundation
import KVStashEngine

/// Errors of the request path.
public enum KVStashError: Error, CustomStringConvertible, Equatable {
    /// The prompt (plus at least one generated token) does not fit the model's context.
    case contextOverflow(promptTokens: Int, limit: Int)
    /// The prompt tokenized to nothing.
    case emptyPrompt
    /// A document or setting the caller named does not exist.
    case notFound(String)
    /// A configuration value is invalid.
    case invalid(String)
    /// The store refused a write that precompute needs (full disk, byte budget).
    case storeFull(String)

    public var description: String {
        switch self {
        case let .contextOverflow(n, limit):
            return "context overflow: the prompt has \(n) tokens, the model's context holds \(limit) (including at least one generated token)"
        case .emptyPrompt: return "the prompt is empty"
        case let .notFound(what): return "not found: \(what)"
        case let .invalid(why): return why
        case let .storeFull(why): return "precompute stopped, the store refused a write: \(why)"
        }
    }
}

/// How to generate after the prompt.
public struct GenerationOptions: Sendable {
    /// Maximum new tokens (clipped to what the context still holds).
    public var maxTokens: Int
    /// Sampling settings; the default is greedy.
    public var sampling: RequestSampling
    /// Stop at an end-of-generation token (`<|im_end|>`, EOS).
    public var stopAtEndOfGeneration: Bool

    public init(maxTokens: Int = 128, sampling: RequestSampling = .greedy, stopAtEndOfGeneration: Bool = true) {
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopAtEndOfGeneration = stopAtEndOfGeneration
    }
}

/// One generated token as it is streamed.
public struct TokenPiece: Sendable {
    /// Token id.
    public let id: Int
    /// Text that became complete with this token (may be empty mid-character).
    public let text: String
    /// 0-based index among the generated tokens.
    public let index: Int
}

/// Why generation ended.
public enum FinishReason: String, Sendable, Codable {
    /// An end-of-generation token was sampled (not included in the output), or (server)
    /// a stop sequence matched.
    case stop
    /// `maxTokens` or the context length was reached.
    case length
    /// The token callback asked to stop.
    case cancelled
}

/// Where the prompt's KV came from, in tokens. `ram + disk + shared + prefilled == prompt`.
public struct PromptSources: Sendable, Codable, Equatable {
    /// Prompt tokens.
    public var prompt = 0
    /// Tokens spliced from the radix tree (RAM).
    public var ram = 0
    /// Tokens spliced from the store (disk).
    public var disk = 0
    /// Tokens spliced from the shared tier.
    public var shared = 0
    /// Tokens computed by prefill.
    public var prefilled = 0
    /// Stored chunks that failed verification (reported to their tier, recomputed).
    public var corruptChunks = 0
    /// Stored chunks of a format or codec version this reader does not know (recomputed, kept).
    public var unknownVersionChunks = 0

    public init() {}
}

/// The outcome of one request.
public struct RequestResult: Sendable {
    /// Where the prompt's KV came from.
    public var sources: PromptSources
    /// Generated token ids (an end-of-generation token is not included).
    public var tokens: [Int]
    /// Generated text.
    public var text: String
    public var finishReason: FinishReason
    /// Seconds from the call to the first sampled token.
    public var timeToFirstToken: Double
    /// Seconds spent assembling the prompt's KV (match, fetch, splice, prefill).
    public var prefillSeconds: Double
    /// The same, step by step.
    public var timings: AssemblyTimings
    /// Decode throughput after the first token (tokens/s; 0 with fewer than two tokens).
    public var decodeTokensPerSecond: Double
    /// Seconds from the first token to the end of generation.
    public var decodeSeconds: Double
    /// Chunks written to the store by the write-back.
    public var chunksStored: Int
    /// Tokens added to the radix tree.
    public var tokensCached: Int

    /// One line for humans: prompt, RAM, disk, prefilled, TTFT, decode tok/s.
    public var summary: String {
        let s = sources
        return "prompt \(s.prompt) tokens | from RAM \(s.ram) | from disk \(s.disk)"
            + (s.shared > 0 ? " | from shared \(s.shared)" : "") + " | prefilled \(s.prefilled)"
            + (s.corruptChunks > 0 ? " | corrupt chunks \(s.corruptChunks)" : "")
            + (s.unknownVersionChunks > 0 ? " | unknown-version chunks \(s.unknownVersionChunks)" : "")
            + " | TTFT \(Self.ms(timeToFirstToken)) | decode \(String(format: "%.1f", decodeTokensPerSecond)) tok/s"
    }

    static func ms(_ s: Double) -> String { String(format: "%.1f ms", s * 1000) }
}
