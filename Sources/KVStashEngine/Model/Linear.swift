import CKernels

/// One GGUF weight tensor left encoded in the memory map, for matrix-vector products.
struct EncodedMatrix: Sendable {
    let info: GGUFTensorInfo
    /// For Q4_1 and Q8_0 with rows and columns multiples of 32: the same tensor with each
    /// group of 32 rows interleaved block by block (`kv_q4_1_interleave`,
    /// `kv_q8_0_interleave`, same size), which decode (both types) and small prefills
    /// (Q4_1) multiply with the output rows in vector lanes.
    let interleaved: [UInt8]?
    var rows: Int { info.dims.count > 1 ? info.dims[1] : 1 }
    var cols: Int { info.dims[0] }

    /// The tensor `info` of `gguf`, interleaved when its type and shape allow.
    init(info: GGUFTensorInfo, gguf: GGUFFile) {
        self.info = info
        let rows = info.dims.count > 1 ? info.dims[1] : 1, cols = info.dims[0]
        guard info.type == .q4_1 || info.type == .q8_0, rows % 32 == 0, cols % 32 == 0 else { interleaved = nil; return }
        interleaved = gguf.withRawBytes(info) { raw in
            [UInt8](unsafeUninitializedCapacity: raw.count) { buf, n in
                if info.type == .q4_1 {
                    kv_q4_1_interleave(raw.baseAddress!, buf.baseAddress!, rows, cols)
                } else {
                    kv_q8_0_interleave(raw.baseAddress!, buf.baseAddress!, rows, cols)
                }
                n = raw.count
            }
        }
    }
}

/// A linear layer `y = W x` whose weight is one or more GGUF tensors stacked by rows.
///
/// Prefill multiplies many rows at once through BLAS `sgemm` on the f32 copy (`dense`,
/// dequantized once at load). A few rows (decode, or the question after a cache hit)
/// are memory-bound, so they read the encoded tensors from the memory map instead:
/// 4-5x fewer bytes for Q4/Q8, and no packing of the whole weight by BLAS.
struct Linear: Sendable {
    /// `[out][in]` f32, row-major.
    let dense: [Float]
    /// The same rows, encoded, in stacking order.
    let parts: [EncodedMatrix]
    let outDim: Int
    let inDim: Int
    let gguf: GGUFFile

    /// Up to this many rows go through the encoded weights (`kv_matmul_rows`); more use
    /// `sgemm` on `dense`. Measured with `kvstash-enginebench --suffix`: the encoded path
    /// is faster up to about this size on AVX-512.
    static let encodedRowsLimit = 32

    /// `c[m][out] = a[m][in] · W^T (+ c when accumulate)`.
    func apply(_ a: UnsafePointer<Float>, lda: Int, rows m: Int, into c: UnsafeMutablePointer<Float>,
               ldc: Int, accumulate: Bool = false) {
        if m <= Self.encodedRowsLimit && inDim % 32 == 0 {
            encodedProduct(a, lda: lda, rows: m, into: c, ldc: ldc, accumulate: accumulate)
            return
        }
        dense.withUnsafeBufferPointer { w in
            gemmNT(m: m, n: outDim, k: inDim, a: a, lda: lda, b: w.baseAddress!, ldb: inDim,
                   beta: accumulate ? 1 : 0, c: c, ldc: ldc)
        }
    }

    /// `c = a W^T` from the encoded tensors. The output columns of all parts together are
    /// split evenly over the BLAS thread count (in multiples of 32, the interleaved
    /// groups), in one parallel dispatch (a worker's slice may cross from one part into
    /// the next). Where the slice covers whole interleaved groups, one input row takes
    /// `kv_matvec_interleaved` and more take the interleaved Q4_1 kernel; otherwise
    /// `kv_matvec` and `kv_matmul_rows`.
    private func encodedProduct(_ a: UnsafePointer<Float>, lda: Int, rows m: Int, into c: UnsafeMutablePointer<Float>,
                                ldc: Int, accumulate: Bool) {
        let workers = outDim >= 256 ? min(blasThreads(), 8) : 1
        let step = ((outDim + workers - 1) / workers + 31) / 32 * 32
        let inDim = inDim, parts = parts
        gguf.withRawBytes(parts.map(\.info)) { raws in
            let p = ProductPointers(parts: raws, x: a, y: c)
            WorkerTeam.run(tasks: workers) { w in
                let lo = w * step, hi = min(outDim, lo + step)
                var first = 0  // the part's first output column
                for (part, raw) in zip(parts, p.parts) {
                    defer { first += part.rows }
                    let r0 = max(lo, first) - first, r1 = min(hi, first + part.rows) - first
                    guard r0 < r1 else { continue }
                    let type = Int32(part.info.type.rawValue), rowBytes = part.info.byteCount / part.rows
                    let y = p.y + first + r0, add: Int32 = accumulate ? 1 : 0
                    let status: Int32
                    // A group of 32 rows takes as many bytes as 32 rows of the original.
                    let grouped = r0 % 32 == 0 && (r1 - r0) % 32 == 0 ? part.interleaved : nil
                    if m == 1, let grouped {
                        status = grouped.withUnsafeBytes {
                            kv_matvec_interleaved(type, $0.baseAddress! + r0 * rowBytes, p.x, y, r1 - r0, inDim, add)
                        }
                    } else if m == 1 {
                        status = kv_matvec(type, raw + r0 * rowBytes, p.x, y, r1 - r0, inDim, add)
                    } else if let grouped, part.info.type == .q4_1 {
                        status = grouped.withUnsafeBytes {
                            kv_matmul_q4_1_interleaved($0.baseAddress! + r0 * rowBytes, p.x, lda, y, ldc, m, r1 - r0, inDim, add)
                        }
                    } else {
                        status = kv_matmul_rows(type, raw + r0 * rowBytes, p.x, lda, y, ldc, m, r1 - r0, inDim, add)
                    }
                    precondition(status == 0, "no kernel for GGUF type \(type)")
                }
            }
        }
    }
}

/// The operands of one product shared by its workers.
private struct ProductPointers: @unchecked Sendable {
    // @unchecked: used only inside a synchronous parallel loop (`WorkerTeam.run`), while the caller
    // keeps every buffer alive; workers read the parts and `x` and write disjoint columns of `y`.
    let parts: [UnsafeRawPointer]
    let x: UnsafePointer<Float>
    let y: UnsafeMutablePointer<Float>
}
