import Foundation
import Synchronization

/// Runs the blocking model work of one request on a thread of its own, holding the shared
/// `FairTurn`, and streams the text it produces back to async code.
///
/// The work gets an `emit` function to call with each new piece of text. `emit` hands the
/// piece over (never waiting for the HTTP client), passes the turn to the next waiting
/// request, and returns false once the consumer wants no more (stop sequence matched,
/// client gone, task cancelled): the work should then stop. Keeping model work on plain
/// threads keeps Swift's cooperative pool free for HTTP handling.
enum TurnRunner {
    /// A flag the consumer sets and the worker thread reads.
    fileprivate final class StopFlag: Sendable {
        let value = Atomic<Bool>(false)
    }

    /// Stack of the worker threads (the forward pass keeps its buffers on the heap).
    static let stackSize = 8 << 20

    static func run<R: Sendable>(
        turn: FairTurn,
        onToken: @Sendable (String) async -> Bool,
        work: @escaping @Sendable (_ emit: @escaping @Sendable (String) -> Bool) throws -> R
    ) async throws -> R {
        try await run(turn: turn, onPiece: onToken) { emit in
            try work { text in emit(text.isEmpty ? nil : text) }
        }
    }

    /// What the work hands its pieces to. `emit(piece)` hands a piece over (nil: none) and
    /// passes the turn; `send` and `pass` do the two apart, for work with more to do between
    /// them. Each returns false once the consumer wants no more.
    struct Emitter<Piece: Sendable>: Sendable {
        fileprivate let continuation: AsyncStream<Piece>.Continuation
        fileprivate let turn: FairTurn
        fileprivate let stop: StopFlag

        /// Hands `piece` over (nil: nothing) without passing the turn.
        func send(_ piece: Piece?) -> Bool {
            if let piece { continuation.yield(piece) }
            return !stop.value.load(ordering: .acquiring)
        }

        /// Lets every waiting request take a step first.
        @discardableResult
        func pass() -> Bool {
            turn.pass()
            return !stop.value.load(ordering: .acquiring)
        }

        func callAsFunction(_ piece: Piece?) -> Bool {
            _ = send(piece)
            return pass()
        }
    }

    /// The general form: pieces of any type; `emit(nil)` only passes the turn.
    static func run<Piece: Sendable, R: Sendable>(
        turn: FairTurn,
        onPiece: @Sendable (Piece) async -> Bool,
        work: @escaping @Sendable (_ emit: Emitter<Piece>) throws -> R
    ) async throws -> R {
        let stop = StopFlag()
        let (pieces, continuation) = AsyncStream.makeStream(of: Piece.self)
        let emit = Emitter(continuation: continuation, turn: turn, stop: stop)
        return try await withTaskCancellationHandler {
            async let result: R = withCheckedThrowingContinuation { (c: CheckedContinuation<R, any Error>) in
                let thread = Thread {
                    let outcome = Result { try turn.withTurn { try work(emit) } }
                    continuation.finish()
                    c.resume(with: outcome)
                }
                thread.stackSize = stackSize
                thread.start()
            }
            for await piece in pieces where !stop.value.load(ordering: .acquiring) {
                if await !onPiece(piece) { stop.value.store(true, ordering: .releasing) }
            }
            return try await result
        } onCancel: {
            stop.value.store(true, ordering: .releasing)
        }
    }
}
