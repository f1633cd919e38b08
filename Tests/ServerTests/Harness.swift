import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import KVStashEngine
import XCTest
@testable import KVStashServer

/// The real default model, loaded once for all server tests.
enum TestModel {
    private static let loaded: Result<LlamaModel, any Error>? = {
        guard let path = ProcessInfo.processInfo.environment["KVSTASH_MODEL"] else { return nil }
        return Result { try LlamaModel(path: path) }
    }()

    /// The model, or a skip (a failure under CI) when KVSTASH_MODEL is not set.
    static func model() throws -> LlamaModel {
        guard let loaded else {
            let message = "KVSTASH_MODEL is not set (scripts/test.sh sets it)"
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail(message) }
            throw XCTSkip(message)
        }
        return try loaded.get()
    }

    static var path: String { ProcessInfo.processInfo.environment["KVSTASH_MODEL"] ?? "" }

    /// Greedy continuation computed straight on the engine (one prefill, then the engine's
    /// generation loop): the reference the server must reproduce at temperature 0.
    static func greedy(_ model: LlamaModel, tokens: [Int], maxTokens: Int) throws -> [Int] {
        var cache = model.newCache()
        let logits = try model.prefill(tokens, cache: &cache)
        return try GenerationLoop(model: model, tokenizer: try Tokenizer(gguf: model.gguf), maxTokens: maxTokens)
            .run(logits: logits, cache: &cache).tokens
    }
}

/// A `KVStashServer` running on an ephemeral loopback port.
final class RunningServer: Sendable {
    let base: String
    let server: KVStashServer
    private let task: Task<Void, any Error>

    private init(base: String, server: KVStashServer, task: Task<Void, any Error>) {
        self.base = base
        self.server = server
        self.task = task
    }

    static func start(_ server: KVStashServer) async throws -> RunningServer {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let task = Task { try await server.run(handleSignals: false) { port in continuation.yield(port) } }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else { throw URLError(.cannotConnectToHost) }
        return RunningServer(base: "http://127.0.0.1:\(port)", server: server, task: task)
    }

    func stop() async {
        task.cancel()
        _ = try? await task.value
    }

    /// Sends a request and returns the status and body.
    func send(_ method: String, _ path: String, body: Data? = nil,
              headers: [String: String] = [:]) async throws -> (status: Int, body: Data) {
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = method
        request.httpBody = body
        request.timeoutInterval = 300
        if body != nil { request.setValue("application/json", forHTTPHeaderField: "Content-Type") }
        for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
    }

    /// POSTs a JSON object and decodes the JSON answer.
    func post(_ path: String, _ object: [String: Any], headers: [String: String] = [:]) async throws
        -> (status: Int, json: [String: Any]) {
        let (status, data) = try await send("POST", path, body: try JSONSerialization.data(withJSONObject: object),
                                            headers: headers)
        return (status, (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:])
    }

    func get(_ path: String, headers: [String: String] = [:]) async throws -> (status: Int, json: [String: Any]) {
        let (status, data) = try await send("GET", path, headers: headers)
        return (status, (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:])
    }
}

/// Reads nested JSON: `json["usage", "prompt_tokens_details", "cached_tokens"]`.
extension Dictionary where Key == String, Value == Any {
    subscript(path: String...) -> Any? {
        var current: Any? = self
        for key in path {
            if let i = Int(key), let array = current as? [Any] {
                current = i < array.count ? array[i] : nil
            } else {
                current = (current as? [String: Any])?[key]
            }
        }
        return current
    }
}

/// Splits an SSE body into the JSON objects of its `data:` events; `done` says whether
/// it ended with `data: [DONE]`.
func parseSSE(_ data: Data) -> (events: [[String: Any]], done: Bool) {
    let text = String(decoding: data, as: UTF8.self)
    var events: [[String: Any]] = []
    var done = false
    for block in text.components(separatedBy: "\n\n") where block.hasPrefix("data: ") {
        let payload = String(block.dropFirst(6))
        if payload == "[DONE]" {
            done = true
        } else if let obj = try? JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any] {
            events.append(obj)
        }
    }
    return (events, done)
}
