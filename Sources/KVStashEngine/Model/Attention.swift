import CKernels
import Foundation

/// Causal grouped-query attention of `n` new query rows against every cached position.
///
/// For query head h (KV head g = h / (heads / kvHeads)) and a block of query rows,
/// `S = Q_h K_g^T / sqrt(headDim)` over the visible keys, softmax row-wise with the
/// causal mask, then `O_h = S V_g`. Query rows are processed in blocks so the score
/// buffer stays `blockRows x positions`, and each block only multiplies the keys it
/// can see.
struct CausalAttention {
    let heads: Int
    let kvHeads: Int
    let headDim: Int
    /// Query rows per score block.
    var blockRows = 128

    /// - Parameters:
    ///   - q: post-RoPE queries, row r of head h at `q + r*ldq + h*headDim`.
    ///   - start: position of query row 0 (rows are positions `start..<start+n`).
    ///   - keys: post-RoPE keys `[start+n][kvHeads*headDim]`.
    ///   - values: values, same layout.
    ///   - out: output, row r of head h at `out + r*ldo + h*headDim`.
    func callAsFunction(q: UnsafePointer<Float>, ldq: Int, n: Int, start: Int,
                        keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                        out: UnsafeMutablePointer<Float>, ldo: Int) {
        let total = start + n
        let rowsPerBlock = min(blockRows, n)
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: rowsPerBlock * total)
        defer { scores.deallocate() }
        let kvDim = kvHeads * headDim
        let group = heads / kvHeads
        let scale = 1 / Float(headDim).squareRoot()
        for h in 0..<heads {
            let g = h / group
            var r0 = 0
            while r0 < n {
                let rows = min(rowsPerBlock, n - r0)
                let visible = start + r0 + rows  // keys the last row of the block sees
                gemmNT(m: rows, n: visible, k: headDim, alpha: scale,
                       a: q + r0 * ldq + h * headDim, lda: ldq,
                       b: keys + g * headDim, ldb: kvDim, beta: 0, c: scores, ldc: visible)
                kv_softmax_causal(scores, rows, visible, visible, start + r0 + 1)
                if rows == 1 {
                    // out = V^T s  (V is visible x headDim with row stride kvDim)
                    gemvT(visible: visible, headDim: headDim, v: values + g * headDim, ldv: kvDim,
                                        s: scores, out: out + r0 * ldo + h * headDim)
                } else {
                    gemmNN(m: rows, n: headDim, k: visible, a: scores, lda: visible,
                           b: values + g * headDim, ldb: kvDim, beta: 0, c: out + r0 * ldo + h * headDim, ldc: ldo)
                }
                r0 += rows
            }
        }
    }
}
