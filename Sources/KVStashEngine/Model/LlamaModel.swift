import CKernels
import KVStashCore

/// A decoder-only transformer of one of the `Architecture.registry` families (llama, qwen2,
/// gemma3) loaded from GGUF, running on CPU.
///
/// The model is immutable and shareable across threads; all sequence state lives in
/// the explicit `KVCache` the caller passes in. Products of more than one row take integer
/// codes packed at load where the CPU has AVX-512 VNNI or AVX2 (`PackedProduct`), else f32
/// copies for BLAS above 32 rows; decode (and, without them, up to 32 rows) multiplies the
/// GGUF-encoded weights with `CKernels/matvec.c`.
public final class LlamaModel: Sendable {
    public let config: ModelConfig
    public let gguf: GGUFFile
    let weights: ModelWeights
    /// RoPE of every layer for every position of the context (up to `rotaryTablePositions`), built once.
    public let rotary: RotaryTables
    /// Forward chunks' activations, kept between calls.
    let scratch: ActivationScratch
    /// A name for numerics that differ from the default by more than rounding, which chunk
    /// keys fold in so that such KV never meets the default's (nil for the default):
    /// "prefill-inputs-8" when products of more than one row take 8-bit input codes.
    public let numericsTag: String?
    /// Whether a position's KV and logits are the same bits however the positions around it
    /// are batched: a prefill of any length, a prefill continuing a cached prefix, or decode
    /// one token at a time. True where every matrix of the blocks takes the packed product on
    /// 16-bit inputs for more than one row and its steps for one (AVX-512 VNNI; on AVX2 the
    /// matrices with interleaved copies only, Q4_1, Q8_0 and Q5_0) and attention the BLAS-free
    /// kernel (AVX-512 or AVX2); then an answer from cached KV (a lossless
    /// codec, or the RAM tier) equals the answer without it, token for token. Elsewhere the
    /// two differ by float rounding (BLAS and the encoded kernels sum in other orders).
    public let batchInvariant: Bool

    /// Positions covered by the prebuilt RoPE table; longer contexts get per-call tables.
    static let rotaryTablePositions = 32768

    /// Tokens processed per forward chunk; bounds activation memory for long prompts.
    public static let chunkSize = 512

    /// Rows from which the element-wise kernels between products (norms, gated activation,
    /// residual) split over the worker team.
    static let rowSliceMinimum = 32

    /// Opens and loads the GGUF model at `path`.
    public convenience init(path: String, prefillInputs: PrefillInputs = .sixteen) throws {
        try self.init(gguf: GGUFFile(path: path), prefillInputs: prefillInputs)
    }

    /// Loads the model in `gguf`, checking its architecture, tensor names and shapes.
    public init(gguf: GGUFFile, prefillInputs: PrefillInputs = .sixteen) throws {
        self.gguf = gguf
        config = try ModelConfig(gguf: gguf)
        weights = try ModelWeights(gguf: gguf, config: config, products: prefillInputs.productMode)
        rotary = config.rotaryTables(positions: 0..<min(config.contextLength, Self.rotaryTablePositions))
        scratch = ActivationScratch(config: config)
        let linears = weights.layers.flatMap { [$0.wqkv, $0.wo, $0.wGateUp, $0.wDown] } + [weights.output]
        numericsTag = linears.contains { $0.packed?.inputs == .eightBit } ? "prefill-inputs-8" : nil
        let c = config, group = c.heads / c.kvHeads
        let attentionAlike = CausalAttention.blockedPrefill && c.headDim % 16 == 0
            && c.headDim <= Int(KV_ATTEND_MAX_DIM) && group <= CausalAttention.stackedTile
        // With 16-bit packed products and the default decode input, one row takes the packed
        // product or an interleaved kernel, which takes its steps (`Linear.batchInvariant`).
        batchInvariant = attentionAlike && linears.dropLast().allSatisfy(\.batchInvariant)
    }

    /// An empty cache of this model's KV shape, rotating K spliced into it by each layer's RoPE.
    public func newCache(capacity: Int = 0) -> KVCache {
        KVCache(shape: config.kvShape, capacity: capacity, rotation: rotary)
    }

    /// Appends `tokens` at positions `cache.count...` and returns the logits of the last
    /// position (`vocabSize` floats), or of every position (`[tokens.count][vocabSize]`
    /// flattened) when `allLogits`.
    /// Long inputs run in chunks of `chunkSize` tokens.
    public func prefill(_ tokens: [Int], cache: inout KVCache, allLogits: Bool = false) throws -> [Float] {
        try validate(tokens, cache: cache)
        cache.reserve(cache.count + tokens.count)
        var all: [Float] = []
        if allLogits { all.reserveCapacity(tokens.count * config.vocabSize) }
        var last: [Float] = []
        BLASWorkers.run {
            var start = 0
            while start < tokens.count {
                let end = min(start + Self.chunkSize, tokens.count)
                let outputs: ForwardOutputs = allLogits ? .all : end == tokens.count ? .last : .none
                last = forward(tokens[start..<end], cache: &cache, outputs: outputs)
                if allLogits { all += last }
                start = end
            }
        }
        return allLogits ? all : last
    }

    /// Runs two tokens and a decode step (fewer in a context shorter than three) on a
    /// throwaway cache, so that a server's first request finds the worker team started, the
    /// kernels' symbols bound and the runtime's type metadata built (as serving engines warm
    /// up at start), and grows the attention scratch of the calling thread and the team's to
    /// their largest. Changes no state of the model.
    public func warmUp() throws {
        let last = config.vocabSize - 1, room = config.contextLength
        var cache = newCache(capacity: min(3, room))
        _ = try prefill(Array([0, min(1, last)].prefix(max(1, room - 1))), cache: &cache)
        if cache.count < room { _ = try decode(min(2, last), cache: &cache) }
        CausalAttention.prewarmThreadScratch(headDim: config.headDim)
    }

    /// Runs one decode step: appends `token` and returns the next-token logits.
    public func decode(_ token: Int, cache: inout KVCache) throws -> [Float] {
        try prefill([token], cache: &cache)
    }

    private func validate(_ tokens: [Int], cache: KVCache) throws {
        guard cache.shape == config.kvShape else {
            throw EngineError.cacheShapeMismatch(expected: "\(config.kvShape)", got: "\(cache.shape)")
        }
        guard !tokens.isEmpty else { throw EngineError.emptyInput }
        let needed = cache.count + tokens.count
        guard needed <= config.contextLength else {
            throw EngineError.contextOverflow(needed: needed, limit: config.contextLength)
        }
        if let bad = tokens.first(where: { $0 < 0 || $0 >= config.vocabSize }) {
            throw EngineError.tokenOutOfRange(token: bad, vocabSize: config.vocabSize)
        }
    }
}
