import CKernels
import KVStashCore

/// Encodes and decodes one section (one layer's K or V for every token of a block)
/// between f32 rows `[token][kvDim]` and the section bytes of `KVBlockLayout`.
/// Every loop runs in a CKernels kernel; this file only slices buffers.
struct SectionCodec {
    let layout: KVBlockLayout
    /// f32 scratch of `3 * kvDim` floats for the kernels.
    let work: UnsafeMutablePointer<Float>
    /// Scale (and zero point) count of a K and a V section, worked out once per block, not per tile.
    private let keyParams: Int, valueParams: Int

    init(layout: KVBlockLayout, work: UnsafeMutablePointer<Float>) {
        (self.layout, self.work) = (layout, work)
        (keyParams, valueParams) = (layout.section(.key).paramCount, layout.section(.value).paramCount)
    }

    private var d: Int { layout.kvDim }
    private var bits: UInt32 { UInt32(layout.codec.quantBits ?? 0) }

    /// Writes rows `src` into `dst` (exactly `layout.section(kind).byteCount` bytes, 4-aligned).
    /// Returns false when a value cannot be represented.
    func encode(_ src: UnsafeBufferPointer<Float>, _ kind: KVKind, into dst: UnsafeMutableRawBufferPointer) -> Bool {
        let n = layout.tokens * d
        let x = src.baseAddress!
        switch layout.codec {
        case .f32:
            dst.baseAddress!.copyMemory(from: x, byteCount: n * 4)
            return true
        case .f16:
            guard kv_fits_f16(x, n) == 1 else { return false }
            kv_f32_to_f16(dst.baseAddress!.assumingMemoryBound(to: UInt16.self), x, n)
            return true
        case .int8, .int4:
            let (scales, zeros, codes) = parts(of: dst.baseAddress!, kind)
            return quantize(x, kind, scales.assumingMemoryBound(to: UInt16.self),
                            zeros.assumingMemoryBound(to: UInt16.self), codes.assumingMemoryBound(to: UInt8.self))
        }
    }

    private func quantize(_ x: UnsafePointer<Float>, _ kind: KVKind, _ scales: UnsafeMutablePointer<UInt16>,
                          _ zeros: UnsafeMutablePointer<UInt16>, _ codes: UnsafeMutablePointer<UInt8>) -> Bool {
        let g = layout.groupSize
        guard layout.perChannel(kind) else {
            return kv_quant_rows(x, layout.tokens, d, g, bits, scales, zeros, codes, work) == 0
        }
        for group in 0..<layout.tokenGroups {
            let r0 = group * g, rows = min(g, layout.tokens - r0)
            let ok = kv_quant_cols(x + r0 * d, rows, d, bits, scales + group * d, zeros + group * d,
                                   codes + r0 * layout.rowBytes, work)
            guard ok == 0 else { return false }
        }
        return true
    }

    /// Decodes rows `rows` (all by default) of section bytes `src` into the f32 rows `dst`
    /// (`rows.count * kvDim` floats). `src` may lie at any address (a stored block read in
    /// place): the kernels read its fp16 values unaligned.
    func decode(_ src: UnsafeRawBufferPointer, _ kind: KVKind, rows: Range<Int>? = nil,
                into dst: UnsafeMutableBufferPointer<Float>) {
        let rows = rows ?? 0..<layout.tokens
        let y = dst.baseAddress!, base = src.baseAddress!, n = rows.count * d
        switch layout.codec {
        case .f32:
            UnsafeMutableRawPointer(y).copyMemory(from: base + 4 * rows.lowerBound * d, byteCount: n * 4)
        case .f16:
            kv_f16_to_f32(y, base + 2 * rows.lowerBound * d, n)
        case .int8, .int4:
            let (scales, zeros, codes) = parts(of: UnsafeMutableRawPointer(mutating: base), kind)
            dequantize(y, kind, rows, scales: scales, zeros: zeros, codes: codes.assumingMemoryBound(to: UInt8.self))
        }
    }

    /// `decode` straight into a cache's f16 rows `dst` (the writer's rows of every head),
    /// where the codec's rows need no other step: f16 copied, 8-bit codes grouped by token
    /// dequantized and narrowed in one pass. The same bits as `decode` then narrowing.
    /// Returns false, writing nothing, for the others (f32, per-channel groups, 4-bit codes).
    func decodeHalves(_ src: UnsafeRawBufferPointer, _ kind: KVKind, rows: Range<Int>,
                      into dst: KVMutableHeadRows) -> Bool {
        let base = src.baseAddress!, hd = dst.headDim
        switch layout.codec {
        case .f32:
            return false
        case .f16:
            kv_rows_to_heads_u16(dst.base, hd, dst.headStride, hd, base + 2 * rows.lowerBound * d, rows.count, d)
            return true
        case .int8, .int4:
            guard !layout.perChannel(kind) else { return false }
            let (scales, zeros, codes) = parts(of: UnsafeMutableRawPointer(mutating: base), kind)
            let g = layout.groupSize, groups = (d + g - 1) / g, r0 = rows.lowerBound
            return kv_dequant_rows_f16_stream(dst.base, hd, dst.headStride, hd,
                                              codes.assumingMemoryBound(to: UInt8.self) + r0 * layout.rowBytes,
                                              rows.count, d, g, bits, scales + 2 * r0 * groups, zeros + 2 * r0 * groups) != 0
        }
    }

    private func dequantize(_ y: UnsafeMutablePointer<Float>, _ kind: KVKind, _ rows: Range<Int>, scales: UnsafeRawPointer,
                            zeros: UnsafeRawPointer, codes: UnsafePointer<UInt8>) {
        let g = layout.groupSize
        guard layout.perChannel(kind) else {
            let groups = (d + g - 1) / g, r0 = rows.lowerBound
            kv_dequant_rows(y, codes + r0 * layout.rowBytes, rows.count, d, g, bits,
                            scales + 2 * r0 * groups, zeros + 2 * r0 * groups)
            return
        }
        for group in (rows.lowerBound / g)...((rows.upperBound - 1) / g) {
            let r0 = max(group * g, rows.lowerBound), r1 = min((group + 1) * g, rows.upperBound)
            kv_f16_to_f32(work, scales + 2 * group * d, d)
            kv_f16_to_f32(work + d, zeros + 2 * group * d, d)
            kv_dequant_cols(y + (r0 - rows.lowerBound) * d, codes + r0 * layout.rowBytes, r1 - r0, d, bits, work, work + d)
        }
    }

    /// Where a quantized section's fp16 scales, fp16 zero points and code rows start.
    private func parts(of base: UnsafeMutableRawPointer, _ kind: KVKind)
        -> (scales: UnsafeMutableRawPointer, zeros: UnsafeMutableRawPointer, codes: UnsafeMutableRawPointer) {
        let p = kind == .key ? keyParams : valueParams
        return (base, base + 2 * p, base + 4 * p)
    }
}
