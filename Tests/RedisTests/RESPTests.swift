import NIOCore
import NIOEmbedded
import XCTest
@testable import KVStashRedis

/// RESP parsing, encoding, hash slots and topology parsing, without a server.
final class RESPTests: XCTestCase {
    private func parseAll(_ text: String, limits: RESPLimits = RESPLimits()) throws -> [RESPValue] {
        var buffer = ByteBuffer(string: text)
        var values: [RESPValue] = []
        while let value = try RESPParser(limits: limits).parse(&buffer) { values.append(value) }
        XCTAssertEqual(buffer.readableBytes, 0, "unparsed bytes left")
        return values
    }

    func testParsesEveryRESP2Type() throws {
        let values = try parseAll("+OK\r\n-ERR bad\r\n:-42\r\n$5\r\nhe\r\nl\r\n$0\r\n\r\n$-1\r\n*-1\r\n*2\r\n:1\r\n*1\r\n+x\r\n")
        XCTAssertEqual(values, [
            .simpleString("OK"), .error("ERR bad"), .integer(-42), .bulkString(ByteBuffer(string: "he\r\nl")),
            .bulkString(ByteBuffer()), .null, .null, .array([.integer(1), .array([.simpleString("x")])]),
        ])
    }

    func testPartialInputWaitsAndKeepsItsPlace() throws {
        let text = "*3\r\n$3\r\nfoo\r\n:7\r\n$4\r\nabcd\r\n+PONG\r\n"
        let bytes = Array(text.utf8)
        // Fed one byte at a time, the decoder sees each prefix and must give the same replies.
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(RESPDecoder(limits: RESPLimits())))
        for byte in bytes { try channel.writeInbound(ByteBuffer(bytes: [byte])) }
        XCTAssertEqual(try channel.readInbound(as: RESPValue.self),
                       .array([.bulkString(ByteBuffer(string: "foo")), .integer(7), .bulkString(ByteBuffer(string: "abcd"))]))
        XCTAssertEqual(try channel.readInbound(as: RESPValue.self), .simpleString("PONG"))
        XCTAssertNil(try channel.readInbound(as: RESPValue.self))
    }

    func testStreamParserTakesFinishedElementsOutOfTheBuffer() throws {
        var stream = RESPStreamParser(limits: RESPLimits())
        var buffer = ByteBuffer(string: "*3\r\n$3\r\nfoo\r\n")
        XCTAssertNil(try stream.next(&buffer))
        XCTAssertEqual(buffer.readableBytes, 0, "the header and the first element are parsed once, then kept")
        buffer.writeString(":7\r\n$4\r\nab")
        XCTAssertNil(try stream.next(&buffer))
        XCTAssertEqual(String(buffer: buffer), "$4\r\nab", "an element that has not all arrived stays in the buffer")
        buffer.writeString("cd\r\n+PONG\r\n")
        XCTAssertEqual(try stream.next(&buffer),
                       .array([.bulkString(ByteBuffer(string: "foo")), .integer(7), .bulkString(ByteBuffer(string: "abcd"))]))
        XCTAssertEqual(try stream.next(&buffer), .simpleString("PONG"))
        XCTAssertNil(try stream.next(&buffer))
    }

    func testStreamParserAgreesWithTheWholeBufferAtEverySplit() throws {
        let text = "*2\r\n*3\r\n:1\r\n$2\r\nab\r\n*0\r\n*-1\r\n+OK\r\n$-1\r\n*1\r\n*1\r\n:-5\r\n"
        let whole = try parseAll(text)
        let bytes = Array(text.utf8)
        for split in 0...bytes.count {
            var stream = RESPStreamParser(limits: RESPLimits())
            var buffer = ByteBuffer(bytes: bytes[..<split])
            var values: [RESPValue] = []
            while let value = try stream.next(&buffer) { values.append(value) }
            buffer.writeBytes(bytes[split...])
            while let value = try stream.next(&buffer) { values.append(value) }
            XCTAssertEqual(values, whole, "split at \(split)")
            XCTAssertEqual(buffer.readableBytes, 0)
        }
    }

    func testLimitsAreErrorsNotAllocations() {
        let limits = RESPLimits(maxBulkLength: 1000, maxArrayCount: 10, maxDepth: 2, maxLineLength: 32)
        func error(_ text: String) -> RESPProtocolError? {
            var buffer = ByteBuffer(string: text)
            do { _ = try RESPParser(limits: limits).parse(&buffer); return nil } catch { return error as? RESPProtocolError }
        }
        XCTAssertEqual(error("$1001\r\n"), .bulkTooLong(length: 1001, limit: 1000))
        XCTAssertEqual(error("$9223372036854775807\r\n"), .bulkTooLong(length: Int.max, limit: 1000))
        XCTAssertEqual(error("*11\r\n"), .arrayTooLong(count: 11, limit: 10))
        XCTAssertEqual(error("*1\r\n*1\r\n*1\r\n:1\r\n"), .tooDeep(limit: 2))
        XCTAssertEqual(error("+" + String(repeating: "a", count: 40)), .lineTooLong(limit: 32))
        // The limit is the line's length: 32 bytes pass, 33 do not, whether the CR has arrived or not.
        XCTAssertNil(error("+" + String(repeating: "a", count: 32) + "\r\n"))
        XCTAssertNil(error("+" + String(repeating: "a", count: 32)))
        XCTAssertEqual(error("+" + String(repeating: "a", count: 33) + "\r\n"), .lineTooLong(limit: 32))
        XCTAssertEqual(error("+" + String(repeating: "a", count: 33)), .lineTooLong(limit: 32))
        XCTAssertEqual(error("$99999999999999999999\r\n"), .malformed("integer"))
        XCTAssertEqual(error(":12a\r\n"), .malformed("integer"))
        XCTAssertEqual(error("$-2\r\n"), .malformed("bulk length -2"))
        XCTAssertEqual(error("$3\r\nabcXY"), .malformed("bulk string not followed by CRLF"))
        XCTAssertEqual(error("%1\r\n"), .malformed("type byte 0x25"))
        // Within the limits a bulk header alone is just incomplete.
        XCTAssertNil(error("$1000\r\n"))
    }

    func testDecoderBoundsAnUnfinishedArray() throws {
        // Many small elements of an array that never ends: the bytes held for it (the parsed
        // elements and what waits in the buffer) are capped.
        let limits = RESPLimits(maxBulkLength: 1000, maxArrayCount: 1 << 20, maxDepth: 4, maxLineLength: 16)
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(RESPDecoder(limits: limits)))
        try channel.writeInbound(ByteBuffer(string: "*1000000\r\n"))
        let element = ByteBuffer(string: String(repeating: ":1\r\n", count: 10_000))
        XCTAssertThrowsError(try { for _ in 0..<100 { try channel.writeInbound(element) } }()) { error in
            guard case .replyTooLarge = error as? RESPProtocolError else { return XCTFail("\(error)") }
        }
    }

    func testEncoderWritesArraysOfBulkStringsAndLargeArgumentsUncopied() throws {
        let channel = EmbeddedChannel(handler: RESPCommandEncoder())
        try channel.writeOutbound(RESPCommand("SET", "key", "v"))
        XCTAssertEqual(try channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) },
                       "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$1\r\nv\r\n")
        let large = ByteBuffer(bytes: (0..<(RESPCommandEncoder.largeArgument + 5)).map { UInt8(truncatingIfNeeded: $0) })
        try channel.writeOutbound(RESPCommand([ByteBuffer(string: "SET"), ByteBuffer(string: "k"), large]))
        var written = ByteBuffer()
        var pieces = 0
        while var piece = try channel.readOutbound(as: ByteBuffer.self) {
            written.writeBuffer(&piece)
            pieces += 1
        }
        XCTAssertEqual(pieces, 3, "header, the value itself, trailing CRLF")
        var expected = ByteBuffer(string: "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$\(large.readableBytes)\r\n")
        expected.writeImmutableBuffer(large)
        expected.writeString("\r\n")
        XCTAssertEqual(written, expected)
    }

    func testCRC16AndHashTagsFollowTheClusterSpec() {
        // The cluster specification's check value for CRC16/XMODEM.
        XCTAssertEqual(HashSlot.crc16(Array("123456789".utf8)), 0x31C3)
        // Hash tag examples from the specification.
        func part(_ key: String) -> String { String(decoding: HashSlot.hashedPart(of: Array(key.utf8)[...]), as: UTF8.self) }
        XCTAssertEqual(part("{user1000}.following"), "user1000")
        XCTAssertEqual(part("foo{}{bar}"), "foo{}{bar}")
        XCTAssertEqual(part("foo{{bar}}zap"), "{bar")
        XCTAssertEqual(part("foo{bar}{zap}"), "bar")
        XCTAssertEqual(part("no tag"), "no tag")
        XCTAssertEqual(part("open{only"), "open{only")
        XCTAssertEqual(HashSlot.of("{user1000}.following"), HashSlot.of("{user1000}.followers"))
        XCTAssertEqual(HashSlot.of("123456789"), 0x31C3 & 0x3FFF)
    }

    func testRedirectParsing() {
        let from = RedisAddress(host: "10.0.0.1", port: 7000)
        let moved = RedisCluster.redirect(in: "MOVED 3999 127.0.0.1:6381", from: from)
        XCTAssertEqual(moved?.ask, false)
        XCTAssertEqual(moved?.slot, 3999)
        XCTAssertEqual(moved?.to, RedisAddress(host: "127.0.0.1", port: 6381))
        let ask = RedisCluster.redirect(in: "ASK 3999 :6382", from: from)
        XCTAssertEqual(ask?.ask, true)
        XCTAssertEqual(ask?.to, RedisAddress(host: "10.0.0.1", port: 6382), "an empty host is the answering node's")
        XCTAssertNil(RedisCluster.redirect(in: "MOVED 16384 127.0.0.1:6381", from: from))
        XCTAssertNil(RedisCluster.redirect(in: "ERR wrong", from: from))
        XCTAssertEqual(RedisAddress("[::1]:7000"), RedisAddress(host: "::1", port: 7000))
        XCTAssertNil(RedisAddress("localhost"))
        XCTAssertNil(RedisAddress("localhost:70000"))
    }

    func testTopologyFromShardsAndSlotsReplies() throws {
        func bulk(_ s: String) -> RESPValue { .bulkString(ByteBuffer(string: s)) }
        func node(_ ip: String, _ port: Int64, role: String, health: String = "online") -> RESPValue {
            .array([bulk("id"), bulk("x"), bulk("port"), .integer(port), bulk("ip"), bulk(ip), bulk("endpoint"), bulk(ip),
                    bulk("role"), bulk(role), bulk("replication-offset"), .integer(0), bulk("health"), bulk(health)])
        }
        let shards: RESPValue = .array([
            .array([bulk("slots"), .array([.integer(0), .integer(99), .integer(200), .integer(16383)]),
                    bulk("nodes"), .array([node("10.0.0.2", 7001, role: "replica"), node("10.0.0.1", 7000, role: "master")])]),
            .array([bulk("slots"), .array([.integer(100), .integer(199)]),
                    bulk("nodes"), .array([node("?", 7002, role: "master")])]),
        ])
        let seed = RedisAddress(host: "seed", port: 1)
        let topology = try XCTUnwrap(ClusterTopology.fromShards(shards, connectedTo: seed))
        XCTAssertEqual(topology.owners[0], RedisAddress(host: "10.0.0.1", port: 7000))
        XCTAssertEqual(topology.owners[150], RedisAddress(host: "seed", port: 7002))
        XCTAssertEqual(topology.owners[16383], RedisAddress(host: "10.0.0.1", port: 7000))
        let slots: RESPValue = .array([
            .array([.integer(0), .integer(99), .array([bulk("10.0.0.1"), .integer(7000), bulk("id")]),
                    .array([bulk("10.0.0.2"), .integer(7001), bulk("id2")])]),
            .array([.integer(200), .integer(16383), .array([bulk("10.0.0.1"), .integer(7000)])]),
            .array([.integer(100), .integer(199), .array([bulk(""), .integer(7002)])]),
        ])
        XCTAssertEqual(ClusterTopology.fromSlots(slots, connectedTo: seed), topology)
        XCTAssertNil(ClusterTopology.fromShards(.error("ERR unknown subcommand"), connectedTo: seed))
    }
}
