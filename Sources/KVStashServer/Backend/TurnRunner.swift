import Foundation
import Logging
import Synchronization

/// Runs the blocking model work of one request on a thread of `WorkThreads` (its own while it
/// runs), holding the shared `FairTurn`, and streams the text it produces back to async code.
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

    /// Stack of the work threads (the forward pass keeps its buffers on the heap).
    static let stackSize = 8 << 20

    private static let logger = Logger(label: "kvstash.server")

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
        try await run(turn: turn, onPiece: onPiece) { emit, _ in try work(emit) }
    }

    /// Hands the work's result to the caller before the work ends. The first call wins; the
    /// piece stream ends with it.
    final class Answer<R: Sendable>: Sendable {
        private let waiting: Mutex<CheckedContinuation<R, any Error>?>
        private let pieces: @Sendable () -> Void

        fileprivate init(_ waiting: CheckedContinuation<R, any Error>, endPieces: @escaping @Sendable () -> Void) {
            self.waiting = Mutex(waiting)
            self.pieces = endPieces
        }

        /// Ends the piece stream (after the pieces handed over so far) and resumes the caller
        /// with `outcome`; does nothing after the first call. Returns whether it answered.
        @discardableResult
        func callAsFunction(_ outcome: Result<R, any Error>) -> Bool {
            guard let caller = waiting.withLock({ w in defer { w = nil }; return w }) else { return false }
            pieces()
            caller.resume(with: outcome)
            return true
        }
    }

    /// The form whose work may answer early: `answer(result)` returns `result` from `run`
    /// while the work goes on, holding the turn, with what it does after the answer (a
    /// request keeping its prompt for later ones). A work that returns or throws without
    /// answering answers with that; an error it throws after answering is logged (`run` has
    /// returned).
    static func run<Piece: Sendable, R: Sendable>(
        turn: FairTurn,
        onPiece: @Sendable (Piece) async -> Bool,
        work: @escaping @Sendable (_ emit: Emitter<Piece>, _ answer: Answer<R>) throws -> R
    ) async throws -> R {
        let stop = StopFlag()
        let (pieces, continuation) = AsyncStream.makeStream(of: Piece.self)
        let emit = Emitter(continuation: continuation, turn: turn, stop: stop)
        return try await withTaskCancellationHandler {
            async let result: R = withCheckedThrowingContinuation { (c: CheckedContinuation<R, any Error>) in
                let answer = Answer(c, endPieces: { continuation.finish() })
                WorkThreads.shared.start {
                    let outcome = Result { try turn.withTurn { try work(emit, answer) } }
                    if !answer(outcome), case .failure(let error) = outcome {
                        logger.error("request work failed after its answer", metadata: ["error": "\(error)"])
                    }
                }
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
