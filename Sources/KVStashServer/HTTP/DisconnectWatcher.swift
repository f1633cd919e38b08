import NIOCore
import Synchronization

/// Tells request handlers when their client went away.
///
/// Hummingbird enables remote half-closure, so a client that closes its socket shows up
/// as an `inputClosed` event (or the channel going inactive), not as an error, until the
/// server writes. This handler sits in every connection's pipeline, remembers that
/// event and runs the callbacks that handlers register, so a non-streaming generation
/// stops as soon as its client is gone instead of at the end.
final class DisconnectWatcher: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny

    private struct State {
        var gone = false
        var nextID = 0
        var callbacks: [Int: @Sendable () -> Void] = [:]
    }

    private let state = Mutex(State())

    init() {}

    /// Runs `callback` once when the client disconnects (at once if it already has).
    /// Returns a token for `remove`.
    func onDisconnect(_ callback: @escaping @Sendable () -> Void) -> Int {
        let (id, goneAlready) = state.withLock { s -> (Int, Bool) in
            s.nextID += 1
            if !s.gone { s.callbacks[s.nextID] = callback }
            return (s.nextID, s.gone)
        }
        if goneAlready { callback() }
        return id
    }

    /// Forgets a callback (the request finished).
    func remove(_ id: Int) {
        _ = state.withLock { $0.callbacks.removeValue(forKey: id) }
    }

    private func fire() {
        let callbacks = state.withLock { s -> [@Sendable () -> Void] in
            s.gone = true
            defer { s.callbacks.removeAll() }
            return Array(s.callbacks.values)
        }
        callbacks.forEach { $0() }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed { fire() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fire()
        context.fireChannelInactive()
    }
}
