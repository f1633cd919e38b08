/// The inputs KVStash takes from outside its process, each with a one-input harness for
/// coverage-guided fuzzing (`scripts/fuzz.sh`, libFuzzer) and for replaying a corpus in the
/// tests (`Tests/FuzzingTests`).
///
/// A harness returns nil when the input was handled as the product must handle it (accepted,
/// or refused with a typed error that leaves nothing behind) and a description of the
/// violation otherwise. A crash, trap or sanitizer report inside the harness is a finding too.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// A KV block read from the store or the shared tier, its checksums resealed so that a
    /// mutation reaches the frame and the section decoders (a peer that writes the shared tier
    /// can forge them).
    case block
    /// Bytes from a Redis server, as one buffer and as the same bytes arriving in pieces.
    case resp
    /// A model file: the GGUF reader, the architecture's configuration, the tokenizer's
    /// vocabulary, the weights, and one forward pass of a model that loads.
    case gguf
    /// Text from a client, through the tokenizer of the model at `KVSTASH_FUZZ_MODEL` (else
    /// `KVSTASH_MODEL`; without either every input passes).
    case tokenizer
    /// A client's request body for a completion, chat or precompute route, decoded and checked
    /// as the server does before its backend sees it.
    case request

    /// Runs one input through the harness.
    public func run(_ input: [UInt8]) -> String? {
        switch self {
        case .block: return BlockHarness.run(input)
        case .resp: return RESPHarness.run(input)
        case .gguf: return GGUFHarness.run(input)
        case .tokenizer: return TokenizerHarness.run(input)
        case .request: return RequestHarness.run(input)
        }
    }

    /// Valid inputs to start a corpus from, made by the product's own writers.
    public func seeds() throws -> [[UInt8]] {
        switch self {
        case .block: return try BlockHarness.seeds()
        case .resp: return RESPHarness.seeds()
        case .gguf: return try GGUFHarness.seeds()
        case .tokenizer: return TokenizerHarness.seeds()
        case .request: return RequestHarness.seeds()
        }
    }
}
