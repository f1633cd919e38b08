import XCTest
@testable import KVStashServer

/// `warmUpCodecs` at start: its sample bodies are requests the server accepts (so the warm-up
/// runs the whole decode, check and encode path rather than failing early), and it leaves no
/// trace in the metrics.
final class CodecWarmUpTests: XCTestCase {
    func testSampleBodiesPassTheRequestChecks() throws {
        let server = KVStashServer(configuration: ServerConfiguration(), backend: FakeBackend())
        let chat = try decodeJSONBody(ChatRequest.self, from: Array(KVStashServer.sampleChatBody.utf8))
        let turns = try chat.messages.enumerated().map { i, m in try server.turn(m, index: i) }
        XCTAssertEqual(turns.map(\.content), ["a", "b"])
        let call = try server.makeCall(.chat, prompt: .chat(turns), chat.fields)
        XCTAssertTrue(call.stream)
        XCTAssertTrue(call.includeUsage)
        let text = try decodeJSONBody(CompletionRequest.self, from: Array(KVStashServer.sampleCompletionBody.utf8))
        XCTAssertEqual(try server.makeCall(.completions, prompt: .text(text.prompt.text), text.fields).stops, ["c"])
    }

    func testWarmUpCountsNoRequest() {
        let server = KVStashServer(configuration: ServerConfiguration(), backend: FakeBackend())
        let before = server.metrics.exposition()
        server.warmUpCodecs()
        XCTAssertEqual(server.metrics.exposition(), before)
    }
}
