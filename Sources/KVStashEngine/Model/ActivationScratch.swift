import CKernels
import Synchronization

/// Scratch activations of one forward chunk, `n` rows each.
struct Activations: @unchecked Sendable {
    // @unchecked: buffers of one forward pass on the calling thread; inside a synchronous
    // parallel loop (`inRowSlices`, the products' worker team) workers write disjoint rows.
    let x: UnsafeMutablePointer<Float>     // residual stream [n][dim]
    let xn: UnsafeMutablePointer<Float>    // normalized input [n][dim]
    let qkv: UnsafeMutablePointer<Float>   // [n][qDim + 2 kvDim]
    let attn: UnsafeMutablePointer<Float>  // attention output [n][qDim]
    let gateUp: UnsafeMutablePointer<Float> // [n][2 ffnDim]
    /// A product's input rows as 16-bit codes, written by the kernels that produce them
    /// (`kv_rmsnorm_q16`, `kv_gelu_mul_q16`, the attention of one KV head) where the product
    /// takes codes: [n][in / 32].
    let codes: UnsafeMutablePointer<kv_q16_block>
    /// The gated FFN activation as the down projection's 16-bit codes, where the gated product
    /// writes them while `codes` holds its input: [n][ffnDim / 32].
    let gatedCodes: UnsafeMutablePointer<kv_q16_block>

    /// Rows each buffer holds.
    let rows: Int

    init(n: Int, c: ModelConfig) {
        rows = n
        x = .allocate(capacity: n * c.dim)
        xn = .allocate(capacity: n * c.dim)
        qkv = .allocate(capacity: n * (c.qDim + 2 * c.kvDim))
        attn = .allocate(capacity: n * c.qDim)
        gateUp = .allocate(capacity: n * 2 * c.ffnDim)
        codes = .allocate(capacity: n * ((max(c.dim, c.ffnDim, c.qDim) + 31) / 32))
        gatedCodes = .allocate(capacity: n * ((c.ffnDim + 31) / 32))
    }

    private init(x: UnsafeMutablePointer<Float>, xn: UnsafeMutablePointer<Float>, qkv: UnsafeMutablePointer<Float>,
                 attn: UnsafeMutablePointer<Float>, gateUp: UnsafeMutablePointer<Float>,
                 codes: UnsafeMutablePointer<kv_q16_block>, gatedCodes: UnsafeMutablePointer<kv_q16_block>, rows: Int) {
        (self.x, self.xn, self.qkv, self.attn, self.gateUp) = (x, xn, qkv, attn, gateUp)
        (self.codes, self.gatedCodes, self.rows) = (codes, gatedCodes, rows)
    }

    /// A view of rows `first...`: the rows carried from one step to the next (the residual
    /// stream x, the QKV rows attention reads) start at row `first`; the other buffers are
    /// scratch a step fills from its start. Shares the buffers: never deallocated itself.
    func rows(from first: Int, config c: ModelConfig) -> Activations {
        guard first > 0 else { return self }
        return Activations(x: x + first * c.dim, xn: xn, qkv: qkv + first * (c.qDim + 2 * c.kvDim), attn: attn,
                           gateUp: gateUp, codes: codes, gatedCodes: gatedCodes, rows: rows - first)
    }

    func deallocate() {
        [x, xn, qkv, attn, gateUp].forEach { $0.deallocate() }
        [codes, gatedCodes].forEach { $0.deallocate() }
    }
}

/// The scratch of forward chunks, kept for the next one: a chunk of `LlamaModel.chunkSize`
/// rows takes about 18 MB for Gemma 3 270M, which glibc would hand back to the kernel on
/// free (its trim threshold follows the largest block) and every prefill would fault in
/// again. Keeps the largest set returned, one at a time; a concurrent forward allocates its own.
final class ActivationScratch: Sendable {
    private let kept = Mutex<Activations?>(nil)
    private let config: ModelConfig

    init(config: ModelConfig) { self.config = config }

    deinit { kept.withLock { $0?.deallocate() } }

    /// Buffers of at least `n` rows: the kept set when it is free and large enough, else new ones.
    func take(rows n: Int) -> Activations {
        let reused = kept.withLock { kept -> Activations? in
            guard let set = kept, set.rows >= n else { return nil }
            kept = nil
            return set
        }
        return reused ?? Activations(n: n, c: config)
    }

    /// Returns `set` after a forward: kept when it is the larger one, else freed.
    func give(_ set: Activations) {
        let dropped = kept.withLock { kept -> Activations? in
            if let old = kept, old.rows >= set.rows { return set }
            defer { kept = set }
            return kept
        }
        dropped?.deallocate()
    }
}
