/// Encoders from f32 to the GGUF tensor types, so files written here read back in
/// llama.cpp and `gguf-py`. The 32-element types follow llama.cpp's reference (non-SIMD)
/// quantizers; the K-quants use plain min/max scales (KQuantizer.swift), not llama.cpp's
/// error-minimizing search.
enum GGUFQuantizer {
    static func encode(_ x: [Float], as type: GGMLType) -> [UInt8] {
        var out: [UInt8] = []
        switch type {
        case .f32: x.forEach { le(&out, $0.bitPattern) }
        case .f16: x.forEach { le(&out, half($0)) }
        case .bf16: x.forEach { le(&out, bf16($0)) }
        case .q8_0: blocks(x) { q8_0($0, &out) }
        case .q4_0: blocks(x) { q4_0($0, &out) }
        case .q4_1: blocks(x) { q4_1($0, &out) }
        case .q5_0: blocks(x) { q5_0($0, &out) }
        case .q5_1: blocks(x) { q5_1($0, &out) }
        case .q4_K: blocks(x, 256) { kQuant($0, levels: 15, &out) }
        case .q5_K: blocks(x, 256) { kQuant($0, levels: 31, &out) }
        case .q6_K: blocks(x, 256) { q6_K($0, &out) }
        case .q8_K: blocks(x, 256) { q8_K($0, &out) }
        default: preconditionFailure("no encoder for \(type)")
        }
        return out
    }

    static func blocks(_ x: [Float], _ size: Int = 32, _ body: (ArraySlice<Float>) -> Void) {
        stride(from: 0, to: x.count, by: size).forEach { body(x[$0..<($0 + size)]) }
    }

    static func le<T: FixedWidthInteger>(_ out: inout [UInt8], _ v: T) {
        withUnsafeBytes(of: v.littleEndian) { out += $0 }
    }

    static func half(_ f: Float) -> UInt16 { Float16(f).bitPattern }

    /// Round-to-nearest-even truncation of f32 to bfloat16.
    static func bf16(_ f: Float) -> UInt16 {
        let b = f.bitPattern
        if f.isNaN { return UInt16(b >> 16) | 0x40 }
        return UInt16((b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16)
    }

    /// d = max|x| / 127, q = round(x / d).
    private static func q8_0(_ b: ArraySlice<Float>, _ out: inout [UInt8]) {
        let amax = b.map(abs).max() ?? 0
        let d = amax / 127, id: Float = d != 0 ? 1 / d : 0
        le(&out, half(d))
        b.forEach { out.append(UInt8(bitPattern: Int8(($0 * id).rounded()))) }
    }

    /// d = (signed value of max magnitude) / -8, q = min(15, trunc(x/d + 8.5)).
    private static func q4_0(_ b: ArraySlice<Float>, _ out: inout [UInt8]) {
        let mx = b.max { abs($0) < abs($1) } ?? 0
        let d = mx / -8, id: Float = d != 0 ? 1 / d : 0
        le(&out, half(d))
        let q = b.map { UInt8(min(15, Int8($0 * id + 8.5))) }
        for j in 0..<16 { out.append(q[j] | (q[j + 16] << 4)) }
    }

    /// d = (max - min) / 15, m = min, q = min(15, trunc((x - min)/d + 0.5)).
    private static func q4_1(_ b: ArraySlice<Float>, _ out: inout [UInt8]) {
        let lo = b.min() ?? 0, hi = b.max() ?? 0
        let d = (hi - lo) / 15, id: Float = d != 0 ? 1 / d : 0
        le(&out, half(d)); le(&out, half(lo))
        let q = b.map { UInt8(min(15, Int8(($0 - lo) * id + 0.5))) }
        for j in 0..<16 { out.append(q[j] | (q[j + 16] << 4)) }
    }
}
