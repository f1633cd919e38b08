import Foundation
import XCTest
@testable import KVStashServer

/// Connections that never finish their headers or body are closed, and connections past
/// the limit are refused with a 503, so the server stays reachable.
final class ConnectionLimitTests: XCTestCase {
    private func start(_ limits: ConnectionLimits) async throws -> (RunningServer, Int) {
        let backend = try EngineBackend(model: TestModel.model(), modelID: "test-model")
        let running = try await RunningServer.start(KVStashServer(
            configuration: ServerConfiguration(port: 0, connections: limits), backend: backend))
        let port = try XCTUnwrap(Int(running.base.split(separator: ":").last ?? ""))
        return (running, port)
    }

    func testStalledHeadersAreClosed() async throws {
        let (running, port) = try await start(ConnectionLimits(idleTimeoutSeconds: 0.5, readTimeoutSeconds: 30))
        defer { Task { await running.stop() } }
        let slow = try RawSocket(port: port)
        slow.send("GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")   // never finished
        let silent = try RawSocket(port: port)                      // never sends a byte
        XCTAssertTrue(slow.readUntilClosed(timeout: 10).closed, "a connection stuck in its headers is closed")
        XCTAssertTrue(silent.readUntilClosed(timeout: 10).closed, "a silent connection is closed")
        let (status, _) = try await running.get("/health")
        XCTAssertEqual(status, 200)
    }

    func testStalledBodyIsClosed() async throws {
        let (running, port) = try await start(ConnectionLimits(idleTimeoutSeconds: 30, readTimeoutSeconds: 0.5))
        defer { Task { await running.stop() } }
        let slow = try RawSocket(port: port)
        slow.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\":")
        XCTAssertTrue(slow.readUntilClosed(timeout: 10).closed, "a body that stops arriving closes its connection")
        let (status, _) = try await running.get("/health")
        XCTAssertEqual(status, 200)
    }

    func testConnectionsPastTheLimitAreRefused() async throws {
        let (running, port) = try await start(ConnectionLimits(maxConnections: 3, idleTimeoutSeconds: 30))
        defer { Task { await running.stop() } }
        let held = try (0..<3).map { _ in try RawSocket(port: port) }
        // Let the server register the held connections before the next one arrives.
        try await Task.sleep(for: .milliseconds(200))
        let extra = try RawSocket(port: port)
        extra.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        let answer = extra.readUntilClosed(timeout: 10)
        XCTAssertTrue(answer.text.hasPrefix("HTTP/1.1 503"), answer.text)
        XCTAssertTrue(answer.text.lowercased().contains("retry-after: 1"), answer.text)
        XCTAssertTrue(answer.text.contains("too_many_connections"), answer.text)
        XCTAssertTrue(answer.closed)
        withExtendedLifetime(held) {}
    }

    func testSlotsFreeWhenConnectionsClose() async throws {
        let (running, port) = try await start(ConnectionLimits(maxConnections: 2, idleTimeoutSeconds: 30))
        defer { Task { await running.stop() } }
        do {
            let held = try (0..<2).map { _ in try RawSocket(port: port) }
            try await Task.sleep(for: .milliseconds(200))
            withExtendedLifetime(held) {}
        }
        var answer = ""
        for _ in 0..<50 {
            try await Task.sleep(for: .milliseconds(100))
            let c = try RawSocket(port: port)
            c.send("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = c.readUntilClosed(timeout: 5).text
            if answer.hasPrefix("HTTP/1.1 200") { break }
        }
        XCTAssertTrue(answer.hasPrefix("HTTP/1.1 200"), answer)
    }
}
