import CKernels

/// How rotary embedding pairs dimensions within a head.
public enum RopeStyle: String, Sendable, Codable {
    /// llama.cpp "normal": pairs (2i, 2i+1). GGUF llama Q/K weights are permuted for it.
    case normal
    /// GPT-NeoX: pairs (i, i + nRot/2). Used by qwen2 and gemma3.
    case neox
}

/// The gated MLP's activation: `act(W_gate x) ⊙ W_up x`.
public enum Activation: String, Sendable, Codable {
    /// SiLU (SwiGLU): llama, qwen2.
    case silu
    /// GELU, tanh approximation as ggml computes it (GeGLU): gemma3.
    case geluTanh
}

extension Activation {
    /// `act(gate) ⊙ up` of `rows` rows of `n` (gate and up rows `ld` floats apart) as 16-bit codes,
    /// output rows `ldo` blocks apart (`kv_silu_mul_q16`, `kv_gelu_mul_q16`).
    func gatedCodes(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, rows: Int, n: Int, ld: Int,
                    into out: UnsafeMutablePointer<kv_q16_block>, ldo: Int) {
        switch self {
        case .silu: kv_silu_mul_q16(gate, up, rows, n, ld, out, ldo)
        case .geluTanh: kv_gelu_mul_q16(gate, up, rows, n, ld, out, ldo)
        }
    }
}

/// What one transformer family does differently, in one place: the metadata keys it reads
/// beyond the common `{arch}.*` ones, the tensors its blocks hold, the order of operations
/// in a block and the attention settings of each layer. `ModelConfig` reads a GGUF through
/// it, `ModelWeights` loads the tensors it names and `Forward` runs the block it describes.
///
/// Every block is `x += post?(attn(norm(x)))`, then `x += post?(mlp(norm(x)))`, where
/// attention is `Wq, Wk, Wv (+ bias)`, optional RMS-norm of each Q and K head, RoPE,
/// softmax attention (causal, or a sliding window on some layers), `Wo`.
public struct Architecture: Sendable, Hashable, Codable {
    /// `general.architecture`.
    public let name: String
    public let ropeStyle: RopeStyle
    /// Q, K and V projections carry a bias (`blk.N.attn_{q,k,v}.bias`).
    public let qkvBias: Bool
    /// Each Q and K head is RMS-normed before RoPE (`attn_q_norm`, `attn_k_norm`).
    public let qkNorm: Bool
    /// The attention and MLP outputs are RMS-normed before the residual add
    /// (`post_attention_norm`, `post_ffw_norm`).
    public let postNorms: Bool
    public let activation: Activation
    /// Token embeddings are multiplied by `sqrt(dim)` (in f32) before the first block.
    public let scalesEmbeddings: Bool
    /// Layers slide unless the GGUF says otherwise: layer il slides when
    /// `il % period < period - 1` (llama.cpp's `set_swa_pattern`), given
    /// `{arch}.attention.sliding_window`. Nil: every layer is global.
    public let slidingPeriod: Int?

    /// Llama 2/3, SmolLM2, TinyLlama, Mistral.
    public static let llama = Architecture(name: "llama", ropeStyle: .normal, qkvBias: false, qkNorm: false,
                                           postNorms: false, activation: .silu, scalesEmbeddings: false,
                                           slidingPeriod: nil)
    /// Qwen2: llama with QKV bias and NEOX RoPE.
    public static let qwen2 = Architecture(name: "qwen2", ropeStyle: .neox, qkvBias: true, qkNorm: false,
                                           postNorms: false, activation: .silu, scalesEmbeddings: false,
                                           slidingPeriod: nil)
    /// Gemma 3 (text), as llama.cpp's `src/models/gemma3.cpp` runs it: QK-norm, pre- and
    /// post-norms, GeGLU, embeddings × sqrt(dim), NEOX RoPE, five sliding layers in six
    /// with their own RoPE base (`rope.freq_base_swa`, default 10,000).
    public static let gemma3 = Architecture(name: "gemma3", ropeStyle: .neox, qkvBias: false, qkNorm: true,
                                            postNorms: true, activation: .geluTanh, scalesEmbeddings: true,
                                            slidingPeriod: 6)

    /// Every architecture the engine runs, by `general.architecture`.
    public static let registry: [String: Architecture] = Dictionary(
        uniqueKeysWithValues: [llama, qwen2, gemma3].map { ($0.name, $0) })

    /// The names in `registry`, sorted.
    public static var supportedNames: [String] { registry.keys.sorted() }

    /// The architecture called `name`, or `EngineError.unsupportedArchitecture`.
    public static func named(_ name: String) throws -> Architecture {
        guard let a = registry[name] else { throw EngineError.unsupportedArchitecture(name) }
        return a
    }

    /// The attention settings of every layer, from the GGUF metadata of this architecture.
    func layerAttention(gguf: GGUFFile, layers: Int, headDim: Int, dim: Int, heads: Int,
                        ropeBase: Double) throws -> [LayerAttention] {
        // llama.cpp's f_attention_scale: gemma3's 62-layer 27B scales by its model width per
        // head instead of key_length (query_pre_attn_scalar); every other model by key_length.
        let scaleDim = self == .gemma3 && layers == 62 ? Double(dim / heads) : Double(headDim)
        let scale = Float(1 / scaleDim.squareRoot())
        let global = LayerAttention(window: nil, ropeBase: ropeBase, scale: scale)
        guard let period = slidingPeriod, let window = gguf["\(name).attention.sliding_window"]?.int, window > 0 else {
            return Array(repeating: global, count: layers)
        }
        let local = LayerAttention(window: window, ropeBase: gguf["\(name).rope.freq_base_swa"]?.double ?? 10000,
                                   scale: scale)
        let pattern: [Bool]
        if let list = gguf["\(name).attention.sliding_window_pattern"]?.array {
            pattern = list.map { $0.int.map { $0 != 0 } ?? ($0.bool ?? false) }
            guard pattern.count == layers else {
                throw EngineError.badConfig("\(name).attention.sliding_window_pattern has \(pattern.count) entries for \(layers) layers")
            }
        } else {
            let n = gguf["\(name).attention.sliding_window_pattern"]?.int ?? period
            pattern = (0..<layers).map { n == 0 || $0 % n < n - 1 }
        }
        return pattern.map { $0 ? local : global }
    }
}

/// How one layer attends.
public struct LayerAttention: Sendable, Hashable, Codable {
    /// Keys a query sees, itself included (llama.cpp: key p0 is hidden from query p1 when
    /// `p1 - p0 >= window`), or nil for all earlier positions.
    public var window: Int?
    /// RoPE frequency base of this layer.
    public var ropeBase: Double
    /// Factor of `q . k` before the softmax.
    public var scale: Float
}
