import KVStashRedis
import NIOCore

/// Bytes from a Redis server. They are parsed as one buffer by `RESPParser` and again as the
/// same bytes arriving in pieces (as a socket delivers them) by the connection's
/// `RESPStreamParser`: both must give the same replies and the same error, and every reply must
/// come back unchanged from its own encoding.
enum RESPHarness {
    /// Small limits, so that inputs of fuzzer size reach every one of them.
    static let limits = RESPLimits(maxBulkLength: 512, maxArrayCount: 16, maxDepth: 4, maxLineLength: 64)

    static func run(_ input: [UInt8]) -> String? {
        let whole = replies(input, pieces: [input.count]) { buffer in
            try RESPParser(limits: limits).parse(&buffer)
        }
        var stream = RESPStreamParser(limits: limits)
        let arriving = replies(input, pieces: pieceSizes(input)) { buffer in try stream.next(&buffer) }
        guard whole.values == arriving.values else {
            return "in pieces: \(arriving.values.count) replies, in one buffer: \(whole.values.count)"
        }
        guard whole.error == arriving.error else {
            return "in pieces: \(String(describing: arriving.error)), in one buffer: \(String(describing: whole.error))"
        }
        // Invalid UTF-8 in a simple string or error line comes back as U+FFFD (3 bytes a byte),
        // so the encoding may be longer than the line the limit let through.
        var relaxed = limits
        relaxed.maxLineLength *= 3
        for value in whole.values {
            var encoded = ByteBuffer(bytes: encode(value))
            do {
                guard let again = try RESPParser(limits: relaxed).parse(&encoded), again == value, encoded.readableBytes == 0 else {
                    return "a reply does not parse back from its encoding: \(value)"
                }
            } catch {
                return "a reply's encoding is refused (\(error)): \(value)"
            }
        }
        return nil
    }

    /// Replies parsed by `next` while `input` arrives in pieces of the given sizes, up to the
    /// first error.
    private static func replies(_ input: [UInt8], pieces: [Int],
                                next: (inout ByteBuffer) throws -> RESPValue?) -> (values: [RESPValue], error: RESPProtocolError?) {
        var buffer = ByteBuffer(), values: [RESPValue] = [], offset = 0
        for size in pieces where offset < input.count {
            let end = min(input.count, offset + size)
            buffer.writeBytes(input[offset..<end])
            offset = end
            do {
                while let value = try next(&buffer) { values.append(value) }
            } catch let error as RESPProtocolError {
                return (values, error)
            } catch {
                return (values, .malformed("untyped error \(error)"))
            }
        }
        return (values, nil)
    }

    /// Piece sizes from the input's own bytes (1 to 16), so the fuzzer steers the splits too.
    private static func pieceSizes(_ input: [UInt8]) -> [Int] {
        var sizes: [Int] = [], total = 0, i = 0
        while total < input.count {
            let size = Int(input[i % input.count] % 16) + 1
            sizes.append(size)
            total += size
            i += 7
        }
        return sizes
    }

    /// The RESP2 encoding of a reply.
    static func encode(_ value: RESPValue) -> [UInt8] {
        switch value {
        case .simpleString(let s): return Array("+\(s)\r\n".utf8)
        case .error(let s): return Array("-\(s)\r\n".utf8)
        case .integer(let n): return Array(":\(n)\r\n".utf8)
        case .null: return Array("$-1\r\n".utf8)
        case .bulkString(let b): return Array("$\(b.readableBytes)\r\n".utf8) + Array(b.readableBytesView) + [13, 10]
        case .array(let items): return Array("*\(items.count)\r\n".utf8) + items.flatMap(encode)
        }
    }

    static func seeds() -> [[UInt8]] {
        ["+OK\r\n", "-MOVED 3999 127.0.0.1:7001\r\n", ":-42\r\n", "$5\r\nhello\r\n", "$-1\r\n", "*-1\r\n",
         "*3\r\n$3\r\nSET\r\n:7\r\n*2\r\n+a\r\n$0\r\n\r\n",
         "*1\r\n*3\r\n:0\r\n:5460\r\n*2\r\n$9\r\n127.0.0.1\r\n:7000\r\n"].map { Array($0.utf8) }
    }
}
