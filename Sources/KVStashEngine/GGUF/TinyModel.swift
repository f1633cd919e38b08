/// The shape of a tiny random-weight model for tests.
public struct TinyModelSpec: Sendable, Hashable {
    public var architecture = "llama"
    public var layers = 3
    public var dim = 64
    public var heads = 4
    public var kvHeads = 2
    public var ffnDim = 128
    public var vocabSize = 512
    public var contextLength = 512
    public var ropeBase = 10000.0
    public var rmsEps: Float = 1e-5
    /// Tie the output head to the token embedding (no `output.weight`).
    public var tiedEmbeddings = false
    /// Encode the matrices as Q5_0, Q5_1 and K-quants (rows must be multiples of 256).
    public var kQuantTypes = false
    /// gemma3 only: the sliding window (`attention.sliding_window`); layer il slides when il % 6 < 5.
    public var slidingWindow = 8
    public var seed: UInt64 = 42

    public init() {}

    /// The default llama-architecture tiny model.
    public static let llama = TinyModelSpec()
    /// A qwen2 variant: QKV bias, NEOX RoPE, tied embeddings.
    public static var qwen2: TinyModelSpec {
        var s = TinyModelSpec()
        s.architecture = "qwen2"
        s.tiedEmbeddings = true
        s.ropeBase = 1_000_000
        s.seed = 7
        return s
    }
    /// A gemma3 variant: QK-norm, post-norms, GeGLU, scaled embeddings, tied output, one KV
    /// head, and a window of 8 on layers 0-4 (layer 5 global) with RoPE bases 10,000 / 1e6.
    public static var gemma3: TinyModelSpec {
        var s = TinyModelSpec()
        s.architecture = "gemma3"
        s.layers = 6
        s.kvHeads = 1
        s.tiedEmbeddings = true
        s.ropeBase = 1_000_000
        s.rmsEps = 1e-6
        s.seed = 13
        return s
    }
    /// A llama variant whose matrices are Q4_K, Q5_K, Q6_K, Q5_0 and Q5_1, as the K-quant
    /// files people download mix them (rows of 256 and 512 for the K-quant blocks).
    public static var kQuants: TinyModelSpec {
        var s = TinyModelSpec()
        s.layers = 2
        s.dim = 256
        s.ffnDim = 512
        s.kQuantTypes = true
        s.seed = 11
        return s
    }
}

/// Writes deterministic random-weight Llama-family models as GGUF, for tests.
///
/// Tensor types are mixed (Q8_0 embedding, Q4_1/Q4_0/Q8_0/F16/BF16 matrices, or
/// Q4_K/Q5_K/Q6_K/Q5_0/Q5_1 ones with `kQuantTypes`; F32 norms and biases) so every
/// dequantization path runs. Weights are uniform with standard
/// deviation `1/sqrt(fan_in)`; the same spec and seed always give the same bytes.
public enum TinyModel {
    /// Writes the model for `spec` to `path`. When `tokenizerFrom` is given, its
    /// `tokenizer.*` metadata is copied and the vocabulary takes its size.
    public static func write(_ spec: TinyModelSpec = .llama, to path: String, tokenizerFrom: GGUFFile? = nil) throws {
        var s = spec
        var w = GGUFWriter()
        if let tok = tokenizerFrom, let tokens = tok["tokenizer.ggml.tokens"]?.array { s.vocabSize = tokens.count }
        metadata(s, &w)
        if let tok = tokenizerFrom {
            for (key, value) in tok.metadata where key.hasPrefix("tokenizer.") { w.set(key, value) }
        }
        try tensors(s, &w)
        try w.write(to: path)
    }

    private static func metadata(_ s: TinyModelSpec, _ w: inout GGUFWriter) {
        let a = s.architecture
        w.set("general.architecture", .string(a))
        w.set("general.name", .string("kvstash-tiny-\(a)"))
        w.set("general.alignment", .uint32(32))
        w.set("\(a).context_length", .uint32(UInt32(s.contextLength)))
        w.set("\(a).embedding_length", .uint32(UInt32(s.dim)))
        w.set("\(a).block_count", .uint32(UInt32(s.layers)))
        w.set("\(a).feed_forward_length", .uint32(UInt32(s.ffnDim)))
        w.set("\(a).attention.head_count", .uint32(UInt32(s.heads)))
        w.set("\(a).attention.head_count_kv", .uint32(UInt32(s.kvHeads)))
        w.set("\(a).rope.freq_base", .float32(Float(s.ropeBase)))
        w.set("\(a).rope.dimension_count", .uint32(UInt32(s.dim / s.heads)))
        w.set("\(a).attention.layer_norm_rms_epsilon", .float32(s.rmsEps))
        w.set("\(a).vocab_size", .uint32(UInt32(s.vocabSize)))
        if a == Architecture.gemma3.name {
            w.set("\(a).attention.sliding_window", .uint32(UInt32(s.slidingWindow)))
            w.set("\(a).attention.key_length", .uint32(UInt32(s.dim / s.heads)))
            w.set("\(a).attention.value_length", .uint32(UInt32(s.dim / s.heads)))
        }
    }

    private static func tensors(_ s: TinyModelSpec, _ w: inout GGUFWriter) throws {
        var rng = SplitMix64(seed: s.seed)
        let hd = s.dim / s.heads, q = s.heads * hd, kv = s.kvHeads * hd
        func matrix(_ name: String, out: Int, in k: Int, _ type: GGMLType, scale: Float? = nil) throws {
            let a = (scale ?? 1 / Float(k).squareRoot()) * Float(3).squareRoot()
            try w.addTensor(name, dims: [k, out], type: type, data: (0..<(out * k)).map { _ in rng.uniform(a) })
        }
        func vector(_ name: String, _ n: Int, center: Float, spread: Float) throws {
            try w.addTensor(name, dims: [n], type: .f32, data: (0..<n).map { _ in center + rng.uniform(spread) })
        }
        try matrix("token_embd.weight", out: s.vocabSize, in: s.dim, .q8_0, scale: 1)
        for i in 0..<s.layers {
            let p = "blk.\(i)."
            try vector(p + "attn_norm.weight", s.dim, center: 1, spread: 0.2)
            let kq = s.kQuantTypes
            try matrix(p + "attn_q.weight", out: q, in: s.dim, kq ? .q4_K : .q4_1)
            try matrix(p + "attn_k.weight", out: kv, in: s.dim, kq ? .q5_K : .f16)
            try matrix(p + "attn_v.weight", out: kv, in: s.dim, kq ? .q6_K : .q8_0)
            let arch = try Architecture.named(s.architecture)
            if arch.qkNorm {
                try vector(p + "attn_q_norm.weight", hd, center: 1, spread: 0.2)
                try vector(p + "attn_k_norm.weight", hd, center: 1, spread: 0.2)
            }
            if arch.postNorms {
                try vector(p + "post_attention_norm.weight", s.dim, center: 1, spread: 0.2)
                try vector(p + "post_ffw_norm.weight", s.dim, center: 1, spread: 0.2)
            }
            if arch.qkvBias {
                try vector(p + "attn_q.bias", q, center: 0, spread: 0.2)
                try vector(p + "attn_k.bias", kv, center: 0, spread: 0.2)
                try vector(p + "attn_v.bias", kv, center: 0, spread: 0.2)
            }
            try matrix(p + "attn_output.weight", out: s.dim, in: q, kq ? .q5_0 : .q4_0)
            try vector(p + "ffn_norm.weight", s.dim, center: 1, spread: 0.2)
            try matrix(p + "ffn_gate.weight", out: s.ffnDim, in: s.dim, kq ? .q5_1 : .bf16)
            try matrix(p + "ffn_up.weight", out: s.ffnDim, in: s.dim, kq ? .q4_K : .q4_1)
            try matrix(p + "ffn_down.weight", out: s.dim, in: s.ffnDim, kq ? .q6_K : .q8_0)
        }
        try vector("output_norm.weight", s.dim, center: 1, spread: 0.2)
        if !s.tiedEmbeddings { try matrix("output.weight", out: s.vocabSize, in: s.dim, s.kQuantTypes ? .q6_K : .f16) }
    }
}
