import Foundation
import Hummingbird
@testable import KVStashServer

/// A completion backend without a model, so the HTTP layer's tests (bad input, auth, SSE,
/// metrics, admin) run in a fraction of a second on a machine without the model file.
///
/// A prompt's tokens are its whitespace-separated words (a chat's: every turn's role and
/// words); the answer is `pieces`, one piece per token, repeated until `max_tokens`, and it
/// ends with `stop` after the last piece when `max_tokens` leaves room. The real-model
/// server tests (`CompletionTests`, `PrefixCacheServerTests`, `FairnessTests`) check what
/// this fake cannot: that the text is the model's.
final class FakeBackend: CompletionBackend {
    let modelID: String
    let contextLength: Int
    let pieces: [String]
    /// Generation waits this long before each piece (for disconnect and concurrency tests).
    let pieceDelay: Duration

    init(modelID: String = "test-model", contextLength: Int = 256,
         pieces: [String] = ["Hello", ",", " wor", "ld", "!", " \u{1F44B}", " Done", "."],
         pieceDelay: Duration = .zero) {
        self.modelID = modelID
        self.contextLength = contextLength
        self.pieces = pieces
        self.pieceDelay = pieceDelay
    }

    /// The answer for a completion limit of `maxTokens`, as the fake generates it.
    func answer(maxTokens: Int) -> String {
        (0..<min(maxTokens, pieces.count)).map { pieces[$0] }.joined()
    }

    func prepare(_ job: CompletionJob) async throws -> PreparedCompletion {
        let words: Int
        switch job.prompt {
        case .text(let text): words = text.split(whereSeparator: \.isWhitespace).count
        case .chat(let turns): words = turns.reduce(0) { $0 + 1 + $1.content.split(whereSeparator: \.isWhitespace).count }
        }
        guard words > 0 else { throw APIError.badRequest("the prompt is empty", param: "prompt") }
        let limit = try job.completionLimit(promptTokens: words, contextLength: contextLength)
        return PreparedCompletion(job: job, tokens: Array(repeating: 0, count: words), maxTokens: limit)
    }

    func generate(_ prepared: PreparedCompletion,
                  onToken: @Sendable (String) async -> Bool) async throws -> CompletionUsage {
        let start = ContinuousClock.now
        var usage = CompletionUsage(promptTokens: prepared.tokens.count, completionTokens: 0, finishReason: .stop)
        for piece in pieces.prefix(prepared.maxTokens) {
            if pieceDelay > .zero { try? await Task.sleep(for: pieceDelay) }
            guard !Task.isCancelled else {
                usage.finishReason = .cancelled
                return usage
            }
            usage.completionTokens += 1
            if usage.timeToFirstToken == nil { usage.timeToFirstToken = ContinuousClock.now - start }
            guard await onToken(piece) else {
                usage.finishReason = .cancelled
                return usage
            }
        }
        if prepared.maxTokens < pieces.count { usage.finishReason = .length }
        return usage
    }

    func precompute(_ documents: [PrecomputeDocument], salt: String,
                    onProgress: @Sendable (PrecomputeProgress) async -> Void) async throws -> PrecomputeProgress {
        var progress = PrecomputeProgress()
        for doc in documents {
            progress.documentsDone += 1
            progress.tokensDone += doc.text.split(whereSeparator: \.isWhitespace).count
            await onProgress(progress)
        }
        return progress
    }
}

/// Runs `body` against `server` listening on an ephemeral loopback port.
func withLoopbackServer(_ server: KVStashServer,
                         _ body: @escaping @Sendable (LoopbackClient) async throws -> Void) async throws {
    let running = try await RunningServer.start(server)
    do {
        try await body(LoopbackClient(server: running))
    } catch {
        await running.stop()
        throw error
    }
    await running.stop()
}

/// `RunningServer`'s requests with typed methods and an optional bearer token.
struct LoopbackClient: Sendable {
    let server: RunningServer

    func send(_ method: HTTPRequest.Method, _ path: String, body: Data? = nil,
              authorization: String? = nil) async throws -> (status: Int, body: Data) {
        try await server.send(method.rawValue, path, body: body,
                              headers: authorization.map { ["Authorization": $0] } ?? [:])
    }

    func post(_ path: String, _ object: [String: Any]) async throws -> (status: Int, json: [String: Any]) {
        try await server.post(path, object)
    }
}
