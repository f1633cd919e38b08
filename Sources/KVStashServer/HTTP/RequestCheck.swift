extension KVStashServer {
    /// The routes whose bodies `checkBody` knows.
    public static let checkedBodyPaths = ["/v1/chat/completions", "/v1/completions", "/v1/precompute"]

    /// Decodes and checks a request body for `path` as its route does before the backend sees
    /// it: nil when the server would go on with it, else the error it would answer with. The
    /// routes take the same steps, past reading the body and the API key's namespace; the
    /// fuzzing harness for request bodies drives this.
    public func checkBody(_ body: [UInt8], path: String) -> APIError? {
        do {
            switch path {
            case "/v1/chat/completions": _ = try completionCall(.chat, body: body) { try checkedCacheSalt($0.cache_salt) }
            case "/v1/completions": _ = try completionCall(.completions, body: body) { try checkedCacheSalt($0.cache_salt) }
            case "/v1/precompute": _ = try checkedCacheSalt(try precomputeDocuments(body: body).cacheSalt)
            default: return .notFound("no route checks bodies for '\(path)'")
            }
            return nil
        } catch {
            return APIError.from(error)
        }
    }
}
