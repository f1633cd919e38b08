import Foundation
import NIOCore
import XCTest
@testable import KVStashRedis

/// A test that needs the servers of scripts/redis-test-servers.sh but does not have them.
struct MissingRedisServers: Error, CustomStringConvertible {
    let variable: String
    var description: String {
        "\(variable) is not set although CI=true: run the tests through scripts/test.sh, which starts the Redis servers"
    }
}

enum RedisTestEnvironment {
    /// The variable's value. Missing: a failure under CI=true, a skip otherwise.
    static func value(_ name: String) throws -> String {
        let environment = ProcessInfo.processInfo.environment
        if let value = environment[name], !value.isEmpty { return value }
        if environment["CI"] == "true" { throw MissingRedisServers(variable: name) }
        throw XCTSkip("\(name) is not set: run under scripts/redis-test-servers.sh (scripts/test.sh does)")
    }

    static func clusterSeeds() throws -> [RedisAddress] {
        try value("KVSTASH_REDIS_CLUSTER").split(separator: ",").map {
            try XCTUnwrap(RedisAddress(String($0)), "bad address in KVSTASH_REDIS_CLUSTER: \($0)")
        }
    }

    static func singleNode() throws -> RedisAddress {
        let text = try value("KVSTASH_REDIS_NODE")
        return try XCTUnwrap(RedisAddress(text), "bad address in KVSTASH_REDIS_NODE: \(text)")
    }
}

/// Deterministic pseudo-random bytes (xorshift), so each value is distinct and checkable.
func testBytes(seed: UInt64, count: Int) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    var out = [UInt8](repeating: 0, count: count)
    var index = 0
    while index < count {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        withUnsafeBytes(of: state.littleEndian) { word in
            for byte in word where index < count {
                out[index] = byte
                index += 1
            }
        }
    }
    return out
}

/// `kill(2)` (the name is taken by `AdminNode.kill` inside the type).
func signalProcess(_ pid: Int32, _ signal: Int32) -> Int32 { kill(pid, signal) }

/// Direct admin access to one node (no routing), for setting up and breaking the cluster.
struct AdminNode {
    let address: RedisAddress
    let connection: RedisConnection

    static func open(_ address: RedisAddress, password: String? = nil) async throws -> AdminNode {
        let options = RedisConnectionOptions(password: password, commandTimeout: .seconds(10))
        return AdminNode(address: address, connection: try await RedisConnection.connect(to: address, options: options))
    }

    @discardableResult
    func run(_ arguments: String...) async throws -> RESPValue {
        let reply = try await connection.send(RESPCommand(arguments.map { ByteBuffer(string: $0) }))
        if case .error(let message) = reply { throw RedisError.server(address, command: arguments[0], message: message) }
        return reply
    }

    func info(_ field: String) async throws -> String {
        let reply = try await run("INFO", "server")
        let text = try XCTUnwrap(reply.string)
        let line = try XCTUnwrap(text.split(whereSeparator: \.isNewline).first { $0.hasPrefix(field + ":") })
        return String(line.dropFirst(field.count + 1))
    }

    /// SIGKILLs the node's process and returns the config file to restart it from.
    func kill() async throws -> String {
        let pidText = try await info("process_id")
        let pid = try XCTUnwrap(Int32(pidText))
        let config = try await info("config_file")
        connection.close()
        XCTAssertEqual(signalProcess(pid, SIGKILL), 0)
        for _ in 0..<100 where signalProcess(pid, 0) == 0 { try await Task.sleep(for: .milliseconds(20)) }
        return config
    }

    /// Starts a node from its config file (it daemonizes) and waits until it answers.
    static func restart(_ address: RedisAddress, config: String) async throws -> AdminNode {
        // posix_spawn and waitpid, not Foundation's Process: the daemonizing parent exits at
        // once and must be reaped here.
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/usr/bin/redis-server"), strdup(config), nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        XCTAssertEqual(posix_spawn(&pid, "/usr/bin/redis-server", nil, nil, argv, environ), 0)
        var status: Int32 = 0
        XCTAssertEqual(waitpid(pid, &status, 0), pid)
        XCTAssertEqual(status, 0, "redis-server \(config)")
        for _ in 0..<100 {
            if let node = try? await open(address), (try? await node.run("PING")) != nil { return node }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw RedisError.connectFailed(address, "did not come back after restart")
    }
}
