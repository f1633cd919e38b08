/// Host and port of one Redis node.
public struct RedisAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` (the last colon separates the port, so bare IPv6 works too).
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (1...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// What went wrong talking to Redis. Every case names the node it concerns.
public enum RedisError: Error, Equatable, CustomStringConvertible {
    /// TCP connect failed or timed out.
    case connectFailed(RedisAddress, String)
    /// The node is in its reconnect backoff after a failure; no attempt was made.
    case nodeUnavailable(RedisAddress, lastError: String)
    /// The connection closed with this command in flight.
    case connectionLost(RedisAddress, String)
    /// No reply within the command timeout (the connection is closed: later replies would
    /// no longer match their commands).
    case timeout(RedisAddress, command: String, seconds: Double)
    /// AUTH was refused.
    case authFailed(RedisAddress, String)
    /// The server answered with an error reply.
    case server(RedisAddress, command: String, message: String)
    /// The reply broke the protocol or a size limit.
    case protocolViolation(RedisAddress, String)
    /// The reply had a shape the command does not produce (node nil: not known where the
    /// reply was read).
    case unexpectedReply(RedisAddress?, command: String, String)
    /// More MOVED/ASK redirects than allowed for one command.
    case tooManyRedirects(RedisAddress, slot: Int)
    /// No node is known for the slot (discovery failed or the slot is unassigned).
    case noNodeForSlot(Int, String)

    public var node: RedisAddress? {
        switch self {
        case .connectFailed(let a, _), .nodeUnavailable(let a, _), .connectionLost(let a, _),
             .timeout(let a, _, _), .authFailed(let a, _), .server(let a, _, _),
             .protocolViolation(let a, _), .tooManyRedirects(let a, _):
            return a
        case .unexpectedReply(let a, _, _): return a
        case .noNodeForSlot: return nil
        }
    }

    public var description: String {
        switch self {
        case .connectFailed(let a, let why): return "node \(a): connect failed: \(why)"
        case .nodeUnavailable(let a, let why): return "node \(a): unavailable (reconnect backoff after: \(why))"
        case .connectionLost(let a, let why): return "node \(a): connection lost: \(why)"
        case .timeout(let a, let command, let seconds): return "node \(a): \(command) timed out after \(seconds) s"
        case .authFailed(let a, let message): return "node \(a): authentication failed: \(message)"
        case .server(let a, let command, let message): return "node \(a): \(command): \(message)"
        case .protocolViolation(let a, let why): return "node \(a): protocol error: \(why)"
        case .unexpectedReply(let a, let command, let what):
            return "node \(a.map(\.description) ?? "unknown"): \(command): unexpected reply \(what)"
        case .tooManyRedirects(let a, let slot): return "node \(a): too many redirects for slot \(slot)"
        case .noNodeForSlot(let slot, let why): return "no node serves slot \(slot): \(why)"
        }
    }
}
