import NIOCore
import NIOPosix

/// A command on its way through the pipeline with the promise of its reply.
struct RESPRequest: Sendable {
    let command: RESPCommand
    let promise: EventLoopPromise<RESPValue>
    let timeout: TimeAmount?
}

/// Matches replies to commands in the order they were written (RESP replies come back in
/// command order), so any number of commands can be in flight. A timeout, a protocol error or
/// the peer closing fails every command in flight and closes the connection.
final class RESPRequestHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = RESPRequest
    typealias OutboundOut = RESPCommand

    private struct Pending {
        let id: UInt64
        let promise: EventLoopPromise<RESPValue>
        let timer: Scheduled<Void>?
    }

    private let address: RedisAddress
    private var pending = CircularBuffer<Pending>(initialCapacity: 64)
    private var nextID: UInt64 = 0
    private var closedBecause: RedisError?

    init(address: RedisAddress) { self.address = address }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if let closedBecause {
            request.promise.fail(closedBecause)
            promise?.fail(closedBecause)
            return
        }
        let id = nextID
        nextID &+= 1
        var timer: Scheduled<Void>?
        if let timeout = request.timeout {
            let name = request.command.name
            let seconds = Double(timeout.nanoseconds) / 1e9
            timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
                self.timedOut(id: id, error: .timeout(self.address, command: name, seconds: seconds), context: context)
            }
        }
        pending.append(Pending(id: id, promise: request.promise, timer: timer))
        context.write(wrapOutboundOut(request.command), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = unwrapInboundIn(data)
        guard let first = pending.popFirst() else {
            failAll(.protocolViolation(address, "reply without a command"), context: context)
            return
        }
        first.timer?.cancel()
        first.promise.succeed(value)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        let failure: RedisError
        if let error = error as? RESPProtocolError {
            failure = .protocolViolation(address, error.description)
        } else {
            failure = .connectionLost(address, "\(error)")
        }
        failAll(failure, context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(.connectionLost(address, "closed by the peer"), context: context, close: false)
        context.fireChannelInactive()
    }

    private func timedOut(id: UInt64, error: RedisError, context: ChannelHandlerContext) {
        guard let index = pending.firstIndex(where: { $0.id == id }) else { return }
        let timedOut = pending.remove(at: index)
        timedOut.promise.fail(error)
        failAll(.connectionLost(address, "closed after another command timed out"), context: context)
    }

    private func failAll(_ error: RedisError, context: ChannelHandlerContext, close: Bool = true) {
        if closedBecause == nil { closedBecause = error }
        while let next = pending.popFirst() {
            next.timer?.cancel()
            next.promise.fail(error)
        }
        if close { context.close(promise: nil) }
    }
}

/// How to reach and authenticate with a node, and the limits of one connection.
public struct RedisConnectionOptions: Sendable {
    /// `AUTH password` (or `AUTH username password` with an ACL user) after connecting.
    public var username: String?
    public var password: String?
    public var connectTimeout: TimeAmount
    /// Each command fails with `RedisError.timeout` after this long. `nil`: no timeout.
    public var commandTimeout: TimeAmount?
    public var limits: RESPLimits

    public init(username: String? = nil, password: String? = nil, connectTimeout: TimeAmount = .seconds(2),
                commandTimeout: TimeAmount? = .seconds(5), limits: RESPLimits = RESPLimits()) {
        self.username = username
        self.password = password
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.limits = limits
    }
}

/// One TCP connection to one node. Commands may be sent from any task; they are pipelined.
public final class RedisConnection: Sendable {
    public let address: RedisAddress
    let channel: Channel
    let options: RedisConnectionOptions

    private init(address: RedisAddress, channel: Channel, options: RedisConnectionOptions) {
        self.address = address
        self.channel = channel
        self.options = options
    }

    /// Connects and authenticates (when the options carry a password).
    public static func connect(to address: RedisAddress, options: RedisConnectionOptions,
                               group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> RedisConnection {
        let limits = options.limits
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(options.connectTimeout)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(RESPDecoder(limits: limits)),
                        RESPCommandEncoder(),
                        RESPRequestHandler(address: address),
                    ])
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.connect(host: address.host, port: address.port).get()
        } catch {
            throw RedisError.connectFailed(address, "\(error)")
        }
        let connection = RedisConnection(address: address, channel: channel, options: options)
        if let password = options.password {
            var arguments = ["AUTH"]
            if let username = options.username { arguments.append(username) }
            arguments.append(password)
            let reply = try await connection.send(RESPCommand(arguments.map { ByteBuffer(string: $0) }))
            if case .error(let message) = reply {
                connection.close()
                throw RedisError.authFailed(address, message)
            }
        }
        return connection
    }

    public var isActive: Bool { channel.isActive }

    public func close() {
        channel.close(promise: nil)
    }

    /// Sends one command. A server error reply is returned as `.error`, not thrown (the
    /// cluster client reads MOVED and ASK from it); transport failures throw `RedisError`.
    public func send(_ command: RESPCommand) async throws -> RESPValue {
        try await pipeline([command])[0].get()
    }

    /// Sends the commands back to back in one write and returns their replies in order.
    public func pipeline(_ commands: [RESPCommand]) async -> [Result<RESPValue, RedisError>] {
        let loop = channel.eventLoop
        let requests = commands.map {
            RESPRequest(command: $0, promise: loop.makePromise(), timeout: options.commandTimeout)
        }
        let channel = self.channel
        let address = self.address
        loop.execute {
            for request in requests {
                channel.write(request).whenFailure { error in
                    request.promise.fail(error as? RedisError ?? .connectionLost(address, "\(error)"))
                }
            }
            channel.flush()
        }
        var results: [Result<RESPValue, RedisError>] = []
        results.reserveCapacity(requests.count)
        for request in requests {
            do {
                results.append(.success(try await request.promise.futureResult.get()))
            } catch {
                results.append(.failure(error as? RedisError ?? .connectionLost(address, "\(error)")))
            }
        }
        return results
    }
}
