import Synchronization

/// Requests answered whose prompt is still being kept.
///
/// A request's answer goes out as soon as its last token is generated; keeping its prompt
/// for later requests (write-back, the prompt tail, the radix tree, the resident cache)
/// follows on the request's thread, which still holds the model's turn, so the next request
/// finds it. Readers that do not take the turn (`/metrics`, `/admin/*`, shutdown before the
/// store closes) wait here for the keeping of every request answered before they asked.
public final class KeepLedger: Sendable {
    private struct State {
        var answered = 0
        var kept = 0
        var waiters: [(target: Int, resume: CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())

    public init() {}

    /// A request was answered; its `kept()` must follow.
    public func answered() {
        state.withLock { $0.answered += 1 }
    }

    /// An answered request's keeping is done.
    public func kept() {
        let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.kept += 1
            let kept = s.kept
            let ready = s.waiters.filter { $0.target <= kept }.map(\.resume)
            s.waiters.removeAll { $0.target <= kept }
            return ready
        }
        ready.forEach { $0.resume() }
    }

    /// Requests answered and not kept yet.
    public var pending: Int { state.withLock { $0.answered - $0.kept } }

    /// Callers of `settled` still waiting.
    var waiting: Int { state.withLock { $0.waiters.count } }

    /// Returns once every request answered before the call is kept.
    public func settled() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                guard s.kept < s.answered else { return true }
                s.waiters.append((s.answered, c))
                return false
            }
            if now { c.resume() }
        }
    }
}
