import Foundation
import HTTPTypes
import Hummingbird

/// Identity and shape of one answer.
struct AnswerMeta: Sendable {
    var call: CompletionCall
    var id: String
    var created: Int
    var model: String

    var endpoint: Endpoint { call.endpoint }

    private func body(_ object: String, _ choice: ChoiceBody?, usage: CompletionUsage?,
                      timings: TimingsBody? = nil) -> CompletionBody {
        CompletionBody(id: id, object: object, created: created, model: model,
                       choices: choice.map { [$0] } ?? [], usage: usage.map(UsageBody.init),
                       system_fingerprint: "kvstash", timings: timings)
    }

    private static func finish(_ usage: CompletionUsage) -> String {
        usage.finishReason == .length ? "length" : "stop"
    }

    /// The whole answer of a non-streaming request.
    func answer(text: String, usage: CompletionUsage) -> CompletionBody {
        let reason = Self.finish(usage)
        let choice = endpoint == .chat
            ? ChoiceBody(message: MessageBody(role: "assistant", content: text), finish_reason: reason)
            : ChoiceBody(text: text, finish_reason: reason)
        return body(endpoint.object, choice, usage: usage, timings: TimingsBody(usage))
    }

    /// A streamed piece of text (or, for chat, the opening role delta when `text` is nil).
    func chunk(text: String?) -> CompletionBody {
        let choice = endpoint == .chat
            ? ChoiceBody(delta: text.map { MessageBody(content: $0) } ?? MessageBody(role: "assistant", content: ""))
            : ChoiceBody(text: text ?? "")
        return body(endpoint.chunkObject, choice, usage: nil)
    }

    /// The chunk that carries `finish_reason`.
    func finalChunk(_ usage: CompletionUsage) -> CompletionBody {
        let choice = endpoint == .chat
            ? ChoiceBody(delta: MessageBody(), finish_reason: Self.finish(usage))
            : ChoiceBody(text: "", finish_reason: Self.finish(usage))
        return body(endpoint.chunkObject, choice, usage: nil, timings: TimingsBody(usage))
    }

    /// The chunk with `usage` and no choices (`stream_options.include_usage`).
    func usageChunk(_ usage: CompletionUsage) -> CompletionBody {
        body(endpoint.chunkObject, nil, usage: usage)
    }
}

/// One server-sent event: `data: <json>\n\n`.
func sseEvent(_ value: some Encodable) throws -> ByteBuffer {
    var buffer = ByteBuffer(string: "data: ")
    buffer.writeBytes(try JSONBody.bytes(value))
    buffer.writeString("\n\n")
    return buffer
}

extension KVStashServer {
    /// Streams a generation as OpenAI SSE chunks ending with `data: [DONE]`.
    ///
    /// If a write fails (client gone) or the connection's input closes, the generation is
    /// cancelled; the model stops within one step.
    func sseResponse(run: CompletionStream, meta: AnswerMeta, watcher: DisconnectWatcher?) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        let metrics = self.metrics
        let endpoint = meta.endpoint.rawValue
        return Response(status: .ok, headers: headers, body: .init { writer in
            let token = watcher?.onDisconnect { run.cancel() }
            defer { if let token { watcher?.remove(token) } }
            do {
                if meta.endpoint == .chat { try await send(&writer, sseEvent(meta.chunk(text: nil))) }
                for try await event in run.events {
                    switch event {
                    case .text(let text):
                        try await send(&writer, sseEvent(meta.chunk(text: text)))
                    case .done(let usage):
                        guard usage.finishReason != .cancelled else { throw CancellationError() }
                        metrics.record(usage)
                        try await send(&writer, sseEvent(meta.finalChunk(usage)))
                        if meta.call.includeUsage { try await send(&writer, sseEvent(meta.usageChunk(usage))) }
                    }
                }
                try await send(&writer, ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
                metrics.request(endpoint, outcome: "ok")
            } catch {
                run.cancel()
                let cancelled = error is ClientGone || error is CancellationError || Task.isCancelled
                metrics.request(endpoint, outcome: cancelled ? "cancelled" : "server_error")
                if !cancelled {
                    // The head is sent; report the failure in-stream, as OpenAI does.
                    try? await writer.write(sseEvent(APIError.from(error).body))
                }
                throw error
            }
        })
    }
}

/// A write to the client failed: it is gone.
struct ClientGone: Error {}

/// Writes to the client, turning a failure into `ClientGone`.
private func send(_ writer: inout any ResponseBodyWriter, _ buffer: ByteBuffer) async throws {
    do {
        try await writer.write(buffer)
    } catch {
        throw ClientGone()
    }
}
