import Logging

extension KVStashServer {
    /// Decodes a request body of each completion endpoint, checks it as a request is checked,
    /// and encodes the answer, the stream chunks and the usage chunk it would send, so that the
    /// first client's request does not pay the Swift runtime's one-time work for these types
    /// (type metadata and protocol-conformance lookups: about 0.4 ms of a new process's first
    /// Gemma 3 cold hit, `perf` inside `serve`). Nothing reaches the backend, the metrics or a
    /// cache; `kvstash serve` calls it at start unless `--no-warmup`.
    public func warmUpCodecs() {
        var usage = CompletionUsage(promptTokens: 2, completionTokens: 1, cachedTokensRAM: 1, cachedTokensDisk: 1,
                                    timeToFirstToken: .milliseconds(1), finishReason: .stop)
        usage.timings = CompletionTimings()
        do {
            let chat = try decodeJSONBody(ChatRequest.self, from: Array(Self.sampleChatBody.utf8))
            let turns = try chat.messages.enumerated().map { i, m in try turn(m, index: i) }
            let text = try decodeJSONBody(CompletionRequest.self, from: Array(Self.sampleCompletionBody.utf8))
            let calls = [try makeCall(.chat, prompt: .chat(turns), chat.fields),
                         try makeCall(.completions, prompt: .text(text.prompt.text), text.fields)]
            for call in calls {
                let meta = AnswerMeta(call: call, id: call.endpoint.idPrefix + "warm-up", created: startedAt,
                                      model: backend.modelID)
                _ = try sseEvent(meta.chunk(text: "a"))
                _ = try sseEvent(meta.finalChunk(usage))
                _ = try sseEvent(meta.usageChunk(usage))
                _ = try jsonResponse(meta.answer(text: "a", usage: usage))
            }
        } catch {
            Logger(label: "kvstash.server").warning("warming up the request codecs failed (first request may be slower): \(error)")
        }
    }

    static let sampleChatBody = #"""
        {"messages":[{"role":"system","content":"a"},{"role":"user","content":[{"type":"text","text":"b"}]}],
         "stream":true,"stream_options":{"include_usage":true},"max_tokens":1,"temperature":0,"top_p":1,"top_k":1,
         "seed":1,"stop":["c"],"n":1,"cache_salt":"d"}
        """#
    static let sampleCompletionBody = #"""
        {"prompt":"a","stream":false,"max_tokens":1,"temperature":0,"stop":"c"}
        """#
}
