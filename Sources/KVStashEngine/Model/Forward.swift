import CKernels
import Foundation
import KVStashCore

/// The rows of a forward pass whose logits are wanted.
enum ForwardOutputs {
    /// None: a prefill chunk before the last, which only extends the cache.
    case none
    /// The last row's (a prefill's last chunk, decode).
    case last
    /// Every row's (teacher forcing, scoring).
    case all
}

extension LlamaModel {
    /// Runs `tokens` at positions `cache.count...` through the model, appends their
    /// K (after RoPE) and V to `cache`, and returns the logits `outputs` asks for: the last
    /// row's, every row's (`[n][vocab]`), or none (empty). Inputs are already validated.
    ///
    /// The last layer's K and V are kept for every row, but the rest of that layer feeds only
    /// the logits, so it runs for the rows whose logits are wanted (as llama.cpp does). A row's
    /// arithmetic does not depend on the rows computed with it (decision 099), so the last
    /// row's logits are the same bits either way where rows are batch-invariant.
    func forward(_ tokens: ArraySlice<Int>, cache: inout KVCache, outputs: ForwardOutputs) -> [Float] {
        let c = config, n = tokens.count, start = cache.count
        cache.extend(by: n)
        let rope = rotary.covering(start..<(start + n))
        let act = scratch.take(rows: n)
        defer { scratch.give(act) }
        embed(tokens, into: act.x)
        let outputFrom: Int? = switch outputs { case .none: nil; case .last: n - 1; case .all: 0 }
        for layer in 0..<c.layers {
            let from = layer == c.layers - 1 ? outputFrom : 0
            attentionBlock(layer: layer, n: n, start: start, outputFrom: from, rope: rope[layer], act: act, cache: &cache)
            if let from { mlpBlock(layer: layer, n: n - from, act: act.rows(from: from, config: c)) }
        }
        guard let outputFrom else { return [] }
        return logits(act: act.rows(from: outputFrom, config: c), n: n - outputFrom)
    }

    /// The embedding rows of `tokens`, times the architecture's embedding scale.
    private func embed(_ tokens: ArraySlice<Int>, into x: UnsafeMutablePointer<Float>) {
        let d = config.dim, scale = config.embeddingScale
        for (r, t) in tokens.enumerated() {
            let row = x + r * d
            weights.tokenEmbedding.copyRow(t, into: row)
            if scale != 1 { for i in 0..<d { row[i] *= scale } }
        }
    }

    /// `x += out`, or `x += RMSNorm(out, post)` when the architecture norms block outputs;
    /// `produce` writes the block's output into the pointer it is given, or adds it to x
    /// directly (its flag is true) when there is no post-norm.
    private func residual(_ post: [Float]?, n: Int, act: Activations,
                          _ produce: (UnsafeMutablePointer<Float>, Bool) -> Void) {
        let d = config.dim
        guard let post else { produce(act.x, true); return }
        produce(act.xn, false)
        let eps = config.rmsEps
        inRowSlices(n) { r in
            let at = r.lowerBound * d
            post.withUnsafeBufferPointer { kv_add_rmsnorm(act.x + at, act.xn + at, $0.baseAddress!, r.count, d, eps) }
        }
    }

    /// x += Wo · attention(RoPE(Wq xn), RoPE(Wk xn), Wv xn), with xn = RMSNorm(x), Q and K
    /// heads RMS-normed before RoPE (QK-norm) and the output RMS-normed (post-norm) when the
    /// architecture has them. K and V go to the cache for all `n` rows; the rest runs for rows
    /// `outputFrom..<n` only, or for none when it is nil.
    private func attentionBlock(layer l: Int, n: Int, start: Int, outputFrom: Int?, rope: RotaryTable,
                                act: Activations, cache: inout KVCache) {
        let c = config, w = weights.layers[l]
        let qkvDim = c.qDim + 2 * c.kvDim
        normalizedProduct(w.wqkv, norm: w.attnNorm, n: n, act: act, into: act.qkv, ldc: qkvDim)
        if let bias = w.bqkv {
            bias.withUnsafeBufferPointer { b in
                for r in 0..<n { kv_add(act.qkv + r * qkvDim, act.qkv + r * qkvDim, b.baseAddress!, qkvDim) }
            }
        }
        if let qn = w.qNorm, let kn = w.kNorm {
            inRowSlices(n) { r in
                let rows = act.qkv + r.lowerBound * qkvDim
                qn.withUnsafeBufferPointer { kv_rmsnorm_heads(rows, qkvDim, r.count, c.heads, c.headDim, $0.baseAddress!, c.rmsEps) }
                kn.withUnsafeBufferPointer {
                    kv_rmsnorm_heads(rows + c.qDim, qkvDim, r.count, c.kvHeads, c.headDim, $0.baseAddress!, c.rmsEps)
                }
            }
        }
        let rows = start..<(start + n), keys = act.qkv + c.qDim
        cache.keepRawKeys(layer: l, rows, from: keys, stride: qkvDim)  // for the store, when asked
        // Q and K heads are adjacent in a row: one pass rotates both.
        inRowSlices(n) { r in
            let at = act.qkv + r.lowerBound * qkvDim
            rope.apply(at, stride: qkvDim, into: at, stride: qkvDim, rows: r.count, firstPosition: start + r.lowerBound,
                       heads: c.heads + c.kvHeads, headDim: c.headDim)
        }
        cache.store(layer: l, .key, rows, from: keys, stride: qkvDim)
        cache.store(layer: l, .value, rows, from: keys + c.kvDim, stride: qkvDim)
        guard let from = outputFrom else { return }
        let out = act.rows(from: from, config: c), m = n - from
        let setting = c.layerAttention[l]
        let attention = CausalAttention(heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim,
                                        scale: setting.scale, window: setting.window)
        // Where the output projection takes 16-bit codes, attention may write them itself.
        let codes = w.wo.takesCodes(rows: m) ? out.codes : nil
        let wroteCodes = cache.withHeadRows(layer: l, .key, 0..<(start + n)) { keys in
            cache.withHeadRows(layer: l, .value, 0..<(start + n)) { values in
                attention(q: out.qkv, ldq: qkvDim, n: m, start: start + from, keys: keys.base, values: values.base,
                          headStride: keys.headStride, out: out.attn, ldo: c.qDim, codes: codes)
            }
        }
        residual(w.postAttnNorm, n: m, act: out) { y, add in
            if wroteCodes {
                w.wo.apply(codes: out.codes, rows: m, into: y, ldc: c.dim, accumulate: add)
            } else {
                w.wo.apply(out.attn, lda: c.qDim, rows: m, into: y, ldc: c.dim, accumulate: add)
            }
        }
    }

    /// x += W_down · (act(W_gate xn) ⊙ W_up xn), with xn = RMSNorm(x), act SiLU or GELU, and
    /// the output RMS-normed when the architecture has post-norms.
    private func mlpBlock(layer l: Int, n: Int, act: Activations) {
        let c = config, w = weights.layers[l], f = c.ffnDim
        let codes = w.wDown.takesCodes(rows: n), activation = c.block.activation
        if codes && n >= Self.rowSliceMinimum && w.wGateUp.takesCodes(rows: n) {
            // Gate and up 32 features at a time, straight into the down projection's codes
            // (for a few rows the product's output stays in cache anyway).
            normalize(norm: w.ffnNorm, n: n, act: act, codes: true)
            w.wGateUp.gatedCodes(act.codes, rows: n, activation: activation, into: act.gatedCodes)
            residual(w.postFfnNorm, n: n, act: act) { out, add in
                w.wDown.apply(codes: act.gatedCodes, rows: n, into: out, ldc: c.dim, accumulate: add)
            }
            return
        }
        normalizedProduct(w.wGateUp, norm: w.ffnNorm, n: n, act: act, into: act.gateUp, ldc: 2 * f)
        inRowSlices(n) { r in
            let gate = act.gateUp + r.lowerBound * 2 * f, out = act.codes + r.lowerBound * f / 32
            switch (activation, codes) {
            case (.silu, false): kv_silu_mul(gate, gate + f, r.count, f, 2 * f)
            case (.geluTanh, false): kv_gelu_mul(gate, gate + f, r.count, f, 2 * f)
            case (_, true): activation.gatedCodes(gate: gate, up: gate + f, rows: r.count, n: f, ld: 2 * f,
                                                  into: out, ldo: f / 32)
            }
        }
        residual(w.postFfnNorm, n: n, act: act) { out, add in
            if codes {
                w.wDown.apply(codes: act.codes, rows: n, into: out, ldc: c.dim, accumulate: add)
            } else {
                w.wDown.apply(act.gateUp, lda: 2 * f, rows: n, into: out, ldc: c.dim, accumulate: add)
            }
        }
    }

    /// `out = linear(RMSNorm(x) · norm)`, row by row. Where the product takes 16-bit codes, the
    /// norm writes them (`kv_rmsnorm_q16`) instead of an f32 row the product would quantize.
    private func normalizedProduct(_ linear: Linear, norm: [Float], n: Int, act: Activations,
                                   into out: UnsafeMutablePointer<Float>, ldc: Int) {
        let codes = linear.takesCodes(rows: n)
        normalize(norm: norm, n: n, act: act, codes: codes)
        if codes {
            linear.apply(codes: act.codes, rows: n, into: out, ldc: ldc)
        } else {
            linear.apply(act.xn, lda: config.dim, rows: n, into: out, ldc: ldc)
        }
    }

    /// `RMSNorm(x) · norm` of every row: into `act.codes` as 16-bit codes (`kv_rmsnorm_q16`) when
    /// `codes`, else into `act.xn`.
    private func normalize(norm: [Float], n: Int, act: Activations, codes: Bool) {
        let d = config.dim, eps = config.rmsEps
        inRowSlices(n) { r in
            let at = r.lowerBound * d
            norm.withUnsafeBufferPointer { w in
                if codes {
                    kv_rmsnorm_q16(act.x + at, w.baseAddress!, act.codes + at / 32, r.count, d, eps)
                } else {
                    kv_rmsnorm(act.xn + at, act.x + at, w.baseAddress!, r.count, d, eps)
                }
            }
        }
    }

    /// Rows `0 ..< n` in slices over the worker team, for the element-wise kernels between the
    /// products of a prefill; fewer than `rowSliceMinimum` rows (decode) stay on the caller.
    private func inRowSlices(_ n: Int, _ body: @Sendable (Range<Int>) -> Void) {
        let tasks = n >= Self.rowSliceMinimum ? min(blasThreads(), 8) : 1
        guard tasks > 1 else { body(0..<n); return }
        let step = (n + tasks - 1) / tasks
        WorkerTeam.run(tasks: tasks) { t in
            let lo = t * step, hi = min(n, lo + step)
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Final RMSNorm and output head over the `rows` rows of `act`.
    private func logits(act: Activations, n rows: Int) -> [Float] {
        let c = config
        weights.outputNorm.withUnsafeBufferPointer {
            kv_rmsnorm(act.xn, act.x, $0.baseAddress!, rows, c.dim, c.rmsEps)
        }
        var out = [Float](unsafeUninitializedCapacity: rows * c.vocabSize) { out, initialized in
            weights.output.apply(act.xn, lda: c.dim, rows: rows, into: out.baseAddress!, ldc: c.vocabSize)
            initialized = rows * c.vocabSize
        }
        if let cap = c.finalLogitSoftcap {
            for i in out.indices { out[i] = cap * tanh(out[i] / cap) }
        }
        return out
    }
}
