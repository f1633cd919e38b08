import CKernels
import Foundation

/// One GGUF weight tensor left encoded in the memory map, for matrix-vector products.
struct EncodedMatrix: Sendable {
    let info: GGUFTensorInfo
    /// For Q4_1, Q8_0 and Q5_0 with rows and columns multiples of 32: the same tensor in groups
    /// of 32 rows laid out for integer dot products (`kv_qdot_interleave`; Q5_0 rewritten
    /// exactly as Q8_0 first, `kv_qdot_interleave_q5_0`, 34/22 of its size), which decode
    /// multiplies against the quantized input row and small prefills (Q4_1) with the output
    /// rows in vector lanes.
    let interleaved: [UInt8]?
    /// The block type of `interleaved` (Q8_0 for a Q5_0 tensor).
    let interleavedType: GGMLType
    var rows: Int { info.dims.count > 1 ? info.dims[1] : 1 }
    var cols: Int { info.dims[0] }
    /// Bytes of one row of `interleaved` (a group of 32 rows takes 32 of them).
    var interleavedRowBytes: Int { cols / 32 * Self.interleavedBlockBytes(interleavedType)! }
    /// Decode takes integer products on the 16-bit input (the interleaved copy, or the
    /// row-major blocks through `kv_matvec_q16rows`).
    var takesSixteenBitInput: Bool {
        interleaved != nil || kv_q16rows_supports(Int32(info.type.rawValue)) == 1
    }

    /// Bytes per block of 32 weights of the interleaved copy of `type` (Q5_0's is Q8_0), or nil
    /// for a type without one.
    static func interleavedBlockBytes(_ type: GGMLType) -> Int? {
        switch type {
        case .q4_1: 20
        case .q8_0, .q5_0: 34
        default: nil
        }
    }

    /// The tensor `info` of `gguf`, interleaved when `interleave`, its type and its shape allow.
    init(info: GGUFTensorInfo, gguf: GGUFFile, interleave: Bool = true) {
        self.info = info
        let rows = info.dims.count > 1 ? info.dims[1] : 1, cols = info.dims[0]
        interleavedType = info.type == .q5_0 ? .q8_0 : info.type
        guard interleave, let blockBytes = Self.interleavedBlockBytes(info.type), rows % 32 == 0, cols % 32 == 0 else {
            interleaved = nil
            return
        }
        let bytes = rows * cols / 32 * blockBytes
        interleaved = gguf.withRawBytes(info) { raw in
            [UInt8](unsafeUninitializedCapacity: bytes) { buf, n in
                kv_advise_huge(buf.baseAddress!, bytes)  // streamed every token: huge pages (decision 101)
                if info.type == .q5_0 {
                    let status = kv_qdot_interleave_q5_0(raw.baseAddress!, buf.baseAddress!, rows, cols)
                    precondition(status == 0, "out of memory interleaving \(info.name)")
                } else {
                    kv_qdot_interleave(Int32(info.type.rawValue), raw.baseAddress!, buf.baseAddress!, rows, cols)
                }
                n = bytes
            }
        }
    }
}

/// A linear layer `y = W x` whose weight is one or more GGUF tensors stacked by rows.
///
/// Prefill multiplies many rows at once: on a CPU with AVX-512 VNNI or AVX2, 16-bit input
/// codes against integer weight codes packed once at load (`packed`, twice the multiply-adds
/// of f32 per instruction on VNNI); elsewhere BLAS `sgemm` on the f32 copy (`dense`,
/// dequantized once at load). One row (decode) is memory-bound, so it reads the encoded tensors from the memory
/// map instead: 4-5x fewer bytes for Q4/Q8. Without `packed`, up to `encodedRowsLimit` rows
/// (the question after a cache hit) read them too, with no packing of the whole weight by BLAS.
struct Linear: Sendable {
    /// `[out][in]` f32, row-major; empty when `packed` takes every product of more than one
    /// row, or when the encoded parts take them all (a tied output head).
    let dense: [Float]
    let packed: PackedProduct?
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
        if let packed, m > 1 || singleRowTakesPacked {
            packed.apply(a, lda: lda, rows: m, into: c, ldc: ldc, accumulate: accumulate)
            return
        }
        if (m <= Self.encodedRowsLimit || dense.isEmpty) && inDim % 32 == 0 {
            // Without an f32 copy (a tied output head), many rows go 32 at a time.
            for r0 in stride(from: 0, to: m, by: Self.encodedRowsLimit) {
                encodedProduct(a + r0 * lda, lda: lda, rows: min(Self.encodedRowsLimit, m - r0), into: c + r0 * ldc,
                               ldc: ldc, accumulate: accumulate)
            }
            return
        }
        dense.withUnsafeBufferPointer { w in
            gemmNT(m: m, n: outDim, k: inDim, a: a, lda: lda, b: w.baseAddress!, ldb: inDim,
                   beta: accumulate ? 1 : 0, c: c, ldc: ldc)
        }
    }

    /// Whether one input row (decode) takes the packed product too: where a part has no
    /// interleaved copy (the K-quants, Q4_0, Q5_1, read row-major by `kv_matvec_q16rows`, whose
    /// float order differs from the packed product's) and the packed product runs on 16-bit
    /// inputs with AVX-512 VNNI. Then a row decode computes equals, bit for bit, the same row in
    /// a prefill of any size, as the interleaved kernels' rows already do (same integer sums,
    /// same multiply-add per block), so the KV of a decoded answer serves a later prompt as its
    /// prefill would. There it also decoded faster than the row-major blocks, whatever their
    /// float order, although its codes take more bytes (decision 099).
    var singleRowTakesPacked: Bool {
        singleRowNeedsPackedSteps && packed.map { Self.singleRowCanTakePacked(inputs: $0.inputs) } == true
    }

    /// Whether one row of a packed product on `inputs` would take the packed product if a part
    /// had no interleaved copy: then a part whose narrow codes (`PackedMatrix.narrow`) take
    /// fewer bytes than its interleaved copy goes without one (`WeightLoader.linear`: Q5_0 at 5
    /// bits, 0.75 bytes per weight with its scale, against 1.06 as Q8_0; decision 119).
    static func singleRowCanTakePacked(inputs: PackedProduct.Inputs) -> Bool {
        inputs == .sixteenBit && decodeActivations == .auto && PackedProduct.path == KV_GEMM_Q16_VNNI
    }

    /// Whether one input row reads those parts' row-major blocks in the packed product's float
    /// order (`kv_matvec_q16rows_ordered`): on AVX2 without VNNI, where one row of the packed
    /// product reads its 1.25 bytes per weight without VNNI's arithmetic to show for it, so
    /// the rows stay batch-invariant at a few percent of decode (decision 102).
    /// `KVSTASH_ROW_ORDER=lanes` keeps the faster lanes order there, for measurements.
    var singleRowTakesOrderedRows: Bool {
        singleRowNeedsPackedSteps && PackedProduct.path == KV_GEMM_Q16_AVX2 && !Self.lanesOrderForced
    }

    static let lanesOrderForced = ProcessInfo.processInfo.environment["KVSTASH_ROW_ORDER"] == "lanes"

    /// A part has no interleaved copy, so one row must take the packed product's float steps
    /// some other way than the interleaved kernels.
    private var singleRowNeedsPackedSteps: Bool {
        packed?.inputs == .sixteenBit && Self.decodeActivations == .auto && parts.contains { $0.interleaved == nil }
    }

    /// Whether a row of this product is the same bits for any number of input rows: every
    /// product of more than one row is packed on 16-bit inputs, and one row takes the packed
    /// product, the row-major blocks in its order, or an interleaved kernel, which takes its
    /// steps (every part interleaved).
    var batchInvariant: Bool {
        packed?.inputs == .sixteenBit && Self.decodeActivations == .auto
            && (singleRowTakesPacked || singleRowTakesOrderedRows || parts.allSatisfy { $0.interleaved != nil })
    }

    /// Whether `m` input rows enter as 16-bit codes (`apply(codes:)`): the packed integer
    /// product on 16-bit inputs, which takes every product of more than one row where it exists.
    func takesCodes(rows m: Int) -> Bool { (m > 1 || singleRowTakesPacked) && packed?.inputs == .sixteenBit }

    /// `act(gate) ⊙ up` as 16-bit codes (`[m][outDim / 64]`) for a stacked gate and up
    /// projection (`PackedProduct.gatedCodes`); only where `takesCodes(rows: m)`.
    func gatedCodes(_ x16: UnsafePointer<kv_q16_block>, rows m: Int, activation: Activation,
                    into out: UnsafeMutablePointer<kv_q16_block>) {
        guard takesCodes(rows: m), let packed else { preconditionFailure("\(m) rows of codes for an unpacked product") }
        packed.gatedCodes(x16, rows: m, activation: activation, into: out)
    }

    /// `c[m][out] = x[m][in] · W^T (+ c when accumulate)` for rows already quantized
    /// (`kv_quantize_q16`'s codes); only where `takesCodes(rows: m)`.
    func apply(codes x16: UnsafePointer<kv_q16_block>, rows m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int,
               accumulate: Bool = false) {
        guard takesCodes(rows: m), let packed else { preconditionFailure("\(m) rows of codes for an unpacked product") }
        packed.apply(codes: x16, rows: m, into: c, ldc: ldc, accumulate: accumulate)
    }

    /// How one input row (decode) enters the products: `.auto` quantizes it to 16 bits per
    /// block of 32 (`kv_matvec_q16dot` on interleaved copies, `kv_matvec_q16rows` on the
    /// row-major K-quant and other block tensors), within about 1e-5 of the f32 products, so
    /// greedy tokens and the answers of a cache hit stay those of the f32 forward pass. For
    /// measurements on one build (`bench/decode_fidelity.py`), `KVSTASH_DECODE_ACTIVATIONS=int8`
    /// takes 8-bit codes on the interleaved copies (`kv_matvec_qdot`, llama.cpp's choice; f32
    /// input elsewhere) and `=f32` the f32 input on the row-major tensors (`kv_matvec`).
    enum DecodeActivations: String { case auto, f32, int8 }
    static let decodeActivations = ProcessInfo.processInfo.environment["KVSTASH_DECODE_ACTIVATIONS"]
        .flatMap(DecodeActivations.init(rawValue:)) ?? .auto

    /// `c = a W^T` from the encoded tensors. The output columns of all parts together are
    /// split evenly over the BLAS thread count (in multiples of 32, the interleaved
    /// groups), in one parallel dispatch (a worker's slice may cross from one part into
    /// the next). Where the slice covers whole interleaved groups, one input row, quantized
    /// once per product, takes the integer kernels, and more rows `kv_matmul_interleaved`;
    /// otherwise one row takes `kv_matvec_q16rows` where the type has it, else `kv_matvec`,
    /// and more rows `kv_matmul_rows`.
    private func encodedProduct(_ a: UnsafePointer<Float>, lda: Int, rows m: Int, into c: UnsafeMutablePointer<Float>,
                                ldc: Int, accumulate: Bool) {
        let mode = m == 1 ? Self.decodeActivations : .f32
        let wide = mode == .auto && parts.contains(where: \.takesSixteenBitInput)
        let narrow = mode == .int8 && parts.contains { $0.interleaved != nil }
        withUnsafeTemporaryAllocation(of: kv_q8_block.self, capacity: narrow ? inDim / 32 : 0) { x8 in
            withUnsafeTemporaryAllocation(of: kv_q16_block.self, capacity: wide ? inDim / 32 : 0) { x16 in
                if narrow { kv_quantize_q8(a, x8.baseAddress!, inDim) }
                if wide { kv_quantize_q16(a, x16.baseAddress!, inDim) }
                let p = ProductPointers(parts: [], x: a, x8: narrow ? UnsafePointer(x8.baseAddress) : nil,
                                        x16: wide ? UnsafePointer(x16.baseAddress) : nil, y: c,
                                        ordered: m == 1 && singleRowTakesOrderedRows)
                run(p, rows: m, lda: lda, ldc: ldc, accumulate: accumulate)
            }
        }
    }

    /// The parallel loop of `encodedProduct` over the output columns.
    private func run(_ operands: ProductPointers, rows m: Int, lda: Int, ldc: Int, accumulate: Bool) {
        let workers = outDim >= 256 ? min(blasThreads(), 8) : 1
        let step = ((outDim + workers - 1) / workers + 31) / 32 * 32
        let inDim = inDim, outDim = outDim, parts = parts
        gguf.withRawBytes(parts.map(\.info)) { raws in
            let p = ProductPointers(parts: raws, x: operands.x, x8: operands.x8, x16: operands.x16, y: operands.y,
                                    ordered: operands.ordered)
            WorkerTeam.run(tasks: workers) { w in
                forEachPart(in: min(outDim, w * step)..<min(outDim, (w + 1) * step), rows: parts.lazy.map(\.rows)) { i, rows, first in
                    let status = Self.product(parts[i], raw: p.parts[i], p, rows: rows, m: m, inDim: inDim, lda: lda,
                                              y: p.y + first + rows.lowerBound, ldc: ldc, accumulate: accumulate)
                    precondition(status == 0, "no kernel for GGUF type \(parts[i].info.type.rawValue)")
                }
            }
        }
    }

    /// Output rows `rows` of one part into `y`, on the fastest kernel the part and slice allow.
    private static func product(_ part: EncodedMatrix, raw: UnsafeRawPointer, _ p: ProductPointers, rows: Range<Int>,
                                m: Int, inDim: Int, lda: Int, y: UnsafeMutablePointer<Float>, ldc: Int,
                                accumulate: Bool) -> Int32 {
        let type = Int32(part.info.type.rawValue), rowBytes = part.info.byteCount / part.rows
        let r0 = rows.lowerBound, n = rows.count, add: Int32 = accumulate ? 1 : 0
        // A group of 32 rows takes as many bytes as 32 rows of `interleavedRowBytes`.
        let whole = r0 % 32 == 0 && n % 32 == 0
        if m == 1, whole, let grouped = part.interleaved {
            let laidType = Int32(part.interleavedType.rawValue), offset = r0 * part.interleavedRowBytes
            if let x16 = p.x16 {
                return grouped.withUnsafeBytes { kv_matvec_q16dot(laidType, $0.baseAddress! + offset, x16, y, n, inDim, add) }
            }
            if let x8 = p.x8 {
                return grouped.withUnsafeBytes { kv_matvec_qdot(laidType, $0.baseAddress! + offset, x8, y, n, inDim, add) }
            }
        }
        if m == 1, let x16 = p.x16, kv_q16rows_supports(type) == 1 {
            let kernel = p.ordered ? kv_matvec_q16rows_ordered : kv_matvec_q16rows
            return kernel(type, raw + r0 * rowBytes, x16, y, n, inDim, add)
        }
        if m == 1 { return kv_matvec(type, raw + r0 * rowBytes, p.x, y, n, inDim, add) }
        if whole, let grouped = part.interleaved {
            let laidType = Int32(part.interleavedType.rawValue), offset = r0 * part.interleavedRowBytes
            return grouped.withUnsafeBytes {
                kv_matmul_interleaved(laidType, $0.baseAddress! + offset, p.x, lda, y, ldc, m, n, inDim, add)
            }
        }
        return kv_matmul_rows(type, raw + r0 * rowBytes, p.x, lda, y, ldc, m, n, inDim, add)
    }
}

/// Calls `body` for each part (row counts `rows`, stacked in order) that the stacked output rows
/// `slice` overlap, with the part's index, its own rows within the slice and its first stacked row.
func forEachPart(in slice: Range<Int>, rows: some Sequence<Int>, _ body: (Int, Range<Int>, Int) -> Void) {
    var first = 0
    for (i, count) in rows.enumerated() {
        defer { first += count }
        let r0 = max(slice.lowerBound, first) - first, r1 = min(slice.upperBound, first + count) - first
        if r0 < r1 { body(i, r0..<r1, first) }
    }
}

/// The operands of one product shared by its workers.
private struct ProductPointers: @unchecked Sendable {
    // @unchecked: used only inside a synchronous parallel loop (`WorkerTeam.run`), while the caller
    // keeps every buffer alive; workers read the parts and `x` and write disjoint columns of `y`.
    let parts: [UnsafeRawPointer]
    let x: UnsafePointer<Float>
    /// `x` quantized to 8 and to 16 bits (`kv_quantize_q8`, `kv_quantize_q16`), where one
    /// input row's products take them.
    let x8: UnsafePointer<kv_q8_block>?
    let x16: UnsafePointer<kv_q16_block>?
    let y: UnsafeMutablePointer<Float>
    /// One row on row-major blocks takes the packed product's float order (`Linear.singleRowTakesOrderedRows`).
    let ordered: Bool
}
