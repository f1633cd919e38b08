import Dispatch
import Synchronization

/// Runs model steps one at a time, in arrival order, on a thread of its own.
///
/// The model computes one batch at a time on the machine's cores. Every sequence
/// submits one step (a prefill slice or one decode step), waits for it, and submits the
/// next; since the queue is FIFO, the steps of concurrent sequences interleave round-robin,
/// so a long generation cannot starve a short one. Running steps on a dispatch queue keeps
/// the blocking BLAS work off Swift's cooperative pool, so HTTP handlers stay responsive.
public final class ModelGate: Sendable {
    private let queue = DispatchQueue(label: "kvstash.model", qos: .userInitiated)
    private let waiting = Atomic<Int>(0)

    public init() {}

    /// Steps submitted and not yet finished.
    public var depth: Int { waiting.load(ordering: .relaxed) }

    /// Runs `work` after every step submitted before it. Throws `CancellationError` without
    /// running it if the calling task is already cancelled.
    public func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try Task.checkCancellation()
        waiting.add(1, ordering: .relaxed)
        defer { waiting.subtract(1, ordering: .relaxed) }
        return try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }
}
