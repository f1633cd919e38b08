import KVStashServer

/// A client's request body: the first byte picks the route (`KVStashServer.checkedBodyPaths`),
/// the rest is the body, decoded and checked as the server does before its backend sees it.
/// The server must go on with it or refuse it with a 4xx that says what is wrong.
enum RequestHarness {
    static let server = KVStashServer(configuration: ServerConfiguration(port: 0), backend: UnreachedBackend())

    static func run(_ input: [UInt8]) -> String? {
        guard let first = input.first else { return nil }
        let paths = KVStashServer.checkedBodyPaths
        let path = paths[Int(first) % paths.count]
        guard let error = server.checkBody(Array(input.dropFirst()), path: path) else { return nil }
        guard (400..<500).contains(error.status.code) else { return "\(path): a client's body got \(error)" }
        guard !error.message.isEmpty, !error.message.hasSuffix("not valid JSON.") else {
            return "\(path): the answer does not say what is wrong: \(error)"
        }
        return nil
    }

    static func seeds() -> [[UInt8]] {
        let bodies = [
            #"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_tokens":4,"temperature":0.5,"top_p":0.9,"top_k":5,"seed":1,"stop":["\n","END"],"stream":true,"stream_options":{"include_usage":true},"n":1,"cache_salt":"tenant","model":"fuzz-model"}"#,
            #"{"prompt":["Once upon a time"],"max_completion_tokens":8,"stop":"\n","seed":-3,"logprobs":null}"#,
            #"{"documents":["A document.",{"id":"d1","text":"Another."}],"cache_salt":"tenant"}"#,
        ]
        return bodies.enumerated().map { i, body in [UInt8(i)] + Array(body.utf8) }
    }
}

/// The backend of the harness's server: checking a body never reaches it.
private struct UnreachedBackend: CompletionBackend {
    struct Reached: Error {}
    var modelID: String { "fuzz-model" }
    var contextLength: Int { 2048 }
    func prepare(_ job: CompletionJob) async throws -> PreparedCompletion { throw Reached() }
    func generate(_ prepared: PreparedCompletion,
                  onToken: @Sendable (String) async -> Bool) async throws -> CompletionUsage { throw Reached() }
    func precompute(_ documents: [PrecomputeDocument], salt: String,
                    onProgress: @Sendable (PrecomputeProgress) async -> Void) async throws -> PrecomputeProgress {
        throw Reached()
    }
}
