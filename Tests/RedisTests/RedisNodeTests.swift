import NIOCore
import XCTest
@testable import KVStashRedis

/// The client against the single node of scripts/redis-test-servers.sh (password and ACL user).
final class RedisNodeTests: XCTestCase {
    private func node(password: String? = nil, username: String? = nil, timeout: TimeAmount? = .seconds(5),
                      limits: RESPLimits = RESPLimits()) throws -> RedisNode {
        let options = RedisConnectionOptions(username: username, password: password, commandTimeout: timeout, limits: limits)
        return RedisNode(address: try RedisTestEnvironment.singleNode(), options: options,
                         backoff: ReconnectBackoff(initial: .milliseconds(20), maximum: .milliseconds(200)))
    }

    private func password() throws -> String { try RedisTestEnvironment.value("KVSTASH_REDIS_PASSWORD") }

    func testPasswordAndACLUserAuthenticate() async throws {
        let plain = try node(password: try password())
        let set = try await plain.send(RESPCommand("SET", "kvstash:auth", "1"))
        XCTAssertEqual(set, .simpleString("OK"))
        let user = try RedisTestEnvironment.value("KVSTASH_REDIS_ACL_USER")
        let acl = try node(password: try RedisTestEnvironment.value("KVSTASH_REDIS_ACL_PASSWORD"), username: user)
        let got = try await acl.send(RESPCommand("GET", "kvstash:auth"))
        XCTAssertEqual(got.string, "1")
        let whoami = try await acl.send(RESPCommand("ACL", "WHOAMI"))
        XCTAssertEqual(whoami.string, user)
        // The ACL user may touch only kvstash:* keys; the error reply names the node.
        let denied = await acl.execute(RESPCommand("GET", "other:key"), key: Array("other:key".utf8))
        guard case .failure(.server(let address, "GET", let message)) = denied else { return XCTFail("\(denied)") }
        XCTAssertEqual(address, try RedisTestEnvironment.singleNode())
        XCTAssertTrue(message.hasPrefix("NOPERM"), message)
        // Without credentials the server refuses commands.
        let anonymous = try node()
        let refused = await anonymous.execute(RESPCommand("GET", "kvstash:auth"), key: [])
        guard case .failure(.server(_, _, let noauth)) = refused else { return XCTFail("\(refused)") }
        XCTAssertTrue(noauth.hasPrefix("NOAUTH"), noauth)
    }

    func testWrongCredentialsGiveAClearErrorNamingTheTier() async throws {
        let tier = RedisChunkTier(client: try node(password: "not-the-password"),
                                  options: RedisChunkTierOptions(name: "shared-test"))
        do {
            try await tier.put([1, 2, 3], value: [4, 5, 6])
            XCTFail("a put with a wrong password succeeded")
        } catch {
            XCTAssertTrue(error.description.contains("tier 'shared-test' put"), error.description)
            XCTAssertTrue(error.description.contains("authentication failed"), error.description)
            XCTAssertTrue(error.description.contains("WRONGPASS"), error.description)
            XCTAssertTrue(error.description.contains(try RedisTestEnvironment.singleNode().description), error.description)
        }
        XCTAssertEqual(tier.counters.errors, 1)
        let probed = await tier.probe([[1, 2, 3]])
        XCTAssertEqual(probed, [false], "a failing tier reads as absent")
        XCTAssertEqual(tier.counters.errors, 2)
    }

    func testPipelinedRepliesMatchTheirCommands() async throws {
        let client = try node(password: try password())
        // One pipelined batch of SETs and GETs, each GET must see its own value.
        var batch: [KeyedCommand] = []
        for i in 0..<500 {
            let key = "kvstash:pipe:\(i)"
            batch.append(KeyedCommand(key: Array(key.utf8), command: RESPCommand("SET", key, "value-\(i)")))
            batch.append(KeyedCommand(key: Array(key.utf8), command: RESPCommand("GET", key)))
        }
        let replies = await client.executeMany(batch)
        for i in 0..<500 {
            XCTAssertEqual(try replies[2 * i].get(), .simpleString("OK"))
            XCTAssertEqual(try replies[2 * i + 1].get().string, "value-\(i)")
        }
        // Many tasks sending at once on the same connection.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<32 {
                group.addTask {
                    for i in 0..<20 {
                        let reply = try await client.send(RESPCommand("GET", "kvstash:pipe:\((task * 20 + i) % 500)"))
                        XCTAssertEqual(reply.string, "value-\((task * 20 + i) % 500)")
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    func testTimeoutClosesTheConnectionAndTheNextCommandReconnects() async throws {
        let client = try node(password: try password(), timeout: .milliseconds(200))
        let before = try await client.connection()
        // BLPOP on an empty list blocks for 2 s, far past the 0.2 s command timeout.
        let blocked = await client.execute(RESPCommand("BLPOP", "kvstash:empty-list", "2"), key: [])
        guard case .failure(.timeout(_, "BLPOP", let seconds)) = blocked else { return XCTFail("\(blocked)") }
        XCTAssertEqual(seconds, 0.2, accuracy: 1e-9)
        let pong = try await client.send(RESPCommand("PING"))
        XCTAssertEqual(pong, .simpleString("PONG"))
        let after = try await client.connection()
        XCTAssertFalse(before === after, "the timed-out connection must not be reused")
    }

    func testBulkPastTheLimitIsAnErrorAndTheClientStaysUsable() async throws {
        let writer = try node(password: try password())
        let big = testBytes(seed: 9, count: 2 << 20)
        let set = RESPCommand([ByteBuffer(string: "SET"), ByteBuffer(string: "kvstash:big"), ByteBuffer(bytes: big)])
        let stored = try await writer.send(set)
        XCTAssertEqual(stored, .simpleString("OK"))
        let limited = try node(password: try password(), limits: RESPLimits(maxBulkLength: 1 << 20))
        let reply = await limited.execute(RESPCommand("GET", "kvstash:big"), key: [])
        guard case .failure(.protocolViolation(let address, let why)) = reply else { return XCTFail("\(reply)") }
        XCTAssertEqual(address, try RedisTestEnvironment.singleNode())
        XCTAssertTrue(why.contains("bulk string of \(2 << 20) bytes exceeds the limit of \(1 << 20)"), why)
        let length = try await limited.send(RESPCommand("STRLEN", "kvstash:big"))
        XCTAssertEqual(length, .integer(Int64(2 << 20)))
        let readBack = try await writer.send(RESPCommand("GET", "kvstash:big"))
        XCTAssertEqual(readBack.bytes, big)
    }

    func testDeadNodeFailsFastDuringBackoff() async throws {
        // Port 1 on loopback: nothing listens there, so connects are refused at once.
        let address = RedisAddress(host: "127.0.0.1", port: 1)
        let client = RedisNode(address: address, backoff: ReconnectBackoff(initial: .seconds(30), maximum: .seconds(30)))
        let first = await client.execute(RESPCommand("PING"), key: [])
        guard case .failure(.connectFailed(address, _)) = first else { return XCTFail("\(first)") }
        let second = await client.execute(RESPCommand("PING"), key: [])
        guard case .failure(.nodeUnavailable(address, _)) = second else { return XCTFail("\(second)") }
    }

    func testTierOnASingleNode() async throws {
        let tier = RedisChunkTier(client: try node(password: try password()),
                                  options: RedisChunkTierOptions(name: "single", namespace: "kvstash:t1:", ttl: .seconds(60)))
        let keys = (0..<3).map { testBytes(seed: 100 + UInt64($0), count: 32) }
        for key in keys { try await tier.discard(key) }
        let value = testBytes(seed: 1, count: 3 << 20)
        let stored = try await tier.put(keys[0], value: value)
        XCTAssertTrue(stored)
        let again = try await tier.put(keys[0], value: [1, 2, 3])
        XCTAssertFalse(again, "write-once: a second put keeps the first value")
        let read = try await tier.get(keys[0])
        XCTAssertEqual(read, value)
        let probed = await tier.probe(keys)
        XCTAssertEqual(probed, [true, false, false])
        let ttl = try await node(password: try password()).send(RESPCommand("PTTL", String(decoding: tier.redisKey(keys[0]), as: UTF8.self)))
        XCTAssertTrue((1...60_000).contains(ttl.int ?? 0), "\(ttl)")
        try await tier.discard(keys[0])
        let gone = try await tier.get(keys[0])
        XCTAssertNil(gone)
        let counters = tier.counters
        XCTAssertEqual(counters.puts, 2)
        XCTAssertEqual(counters.putsAlreadyPresent, 1)
        XCTAssertEqual(counters.bytesWritten, value.count)
        XCTAssertEqual(counters.hits, 1)
        XCTAssertEqual(counters.misses, 1)
        XCTAssertEqual(counters.bytesRead, value.count)
        XCTAssertEqual(counters.errors, 0)
    }
}
