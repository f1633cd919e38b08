import Dispatch
import Synchronization
import XCTest
@testable import KVStashServer

/// The early answer of `TurnRunner` (a request answers, then keeps its prompt holding the
/// turn) and the `KeepLedger` that readers wait on.
final class TurnRunnerTests: XCTestCase {
    final class Pieces: Sendable {
        let seen = Mutex<[String]>([])
    }

    /// `run` returns the answer, after every piece handed over before it, while the work is
    /// still running and holding the turn; the turn is free once the work ends.
    func testAnswerReturnsWhileTheWorkGoesOnHoldingTheTurn() async throws {
        let turn = FairTurn()
        let release = DispatchSemaphore(value: 0)
        let ended = Atomic<Bool>(false)
        let pieces = Pieces()
        let result = try await TurnRunner.run(turn: turn, onPiece: { (p: String) in
            pieces.seen.withLock { $0.append(p) }
            return true
        }) { emit, answer -> Int in
            _ = emit("a")
            _ = emit("b")
            answer(.success(42))
            release.wait()          // the keeping after the answer
            ended.store(true, ordering: .releasing)
            return 7                // not seen: the answer was 42
        }
        XCTAssertEqual(result, 42)
        XCTAssertEqual(pieces.seen.withLock { $0 }, ["a", "b"])
        XCTAssertFalse(ended.load(ordering: .acquiring), "the work is still keeping")
        let taken = Atomic<Bool>(false)
        let waiter = Thread { turn.withTurn { taken.store(true, ordering: .releasing) } }
        waiter.start()
        try await Task.sleep(for: .milliseconds(50))
        XCTAssertFalse(taken.load(ordering: .acquiring), "the work holds the turn until it ends")
        release.signal()
        for _ in 0..<200 where !taken.load(ordering: .acquiring) { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertTrue(ended.load(ordering: .acquiring))
        XCTAssertTrue(taken.load(ordering: .acquiring), "the turn is free once the work ends")
    }

    struct Failure: Error {}

    /// Without an early answer the work's return value or error is the answer.
    func testWorkThatDoesNotAnswerEarlyAnswersWithItsEnd() async throws {
        let turn = FairTurn()
        let value = try await TurnRunner.run(turn: turn, onPiece: { (_: String) in true }) { _, _ -> Int in 5 }
        XCTAssertEqual(value, 5)
        do {
            _ = try await TurnRunner.run(turn: turn, onPiece: { (_: String) in true }) { _, _ -> Int in throw Failure() }
            XCTFail("the work's error should reach the caller")
        } catch is Failure {}
        // An error after the answer stays with the work: the caller has its answer.
        let answered = try await TurnRunner.run(turn: turn, onPiece: { (_: String) in true }) { _, answer -> Int in
            answer(.success(1))
            throw Failure()
        }
        XCTAssertEqual(answered, 1)
    }

    /// `settled` waits for the keeping of requests answered before the call, not after it.
    func testLedgerSettlesWhenEveryEarlierAnswerIsKept() async throws {
        let ledger = KeepLedger()
        await ledger.settled()   // nothing pending: returns at once
        ledger.answered()
        ledger.answered()
        let done = Atomic<Bool>(false)
        let waiter = Task {
            await ledger.settled()
            done.store(true, ordering: .releasing)
        }
        for _ in 0..<500 where ledger.waiting == 0 { try await Task.sleep(for: .milliseconds(2)) }
        XCTAssertEqual(ledger.waiting, 1)
        ledger.answered()        // after the call: not waited for
        ledger.kept()
        try await Task.sleep(for: .milliseconds(30))
        XCTAssertFalse(done.load(ordering: .acquiring), "one earlier answer is still being kept")
        XCTAssertEqual(ledger.pending, 2)
        ledger.kept()
        await waiter.value
        XCTAssertTrue(done.load(ordering: .acquiring))
        XCTAssertEqual(ledger.pending, 1)
        ledger.kept()
        XCTAssertEqual(ledger.pending, 0)
    }
}
