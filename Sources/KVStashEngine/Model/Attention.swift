import CKernels
import Dispatch
import Foundation

/// Causal grouped-query attention of `n` new query rows against the cached positions they
/// see: all earlier ones, or with a sliding `window` the `window - 1` before each query
/// and the query itself (llama.cpp's standard SWA: key p0 is hidden from query p1 when
/// `p1 - p0 >= window`).
///
/// The `heads / kvHeads` query heads that share KV head g are processed together: their
/// query rows for a block of positions are stacked into one matrix, so each product
/// reads (and BLAS packs) K_g and V_g once for the whole group. For that block,
/// `S = scale * Q K_g^T` over the keys the block can see, a causal (banded, with a window)
/// softmax per row, then `O = S V_g`. The score buffer stays `stackedRows x positions`.
///
/// K and V are the cache's f16 rows. On the BLAS path each KV head's visible K and V are
/// widened once into f32 scratch (`[positions][headDim]`, from the first position any row
/// sees) that every block reads.
///
/// A few query rows (decode, or the question after a cache hit) skip BLAS: each KV head's
/// keys are cut into fixed segments (`segment` keys), each a parallel task on `kv_attend_partial`, which
/// reads K and V in place (BLAS would pack them) with a running max, and
/// `kv_attend_merge` folds the segments in order. Where that kernel has its AVX-512 or AVX2 tiles,
/// many rows (prefill) skip BLAS too: blocks of rows whose stacked group fills one tile pass run
/// as parallel tasks over every key they see (folding the same segments), so the softmax runs
/// on every core and no BLAS worker spins between products. Both give a row the same bits
/// whatever rows share its call (decision 099).
struct CausalAttention {
    let heads: Int
    let kvHeads: Int
    let headDim: Int
    /// Factor of the scores `q . k` before the softmax.
    let scale: Float
    /// Sliding window (keys per query, itself included), or nil for every earlier position.
    let window: Int?
    /// Stacked query rows (group heads x positions) per block.
    var stackedRows = 256
    /// Keys per segment, from key 0: the unit every path folds in order and a few rows' task.
    var segment: Int { Self.segmentKeys(headDim: headDim) }

    /// About 32K key elements a segment, at least one 256-key block (`KV_ATTEND_BLOCK`):
    /// 256 keys for Gemma 3's head dimension of 256, 512 for SmolLM2's 64. Short segments
    /// give the cores even shares of a window, long ones keep a task's work above its fixed
    /// cost (decision 105).
    static func segmentKeys(headDim: Int) -> Int {
        let block = Int(KV_ATTEND_BLOCK)
        return max(block, 32768 / max(headDim, 1) / block * block)
    }
    /// Up to this many query rows take the parallel, BLAS-free path.
    static let smallRows = 32
    /// Stacked rows per block on the BLAS-free prefill path: five passes of the wide score tile (48).
    static let stackedTile = 240
    /// Whether more than `smallRows` rows take the BLAS-free path by default: where
    /// `kv_attend_partial` runs its AVX-512 or AVX2 tiles (decision 100: on an AVX2 build it
    /// prefilled Gemma 3 faster than BLAS); `KVSTASH_PREFILL_ATTENTION=blas` or `=kernel`
    /// chooses for measurements.
    static let blockedPrefill: Bool = {
        switch ProcessInfo.processInfo.environment["KVSTASH_PREFILL_ATTENTION"] {
        case "blas": return false
        case "kernel": return true
        default: return ["avx512f", "avx2+fma"].contains(String(cString: kv_kernels_isa()))
        }
    }()
    /// Whether this attention takes that path (tests compare both on any CPU).
    var prefillWithoutBLAS = Self.blockedPrefill

    /// - Parameters:
    ///   - q: post-RoPE queries, row r of head h at `q + r*ldq + h*headDim`.
    ///   - start: position of query row 0 (rows are positions `start..<start+n`).
    ///   - keys: post-RoPE keys of positions `0..<start+n`, f16: KV head g's rows
    ///     `[position][headDim]` from `keys + g * headStride` (a `KVCache`'s layout), or, with
    ///     `headStride` nil, rows of every head `[position][kvHeads*headDim]`.
    ///   - values: values, same layout.
    ///   - out: output, row r of head h at `out + r*ldo + h*headDim`.
    ///   - codes: where given and the rows take the blocked prefill path with one KV head (all
    ///     of a row's heads in one task), each output row goes there as the 16-bit codes of the
    ///     product that reads it (`kv_quantize_q16`, `heads*headDim/32` blocks a row) instead of
    ///     into `out`, while the row is still in the task's cache.
    /// - Returns: whether the rows went to `codes`.
    @discardableResult
    func callAsFunction(q: UnsafePointer<Float>, ldq: Int, n: Int, start: Int,
                        keys: UnsafePointer<UInt16>, values: UnsafePointer<UInt16>, headStride: Int? = nil,
                        out: UnsafeMutablePointer<Float>, ldo: Int,
                        codes: UnsafeMutablePointer<kv_q16_block>? = nil) -> Bool {
        let kv = KVOperands(keys: keys, values: values, headStride: headStride ?? headDim,
                            rowStride: headStride == nil ? kvHeads * headDim : headDim)
        let kernelFits = headDim % 16 == 0 && headDim <= Int(KV_ATTEND_MAX_DIM)
        if kernelFits && n <= Self.smallRows && (heads / kvHeads) * n <= Int(KV_ATTEND_MAX_ROWS) {
            smallRowAttention(q: q, ldq: ldq, n: n, start: start, kv: kv, out: out, ldo: ldo)
            return false
        }
        if kernelFits && prefillWithoutBLAS && heads / kvHeads <= Self.stackedTile {
            let rowCodes = kvHeads == 1 && heads * headDim % 32 == 0 ? codes : nil
            blockedAttention(q: q, ldq: ldq, n: n, start: start, kv: kv, out: out, ldo: ldo, codes: rowCodes)
            return rowCodes != nil
        }
        blasAttention(q: q, ldq: ldq, n: n, start: start, kv: kv, out: out, ldo: ldo)
        return false
    }

    /// The BLAS path: per KV head, its keys and values widened to f32, then blocks of query
    /// rows stacked by head (`stackedRows` at most), scored with one GEMM, soft-maxed within
    /// each row's causal and window band, and multiplied by the values with another.
    private func blasAttention(q: UnsafePointer<Float>, ldq: Int, n: Int, start: Int, kv: KVOperands,
                               out: UnsafeMutablePointer<Float>, ldo: Int) {
        let group = heads / kvHeads, hd = headDim
        let rowsPerBlock = min(n, max(1, stackedRows / group))
        let stacked = group * rowsPerBlock
        let lo = firstVisible(start), span = start + n - lo  // keys any row sees
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: stacked * span)
        let qs = UnsafeMutablePointer<Float>.allocate(capacity: stacked * hd)
        let os = UnsafeMutablePointer<Float>.allocate(capacity: stacked * hd)
        let kf = UnsafeMutablePointer<Float>.allocate(capacity: span * hd)
        let vf = UnsafeMutablePointer<Float>.allocate(capacity: span * hd)
        defer { scores.deallocate(); qs.deallocate(); os.deallocate(); kf.deallocate(); vf.deallocate() }
        for g in 0..<kvHeads {  // kf, vf row i: position lo + i
            kv_f16_to_f32_rows(kf, hd, kv.keys(head: g, row: lo), kv.rowStride, span, hd)
            kv_f16_to_f32_rows(vf, hd, kv.values(head: g, row: lo), kv.rowStride, span, hd)
            var r0 = 0
            while r0 < n {
                let rows = min(rowsPerBlock, n - r0), m = group * rows
                // Keys [b0, start + r0 + rows) hold every key a row of the block sees.
                let b0 = firstVisible(start + r0) - lo, visible = start + r0 + rows - lo - b0
                for j in 0..<group {  // stack: row (j, r) = query head g*group+j at position r0+r
                    for r in 0..<rows {
                        (qs + (j * rows + r) * hd).update(from: q + (r0 + r) * ldq + (g * group + j) * hd, count: hd)
                    }
                }
                gemmNT(m: m, n: visible, k: hd, alpha: scale, a: qs, lda: hd,
                       b: kf + b0 * hd, ldb: hd, beta: 0, c: scores, ldc: visible)
                // Row r (position start + r0 + r) sees block keys up to r + (visible - rows + 1)
                // and, with a window, from r + (start + r0 - window + 1 - lo - b0).
                let through = visible - rows + 1
                let from = window.map { start + r0 - $0 + 1 - lo - b0 } ?? -rows
                for j in 0..<group {
                    kv_softmax_band(scores + j * rows * visible, rows, visible, visible, through, from)
                }
                if m == 1 {
                    gemvT(visible: visible, headDim: hd, v: vf + b0 * hd, ldv: hd, s: scores, out: os)
                } else {
                    gemmNN(m: m, n: hd, k: visible, a: scores, lda: visible,
                           b: vf + b0 * hd, ldb: hd, beta: 0, c: os, ldc: hd)
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

    /// The first key the query at `position` sees.
    private func firstVisible(_ position: Int) -> Int {
        window.map { max(0, position - $0 + 1) } ?? 0
    }

    /// The BLAS-free path: for each KV head, its query rows stacked and transposed, the
    /// visible keys cut at multiples of `segment` into segments run as parallel
    /// tasks, then the segments folded in order: the same bits for each row as the blocked
    /// prefill, which folds the same segments inside one call.
    private func smallRowAttention(q: UnsafePointer<Float>, ldq: Int, n: Int, start: Int, kv: KVOperands,
                                   out: UnsafeMutablePointer<Float>, ldo: Int) {
        let group = heads / kvHeads, hd = headDim
        let m = group * n, mp = (m + 15) / 16 * 16, visible = start + n, lo = firstVisible(start)
        let segment = segment, firstSegment = lo / segment
        let segments = (visible - 1) / segment - firstSegment + 1
        let tasks = kvHeads * segments, scratch = Self.scratchFloats(mp: mp, headDim: hd)
        let buffer = SmallAttentionBuffers(kvHeads: kvHeads, tasks: tasks, m: m, mp: mp, headDim: hd)
        defer { buffer.deallocate() }
        for g in 0..<kvHeads { stack(q, ldq: ldq, n: n, head: g, into: buffer.qt + g * hd * mp, mp: mp) }
        visibleKeys(n: n, start: start, mp: mp, last: buffer.last, first: buffer.first)
        let windowed = window != nil
        let p = AttentionPointers(kv: kv, buffers: buffer)
        WorkerTeam.run(tasks: tasks) { task in
            let g = task / segments, s = firstSegment + task % segments
            let p0 = max(lo, s * segment), p1 = min(visible, (s + 1) * segment)
            let b = p.buffers
            kv_attend_partial(b.qt + g * hd * mp, m, mp, hd, p.kv.keys(head: g), p.kv.values(head: g), p.kv.rowStride,
                              p0, p1, segment, b.last, windowed ? b.first : nil, Self.threadScratch(scratch),
                              b.partialOut + task * m * hd, b.partialMax + task * mp, b.partialSum + task * mp)
        }
        for g in 0..<kvHeads {
            let first = g * segments
            kv_attend_merge(segments, m, mp, hd, buffer.partialOut + first * m * hd, buffer.partialMax + first * mp,
                            buffer.partialSum + first * mp, buffer.merged)
            unstack(buffer.merged, n: n, head: g, into: out, ldo: ldo)
        }
    }

    /// Floats of `kv_attend_partial`'s scratch (`KV_ATTEND_SCRATCH`) for `mp` stacked lanes.
    static func scratchFloats(mp: Int, headDim: Int) -> Int { (Int(KV_ATTEND_BLOCK) + headDim + 2) * mp }

    /// The calling thread's scratch for one `kv_attend_partial` call (`kv_thread_scratch`): a
    /// task's scores stay in its thread's caches, and a call allocates and faults in no scratch
    /// of its own (attention asks at most 526 KB of it: 256 lanes of 256 channels).
    static func threadScratch(_ floats: Int) -> UnsafeMutablePointer<Float> {
        guard let scratch = kv_thread_scratch(floats) else {
            fatalError("out of memory for \(floats) floats of attention scratch")
        }
        return scratch
    }

    /// Grows the scratch of the calling thread and of the worker team's threads to the largest
    /// any attention call of `headDim` asks, and writes it once, so that no request faults it in
    /// (warm-ups at start). The team's tasks go to whichever thread claims them: many small ones,
    /// so each thread almost surely runs some.
    static func prewarmThreadScratch(headDim: Int) {
        let floats = scratchFloats(mp: Int(KV_ATTEND_MAX_ROWS), headDim: headDim)
        WorkerTeam.run(tasks: 64) { _ in threadScratch(floats).update(repeating: 0, count: floats) }
        threadScratch(floats).update(repeating: 0, count: floats)
    }

    /// The BLAS-free path for many rows: blocks of `stackedTile / group` rows, one task per KV
    /// head and block, handed out last block first (without a window the longest; the cores
    /// then finish together), each over every key its rows see (the last block's diagonal masked in
    /// the kernel), its result finished in place (`kv_attend_merge` of one part).
    private func blockedAttention(q: UnsafePointer<Float>, ldq: Int, n: Int, start: Int,
                                  kv: KVOperands, out: UnsafeMutablePointer<Float>, ldo: Int,
                                  codes: UnsafeMutablePointer<kv_q16_block>?) {
        let group = heads / kvHeads, hd = headDim, kvHeads = kvHeads
        let rows = Self.stackedTile / group, blocks = (n + rows - 1) / rows, windowed = window != nil, segment = segment
        let p = BlockedOperands(q: q, kv: kv, out: out, codes: codes)
        WorkerTeam.run(tasks: kvHeads * blocks) { task in  // the last blocks see the most keys: they go first
            let g = task % kvHeads, r0 = (blocks - 1 - task / kvHeads) * rows, count = min(rows, n - r0)
            let m = group * count, mp = (m + 15) / 16 * 16
            let buffer = SmallAttentionBuffers(kvHeads: 1, tasks: 1, m: m, mp: mp, headDim: hd)
            defer { buffer.deallocate() }
            stack(p.q + r0 * ldq, ldq: ldq, n: count, head: g, into: buffer.qt, mp: mp)
            visibleKeys(n: count, start: start + r0, mp: mp, last: buffer.last, first: buffer.first)
            kv_attend_partial(buffer.qt, m, mp, hd, p.kv.keys(head: g), p.kv.values(head: g), p.kv.rowStride,
                              firstVisible(start + r0), start + r0 + count, segment, buffer.last, windowed ? buffer.first : nil,
                              Self.threadScratch(Self.scratchFloats(mp: mp, headDim: hd)), buffer.partialOut,
                              buffer.partialMax, buffer.partialSum)
            kv_attend_merge(1, m, mp, hd, buffer.partialOut, buffer.partialMax, buffer.partialSum, buffer.merged)
            if let codes = p.codes {  // one KV head: row r's heads are adjacent in merged, from r * width
                let width = group * hd
                for r in 0..<count { kv_quantize_q16(buffer.merged + r * width, codes + (r0 + r) * width / 32, width) }
            } else {
                unstack(buffer.merged, n: count, head: g, into: p.out + r0 * ldo, ldo: ldo)
            }
        }
    }

    /// The `n` query rows of KV head g's query heads, scaled, stacked and transposed into
    /// `qt` (`[headDim][mp]`): lane r*group + j holds query head g*group + j at row r, so
    /// neighbouring lanes see nearly the same keys and the kernel skips the keys none of a
    /// tile's lanes sees.
    private func stack(_ q: UnsafePointer<Float>, ldq: Int, n: Int, head g: Int, into qt: UnsafeMutablePointer<Float>,
                       mp: Int) {
        let group = heads / kvHeads
        kv_attend_stack(q + g * group * headDim, ldq, n, group, headDim, scale, qt, mp)
    }

    /// Each stacked lane's last and first visible key, for rows at positions `start ..< start + n`
    /// (padding lanes repeat the last row).
    private func visibleKeys(n: Int, start: Int, mp: Int, last: UnsafeMutablePointer<Int32>,
                             first: UnsafeMutablePointer<Int32>) {
        let group = heads / kvHeads
        for t in 0..<mp {
            last[t] = Int32(start + min(t / group, n - 1))
            first[t] = Int32(firstVisible(Int(last[t])))
        }
    }

    /// Rows of `merged` (lane order of `stack`) back to their heads' columns of `out`: lane
    /// r*group + j is head g*group + j of row r, so a row's group heads are adjacent in both.
    private func unstack(_ merged: UnsafePointer<Float>, n: Int, head g: Int, into out: UnsafeMutablePointer<Float>,
                         ldo: Int) {
        let group = heads / kvHeads, hd = headDim
        for r in 0..<n {
            (out + r * ldo + g * group * hd).update(from: merged + r * group * hd, count: group * hd)
        }
    }
}

/// The operands of one BLAS-free prefill attention shared by its tasks.
private struct BlockedOperands: @unchecked Sendable {
    // @unchecked: used only inside a synchronous parallel loop (`WorkerTeam.run`), while the caller
    // keeps every buffer alive; tasks read q, keys and values and write disjoint rows and heads of out.
    let q: UnsafePointer<Float>
    let kv: KVOperands
    let out: UnsafeMutablePointer<Float>
    /// Output rows as 16-bit codes instead of `out` (one KV head only).
    let codes: UnsafeMutablePointer<kv_q16_block>?
}

/// Scratch of one BLAS-free attention call: transposed queries per KV head, each lane's
/// first and last visible key, per-task score blocks and partial states, and one merged head.
private struct SmallAttentionBuffers {
    let qt: UnsafeMutablePointer<Float>
    let last: UnsafeMutablePointer<Int32>
    let first: UnsafeMutablePointer<Int32>
    let partialOut: UnsafeMutablePointer<Float>
    let partialMax: UnsafeMutablePointer<Float>
    let partialSum: UnsafeMutablePointer<Float>
    let merged: UnsafeMutablePointer<Float>

    init(kvHeads: Int, tasks: Int, m: Int, mp: Int, headDim: Int) {
        qt = .allocate(capacity: kvHeads * headDim * mp)  // every lane written by `stack` (padding zero)
        last = .allocate(capacity: mp)
        first = .allocate(capacity: mp)
        partialOut = .allocate(capacity: tasks * m * headDim)
        partialMax = .allocate(capacity: tasks * mp)
        partialSum = .allocate(capacity: tasks * mp)
        merged = .allocate(capacity: m * headDim)
    }

    func deallocate() {
        qt.deallocate(); last.deallocate(); first.deallocate()
        partialOut.deallocate(); partialMax.deallocate(); partialSum.deallocate(); merged.deallocate()
    }
}

/// The operands of one BLAS-free attention call shared by its tasks.
private struct AttentionPointers: @unchecked Sendable {
    // @unchecked: used only inside a synchronous parallel loop (`WorkerTeam.run`), while the caller keeps
    // every buffer alive; tasks read keys, values, qt and last, and write disjoint slices
    // of the partial buffers (each task's scratch is its thread's own).
    let kv: KVOperands
    let buffers: SmallAttentionBuffers
}

/// Where attention finds each KV head's f16 keys and values: head g's row p at
/// `g * headStride + p * rowStride` halves from `keys` (`values`).
private struct KVOperands: @unchecked Sendable {
    // @unchecked: read only, inside a synchronous parallel loop, while the caller keeps the cache alive.
    let keys: UnsafePointer<UInt16>
    let values: UnsafePointer<UInt16>
    let headStride: Int
    let rowStride: Int

    func keys(head g: Int, row p: Int = 0) -> UnsafePointer<UInt16> { keys + g * headStride + p * rowStride }
    func values(head g: Int, row p: Int = 0) -> UnsafePointer<UInt16> { values + g * headStride + p * rowStride }
}
