import Dispatch
import Synchronization

/// A first-in-first-out turn for threads that run blocking model work.
///
/// A request thread takes the turn before it touches the model and gives it back at every
/// generated token (`pass`): if anyone is waiting, the turn goes to the longest waiter and
/// the thread queues behind everybody else; if nobody waits, it keeps the turn at no cost.
/// Concurrent generations therefore advance round-robin, one decode step each.
///
/// Hand-over is direct (the releasing thread wakes exactly the next waiter's semaphore),
/// so no waiter can be overtaken.
public final class FairTurn: Sendable {
    private struct State {
        var busy = false
        var waiters: [DispatchSemaphore] = []
    }

    private let state = Mutex(State())

    public init() {}

    /// Threads waiting for the turn.
    public var waiting: Int { state.withLock { $0.waiters.count } }

    /// Blocks until the calling thread has the turn.
    public func acquire() {
        let wait = state.withLock { s -> DispatchSemaphore? in
            guard s.busy else {
                s.busy = true
                return nil
            }
            let semaphore = DispatchSemaphore(value: 0)
            s.waiters.append(semaphore)
            return semaphore
        }
        wait?.wait()
    }

    /// Gives the turn to the next waiter, or frees it.
    public func release() {
        let next = state.withLock { s -> DispatchSemaphore? in
            guard !s.waiters.isEmpty else {
                s.busy = false
                return nil
            }
            return s.waiters.removeFirst()   // stays busy: ownership moves to that thread
        }
        next?.signal()
    }

    /// Lets every current waiter go first, then takes the turn back. Free when nobody waits.
    public func pass() {
        let handOff = state.withLock { s -> (next: DispatchSemaphore, mine: DispatchSemaphore)? in
            guard !s.waiters.isEmpty else { return nil }
            let mine = DispatchSemaphore(value: 0)
            let next = s.waiters.removeFirst()
            s.waiters.append(mine)
            return (next, mine)
        }
        guard let handOff else { return }
        handOff.next.signal()
        handOff.mine.wait()
    }

    /// Runs `body` holding the turn.
    public func withTurn<T>(_ body: () throws -> T) rethrows -> T {
        acquire()
        defer { release() }
        return try body()
    }
}
