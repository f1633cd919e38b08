import ArgumentParser
import KVStashEngine

extension PrefillInputs: ExpressibleByArgument {}

/// `--prefill-inputs`, shared by the commands that run the model (serve, query, precompute,
/// generate).
struct PrefillInputOptions: ParsableArguments {
    @Option(name: .customLong("prefill-inputs"),
            help: "Bits of the input codes of prompt products on AVX-512 VNNI CPUs: 16 (default; greedy answers equal the float64 reference's) or 8 (llama.cpp's input precision: about 1.5x faster prefill, mean KL about 2e-3; its chunks are keyed apart from 16-bit ones).")
    var prefillInputs: PrefillInputs = .sixteen
}
