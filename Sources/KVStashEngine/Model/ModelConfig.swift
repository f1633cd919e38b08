import KVStashCore

/// Hyperparameters of a model, read from GGUF metadata through its `Architecture`.
public struct ModelConfig: Sendable, Hashable, Codable {
    public var architecture: String
    /// What the architecture's blocks do.
    public var block: Architecture
    public var vocabSize: Int
    /// Model (embedding) width.
    public var dim: Int
    public var layers: Int
    /// Query heads.
    public var heads: Int
    /// Key/value heads (GQA groups).
    public var kvHeads: Int
    public var headDim: Int
    /// Hidden width of the gated MLP.
    public var ffnDim: Int
    public var contextLength: Int
    /// RoPE base of the global (not sliding) layers.
    public var ropeBase: Double
    /// Leading dims of each head that RoPE rotates (usually `headDim`).
    public var ropeDims: Int
    public var ropeStyle: RopeStyle
    public var rmsEps: Float
    /// True when the output head reuses the token embedding.
    public var tiedEmbeddings: Bool
    /// True when Q, K and V projections carry a bias (qwen2).
    public var qkvBias: Bool { block.qkvBias }
    /// How each layer attends: window, RoPE base, score scale.
    public var layerAttention: [LayerAttention]
    /// Factor of the token embeddings before the first block (1 unless the architecture scales them).
    public var embeddingScale: Float
    /// Final logits become `cap * tanh(logits / cap)` when set (`{arch}.final_logit_softcapping`).
    public var finalLogitSoftcap: Float?

    /// Shape of the KV this model produces per position.
    public var kvShape: KVShape { KVShape(layers: layers, kvHeads: kvHeads, headDim: headDim) }
    /// Width of all query heads.
    public var qDim: Int { heads * headDim }
    /// Width of one K or V row.
    public var kvDim: Int { kvHeads * headDim }

    /// Architectures this engine runs.
    public static var supportedArchitectures: [String] { Architecture.supportedNames }

    /// Reads the configuration of `gguf`, checking it is a supported, consistent model.
    public init(gguf: GGUFFile) throws {
        let arch = try gguf.string("general.architecture")
        block = try Architecture.named(arch)
        architecture = arch
        func int(_ k: String) throws -> Int { try gguf.int("\(arch).\(k)") }
        func optInt(_ k: String) throws -> Int? { gguf["\(arch).\(k)"] == nil ? nil : try int(k) }
        dim = try int("embedding_length")
        layers = try int("block_count")
        heads = try int("attention.head_count")
        kvHeads = try optInt("attention.head_count_kv") ?? heads
        ffnDim = try int("feed_forward_length")
        contextLength = try int("context_length")
        guard heads > 0, kvHeads > 0, dim > 0, layers > 0, ffnDim > 0, contextLength > 0 else {
            throw EngineError.badConfig("non-positive dimension in \(arch).* metadata")
        }
        headDim = try optInt("attention.key_length") ?? dim / heads
        ropeDims = try optInt("rope.dimension_count") ?? headDim
        ropeBase = gguf["\(arch).rope.freq_base"]?.double ?? 10000
        rmsEps = Float(gguf["\(arch).attention.layer_norm_rms_epsilon"]?.double ?? 1e-5)
        ropeStyle = block.ropeStyle
        if let scaling = gguf["\(arch).rope.scaling.type"]?.string, scaling != "none" {
            throw EngineError.badConfig("RoPE scaling '\(scaling)' is not supported")
        }
        layerAttention = try block.layerAttention(gguf: gguf, layers: layers, headDim: headDim, dim: dim, heads: heads,
                                                  ropeBase: ropeBase)
        embeddingScale = block.scalesEmbeddings ? Float(dim).squareRoot() : 1
        finalLogitSoftcap = (gguf["\(arch).final_logit_softcapping"]?.double).map(Float.init)
        guard let embd = gguf.tensorInfo("token_embd.weight") else { throw GGUFError.missingTensor("token_embd.weight") }
        vocabSize = try optInt("vocab_size") ?? (embd.dims.count == 2 ? embd.dims[1] : 0)
        tiedEmbeddings = gguf.tensorInfo("output.weight") == nil
        try validate()
    }

    private func validate() throws {
        guard heads % kvHeads == 0 else { throw EngineError.badConfig("\(heads) heads is not a multiple of \(kvHeads) KV heads") }
        guard headDim > 0, ropeDims > 0, ropeDims <= headDim, ropeDims % 2 == 0 else {
            throw EngineError.badConfig("RoPE dims \(ropeDims) invalid for head dim \(headDim)")
        }
        guard vocabSize > 0 else { throw EngineError.badConfig("vocabulary size is 0") }
    }
}

extension ModelConfig {
    /// This model's RoPE for `positions`: one table per distinct base, each layer on its own.
    func rotaryTables(positions: Range<Int>) -> RotaryTables {
        let bases = Array(Set(layerAttention.map(\.ropeBase))).sorted()
        let style: RotaryTable.Style = ropeStyle == .neox ? .halves : .adjacent
        return RotaryTables(tables: bases.map { RotaryTable(positions: positions, ropeDims: ropeDims, base: $0, style: style) },
                            tableOfLayer: layerAttention.map { bases.firstIndex(of: $0.ropeBase)! })
    }
}
