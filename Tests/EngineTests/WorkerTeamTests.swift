import CKernels
import Dispatch
import Synchronization
import XCTest
@testable import KVStashEngine

/// The worker team's contract: every index below a loop's size is called exactly once, no
/// other index is called, and `run` returns only after all calls returned. Loops of
/// alternating sizes are what a decode step issues (products of many tasks, attention of a
/// few); a claim racing the next loop's setup once ran a task twice and let the caller
/// return early (in a server, Swift's escape check of the loop's closure trapped).
final class WorkerTeamTests: XCTestCase {
    /// Calls per index of a batch of loops (each loop its own slots), plus calls outside a
    /// loop's range. Loops are checked after the batch, so each loop starts right after the
    /// one before returned, as a decode step's loops do.
    private final class Tally: Sendable {
        static let loopsPerBatch = 1024
        static let slotsPerLoop = 64
        let calls: InlineArray<65536, Atomic<Int>> = InlineArray { _ in Atomic(0) }
        let strays = Atomic(0)

        func record(_ index: Int, loop: Int, of tasks: Int) {
            if index >= 0 && index < tasks {
                calls[loop * Self.slotsPerLoop + index].wrappingAdd(1, ordering: .relaxed)
            } else {
                strays.wrappingAdd(1, ordering: .relaxed)
            }
        }

        /// How many loops of the batch (sizes in order) did not call each of their indices
        /// exactly once or called one outside; counts stray calls as one loop each. Resets.
        func inexactLoopsAndReset(sizes: [Int]) -> Int {
            var inexact = strays.exchange(0, ordering: .relaxed)
            for (loop, tasks) in sizes.enumerated() {
                var exact = true
                for i in 0..<Self.slotsPerLoop {
                    let slot = loop * Self.slotsPerLoop + i
                    exact = exact && calls[slot].load(ordering: .relaxed) == (i < tasks ? 1 : 0)
                    calls[slot].store(0, ordering: .relaxed)
                }
                if !exact { inexact += 1 }
            }
            return inexact
        }
    }

    private static let loopSizes = [2, 64, 3, 17, 2, 64, 1, 40]

    /// Runs `loops` loops of the alternating sizes and returns how many were not exact.
    private static func inexactLoops(_ loops: Int) -> Int {
        let tally = Tally()
        var inexact = 0
        var sizes: [Int] = []
        sizes.reserveCapacity(Tally.loopsPerBatch)
        for loop in 0..<loops {
            let tasks = loopSizes[loop % loopSizes.count]
            let slot = sizes.count
            sizes.append(tasks)
            WorkerTeam.run(tasks: tasks) { tally.record($0, loop: slot, of: tasks) }
            if sizes.count == Tally.loopsPerBatch || loop == loops - 1 {
                inexact += tally.inexactLoopsAndReset(sizes: sizes)
                sizes.removeAll(keepingCapacity: true)
            }
        }
        return inexact
    }

    func testEveryIndexOfEveryLoopRunsExactlyOnce() {
        XCTAssertEqual(Self.inexactLoops(500_000), 0)
    }

    /// The same contract on the C team alone, with a callback that does nothing but count:
    /// the next loop starts within nanoseconds of the last, where the claim race was widest.
    /// Before the fix, 3 to 1,143 of 3-9 million loops of these sizes went wrong on 2 cores
    /// (small loops finish on the worker while the caller waits, so the worker's exit and the
    /// next loop's setup coincide).
    private static let kernelTally = Tally()
    private static let kernelLoopSizes = [2, 3, 64]

    func testKernelTeamRunsEveryIndexOfEveryLoopExactlyOnce() {
        // The loop's slot and size travel in the context word, so no Swift object is shared.
        let count: kv_team_fn = { context, index in
            let word = Int(bitPattern: context) - 1
            WorkerTeamTests.kernelTally.record(Int(index), loop: word >> 8, of: word & 0xFF)
        }
        var inexact = 0, refused = 0
        var sizes: [Int] = []
        sizes.reserveCapacity(Tally.loopsPerBatch)
        for loop in 0..<6_000_000 {
            let tasks = Self.kernelLoopSizes[loop % Self.kernelLoopSizes.count]
            let context = UnsafeMutableRawPointer(bitPattern: (sizes.count << 8 | tasks) + 1)
            sizes.append(tasks)
            if kv_team_run(count, context, tasks) != 0 { refused += 1 }
            if sizes.count == Tally.loopsPerBatch {
                inexact += Self.kernelTally.inexactLoopsAndReset(sizes: sizes)
                sizes.removeAll(keepingCapacity: true)
            }
        }
        inexact += Self.kernelTally.inexactLoopsAndReset(sizes: sizes)
        XCTAssertEqual(refused, 0, "no other caller holds the team")
        XCTAssertEqual(inexact, 0)
    }

    func testConcurrentCallersEachGetTheirOwnLoopsExactlyOnce() {
        // One caller holds the team, the others run on Dispatch's pool meanwhile.
        let callers = 3
        let inexact = Mutex([Int](repeating: -1, count: callers))
        DispatchQueue.concurrentPerform(iterations: callers) { caller in
            let count = Self.inexactLoops(200_000)
            inexact.withLock { $0[caller] = count }
        }
        XCTAssertEqual(inexact.withLock { $0 }, [Int](repeating: 0, count: callers))
    }

    func testLoopsOfNoneAndOneTaskRunInline() {
        let tally = Tally()
        WorkerTeam.run(tasks: 0) { tally.record($0, loop: 0, of: 0) }
        WorkerTeam.run(tasks: 1) { tally.record($0, loop: 1, of: 1) }
        XCTAssertEqual(tally.inexactLoopsAndReset(sizes: [0, 1]), 0)
    }
}
