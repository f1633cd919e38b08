import Logging
import NIOCore
import NIOPosix

/// How long a node is left alone after a failed connect: doubling from `initial` to `maximum`.
public struct ReconnectBackoff: Sendable {
    public var initial: Duration
    public var maximum: Duration

    public init(initial: Duration = .milliseconds(50), maximum: Duration = .seconds(2)) {
        self.initial = initial
        self.maximum = maximum
    }

    func delay(afterFailures failures: Int) -> Duration {
        var delay = initial
        for _ in 1..<max(failures, 1) where delay < maximum { delay *= 2 }
        return min(delay, maximum)
    }
}

/// A client of one node: one pipelined connection, opened on first use, reopened after it
/// breaks. After a failed connect the node fails fast (`RedisError.nodeUnavailable`) until
/// its backoff has passed, so a dead node costs its callers nothing but an error.
public actor RedisNode {
    public nonisolated let address: RedisAddress
    private let options: RedisConnectionOptions
    private let backoff: ReconnectBackoff
    private let group: EventLoopGroup
    private let logger: Logger

    private var connection: RedisConnection?
    private var connecting: Task<RedisConnection, Error>?
    private var failures = 0
    private var retryAt: ContinuousClock.Instant?
    private var lastError = ""

    public init(address: RedisAddress, options: RedisConnectionOptions = RedisConnectionOptions(),
                backoff: ReconnectBackoff = ReconnectBackoff(),
                group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger = Logger(label: "kvstash.redis")) {
        self.address = address
        self.options = options
        self.backoff = backoff
        self.group = group
        self.logger = logger
    }

    /// The live connection, connecting first when there is none.
    public func connection() async throws -> RedisConnection {
        if let connection, connection.isActive { return connection }
        connection = nil
        if let connecting { return try await connecting.value }
        if let retryAt, ContinuousClock.now < retryAt {
            throw RedisError.nodeUnavailable(address, lastError: lastError)
        }
        let (address, options, group) = (self.address, self.options, self.group)
        let task = Task { try await RedisConnection.connect(to: address, options: options, group: group) }
        connecting = task
        defer { connecting = nil }
        do {
            let opened = try await task.value
            if failures > 0 { logger.info("redis node reconnected", metadata: ["node": "\(address)"]) }
            connection = opened
            failures = 0
            retryAt = nil
            return opened
        } catch {
            failures += 1
            lastError = "\(error)"
            let delay = backoff.delay(afterFailures: failures)
            retryAt = ContinuousClock.now + delay
            logger.warning("redis node connect failed", metadata: [
                "node": "\(address)", "error": "\(error)", "retry_in": "\(delay)",
            ])
            throw error
        }
    }

    /// Sends one command (server error replies come back as `.error`).
    public nonisolated func send(_ command: RESPCommand) async throws -> RESPValue {
        try await pipeline([command])[0].get()
    }

    /// Sends the commands pipelined on one connection; a connect failure fails them all. A
    /// failed command means the connection broke (error replies are values), so it is dropped
    /// at once and the next command opens a new one.
    public nonisolated func pipeline(_ commands: [RESPCommand]) async -> [Result<RESPValue, RedisError>] {
        let open: RedisConnection
        do {
            open = try await connection()
        } catch {
            let failure = error as? RedisError ?? .connectFailed(address, "\(error)")
            return Array(repeating: .failure(failure), count: commands.count)
        }
        let results = await open.pipeline(commands)
        if results.contains(where: { if case .failure = $0 { true } else { false } }) { await drop(open) }
        return results
    }

    private func drop(_ broken: RedisConnection) {
        guard connection === broken else { return }
        connection = nil
        broken.close()
    }

    /// Closes the connection; the next command reconnects.
    public func close() {
        connection?.close()
        connection = nil
    }
}
