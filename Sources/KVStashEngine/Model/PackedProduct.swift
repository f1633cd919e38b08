import CKernels
import Foundation

/// One GGUF weight tensor as integer codes with a float scale (and offset) per block, in the
/// layout of the integer prefill products (AVX-512 VNNI or AVX2), packed once at load: two codes of a
/// row per 16-bit lane for `kv_gemm_q16`, or four per 32-bit lane and a per-block bias for
/// `kv_gemm_q8`. One byte of code per weight, a quarter of the f32 copy BLAS multiplies.
/// Where one row (decode) takes the packed product and the type's codes take 4 or 5 bits,
/// they are also kept at that width for it and for a few rows (`narrow`, decisions 119, 120).
struct PackedMatrix: Sendable {
    let codes: [Int8]
    let scales: [Float]
    /// Per-block offsets, for the types whose blocks have a minimum (Q4_1, Q5_1, Q4_K, Q5_K).
    let offsets: [Float]?
    /// For 8-bit inputs: per block and row, -128 times the sum of its codes (`kv_gemm_q8_relayout`).
    let bias: [Int32]?
    /// Weights per scale: 32, or 16 for Q6_K.
    let block: Int
    let rows: Int
    /// The codes at 4 or 5 bits (`kv_gemm_q16_narrow`), for up to `NarrowCodes.maxRows` input
    /// rows (decode, a cache hit's question), which wait on the weights' bytes; more rows (a
    /// prefill) do more work per byte and take the 8-bit codes.
    let narrow: NarrowCodes?

    struct NarrowCodes: Sendable {
        let bytes: [UInt8]
        let bits: Int32
        /// Added to every code as it is widened (`kv_gemm_q16_narrow_width`).
        let bias: Int32
        /// The most input rows a product takes on these codes: as many as the VNNI kernel widens
        /// in registers (`KV_GEMM_Q16_NARROW_ROWS`).
        static let maxRows = Int(KV_GEMM_Q16_NARROW_ROWS)
    }

    /// Bytes one row reads per weight: its code and its share of a scale and an offset.
    var oneRowBytesPerWeight: Double {
        Self.bytesPerWeight(bits: Int(narrow?.bits ?? 8), block: block, offsets: offsets != nil)
    }

    static func bytesPerWeight(bits: Int, block: Int, offsets: Bool) -> Double {
        Double(bits) / 8 + 4 / Double(block) + (offsets ? 4.0 / 32 : 0)
    }

    /// `info` of `gguf` packed for `inputs`, or nil when its type has no integer codes or its
    /// shape does not tile (rows a multiple of 32, columns of 32 and of the type's block).
    /// `narrowBelow`: keep narrow codes for one row when they take fewer bytes per weight than
    /// this (the copy decode would read otherwise).
    init?(info: GGUFTensorInfo, gguf: GGUFFile, inputs: PackedProduct.Inputs, narrowBelow: Double = 0) {
        let rows = info.dims.count > 1 ? info.dims[1] : 1, cols = info.dims[0]
        var bk: Int32 = 0, hasOffsets: Int32 = 0
        guard kv_gemm_q16_layout(Int32(info.type.rawValue), &bk, &hasOffsets) == 1, rows % 32 == 0,
              cols % (info.type.blockLayout?.elements ?? 32) == 0, cols % 32 == 0 else { return nil }
        var codes = [Int8](unsafeUninitializedCapacity: rows * cols) { buffer, count in
            kv_advise_huge(buffer.baseAddress!, rows * cols)  // streamed by decode's packed rows (decision 101)
            buffer.initialize(repeating: 0)
            count = rows * cols
        }
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
        var bias: [Int32]? = nil
        if inputs == .eightBit {
            var b = [Int32](repeating: 0, count: rows * cols / Int(bk))
            guard kv_gemm_q8_relayout(&codes, &b, bk, rows, cols) == 0 else { return nil }
            bias = b
        }
        (self.codes, self.scales, self.offsets, self.bias, self.block, self.rows) = (codes, scales, offsets, bias, Int(bk), rows)
        var bits: Int32 = 0, codeBias: Int32 = 0
        guard inputs == .sixteenBit, kv_gemm_q16_narrow_width(Int32(info.type.rawValue), &bits, &codeBias) == 1,
              Self.bytesPerWeight(bits: Int(bits), block: Int(bk), offsets: offsets != nil) < narrowBelow else {
            narrow = nil
            return
        }
        let count = rows * cols * Int(bits) / 8
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, n in
            kv_advise_huge(buffer.baseAddress!, count)  // streamed by decode (decision 101)
            let status = kv_gemm_q16_narrow(codes, rows, cols, bits, codeBias, buffer.baseAddress!)
            precondition(status == 0, "\(info.name): codes of \(info.type) outside \(bits) bits")
            n = count
        }
        narrow = NarrowCodes(bytes: bytes, bits: bits, bias: codeBias)
    }

    /// Output rows `r0 ..< r0 + n` (multiples of 32) of this tensor for `m` input rows of `x`
    /// (each `cols / 32` blocks), into `y` (rows `ldy` apart).
    func product(rows r0: Int, count n: Int, cols: Int, x: PackedProduct.InputCodes, m: Int,
                 y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool) {
        let add: Int32 = accumulate ? 1 : 0, first = r0 * cols / block
        if m <= NarrowCodes.maxRows, let narrow, case .sixteen(let x16) = x {
            let status = narrow.bytes.withUnsafeBufferPointer { c in
                scales.withUnsafeBufferPointer { s in
                    withOptionalPointer(offsets, at: r0 * cols / 32) { o in
                        kv_gemm_q16_narrow_product(c.baseAddress! + r0 * cols * Int(narrow.bits) / 8, narrow.bits, narrow.bias,
                                                   s.baseAddress! + first, o, x16, m, y, ldy, n, cols, add)
                    }
                }
            }
            precondition(status == 0, "the narrow product refused \(n) rows of \(cols)")
            return
        }
        let status = codes.withUnsafeBufferPointer { c in
            scales.withUnsafeBufferPointer { s in
                withOptionalPointer(offsets, at: r0 * cols / 32) { o in
                    switch x {
                    case .sixteen(let x16):
                        return kv_gemm_q16(c.baseAddress! + r0 * cols, s.baseAddress! + first, o, Int32(block), x16, m, y,
                                           ldy, n, cols, add)
                    case .eight(let x8):
                        guard let bias else { return -1 }
                        return bias.withUnsafeBufferPointer { b in
                            kv_gemm_q8(c.baseAddress! + r0 * cols, b.baseAddress! + first, s.baseAddress! + first, o,
                                       Int32(block), x8, m, y, ldy, n, cols, add)
                        }
                    }
                }
            }
        }
        precondition(status == 0, "the packed product refused \(n) rows of \(cols)")
    }
}

/// `body` with the address of `array[offset]`, or nil without an array.
private func withOptionalPointer<R>(_ array: [Float]?, at offset: Int, _ body: (UnsafePointer<Float>?) -> R) -> R {
    guard let array else { return body(nil) }
    return array.withUnsafeBufferPointer { body($0.baseAddress! + offset) }
}

/// The products of more than one input row on packed integer codes: every input row is
/// quantized per block of 32 (to 16-bit codes by default: `kv_quantize_q16`, within about 1e-5
/// of the f32 products, as decode's input), and the output rows of all parts together are
/// split over the BLAS thread count in tiles of 32 rows.
struct PackedProduct: Sendable {
    let parts: [PackedMatrix]
    let outDim: Int
    let inDim: Int
    let inputs: Inputs

    /// Which product prefill takes: `.auto` the packed integer codes on 16-bit inputs where the
    /// CPU has AVX-512 VNNI or AVX2 with FMA and every part packs, `.int8` the same on 8-bit
    /// inputs (llama.cpp's input precision; `kv_gemm_q8`, AVX-512 VNNI only: elsewhere 16-bit),
    /// `.f32` always BLAS `sgemm` on the dequantized weights. `KVSTASH_PREFILL_PRODUCT=f32` or
    /// `=int8` measures the others on one build (`bench/decode_fidelity.py --score-by prefill`,
    /// `bench/gemma3_peers.sh`).
    enum Mode: String { case auto, int8, f32 }
    static let mode = ProcessInfo.processInfo.environment["KVSTASH_PREFILL_PRODUCT"].flatMap(Mode.init(rawValue:)) ?? .auto

    /// The kernel path of the 16-bit products (`kv_gemm_q16_path`: 2 AVX-512 VNNI, 1 AVX2,
    /// 0 plain C). `KVSTASH_PACKED_PATH=avx2` (or `portable`) takes a lower one the CPU also
    /// runs, so one machine measures what an AVX2 machine runs; every path gives the same bits.
    static let path: Int32 = {
        let forced: [String: Int32] = ["portable": KV_GEMM_Q16_PORTABLE, "avx2": KV_GEMM_Q16_AVX2, "vnni": KV_GEMM_Q16_VNNI]
        if let name = ProcessInfo.processInfo.environment["KVSTASH_PACKED_PATH"], let level = forced[name] {
            kv_gemm_q16_set_path(level)
        }
        return kv_gemm_q16_path()
    }()

    /// Bits of an input code.
    enum Inputs: Sendable { case sixteenBit, eightBit }

    /// A product's input rows, quantized.
    enum InputCodes {
        case sixteen(UnsafePointer<kv_q16_block>)
        case eight(UnsafePointer<kv_u8_block>)
    }

    /// The packed tensors `infos` (stacked by rows) of `gguf`, or nil where the product is
    /// not available: another CPU, `KVSTASH_PREFILL_PRODUCT=f32`, or a part that does not pack.
    init?(_ infos: [GGUFTensorInfo], gguf: GGUFFile, outDim: Int, inDim: Int, mode: Mode = Self.mode) {
        guard mode != .f32, Self.path != KV_GEMM_Q16_PORTABLE, inDim % 32 == 0 else { return nil }
        let inputs: Inputs = mode == .int8 && kv_gemm_q8_available() == 1 ? .eightBit : .sixteenBit
        let oneRow = Linear.singleRowCanTakePacked(inputs: inputs)
        var parts: [PackedMatrix] = []
        for info in infos {
            // Narrow codes where one row can take them and they are smaller than the copy it would
            // read otherwise: the interleaved copy, else these 8-bit codes.
            let otherwise = EncodedMatrix.interleavedBlockBytes(info.type).map { Double($0) / 32 } ?? .infinity
            guard let part = PackedMatrix(info: info, gguf: gguf, inputs: inputs, narrowBelow: oneRow ? otherwise : 0)
            else { return nil }
            parts.append(part)
        }
        (self.parts, self.outDim, self.inDim, self.inputs) = (parts, outDim, inDim, inputs)
    }

    /// `c[m][out] = a[m][in] · W^T (+ c when accumulate)`: the rows quantized, then multiplied.
    func apply(_ a: UnsafePointer<Float>, lda: Int, rows m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int,
               accumulate: Bool) {
        switch inputs {
        case .sixteenBit:
            quantized(a, lda: lda, rows: m, by: kv_quantize_q16) { multiply(.sixteen($0), rows: m, into: c, ldc: ldc, accumulate: accumulate) }
        case .eightBit:
            quantized(a, lda: lda, rows: m, by: kv_quantize_u8) { multiply(.eight($0), rows: m, into: c, ldc: ldc, accumulate: accumulate) }
        }
    }

    /// `body` with the `m` rows of `a` quantized by `quantize` (`inDim / 32` blocks per row),
    /// each worker quantizing its share of the rows.
    private func quantized<Block>(_ a: UnsafePointer<Float>, lda: Int, rows m: Int,
                                  by quantize: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Block>, Int) -> Void,
                                  _ body: (UnsafePointer<Block>) -> Void) {
        let blocks = inDim / 32, workers = self.workers, inDim = inDim
        let x = UnsafeMutablePointer<Block>.allocate(capacity: m * blocks)
        defer { x.deallocate() }
        let p = QuantizeOperands(a: a, x: x)
        WorkerTeam.run(tasks: workers) { w in
            for t in stride(from: w, to: m, by: workers) { quantize(p.a + t * lda, p.x + t * blocks, inDim) }
        }
        body(x)
    }

    /// `c[m][out] = x[m][in] · W^T (+ c when accumulate)` for rows already quantized to 16-bit
    /// codes (`kv_quantize_q16`'s, `inDim / 32` blocks per row), e.g. by the kernels that write
    /// their output as codes (`kv_rmsnorm_q16`, `kv_gelu_mul_q16`). Only on 16-bit inputs.
    func apply(codes x16: UnsafePointer<kv_q16_block>, rows m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int,
               accumulate: Bool) {
        precondition(inputs == .sixteenBit, "16-bit codes for a product on 8-bit inputs")
        multiply(.sixteen(x16), rows: m, into: c, ldc: ldc, accumulate: accumulate)
    }

    /// The parts' products, their output rows split over the workers.
    private func multiply(_ x: InputCodes, rows m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        let workers = self.workers, step = (outDim / 32 + workers - 1) / workers * 32
        let p = ProductOperands(x: x, c: c)
        let parts = parts, inDim = inDim, outDim = outDim
        WorkerTeam.run(tasks: workers) { w in
            forEachPart(in: min(outDim, w * step)..<min(outDim, (w + 1) * step), rows: parts.lazy.map(\.rows)) { i, rows, first in
                parts[i].product(rows: rows.lowerBound, count: rows.count, cols: inDim, x: p.x, m: m,
                                 y: p.c + first + rows.lowerBound, ldy: ldc, accumulate: accumulate)
            }
        }
    }

    /// `act(gate) ⊙ up` of `m` input rows (16-bit codes, `inDim / 32` blocks each) as 16-bit
    /// codes (`[m][outDim / 64]` blocks), for a product whose output rows stack the gate
    /// (`0 ..< outDim / 2`) and the up projection after it. Each task takes groups of 32
    /// features: the gate's and the up projection's 32 rows multiplied into a scratch of
    /// `m x 64` floats that stays in the core's cache, then that block of every row's codes
    /// written (`kv_gelu_mul_q16` / `kv_silu_mul_q16`), so the `m x outDim` floats of the
    /// product never go out to memory and back. The same bits as the product, then the
    /// activation's codes of its output.
    func gatedCodes(_ x16: UnsafePointer<kv_q16_block>, rows m: Int, activation: Activation,
                    into out: UnsafeMutablePointer<kv_q16_block>) {
        precondition(inputs == .sixteenBit && outDim % 64 == 0, "a gated product on 16-bit codes of 2 x 32k rows")
        let half = outDim / 2, groups = half / 32, workers = self.workers
        let step = (groups + workers - 1) / workers
        let p = GatedOperands(x: x16, out: out)
        let parts = parts, inDim = inDim
        WorkerTeam.run(tasks: (groups + step - 1) / step) { w in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: m * 64)
            defer { scratch.deallocate() }
            for g in (w * step)..<min(groups, (w + 1) * step) {
                for (column, from) in [(0, 32 * g), (32, half + 32 * g)] {  // the gate's 32 rows, then up's
                    forEachPart(in: from..<(from + 32), rows: parts.lazy.map(\.rows)) { i, rows, first in
                        parts[i].product(rows: rows.lowerBound, count: rows.count, cols: inDim, x: .sixteen(p.x), m: m,
                                         y: scratch + column + first + rows.lowerBound - from, ldy: 64, accumulate: false)
                    }
                }
                activation.gatedCodes(gate: scratch, up: scratch + 32, rows: m, n: 32, ld: 64, into: p.out + g,
                                      ldo: groups)
            }
        }
    }

    /// Tasks of one product: the BLAS thread count, at most one per tile of 32 output rows.
    private var workers: Int { min(blasThreads(), 8, outDim / 32) }
}

/// The operands of one quantization of a packed product's input, shared by its workers.
private struct QuantizeOperands<Block>: @unchecked Sendable {
    // @unchecked: used only inside a synchronous parallel loop (`WorkerTeam.run`) while the caller
    // keeps both buffers alive; workers read `a` and write disjoint rows of `x`.
    let a: UnsafePointer<Float>
    let x: UnsafeMutablePointer<Block>
}

/// The operands of one gated product shared by its workers.
private struct GatedOperands: @unchecked Sendable {
    // @unchecked: used only inside a synchronous parallel loop (`WorkerTeam.run`) while the caller
    // keeps both buffers alive; workers read `x` and write disjoint columns of blocks of `out`.
    let x: UnsafePointer<kv_q16_block>
    let out: UnsafeMutablePointer<kv_q16_block>
}

/// The operands of one packed product shared by its workers.
private struct ProductOperands: @unchecked Sendable {
    // @unchecked: used only inside a synchronous parallel loop (`WorkerTeam.run`) while the caller
    // keeps both buffers alive; workers read `x` and write disjoint columns of `c`.
    let x: PackedProduct.InputCodes
    let c: UnsafeMutablePointer<Float>
}
