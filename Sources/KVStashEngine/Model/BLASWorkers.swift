import CBLAS
import Synchronization

/// OpenBLAS's worker threads, parked after a prefill that used them.
///
/// After each threaded call, OpenBLAS keeps its workers spinning on `sched_yield` for
/// about 2^28 cycles (~0.1 s) before they sleep. On a 2-core machine that spinner takes
/// a core from whatever runs next: a cache hit right after a miss ran its question's
/// prefill ~1.5x slower (measured: 99 against 60–67 ms at 4K context). The timeout is
/// read from the environment when the library loads, so instead the engine shuts the
/// workers down when the last prefill in flight ends, if any BLAS call ran since the
/// last shutdown; OpenBLAS starts them again on its next threaded call (one
/// `pthread_create` per worker, tens of microseconds).
enum BLASWorkers {
    /// Prefills in flight (each may call BLAS); the workers are shut down only at zero.
    private static let active = Mutex(0)
    /// Whether a BLAS call ran since the workers were last shut down.
    private static let used = Atomic<Bool>(false)

    /// Records a BLAS call (every wrapper in BLAS.swift calls this).
    static func noteCall() { used.store(true, ordering: .relaxed) }

    /// Runs `body`, which may call BLAS, then parks the workers if no other caller is
    /// inside `run` and BLAS was used.
    static func run<R>(_ body: () throws -> R) rethrows -> R {
        active.withLock { $0 += 1 }
        defer {
            active.withLock { count in
                count -= 1
                if count == 0 && used.exchange(false, ordering: .relaxed) { _ = blas_thread_shutdown_() }
            }
        }
        return try body()
    }
}
