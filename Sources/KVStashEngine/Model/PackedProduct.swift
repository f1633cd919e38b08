import CKernels
import Foundation

/// One GGUF weight tensor as integer codes with a float scale (and offset) per block, in the
/// layout of the integer prefill product `kv_gemm_q16` (AVX-512 VNNI), packed once at load.
/// One byte of code per weight, a quarter of the f32 copy BLAS multiplies.
struct PackedMatrix: Sendable {
    let codes: [Int8]
    let scales: [Float]
    /// Per-block offsets, for the types whose blocks have a minimum (Q4_1, Q5_1, Q4_K, Q5_K).
    let offsets: [Float]?
    /// Weights per scale: 32, or 16 for Q6_K.
    let block: Int
    let rows: Int

    /// `info` of `gguf` packed, or nil when its type has no integer codes or its shape does
    /// not tile (rows a multiple of 32, columns of 32 and of the type's block).
    init?(info: GGUFTensorInfo, gguf: GGUFFile) {
        let rows = info.dims.count > 1 ? info.dims[1] : 1, cols = info.dims[0]
        var bk: Int32 = 0, hasOffsets: Int32 = 0
        guard kv_gemm_q16_layout(Int32(info.type.rawValue), &bk, &hasOffsets) == 1, rows % 32 == 0,
              cols % (info.type.blockLayout?.elements ?? 32) == 0, cols % 32 == 0 else { return nil }
        var codes = [Int8](repeating: 0, count: rows * cols)
        var scales = [Float](repeating: 0, count: rows * cols / Int(bk))
        var offsets = hasOffsets == 1 ? [Float](repeating: 0, count: rows * cols / 32) : nil
        let status = gguf.withRawBytes(info) { raw in
            codes.withUnsafeMutableBufferPointer { c in
                scales.withUnsafeMutableBufferPointer { s in
                    if offsets == nil {
                        return kv_gemm_q16_pack(Int32(info.type.rawValue), raw.baseAddress!, rows, cols, c.baseAddress!,
                                                s.baseAddress!, nil)
                    }
                    return offsets!.withUnsafeMutableBufferPointer { o in
                        kv_gemm_q16_pack(Int32(info.type.rawValue), raw.baseAddress!, rows, cols, c.baseAddress!,
                                         s.baseAddress!, o.baseAddress!)
                    }
                }
            }
        }
        guard status == bk else { return nil }
        (self.codes, self.scales, self.offsets, self.block, self.rows) = (codes, scales, offsets, Int(bk), rows)
    }

    /// Output rows `r0 ..< r0 + n` (multiples of 32) of this tensor for `m` input rows of
    /// `x16` (each `cols / 32` blocks), into `y` (rows `ldy` apart).
    func product(rows r0: Int, count n: Int, cols: Int, x16: UnsafePointer<kv_q16_block>, m: Int,
                 y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool) {
        let status = codes.withUnsafeBufferPointer { c in
            scales.withUnsafeBufferPointer { s in
                let at = (codes: c.baseAddress! + r0 * cols, scales: s.baseAddress! + r0 * cols / block)
                guard let offsets else {
                    return kv_gemm_q16(at.codes, at.scales, nil, Int32(block), x16, m, y, ldy, n, cols, accumulate ? 1 : 0)
                }
                return offsets.withUnsafeBufferPointer { o in
                    kv_gemm_q16(at.codes, at.scales, o.baseAddress! + r0 * cols / 32, Int32(block), x16, m, y, ldy, n,
                                cols, accumulate ? 1 : 0)
                }
            }
        }
        precondition(status == 0, "kv_gemm_q16 refused \(n) rows of \(cols)")
    }
}

/// The products of more than one input row on packed integer codes: every input row is
/// quantized to 16-bit codes per block of 32 (`kv_quantize_q16`, within about 1e-5 of the f32
/// products, as decode's input), and the output rows of all parts together are split over
/// the BLAS thread count in tiles of 32 rows.
struct PackedProduct: Sendable {
    let parts: [PackedMatrix]
    let outDim: Int
    let inDim: Int

    /// Which product prefill takes: `.auto` the packed integer codes where the CPU has AVX-512
    /// VNNI and every part packs, `.f32` always BLAS `sgemm` on the dequantized weights.
    /// `KVSTASH_PREFILL_PRODUCT=f32` measures the second on one build
    /// (`bench/decode_fidelity.py --score-by prefill`).
    enum Mode: String { case auto, f32 }
    static let mode = ProcessInfo.processInfo.environment["KVSTASH_PREFILL_PRODUCT"].flatMap(Mode.init(rawValue:)) ?? .auto

    /// The packed tensors `infos` (stacked by rows) of `gguf`, or nil where the product is
    /// not available: another CPU, `KVSTASH_PREFILL_PRODUCT=f32`, or a part that does not pack.
    init?(_ infos: [GGUFTensorInfo], gguf: GGUFFile, outDim: Int, inDim: Int) {
        guard Self.mode == .auto, kv_gemm_q16_available() == 1, inDim % 32 == 0 else { return nil }
        var parts: [PackedMatrix] = []
        for info in infos {
            guard let part = PackedMatrix(info: info, gguf: gguf) else { return nil }
            parts.append(part)
        }
        (self.parts, self.outDim, self.inDim) = (parts, outDim, inDim)
    }

    /// `c[m][out] = a[m][in] · W^T (+ c when accumulate)`: the rows quantized to 16-bit codes,
    /// then `apply(codes:)`.
    func apply(_ a: UnsafePointer<Float>, lda: Int, rows m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int,
               accumulate: Bool) {
        let blocks = inDim / 32, workers = self.workers
        let x16 = UnsafeMutablePointer<kv_q16_block>.allocate(capacity: m * blocks)
        defer { x16.deallocate() }
        let p = QuantizeOperands(a: a, x16: x16), inDim = inDim
        WorkerTeam.run(tasks: workers) { w in  // each worker quantizes its share of the rows
            for t in stride(from: w, to: m, by: workers) { kv_quantize_q16(p.a + t * lda, p.x16 + t * blocks, inDim) }
        }
        apply(codes: x16, rows: m, into: c, ldc: ldc, accumulate: accumulate)
    }

    /// `c[m][out] = x[m][in] · W^T (+ c when accumulate)` for rows already quantized (`kv_quantize_q16`'s
    /// codes, `inDim / 32` blocks per row), e.g. by the kernels that write their output as codes
    /// (`kv_rmsnorm_q16`, `kv_gelu_mul_q16`).
    func apply(codes x16: UnsafePointer<kv_q16_block>, rows m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int,
               accumulate: Bool) {
        let workers = self.workers, step = (outDim / 32 + workers - 1) / workers * 32
        let p = ProductOperands(x16: x16, c: c)
        let parts = parts, inDim = inDim, outDim = outDim
        WorkerTeam.run(tasks: workers) { w in
            forEachPart(in: min(outDim, w * step)..<min(outDim, (w + 1) * step), rows: parts.lazy.map(\.rows)) { i, rows, first in
                parts[i].product(rows: rows.lowerBound, count: rows.count, cols: inDim, x16: p.x16, m: m,
                                 y: p.c + first + rows.lowerBound, ldy: ldc, accumulate: accumulate)
            }
        }
    }

    /// Tasks of one product: the BLAS thread count, at most one per tile of 32 output rows.
    private var workers: Int { min(blasThreads(), 8, outDim / 32) }
}

/// The operands of one quantization of a packed product's input, shared by its workers.
private struct QuantizeOperands: @unchecked Sendable {
    // @unchecked: used only inside a synchronous parallel loop (`WorkerTeam.run`) while the caller
    // keeps both buffers alive; workers read `a` and write disjoint rows of `x16`.
    let a: UnsafePointer<Float>
    let x16: UnsafeMutablePointer<kv_q16_block>
}

/// The operands of one packed product shared by its workers.
private struct ProductOperands: @unchecked Sendable {
    // @unchecked: used only inside a synchronous parallel loop (`WorkerTeam.run`) while the caller
    // keeps both buffers alive; workers read `x16` and write disjoint columns of `c`.
    let x16: UnsafePointer<kv_q16_block>
    let c: UnsafeMutablePointer<Float>
}
