import ArgumentParser
import KVStashEngine

/// Sampling and thread options shared by `generate` and `query` (greedy by default).
struct SamplingOptions: ParsableArguments {
    @Option(help: "Sampling temperature (0 = greedy).")
    var temp: Float = 0

    @Option(name: .customLong("top-k"), help: "Keep the K most likely tokens (0 = all).")
    var topK = 0

    @Option(name: .customLong("top-p"), help: "Nucleus sampling mass (1 = off).")
    var topP: Float = 1

    @Option(help: "Random seed for sampling.")
    var seed: UInt64 = 0

    @Option(help: "BLAS threads (default: OpenBLAS's choice).")
    var threads: Int?

    func validate() throws {
        guard temp >= 0, temp.isFinite else { throw ValidationError("--temp must be a number >= 0") }
        guard topK >= 0 else { throw ValidationError("--top-k must be >= 0") }
        guard topP > 0, topP <= 1 else { throw ValidationError("--top-p must be in (0, 1]") }
        if let threads, threads < 1 { throw ValidationError("--threads must be >= 1") }
    }

    /// The engine's sampling settings.
    var params: SamplingParams { SamplingParams(temperature: temp, topK: topK, topP: topP, seed: seed) }

    /// Applies `--threads` to the engine, if given.
    func applyThreads() {
        if let threads { setThreads(threads) }
    }
}
