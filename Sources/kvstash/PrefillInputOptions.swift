import ArgumentParser
import KVStash
import KVStashEngine

extension PrefillInputs: ExpressibleByArgument {}

/// `--prefill-inputs`, shared by the commands that run the model (serve, query, precompute,
/// generate).
struct PrefillInputOptions: ParsableArguments {
    @Option(name: .customLong("prefill-inputs"),
            help: "Bits of the input codes of prompt products on AVX-512 VNNI CPUs: 16 (greedy answers equal the float64 reference's) or 8 (llama.cpp's input precision: about 1.5x faster prefill, mean KL about 2e-3; its chunks are keyed apart from 16-bit ones). Default: the store's (what precompute used), else 16.")
    var prefillInputs: PrefillInputs?

    /// The flag, else what the store's documents were computed with, else 16 bits.
    func resolved(_ settings: StoreSettings?) -> PrefillInputs {
        prefillInputs ?? settings?.prefillInputs.flatMap(PrefillInputs.init(rawValue:)) ?? .sixteen
    }
}
