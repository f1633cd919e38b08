/// Encoders of Q5_0, Q5_1 and the K-quants (block layouts in `CKernels/kquants.c`).
///
/// Q5_0 and Q5_1 follow llama.cpp's reference quantizers. The K-quants take each
/// sub-block's plain min/max (Q4_K, Q5_K) or largest magnitude (Q6_K, Q8_K) as its scale,
/// quantize the scales against the block's largest one, then round every element with
/// the stored (quantized) scales. llama.cpp searches for scales of lower error; any valid
/// encoding decodes the same way, which is what the writer needs for test models.
extension GGUFQuantizer {
    /// d = (signed value of max magnitude) / -16, q = min(31, trunc(x/d + 16.5)).
    static func q5_0(_ b: ArraySlice<Float>, _ out: inout [UInt8]) {
        let mx = b.max { abs($0) < abs($1) } ?? 0
        let d = mx / -16, id: Float = d != 0 ? 1 / d : 0
        le(&out, half(d))
        five(b.map { min(31, Int($0 * id + 16.5)) }, &out)
    }

    /// d = (max - min) / 31, m = min, q = min(31, trunc((x - min)/d + 0.5)).
    static func q5_1(_ b: ArraySlice<Float>, _ out: inout [UInt8]) {
        let lo = b.min() ?? 0, hi = b.max() ?? 0
        let d = (hi - lo) / 31, id: Float = d != 0 ? 1 / d : 0
        le(&out, half(d)); le(&out, half(lo))
        five(b.map { min(31, Int(($0 - lo) * id + 0.5)) }, &out)
    }

    /// The 32 five-bit codes of a Q5_0/Q5_1 block: high bits (u32, bit j for element j),
    /// then low nibbles (element j low, j + 16 high).
    private static func five(_ q: [Int], _ out: inout [UInt8]) {
        let qh = q.enumerated().reduce(UInt32(0)) { $0 | (UInt32($1.element >> 4) << UInt32($1.offset)) }
        le(&out, qh)
        for j in 0..<16 { out.append(UInt8(q[j] & 15) | UInt8(q[j + 16] & 15) << 4) }
    }

    /// Q4_K (levels 15) or Q5_K (levels 31): per 32-element sub-block a 6-bit scale and
    /// min against f16 super-scales, x = (d * sc) * q - (dmin * mn).
    static func kQuant(_ b: ArraySlice<Float>, levels: Int, _ out: inout [UInt8]) {
        let x = Array(b)
        let subs = (0..<8).map { x[($0 * 32)..<($0 * 32 + 32)] }
        let mins = subs.map { -min(0, $0.min()!) }
        let scales = zip(subs, mins).map { ($0.max()! + $1) / Float(levels) }
        let d = Float(Float16(scales.max()! / 63)), dmin = Float(Float16(mins.max()! / 63))
        let sc = scales.map { d > 0 ? min(63, Int(($0 / d).rounded())) : 0 }
        let mn = mins.map { dmin > 0 ? min(63, Int(($0 / dmin).rounded())) : 0 }
        let q = (0..<256).map { i -> Int in
            let step = d * Float(sc[i / 32]), offset = dmin * Float(mn[i / 32])
            return step > 0 ? max(0, min(levels, Int(((x[i] + offset) / step).rounded()))) : 0
        }
        le(&out, half(d)); le(&out, half(dmin))
        out += packScales(sc, mn)
        if levels == 31 {
            var qh = [UInt8](repeating: 0, count: 32)
            for c in 0..<4 {
                for l in 0..<32 {
                    qh[l] |= UInt8(q[64 * c + l] >> 4) << (2 * c) | UInt8(q[64 * c + 32 + l] >> 4) << (2 * c + 1)
                }
            }
            out += qh
        }
        for c in 0..<4 {
            for l in 0..<32 { out.append(UInt8(q[64 * c + l] & 15) | UInt8(q[64 * c + 32 + l] & 15) << 4) }
        }
    }

    /// The 12 scale bytes of Q4_K/Q5_K: sub-blocks 0-3 in the low 6 bits of bytes 0-3
    /// (scale) and 4-7 (min); 4-7 as nibbles of bytes 8-11 with their top two bits in the
    /// high bits of bytes 0-7.
    private static func packScales(_ sc: [Int], _ mn: [Int]) -> [UInt8] {
        var s = [UInt8](repeating: 0, count: 12)
        for j in 0..<8 {
            let a = UInt8(sc[j]), m = UInt8(mn[j])
            if j < 4 {
                s[j] = a & 63; s[j + 4] = m & 63
            } else {
                s[j + 4] = (a & 15) | (m & 15) << 4
                s[j - 4] |= (a >> 4) << 6
                s[j] |= (m >> 4) << 6
            }
        }
        return s
    }

    /// Q6_K: per 16-element sub-block an int8 scale against an f16 super-scale,
    /// x = (d * sc) * (q - 32), q in 0...63.
    static func q6_K(_ b: ArraySlice<Float>, _ out: inout [UInt8]) {
        let x = Array(b)
        let scales = (0..<16).map { s in x[(s * 16)..<(s * 16 + 16)].map(abs).max()! / 31 }
        let d = Float(Float16(scales.max()! / 127))
        let sc = scales.map { d > 0 ? min(127, Int(($0 / d).rounded())) : 0 }
        let q = (0..<256).map { i -> Int in
            let step = d * Float(sc[i / 16])
            return 32 + (step > 0 ? max(-32, min(31, Int((x[i] / step).rounded()))) : 0)
        }
        var ql = [UInt8](repeating: 0, count: 128), qh = [UInt8](repeating: 0, count: 64)
        for h in 0..<2 {
            for k in 0..<4 {
                for l in 0..<32 {
                    let v = UInt8(q[128 * h + 32 * k + l])
                    ql[64 * h + 32 * (k & 1) + l] |= (v & 15) << (4 * (k >> 1))
                    qh[32 * h + l] |= (v >> 4) << (2 * k)
                }
            }
        }
        out += ql; out += qh
        out += sc.map { UInt8(bitPattern: Int8($0)) }
        le(&out, half(d))
    }

    /// Q8_K: f32 d = max / -127 (max the signed value of max magnitude), q = round(x/d),
    /// then the sixteen int16 sums of 16 codes.
    static func q8_K(_ b: ArraySlice<Float>, _ out: inout [UInt8]) {
        let mx = b.max { abs($0) < abs($1) } ?? 0
        let iscale: Float = mx != 0 ? -127 / mx : 0
        let q = b.map { max(-128, min(127, Int(($0 * iscale).rounded()))) }
        le(&out, (iscale != 0 ? 1 / iscale : 0).bitPattern)
        out += q.map { UInt8(bitPattern: Int8($0)) }
        for s in 0..<16 { le(&out, Int16(q[(s * 16)..<(s * 16 + 16)].reduce(0, +))) }
    }
}
