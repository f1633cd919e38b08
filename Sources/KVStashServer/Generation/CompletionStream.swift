import Synchronization

/// What a running generation hands the HTTP layer.
enum GenerationEvent: Sendable {
    /// Text that is final (no stop sequence can start in it).
    case text(String)
    /// The generation ended.
    case done(CompletionUsage)
}

/// Runs one prepared completion in its own task and streams its events.
///
/// The backend's `onToken` never waits on the HTTP client: pieces go into the stream's
/// buffer, which is bounded by `max_tokens` pieces, so a slow reader only grows its own
/// buffer and never holds the model. Cancelling the run (client gone) cancels the task,
/// which the backend observes between model steps.
final class CompletionStream: Sendable {
    let events: AsyncThrowingStream<GenerationEvent, any Error>
    private let task: Task<Void, Never>

    private final class State: Sendable {
        struct Value {
            var matcher: StopMatcher
            var last: ContinuousClock.Instant
            var first = true
        }
        let value: Mutex<Value>
        init(_ v: Value) { value = Mutex(v) }
    }

    /// Starts generating. `arrival` is when the request arrived (TTFT is measured from it).
    init(backend: any CompletionBackend, prepared: PreparedCompletion, stops: [String],
         metrics: ServerMetrics, arrival: ContinuousClock.Instant) {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: GenerationEvent.self)
        let state = State(.init(matcher: StopMatcher(stops), last: arrival))
        events = stream
        task = Task {
            metrics.generationStarted()
            defer { metrics.generationEnded() }
            do {
                var usage = try await backend.generate(prepared) { piece in
                    if Task.isCancelled { return false }
                    let (out, stopped) = state.value.withLock { s -> (String, Bool) in
                        let now = ContinuousClock.now
                        if s.first { metrics.recordTTFT(now - s.last) } else { metrics.recordTokenGap(now - s.last) }
                        s.first = false
                        s.last = now
                        return (s.matcher.feed(piece), s.matcher.stopped)
                    }
                    if !out.isEmpty { continuation.yield(.text(out)) }
                    return !stopped
                }
                let (tail, stopped) = state.value.withLock { ($0.matcher.finish(), $0.matcher.stopped) }
                if !tail.isEmpty { continuation.yield(.text(tail)) }
                if stopped { usage.finishReason = .stop }
                continuation.yield(.done(usage))
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        let task = self.task
        continuation.onTermination = { _ in task.cancel() }
    }

    /// Stops the generation (the client went away).
    func cancel() { task.cancel() }

    /// Returns when the generation has ended (its KV is freed).
    func finished() async { await task.value }

    /// Collects the whole text and the usage (non-streaming answers).
    func collect() async throws -> (text: String, usage: CompletionUsage) {
        var text = ""
        for try await event in events {
            switch event {
            case .text(let t): text += t
            case .done(let usage): return (text, usage)
            }
        }
        throw CancellationError()
    }
}
