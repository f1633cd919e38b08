import CKernels
import Dispatch
import Foundation

/// Causal grouped-query attention of `n` new query rows against every cached position.
///
/// The `heads / kvHeads` query heads that share KV head g are processed together: their
/// query rows for a block of positions are stacked into one matrix, so each product
/// reads (and BLAS packs) K_g and V_g once for the whole group. For that block,
/// `S = Q K_g^T / sqrt(headDim)` over the keys the block can see, a causal softmax per
/// row, then `O = S V_g`. The score buffer stays `stackedRows x positions`.
///
/// A few query rows (decode, or the question after a cache hit) skip BLAS: blocks of
/// (KV head, rows) run as parallel tasks on the CKernels products, which read K and V
/// in place where BLAS would pack them.
struct CausalAttention {
    let heads: Int
    let kvHeads: Int
    let headDim: Int
    /// Stacked query rows (group heads x positions) per block.
    var stackedRows = 256
    /// Up to this many query rows take the parallel, BLAS-free path.
    static let smallRows = 32
    /// Largest head dimension `kv_scores` handles (its transposed K block is on the stack).
    static let smallPathMaxHeadDim = 256
    /// Query positions per task on that path.
    static let rowsPerTask = 8

    /// - Parameters:
    ///   - q: post-RoPE queries, row r of head h at `q + r*ldq + h*headDim`.
    ///   - start: position of query row 0 (rows are positions `start..<start+n`).
    ///   - keys: post-RoPE keys `[start+n][kvHeads*headDim]`.
    ///   - values: values, same layout.
    ///   - out: output, row r of head h at `out + r*ldo + h*headDim`.
    func callAsFunction(q: UnsafePointer<Float>, ldq: Int, n: Int, start: Int,
                        keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                        out: UnsafeMutablePointer<Float>, ldo: Int) {
        if n <= Self.smallRows && headDim % 16 == 0 && headDim <= Self.smallPathMaxHeadDim {
            let p = AttentionPointers(q: q, keys: keys, values: values, out: out)
            let blocks = (n + Self.rowsPerTask - 1) / Self.rowsPerTask
            DispatchQueue.concurrentPerform(iterations: kvHeads * blocks) { task in
                let r0 = (task % blocks) * Self.rowsPerTask
                smallBlock(kvHead: task / blocks, rows: r0..<min(n, r0 + Self.rowsPerTask), start: start,
                           p, ldq: ldq, ldo: ldo)
            }
            return
        }
        let group = heads / kvHeads, hd = headDim, kvDim = kvHeads * headDim
        let rowsPerBlock = min(n, max(1, stackedRows / group))
        let stacked = group * rowsPerBlock
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: stacked * (start + n))
        let qs = UnsafeMutablePointer<Float>.allocate(capacity: stacked * hd)
        let os = UnsafeMutablePointer<Float>.allocate(capacity: stacked * hd)
        defer { scores.deallocate(); qs.deallocate(); os.deallocate() }
        let scale = 1 / Float(hd).squareRoot()
        for g in 0..<kvHeads {
            var r0 = 0
            while r0 < n {
                let rows = min(rowsPerBlock, n - r0), m = group * rows
                let visible = start + r0 + rows  // keys the block's last row sees
                for j in 0..<group {  // stack: row (j, r) = query head g*group+j at position r0+r
                    for r in 0..<rows {
                        (qs + (j * rows + r) * hd).update(from: q + (r0 + r) * ldq + (g * group + j) * hd, count: hd)
                    }
                }
                gemmNT(m: m, n: visible, k: hd, alpha: scale, a: qs, lda: hd,
                       b: keys + g * hd, ldb: kvDim, beta: 0, c: scores, ldc: visible)
                for j in 0..<group {
                    kv_softmax_causal(scores + j * rows * visible, rows, visible, visible, start + r0 + 1)
                }
                if m == 1 {
                    gemvT(visible: visible, headDim: hd, v: values + g * hd, ldv: kvDim, s: scores, out: os)
                } else {
                    gemmNN(m: m, n: hd, k: visible, a: scores, lda: visible,
                           b: values + g * hd, ldb: kvDim, beta: 0, c: os, ldc: hd)
                }
                for j in 0..<group {
                    for r in 0..<rows {
                        (out + (r0 + r) * ldo + (g * group + j) * hd).update(from: os + (j * rows + r) * hd, count: hd)
                    }
                }
                r0 += rows
            }
        }
    }

    /// Query positions `rows` of the heads sharing KV head `g`, stacked, against every
    /// key they see: scores, causal softmax, weighted sum of V.
    private func smallBlock(kvHead g: Int, rows: Range<Int>, start: Int, _ p: AttentionPointers, ldq: Int, ldo: Int) {
        let group = heads / kvHeads, hd = headDim, kvDim = kvHeads * headDim
        let count = rows.count, m = group * count
        let visible = start + rows.upperBound
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: m * visible)
        let qs = UnsafeMutablePointer<Float>.allocate(capacity: m * hd)
        let os = UnsafeMutablePointer<Float>.allocate(capacity: m * hd)
        defer { scores.deallocate(); qs.deallocate(); os.deallocate() }
        for j in 0..<group {  // stacked row (j, r) = query head g*group+j at position rows.lowerBound+r
            for r in 0..<count {
                (qs + (j * count + r) * hd).update(from: p.q + (rows.lowerBound + r) * ldq + (g * group + j) * hd, count: hd)
            }
        }
        kv_scores(qs, hd, m, p.keys + g * hd, kvDim, visible, hd, 1 / Float(hd).squareRoot(), scores, visible)
        for j in 0..<group {
            kv_softmax_causal(scores + j * count * visible, count, visible, visible, start + rows.lowerBound + 1)
        }
        kv_weighted_sum(scores, visible, m, p.values + g * hd, kvDim, visible, hd, os, hd)
        for j in 0..<group {
            for r in 0..<count {
                (p.out + (rows.lowerBound + r) * ldo + (g * group + j) * hd).update(from: os + (j * count + r) * hd, count: hd)
            }
        }
    }
}

/// The operands of one attention call shared by its tasks.
private struct AttentionPointers: @unchecked Sendable {
    // @unchecked: used only inside a synchronous `concurrentPerform`, while the caller keeps
    // every buffer alive; tasks read q, keys and values and write disjoint heads or rows of out.
    let q: UnsafePointer<Float>
    let keys: UnsafePointer<Float>
    let values: UnsafePointer<Float>
    let out: UnsafeMutablePointer<Float>
}
