import CKernels
import Dispatch

/// Parallel loops of the few-row paths (decode steps, a hit's question) on the persistent
/// worker team of `CKernels/team.c`: its workers spin briefly between loops, so the ~150
/// loops of a decode step each start without a thread wake-up.
enum WorkerTeam {
    /// Calls `body(i)` for every `i < tasks`, spread over the calling thread and the team,
    /// and returns when every call has returned. While another thread's loop holds the
    /// team, this one runs on Dispatch's pool instead (same contract).
    static func run(tasks: Int, _ body: @Sendable (Int) -> Void) {
        guard tasks > 1 else {
            if tasks == 1 { body(0) }
            return
        }
        let status = withoutActuallyEscaping(body) { body in
            var job = body
            return withUnsafeMutablePointer(to: &job) { job in
                kv_team_run({ context, task in
                    context!.assumingMemoryBound(to: (@Sendable (Int) -> Void).self).pointee(task)
                }, job, tasks)
            }
        }
        if status != 0 { DispatchQueue.concurrentPerform(iterations: tasks, execute: body) }
    }
}
