/// Runs commands that each touch one key: a single node, or a cluster that routes by slot.
/// Error replies come back as `RedisError.server` naming the node that sent them.
public protocol RedisKeyedClient: Sendable {
    /// Runs one command on the node serving `key`.
    func execute(_ command: RESPCommand, key: [UInt8]) async -> Result<RESPValue, RedisError>
    /// Runs the commands pipelined, grouped by node; one result per command, in order. A node
    /// that fails fails only its own commands.
    func executeMany(_ requests: [KeyedCommand]) async -> [Result<RESPValue, RedisError>]
    /// The nodes holding the keys (a cluster's primaries, or the one node), for commands
    /// about a node rather than a key (`DBSIZE`, `INFO`, `SCAN`).
    func primaries() async throws -> [RedisNode]
}

/// A command and the key that decides where it runs.
public struct KeyedCommand: Sendable {
    public var key: [UInt8]
    public var command: RESPCommand

    public init(key: [UInt8], command: RESPCommand) {
        self.key = key
        self.command = command
    }
}

extension Result where Success == RESPValue, Failure == RedisError {
    /// Turns an error reply into a failure that names the node and command.
    func serverErrorsAsFailures(node: RedisAddress, command: RESPCommand) -> Self {
        if case .success(.error(let message)) = self {
            return .failure(.server(node, command: command.name, message: message))
        }
        return self
    }
}

extension RedisNode: RedisKeyedClient {
    public nonisolated func execute(_ command: RESPCommand, key: [UInt8]) async -> Result<RESPValue, RedisError> {
        await pipeline([command])[0].serverErrorsAsFailures(node: address, command: command)
    }

    public nonisolated func executeMany(_ requests: [KeyedCommand]) async -> [Result<RESPValue, RedisError>] {
        let replies = await pipeline(requests.map(\.command))
        return zip(replies, requests).map { $0.serverErrorsAsFailures(node: address, command: $1.command) }
    }

    public nonisolated func primaries() async throws -> [RedisNode] { [self] }
}
