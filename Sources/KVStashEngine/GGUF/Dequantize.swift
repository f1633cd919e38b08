import CKernels

extension GGUFFile {
    /// Decodes tensor `info` to f32, in GGUF element order (row-major with `dims[0]`
    /// as the row length), for every type of `GGMLType.readable`.
    public func dequantize(_ info: GGUFTensorInfo) throws -> [Float] {
        let n = info.elementCount
        return try [Float](unsafeUninitializedCapacity: n) { out, initialized in
            try withRawBytes(info) { raw in try Self.dequantize(raw, type: info.type, count: n, into: out.baseAddress!, name: info.name) }
            initialized = n
        }
    }

    /// Decodes the tensor called `name`; throws `missingTensor` if absent.
    public func dequantize(_ name: String) throws -> [Float] {
        guard let info = tensorInfo(name) else { throw GGUFError.missingTensor(name) }
        return try dequantize(info)
    }

    /// Decodes `count` elements of `type` from `raw` into `out`.
    static func dequantize(_ raw: UnsafeRawBufferPointer, type: GGMLType, count n: Int,
                           into out: UnsafeMutablePointer<Float>, name: String) throws {
        guard let src = raw.baseAddress, n > 0 else { return }
        switch type {
        case .f32: out.update(from: src.assumingMemoryBound(to: Float.self), count: n)
        case .f16: kv_dequant_f16(src.assumingMemoryBound(to: UInt16.self), out, n)
        case .bf16: kv_dequant_bf16(src.assumingMemoryBound(to: UInt16.self), out, n)
        case .q8_0: kv_dequant_q8_0(src, out, n)
        case .q4_0: kv_dequant_q4_0(src, out, n)
        case .q4_1: kv_dequant_q4_1(src, out, n)
        case .q5_0: kv_dequant_q5_0(src, out, n)
        case .q5_1: kv_dequant_q5_1(src, out, n)
        case .q4_K: kv_dequant_q4_K(src, out, n)
        case .q5_K: kv_dequant_q5_K(src, out, n)
        case .q6_K: kv_dequant_q6_K(src, out, n)
        case .q8_K: kv_dequant_q8_K(src, out, n)
        default: throw GGUFError.unsupportedTensorType(tensor: name, type: type.rawValue)
        }
    }
}
