import NIOCore

/// One RESP2 reply.
public enum RESPValue: Sendable, Equatable {
    case simpleString(String)
    /// A `-` reply: the server's error line (e.g. `MOVED 3999 127.0.0.1:7001`).
    case error(String)
    case integer(Int64)
    case bulkString(ByteBuffer)
    /// `$-1` or `*-1`.
    case null
    case array([RESPValue])

    /// The bytes of a bulk or simple string.
    public var bytes: [UInt8]? {
        switch self {
        case .bulkString(let buffer): return Array(buffer.readableBytesView)
        case .simpleString(let string): return Array(string.utf8)
        default: return nil
        }
    }

    /// The text of a bulk or simple string.
    public var string: String? {
        switch self {
        case .bulkString(let buffer): return String(buffer: buffer)
        case .simpleString(let string): return string
        default: return nil
        }
    }

    public var int: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    public var array: [RESPValue]? {
        if case .array(let values) = self { return values }
        return nil
    }
}

/// One command: its arguments, each sent as a bulk string.
public struct RESPCommand: Sendable, CustomStringConvertible {
    public var arguments: [ByteBuffer]

    public init(_ arguments: [ByteBuffer]) {
        precondition(!arguments.isEmpty, "a command has a name")
        self.arguments = arguments
    }

    public init(_ name: String, _ arguments: String...) {
        self.init(([name] + arguments).map { ByteBuffer(string: $0) })
    }

    /// The command's name, for errors and logs (never its arguments, which may hold secrets).
    public var name: String { String(buffer: arguments[0]).uppercased() }

    public var description: String { name }
}

/// Sizes a RESP decoder accepts. A reply past any of them is a protocol error, not an
/// allocation.
public struct RESPLimits: Sendable, Equatable {
    /// Longest bulk string.
    public var maxBulkLength: Int
    /// Most elements in one array.
    public var maxArrayCount: Int
    /// Deepest nesting of arrays.
    public var maxDepth: Int
    /// Longest simple string, error or length line.
    public var maxLineLength: Int

    public init(maxBulkLength: Int = 64 << 20, maxArrayCount: Int = 1 << 20, maxDepth: Int = 16,
                maxLineLength: Int = 64 << 10) {
        self.maxBulkLength = maxBulkLength
        self.maxArrayCount = maxArrayCount
        self.maxDepth = maxDepth
        self.maxLineLength = maxLineLength
    }

    /// Bytes the decoder may buffer for one unfinished reply: one maximal bulk plus room for
    /// the small elements around it.
    public var maxBufferedBytes: Int { maxBulkLength + 4 * maxLineLength + (1 << 20) }
}
