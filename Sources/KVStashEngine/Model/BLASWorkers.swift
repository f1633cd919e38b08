import CBLAS
import Synchronization

/// OpenBLAS's worker threads, parked after a long prefill.
///
/// After each threaded call, OpenBLAS keeps its workers spinning on `sched_yield` for
/// about 2^28 cycles (~0.1 s) before they sleep. On a 2-core machine that spinner takes
/// a core from whatever runs next: a cache hit right after a miss ran its question's
/// prefill ~1.5x slower (measured: 99 against 60–67 ms at 4K context). The timeout is
/// read from the environment when the library loads, so instead the engine shuts the
/// workers down when a prefill that used BLAS ends; OpenBLAS starts them again on its
/// next threaded call (one `pthread_create` per worker, tens of microseconds, once per
/// long prefill).
enum BLASWorkers {
    /// Prefills in flight that may call BLAS; the workers are shut down only at zero.
    private static let active = Mutex(0)

    /// Runs `body` (which may call BLAS), then parks the workers if nothing else is using
    /// BLAS any more.
    static func run<R>(parkingAfter park: Bool, _ body: () throws -> R) rethrows -> R {
        active.withLock { $0 += 1 }
        defer {
            active.withLock { count in
                count -= 1
                if park && count == 0 { _ = blas_thread_shutdown_() }
            }
        }
        return try body()
    }
}
