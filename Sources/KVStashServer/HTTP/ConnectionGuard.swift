import HTTPTypes
import NIOCore
import NIOHTTPTypes
import Synchronization

/// Connection bounds of the server: how many may be open, and how long a request body may
/// take. (How long a connection may wait for a complete request head, before its first
/// request and between requests, is Hummingbird's idle timeout.)
public struct ConnectionLimits: Sendable {
    /// Open connections; one more is answered 503 with `Retry-After` and closed.
    public var maxConnections: Int
    /// Seconds a connection may go without a complete request head (slow or stalled
    /// headers, idle keep-alive): then it is closed.
    public var idleTimeoutSeconds: Double
    /// Seconds from a request's head to the end of its body: then the connection is closed.
    public var readTimeoutSeconds: Double

    public init(maxConnections: Int = 512, idleTimeoutSeconds: Double = 15, readTimeoutSeconds: Double = 30) {
        self.maxConnections = max(1, maxConnections)
        self.idleTimeoutSeconds = max(0.001, idleTimeoutSeconds)
        self.readTimeoutSeconds = max(0.001, readTimeoutSeconds)
    }
}

/// Open connections of one server, shared by every connection's `ConnectionGuard`.
final class ConnectionCounter: Sendable {
    private let open = Atomic<Int>(0)

    /// Counts a new connection; returns the count including it.
    func opened() -> Int { open.wrappingAdd(1, ordering: .relaxed).newValue }
    func closed() { open.wrappingSubtract(1, ordering: .relaxed) }
    var current: Int { open.load(ordering: .relaxed) }
}

/// Sits in every connection's pipeline (after HTTP decoding). A connection past
/// `maxConnections` never reaches the router: its first request is read to the end and
/// answered 503 with `Retry-After`, then the connection is closed. A request whose body
/// does not arrive within `readTimeoutSeconds` of its head has its connection closed.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let counter: ConnectionCounter
    private let limits: ConnectionLimits
    private var counted = false
    private var refused = false
    private var answered = false
    private var bodyDeadline: Scheduled<Void>?

    init(counter: ConnectionCounter, limits: ConnectionLimits) {
        self.counter = counter
        self.limits = limits
    }

    func handlerAdded(context: ChannelHandlerContext) {
        counted = true
        refused = counter.opened() > limits.maxConnections
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        release()
    }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    private func release() {
        bodyDeadline?.cancel()
        bodyDeadline = nil
        if counted { counter.closed() }
        counted = false
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if refused {
            if case .end = part, !answered {
                answered = true
                refuse(context)
            }
            return
        }
        switch part {
        case .head:
            let timeout = TimeAmount.nanoseconds(Int64(limits.readTimeoutSeconds * 1e9))
            let loop = context.eventLoop.assumeIsolatedUnsafeUnchecked()
            bodyDeadline?.cancel()
            bodyDeadline = loop.scheduleTask(in: timeout) { context.close(promise: nil) }
        case .end:
            bodyDeadline?.cancel()
            bodyDeadline = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    /// 503 with `Retry-After` and `Connection: close`, then closes.
    private func refuse(_ context: ChannelHandlerContext) {
        let body = ByteBuffer(string: #"{"error":{"message":"too many open connections; retry later","#
            + #""type":"server_error","param":null,"code":"too_many_connections"}}"#)
        var head = HTTPResponse(status: .serviceUnavailable)
        head.headerFields[.contentType] = "application/json"
        head.headerFields[.contentLength] = String(body.readableBytes)
        head.headerFields[.retryAfter] = "1"
        head.headerFields[.connection] = "close"
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        written.futureResult.assumeIsolatedUnsafeUnchecked().whenComplete { _ in context.close(promise: nil) }
    }
}
