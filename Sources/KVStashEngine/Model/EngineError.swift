/// Errors raised by the model while loading or running.
public enum EngineError: Error, CustomStringConvertible, Equatable {
    /// The GGUF's `general.architecture` is not one this engine runs.
    case unsupportedArchitecture(String)
    /// The hyperparameters in the metadata are inconsistent.
    case badConfig(String)
    /// Appending the tokens would exceed the model's context length.
    case contextOverflow(needed: Int, limit: Int)
    /// A token id is outside `0..<vocabSize`.
    case tokenOutOfRange(token: Int, vocabSize: Int)
    /// `prefill` was called with no tokens.
    case emptyInput
    /// The cache was made for a model of a different shape.
    case cacheShapeMismatch(expected: String, got: String)

    public var description: String {
        switch self {
        case let .unsupportedArchitecture(a):
            return "unsupported model architecture '\(a)' (supported: \(Architecture.supportedNames.joined(separator: ", ")))"
        case let .badConfig(why): return "bad model configuration: \(why)"
        case let .contextOverflow(needed, limit):
            return "context overflow: \(needed) tokens needed but the model's context length is \(limit)"
        case let .tokenOutOfRange(token, vocab):
            return "token id \(token) is out of range for a vocabulary of \(vocab)"
        case .emptyInput: return "prefill needs at least one token"
        case let .cacheShapeMismatch(e, g): return "KV cache shape mismatch: model has \(e), cache has \(g)"
        }
    }
}
