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

/// One element of a reply as it appears on the wire: a whole value, or an array's header
/// (its elements follow as elements of their own).
enum RESPElement {
    case value(RESPValue)
    case arrayHeader(count: Int)
}

/// Parses RESP2 replies out of a buffer. `parse` returns nil when the buffer holds only part
/// of a reply and leaves the buffer's reader index where it was.
public struct RESPParser: Sendable {
    public let limits: RESPLimits

    public init(limits: RESPLimits) { self.limits = limits }

    public func parse(_ buffer: inout ByteBuffer) throws -> RESPValue? {
        var copy = buffer
        var reply = RESPReplyAssembly()
        guard let value = try next(&copy, into: &reply) else { return nil }
        buffer.moveReaderIndex(to: copy.readerIndex)
        return value
    }

    /// Reads elements into `reply` until it is whole (returned) or the buffer holds no whole
    /// element (nil): the elements read are consumed from the buffer and kept in `reply`.
    func next(_ buffer: inout ByteBuffer, into reply: inout RESPReplyAssembly) throws -> RESPValue? {
        while let element = try readElement(&buffer, depth: reply.depth) {
            if let value = reply.add(element) { return value }
        }
        return nil
    }

    /// The next element, consumed; nil with the reader index unmoved when it has not all arrived.
    private func readElement(_ buffer: inout ByteBuffer, depth: Int) throws -> RESPElement? {
        guard let marker = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return nil }
        let start = buffer.readerIndex
        buffer.moveReaderIndex(forwardBy: 1)
        guard let line = try readLine(&buffer) else {
            buffer.moveReaderIndex(to: start)
            return nil
        }
        switch marker {
        case UInt8(ascii: "+"): return .value(.simpleString(String(decoding: line, as: UTF8.self)))
        case UInt8(ascii: "-"): return .value(.error(String(decoding: line, as: UTF8.self)))
        case UInt8(ascii: ":"): return .value(.integer(try Self.integer(line)))
        case UInt8(ascii: "$"):
            let length = try Self.integer(line)
            if length == -1 { return .value(.null) }
            guard length >= 0 else { throw RESPProtocolError.malformed("bulk length \(length)") }
            guard length <= limits.maxBulkLength else {
                throw RESPProtocolError.bulkTooLong(length: Int(length), limit: limits.maxBulkLength)
            }
            guard buffer.readableBytes >= Int(length) + 2 else {
                buffer.moveReaderIndex(to: start)
                return nil
            }
            let payload = buffer.readSlice(length: Int(length))!
            guard buffer.readInteger(as: UInt16.self) == 0x0D0A else {
                throw RESPProtocolError.malformed("bulk string not followed by CRLF")
            }
            return .value(.bulkString(payload))
        case UInt8(ascii: "*"):
            let count = try Self.integer(line)
            if count == -1 { return .value(.null) }
            guard count >= 0 else { throw RESPProtocolError.malformed("array length \(count)") }
            guard count <= limits.maxArrayCount else {
                throw RESPProtocolError.arrayTooLong(count: Int(count), limit: limits.maxArrayCount)
            }
            guard depth < limits.maxDepth else { throw RESPProtocolError.tooDeep(limit: limits.maxDepth) }
            return .arrayHeader(count: Int(count))
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

/// The arrays of a reply still waiting for elements, innermost last.
struct RESPReplyAssembly: Sendable {
    private var open: [(remaining: Int, elements: [RESPValue])] = []

    /// How deep the next element sits.
    var depth: Int { open.count }

    /// Adds the next element; returns the reply once it is whole.
    mutating func add(_ element: RESPElement) -> RESPValue? {
        var value: RESPValue
        switch element {
        case .value(let whole): value = whole
        case .arrayHeader(let count) where count == 0: value = .array([])
        case .arrayHeader(let count):
            var elements: [RESPValue] = []
            elements.reserveCapacity(min(count, 1024))
            open.append((count, elements))
            return nil
        }
        while var array = open.popLast() {
            array.elements.append(value)
            array.remaining -= 1
            guard array.remaining == 0 else {
                open.append(array)
                return nil
            }
            value = .array(array.elements)
        }
        return value
    }
}

/// RESP replies out of bytes that arrive in pieces, each element parsed once: the elements of
/// an unfinished array leave the buffer as they arrive and wait here, so a reply that arrives
/// in n pieces costs its own length to parse, not up to n times it. The unfinished reply's
/// bytes, consumed and buffered, are capped at `limits.maxBufferedBytes`.
public struct RESPStreamParser: Sendable {
    public let parser: RESPParser
    private var reply = RESPReplyAssembly()
    private var consumed = 0

    public init(limits: RESPLimits) { parser = RESPParser(limits: limits) }

    /// The next whole reply, or nil until more bytes arrive.
    public mutating func next(_ buffer: inout ByteBuffer) throws -> RESPValue? {
        let start = buffer.readerIndex
        let value = try parser.next(&buffer, into: &reply)
        consumed += buffer.readerIndex - start
        if let value {
            consumed = 0
            return value
        }
        let held = consumed + buffer.readableBytes, limit = parser.limits.maxBufferedBytes
        if held > limit { throw RESPProtocolError.replyTooLarge(bufferedBytes: held, limit: limit) }
        return nil
    }
}

/// NIO decoder: bytes in, one `RESPValue` per complete reply out.
struct RESPDecoder: ByteToMessageDecoder {
    typealias InboundOut = RESPValue
    private var stream: RESPStreamParser

    init(limits: RESPLimits) { stream = RESPStreamParser(limits: limits) }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let value = try stream.next(&buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(value))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}
