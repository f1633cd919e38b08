/// The weights of one transformer block, dequantized to f32 row-major `[out][in]`
/// (the layout GGUF stores and `sgemm` reads as a transposed operand).
struct LayerWeights: Sendable {
    let attnNorm: [Float]
    /// RMS-norm weights of each Q and K head (`headDim` each), when the architecture has QK-norm.
    let qNorm: [Float]?
    let kNorm: [Float]?
    /// RMS-norm weights of the attention and MLP outputs, when the architecture has post-norms.
    let postAttnNorm: [Float]?
    let postFfnNorm: [Float]?
    /// Q, K and V projections stacked: `[(qDim + 2 kvDim)][dim]`.
    let wqkv: Linear
    /// Q, K and V biases stacked (qwen2), else nil.
    let bqkv: [Float]?
    /// Attention output projection `[dim][qDim]`.
    let wo: Linear
    let ffnNorm: [Float]
    /// Gate and up projections stacked: `[2 ffnDim][dim]`.
    let wGateUp: Linear
    /// Down projection `[dim][ffnDim]`.
    let wDown: Linear
}

/// All weights of the model.
struct ModelWeights: Sendable {
    /// `[vocab][dim]`, rows dequantized from the encoded table as they are looked up.
    let tokenEmbedding: EmbeddingRows
    let layers: [LayerWeights]
    let outputNorm: [Float]
    /// The output head `[vocab][dim]` (the token embedding when tied).
    let output: Linear

    /// Loads and dequantizes (or packs, `products`) every tensor of `gguf`, checking names
    /// and shapes against `c`.
    init(gguf: GGUFFile, config c: ModelConfig, products: PackedProduct.Mode = PackedProduct.mode) throws {
        let loader = WeightLoader(gguf: gguf, products: products)
        outputNorm = try loader.load(["output_norm.weight"], rows: [1], cols: c.dim)
        // A tied head multiplies the encoded table (decode's last row, and every row of a
        // scoring prefill in tiles of 32, `Linear.apply`), and the lookups share its
        // interleaved copy; an f32 copy only where rows do not tile by 32.
        let embedding = try loader.checked(["token_embd.weight"], rows: [c.vocabSize], colsEach: [c.dim])
        let table = EncodedMatrix(info: embedding[0], gguf: gguf)
        tokenEmbedding = try EmbeddingRows(table, gguf: gguf)
        output = c.tiedEmbeddings
            ? Linear(dense: c.dim % 32 == 0 ? [] : try loader.load(["token_embd.weight"], rows: [c.vocabSize], cols: c.dim),
                     packed: nil, parts: [table], outDim: c.vocabSize, inDim: c.dim, gguf: gguf)
            : try loader.linear(["output.weight"], rows: [c.vocabSize], cols: c.dim)
        let a = c.block
        layers = try (0..<c.layers).map { i in
            func n(_ s: String) -> String { "blk.\(i).\(s).weight" }
            func b(_ s: String) -> String { "blk.\(i).\(s).bias" }
            func norm(_ s: String, _ present: Bool, _ width: Int) throws -> [Float]? {
                present ? try loader.load([n(s)], rows: [1], cols: width) : nil
            }
            return LayerWeights(
                attnNorm: try loader.load([n("attn_norm")], rows: [1], cols: c.dim),
                qNorm: try norm("attn_q_norm", a.qkNorm, c.headDim),
                kNorm: try norm("attn_k_norm", a.qkNorm, c.headDim),
                postAttnNorm: try norm("post_attention_norm", a.postNorms, c.dim),
                postFfnNorm: try norm("post_ffw_norm", a.postNorms, c.dim),
                wqkv: try loader.linear([n("attn_q"), n("attn_k"), n("attn_v")], rows: [c.qDim, c.kvDim, c.kvDim], cols: c.dim),
                bqkv: c.qkvBias ? try loader.load([b("attn_q"), b("attn_k"), b("attn_v")], rows: [1, 1, 1],
                                                  colsEach: [c.qDim, c.kvDim, c.kvDim]) : nil,
                wo: try loader.linear([n("attn_output")], rows: [c.dim], cols: c.qDim),
                ffnNorm: try loader.load([n("ffn_norm")], rows: [1], cols: c.dim),
                wGateUp: try loader.linear([n("ffn_gate"), n("ffn_up")], rows: [c.ffnDim, c.ffnDim], cols: c.dim),
                wDown: try loader.linear([n("ffn_down")], rows: [c.dim], cols: c.ffnDim))
        }
    }
}

/// Dequantizes tensors, stacking several into one buffer, with shape checks.
struct WeightLoader {
    let gguf: GGUFFile
    /// How products of more than one row are packed (`PackedProduct.Mode`).
    var products: PackedProduct.Mode = PackedProduct.mode

    /// A linear layer of the stacked tensors `names` (each `rows[i] x cols`): packed integer
    /// codes for its prefill products where the CPU and the types allow, else a dequantized
    /// f32 copy for BLAS.
    func linear(_ names: [String], rows: [Int], cols: Int) throws -> Linear {
        let infos = try checked(names, rows: rows, colsEach: Array(repeating: cols, count: names.count))
        let out = rows.reduce(0, +)
        if let packed = PackedProduct(infos, gguf: gguf, outDim: out, inDim: cols, mode: products) {
            // A part with narrow codes for one row needs no interleaved copy (they are smaller).
            let parts = zip(infos, packed.parts).map { info, part in
                EncodedMatrix(info: info, gguf: gguf, interleave: part.narrow == nil)
            }
            return Linear(dense: [], packed: packed, parts: parts, outDim: out, inDim: cols, gguf: gguf)
        }
        return linear(dense: try load(names, rows: rows, cols: cols), names, out: out, in: cols)
    }

    /// A linear layer over already dequantized `dense` weights of tensors `names`.
    func linear(dense: [Float], _ names: [String], out: Int, in k: Int) -> Linear {
        Linear(dense: dense, packed: nil, parts: names.map { EncodedMatrix(info: gguf.tensorInfo($0)!, gguf: gguf) },
               outDim: out, inDim: k, gguf: gguf)
    }

    /// Stacks `names` (each `rows[i] x cols`) into one row-major buffer.
    func load(_ names: [String], rows: [Int], cols: Int) throws -> [Float] {
        try load(names, rows: rows, colsEach: Array(repeating: cols, count: names.count))
    }

    /// Stacks `names` (each `rows[i] x colsEach[i]`, flattened) into one buffer.
    func load(_ names: [String], rows: [Int], colsEach: [Int]) throws -> [Float] {
        let infos = try checked(names, rows: rows, colsEach: colsEach)
        let total = infos.reduce(0) { $0 + $1.elementCount }
        return try [Float](unsafeUninitializedCapacity: total) { buf, initialized in
            var offset = 0
            for info in infos {
                try gguf.withRawBytes(info) { raw in
                    try GGUFFile.dequantize(raw, type: info.type, count: info.elementCount,
                                            into: buf.baseAddress! + offset, name: info.name)
                }
                offset += info.elementCount
            }
            initialized = total
        }
    }

    /// The tensors `names`, each checked to be `rows[i] x colsEach[i]`.
    func checked(_ names: [String], rows: [Int], colsEach: [Int]) throws -> [GGUFTensorInfo] {
        var infos: [GGUFTensorInfo] = []
        for (i, name) in names.enumerated() {
            guard let info = gguf.tensorInfo(name) else { throw GGUFError.missingTensor(name) }
            let expected = rows[i] == 1 ? [colsEach[i]] : [colsEach[i], rows[i]]
            let actual = info.dims.count > expected.count && info.dims[expected.count...].allSatisfy({ $0 == 1 })
                ? Array(info.dims[..<expected.count]) : info.dims
            guard actual == expected else {
                throw GGUFError.badTensorShape(tensor: name, reason: "dims \(info.dims), expected \(expected)")
            }
            infos.append(info)
        }
        return infos
    }
}
