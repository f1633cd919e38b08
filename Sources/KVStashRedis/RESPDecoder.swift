import NIOCore

/// A reply the decoder refuses.
public enum RESPProtocolError: Error, Equatable, CustomStringConvertible {
    case bulkTooLong(length: Int, limit: Int)
    case arrayTooLong(count: Int, limit: Int)
    case tooDeep(limit: Int)
    case lineTooLong(limit: Int)
    case replyTooLarge(bufferedBytes: Int, limit: Int)
    case malformed(String)

    public var description: String {
        switch self {
        case .bulkTooLong(let length, let limit): return "bulk string of \(length) bytes exceeds the limit of \(limit)"
        case .arrayTooLong(let count, let limit): return "array of \(count) elements exceeds the limit of \(limit)"
        case .tooDeep(let limit): return "arrays nested deeper than \(limit)"
        case .lineTooLong(let limit): return "reply line longer than \(limit) bytes"
        case .replyTooLarge(let buffered, let limit): return "unfinished reply of \(buffered) bytes exceeds \(limit)"
        case .malformed(let what): return "malformed reply: \(what)"
        }
    }
}

/// Parses RESP2 replies out of a buffer. `parse` returns nil when the buffer holds only part
/// of a reply and leaves the buffer's reader index where it was.
public struct RESPParser: Sendable {
    public let limits: RESPLimits

    public init(limits: RESPLimits) { self.limits = limits }

    public func parse(_ buffer: inout ByteBuffer) throws -> RESPValue? {
        var copy = buffer
        guard let value = try parseValue(&copy, depth: 0) else { return nil }
        buffer.moveReaderIndex(to: copy.readerIndex)
        return value
    }

    private func parseValue(_ buffer: inout ByteBuffer, depth: Int) throws -> RESPValue? {
        guard let marker = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return nil }
        let start = buffer.readerIndex
        buffer.moveReaderIndex(forwardBy: 1)
        guard let line = try readLine(&buffer) else {
            buffer.moveReaderIndex(to: start)
            return nil
        }
        switch marker {
        case UInt8(ascii: "+"): return .simpleString(String(decoding: line, as: UTF8.self))
        case UInt8(ascii: "-"): return .error(String(decoding: line, as: UTF8.self))
        case UInt8(ascii: ":"): return .integer(try Self.integer(line))
        case UInt8(ascii: "$"):
            let length = try Self.integer(line)
            if length == -1 { return .null }
            guard length >= 0 else { throw RESPProtocolError.malformed("bulk length \(length)") }
            guard length <= limits.maxBulkLength else {
                throw RESPProtocolError.bulkTooLong(length: Int(length), limit: limits.maxBulkLength)
            }
            guard buffer.readableBytes >= Int(length) + 2 else { return nil }
            let payload = buffer.readSlice(length: Int(length))!
            guard buffer.readInteger(as: UInt16.self) == 0x0D0A else {
                throw RESPProtocolError.malformed("bulk string not followed by CRLF")
            }
            return .bulkString(payload)
        case UInt8(ascii: "*"):
            let count = try Self.integer(line)
            if count == -1 { return .null }
            guard count >= 0 else { throw RESPProtocolError.malformed("array length \(count)") }
            guard count <= limits.maxArrayCount else {
                throw RESPProtocolError.arrayTooLong(count: Int(count), limit: limits.maxArrayCount)
            }
            guard depth < limits.maxDepth else { throw RESPProtocolError.tooDeep(limit: limits.maxDepth) }
            var elements: [RESPValue] = []
            elements.reserveCapacity(min(Int(count), 1024))
            for _ in 0..<count {
                guard let element = try parseValue(&buffer, depth: depth + 1) else { return nil }
                elements.append(element)
            }
            return .array(elements)
        default:
            throw RESPProtocolError.malformed("type byte 0x\(String(marker, radix: 16))")
        }
    }

    /// The bytes up to the next CRLF (consumed with it), or nil when no CRLF has arrived yet.
    private func readLine(_ buffer: inout ByteBuffer) throws -> ByteBufferView? {
        let view = buffer.readableBytesView
        // A line of at most maxLineLength bytes has its CR within the first maxLineLength + 1.
        let searched = view.prefix(limits.maxLineLength + 1)
        guard let cr = searched.firstIndex(of: UInt8(ascii: "\r")) else {
            if view.count > limits.maxLineLength { throw RESPProtocolError.lineTooLong(limit: limits.maxLineLength) }
            return nil
        }
        guard cr + 1 < view.endIndex else { return nil }
        guard view[cr + 1] == UInt8(ascii: "\n") else { throw RESPProtocolError.malformed("CR without LF") }
        let line = view[view.startIndex..<cr]
        buffer.moveReaderIndex(forwardBy: cr - view.startIndex + 2)
        return line
    }

    /// A signed decimal integer, strictly: digits only, no overflow.
    static func integer(_ line: ByteBufferView) throws -> Int64 {
        var digits = line[...]
        var negative = false
        if digits.first == UInt8(ascii: "-") { negative = true; digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.count <= 19 else { throw RESPProtocolError.malformed("integer") }
        var value: Int64 = 0
        for byte in digits {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { throw RESPProtocolError.malformed("integer") }
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times.addingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
            guard !o1, !o2 else { throw RESPProtocolError.malformed("integer overflow") }
            value = sum
        }
        return negative ? -value : value
    }
}

/// NIO decoder: bytes in, one `RESPValue` per complete reply out.
struct RESPDecoder: ByteToMessageDecoder {
    typealias InboundOut = RESPValue
    let parser: RESPParser

    init(limits: RESPLimits) { parser = RESPParser(limits: limits) }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let value = try parser.parse(&buffer) else {
            let limit = parser.limits.maxBufferedBytes
            if buffer.readableBytes > limit {
                throw RESPProtocolError.replyTooLarge(bufferedBytes: buffer.readableBytes, limit: limit)
            }
            return .needMoreData
        }
        context.fireChannelRead(wrapInboundOut(value))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}
