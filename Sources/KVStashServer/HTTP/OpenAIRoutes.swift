import Foundation
import HTTPTypes
import Hummingbird

/// Which OpenAI endpoint a completion came through.
enum Endpoint: String, Sendable {
    case completions
    case chat

    var object: String { self == .chat ? "chat.completion" : "text_completion" }
    var chunkObject: String { self == .chat ? "chat.completion.chunk" : "text_completion" }
    var idPrefix: String { self == .chat ? "chatcmpl-" : "cmpl-" }
}

/// A validated completion request: the job plus how to answer it.
struct CompletionCall: Sendable {
    var endpoint: Endpoint
    var job: CompletionJob
    var stops: [String]
    var stream: Bool
    var includeUsage: Bool
}

extension KVStashServer {
    func addOpenAIRoutes(to router: Router<ServerContext>) {
        router.get("/v1/models") { _, _ in
            try jsonResponse(ModelList(data: [.init(id: backend.modelID, created: startedAt,
                                                    context_length: backend.contextLength)]))
        }
        router.get("/v1/models/:id") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard id == backend.modelID else { throw unknownModel(id) }
            return try jsonResponse(ModelList.Model(id: id, created: startedAt, context_length: backend.contextLength))
        }
        router.post("/v1/completions") { request, context in
            try await counted(.completions) {
                var request = request
                let arrival = ContinuousClock.now
                let body = try await request.bodyBytes(limit: configuration.maxBodyBytes)
                let call = try completionCall(.completions, body: body) { try tenantSalt(request, cacheSalt: $0.cache_salt) }
                return try await serve(call, arrival: arrival, context: context)
            }
        }
        router.post("/v1/chat/completions") { request, context in
            try await counted(.chat) {
                var request = request
                let arrival = ContinuousClock.now
                let body = try await request.bodyBytes(limit: configuration.maxBodyBytes)
                let call = try completionCall(.chat, body: body) { try tenantSalt(request, cacheSalt: $0.cache_salt) }
                return try await serve(call, arrival: arrival, context: context)
            }
        }
    }

    /// Counts a request that failed before its answer started, by outcome.
    /// (Streamed answers count their own end in `sseResponse`; successful JSON answers in `serve`.)
    private func counted(_ endpoint: Endpoint, _ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch {
            let outcome: String
            if error is CancellationError || Task.isCancelled {
                outcome = "cancelled"
            } else {
                outcome = APIError.from(error).status.code < 500 ? "client_error" : "server_error"
            }
            metrics.request(endpoint.rawValue, outcome: outcome)
            throw error
        }
    }

    private func unknownModel(_ id: String) -> APIError {
        .notFound("the model '\(id)' does not exist; this server serves '\(backend.modelID)'",
                  param: "model", code: "model_not_found")
    }

    /// The call a completion body asks for, decoded and checked; `salt` gives the request's
    /// namespace from the body's fields.
    func completionCall(_ endpoint: Endpoint, body: [UInt8],
                        salt: (SamplingFields) throws -> String?) throws -> CompletionCall {
        switch endpoint {
        case .completions:
            let request = try decodeJSONBody(CompletionRequest.self, from: body)
            return try makeCall(.completions, prompt: .text(request.prompt.text), request.fields,
                                salt: salt(request.fields))
        case .chat:
            let request = try decodeJSONBody(ChatRequest.self, from: body)
            let turns = try request.messages.enumerated().map { i, m in try turn(m, index: i) }
            guard !turns.isEmpty else { throw APIError.badRequest("'messages' must not be empty", param: "messages") }
            return try makeCall(.chat, prompt: .chat(turns), request.fields, salt: salt(request.fields))
        }
    }

    func turn(_ m: ChatMessageInput, index: Int) throws -> ChatTurn {
        let roles = ["system", "developer", "user", "assistant", "tool"]
        guard roles.contains(m.role) else {
            throw APIError.badRequest("messages[\(index)].role '\(m.role)' is not one of \(roles)",
                                      param: "messages[\(index)].role")
        }
        return ChatTurn(role: m.role == "developer" ? "system" : m.role, content: m.content?.text ?? "")
    }

    /// Checks the sampling fields and builds the job; `salt` is the request's namespace
    /// (default: the body's `cache_salt`).
    func makeCall(_ endpoint: Endpoint, prompt: CompletionJob.Prompt, _ f: SamplingFields,
                  salt: String? = nil) throws -> CompletionCall {
        if let model = f.model, model != backend.modelID { throw unknownModel(model) }
        if let n = f.n, n != 1 { throw APIError.badRequest("only n=1 is supported (got \(n))", param: "n") }
        let maxTokens = f.max_completion_tokens ?? f.max_tokens
        if let m = maxTokens, m < 1 { throw APIError.badRequest("max_tokens must be at least 1", param: "max_tokens") }
        let temperature = f.temperature ?? 1
        guard (0...2).contains(temperature) else {
            throw APIError.badRequest("temperature must be in [0, 2]", param: "temperature")
        }
        let topP = f.top_p ?? 1
        guard topP > 0 && topP <= 1 else { throw APIError.badRequest("top_p must be in (0, 1]", param: "top_p") }
        if let k = f.top_k, k < 0 { throw APIError.badRequest("top_k must be >= 0", param: "top_k") }
        let stops = f.stop?.values ?? []
        guard stops.count <= 4 else { throw APIError.badRequest("at most 4 stop sequences", param: "stop") }
        // OpenAI's defaults: 16 tokens for completions; chat runs to the context (capped here).
        let limit = maxTokens ?? (endpoint == .completions ? 16 : nil)
        let job = CompletionJob(prompt: prompt, maxTokens: limit, defaultMaxTokens: configuration.defaultChatMaxTokens,
                                temperature: temperature, topP: topP, topK: f.top_k ?? 0,
                                seed: f.seed.map { UInt64(bitPattern: $0) }, salt: salt ?? f.cache_salt ?? "")
        return CompletionCall(endpoint: endpoint, job: job, stops: stops, stream: f.stream ?? false,
                              includeUsage: f.stream_options?.include_usage ?? false)
    }

    /// Prepares (4xx if the job cannot be served), then answers as JSON or as an SSE stream.
    func serve(_ call: CompletionCall, arrival: ContinuousClock.Instant, context: ServerContext) async throws -> Response {
        let prepared = try await backend.prepare(call.job)
        let reserved = prepared.tokens.count + prepared.maxTokens
        guard activeTokens.reserve(reserved) else {
            throw APIError.tooManyRequests(
                "the server is generating for \(activeTokens.reserved) tokens of context (limit \(activeTokens.limit)); "
                    + "retry later", retryAfter: 1, code: "server_busy")
        }
        let run = CompletionStream(backend: backend, prepared: prepared, stops: call.stops, metrics: metrics,
                                arrival: arrival)
        Task { [activeTokens] in
            await run.finished()
            activeTokens.release(reserved)
        }
        let watcher = await context.disconnectWatcher()
        let meta = AnswerMeta(call: call, id: call.endpoint.idPrefix + UUID().uuidString.lowercased(),
                              created: Int(Date().timeIntervalSince1970), model: backend.modelID)
        if call.stream {
            return sseResponse(run: run, meta: meta, watcher: watcher)
        }
        let token = watcher?.onDisconnect { run.cancel() }
        defer { if let token { watcher?.remove(token) } }
        let (text, usage) = try await run.collect()
        guard usage.finishReason != .cancelled else { throw CancellationError() }
        metrics.record(usage)
        metrics.request(call.endpoint.rawValue, outcome: "ok")
        return try jsonResponse(meta.answer(text: text, usage: usage))
    }
}
