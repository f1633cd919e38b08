import Foundation
import Synchronization

/// Long-lived threads for the blocking model work of requests (`TurnRunner`).
///
/// A request's work runs on an idle thread of the pool, or on a new one when every thread is
/// busy, so no request waits for another's thread. A thread that finishes goes back to the pool
/// (up to `keptIdle` idle threads; the others end). Reusing threads keeps what the work leaves
/// with its thread for the next request: its stack and malloc arena already faulted in, the
/// kernels' per-thread scratch (`kv_thread_scratch`) already grown, where a new thread per
/// request zeroes fresh pages for all of them.
final class WorkThreads: Sendable {
    /// The pool the server's requests run on.
    static let shared = WorkThreads(stackSize: TurnRunner.stackSize, keptIdle: 8)

    private struct State {
        var jobs: [@Sendable () -> Void] = []
        /// Threads waiting for a job that no submitted job has claimed yet.
        var idle = 0
        var threads = 0
    }

    private let state = Mutex(State())
    private let ready = DispatchSemaphore(value: 0)
    private let stackSize: Int
    private let keptIdle: Int

    init(stackSize: Int, keptIdle: Int) {
        self.stackSize = stackSize
        self.keptIdle = keptIdle
    }

    /// Threads the pool has now (busy and idle).
    var threadCount: Int { state.withLock { $0.threads } }

    /// Threads waiting for a job now.
    var idleCount: Int { state.withLock { $0.idle } }

    /// Runs `job` on a thread of the pool and returns at once.
    func start(_ job: @escaping @Sendable () -> Void) {
        let spawn = state.withLock { s in
            s.jobs.append(job)
            if s.idle > 0 { s.idle -= 1; return false }
            s.threads += 1
            return true
        }
        if spawn {
            let thread = Thread { [self] in serve() }
            thread.name = "kvstash-work"
            thread.stackSize = stackSize
            thread.start()
        }
        ready.signal()
    }

    /// Runs `body` on a thread of the pool and waits for its result (warm-ups at start).
    func run<R: Sendable>(_ body: @escaping @Sendable () throws -> R) throws -> R {
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<Result<R, any Error>?>(nil)
        start {
            let outcome = Result { try body() }
            result.withLock { $0 = outcome }
            done.signal()
        }
        done.wait()
        return try result.withLock { $0! }.get()
    }

    /// A thread's loop: one job per signal; back to idle after it, or ends when enough
    /// threads are idle already.
    private func serve() {
        while true {
            ready.wait()
            let job = state.withLock { $0.jobs.removeFirst() }
            job()
            let keep = state.withLock { s in
                guard s.idle < keptIdle else { s.threads -= 1; return false }
                s.idle += 1
                return true
            }
            if !keep { return }
        }
    }
}
