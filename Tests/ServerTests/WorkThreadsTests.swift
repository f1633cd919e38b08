import Dispatch
import Foundation
import Synchronization
import XCTest
@testable import KVStashServer

/// The pool of long-lived threads that requests' model work runs on.
final class WorkThreadsTests: XCTestCase {
    /// The calling thread's identity, as a number a `Sendable` closure can hand back.
    private static func threadID() -> UInt { UInt(bitPattern: ObjectIdentifier(Thread.current).hashValue) }

    /// Waits (up to 10 s) until `condition` holds.
    private static func waitUntil(_ condition: () -> Bool) {
        let deadline = Date().addingTimeInterval(10)
        while !condition() && Date() < deadline { usleep(100) }
    }

    /// Starts `jobs` jobs on `pool` that each wait until all have started (only possible on
    /// that many threads), then hand back their thread's identity; returns those identities
    /// once every job has ended, and how many jobs had started.
    private static func jobsWaitingForEachOther(_ pool: WorkThreads, _ jobs: Int) -> (ids: Set<UInt>, arrived: Int) {
        let arrived = Atomic<Int>(0)
        let done = DispatchSemaphore(value: 0)
        let ids = Mutex<Set<UInt>>([])
        for _ in 0..<jobs {
            pool.start {
                arrived.add(1, ordering: .acquiringAndReleasing)
                waitUntil { arrived.load(ordering: .acquiring) >= jobs }
                ids.withLock { _ = $0.insert(threadID()) }
                done.signal()
            }
        }
        for _ in 0..<jobs { XCTAssertEqual(done.wait(timeout: .now() + 20), .success) }
        return (ids.withLock { $0 }, arrived.load(ordering: .acquiring))
    }

    /// A job that comes once the last one's thread is idle again runs on that thread: the pool
    /// keeps it between them. (One that comes while the thread still finishes gets a new one:
    /// a request's thread goes on keeping its prompt after its answer.)
    func testSequentialJobsReuseTheIdleThread() throws {
        let pool = WorkThreads(stackSize: 1 << 20, keptIdle: 4)
        var seen = Set<UInt>()
        for _ in 0..<20 {
            seen.insert(try pool.run { Self.threadID() })
            Self.waitUntil { pool.idleCount >= 1 }
        }
        XCTAssertEqual(seen.count, 1, "sequential jobs should find the idle thread")
        XCTAssertEqual(pool.threadCount, 1)
    }

    /// Jobs that wait for each other all run at once: none waits for another's thread, so a
    /// pool of busy threads never deadlocks a request behind another.
    func testConcurrentJobsEachGetAThread() throws {
        let pool = WorkThreads(stackSize: 1 << 20, keptIdle: 8)
        let (ids, arrived) = Self.jobsWaitingForEachOther(pool, 6)
        XCTAssertEqual(arrived, 6)
        XCTAssertEqual(ids.count, 6)
        XCTAssertEqual(pool.threadCount, 6)
    }

    /// Past `keptIdle` idle threads the others end; what is kept serves the next jobs.
    func testIdleThreadsBeyondTheLimitEnd() throws {
        let pool = WorkThreads(stackSize: 1 << 20, keptIdle: 2)
        XCTAssertEqual(Self.jobsWaitingForEachOther(pool, 5).arrived, 5)
        Self.waitUntil { pool.threadCount <= 2 && pool.idleCount >= 2 }
        XCTAssertEqual(pool.threadCount, 2)
        XCTAssertEqual(pool.idleCount, 2)
        XCTAssertEqual(try pool.run { 7 }, 7)
        XCTAssertEqual(pool.threadCount, 2, "a kept thread took the job")
    }

    struct Failure: Error {}

    /// `run` hands back the job's error.
    func testRunRethrows() {
        let pool = WorkThreads(stackSize: 1 << 20, keptIdle: 1)
        XCTAssertThrowsError(try pool.run { () throws -> Int in throw Failure() }) { XCTAssertTrue($0 is Failure) }
    }
}
