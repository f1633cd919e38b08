/// The token embedding `[vocab][dim]`, looked up row by row from the GGUF's encoded tensor in
/// the memory map and dequantized per lookup, instead of an f32 copy of the whole table (671 MB
/// for Gemma 3's 262,144 × 640, more than all its other weights). A forward reads one row per
/// token: a prefill chunk of 512 rows dequantizes 512 × dim values.
struct EmbeddingRows: Sendable {
    let info: GGUFTensorInfo
    let gguf: GGUFFile
    let rows: Int
    let cols: Int
    /// Bytes of one encoded row (`cols` is a whole number of the type's blocks).
    let rowBytes: Int

    /// The tensor `info` of `gguf` (`rows` × `cols`, checked by the loader); throws for a type
    /// the engine cannot dequantize, so a lookup never meets one.
    init(info: GGUFTensorInfo, gguf: GGUFFile, rows: Int, cols: Int) throws {
        (self.info, self.gguf, self.rows, self.cols) = (info, gguf, rows, cols)
        rowBytes = info.byteCount / rows
        var probe = [Float](repeating: 0, count: cols)
        try probe.withUnsafeMutableBufferPointer { try decode(row: 0, into: $0.baseAddress!) }
    }

    /// Writes row `t` (`0 ..< rows`, validated by the caller) as `cols` floats into `out`.
    func copyRow(_ t: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(t >= 0 && t < rows, "embedding row \(t) of \(rows)")
        do {
            try decode(row: t, into: out)
        } catch {
            preconditionFailure("the embedding's type was checked at load: \(error)")
        }
    }

    private func decode(row t: Int, into out: UnsafeMutablePointer<Float>) throws {
        try gguf.withRawBytes(info) { raw in
            let bytes = UnsafeRawBufferPointer(rebasing: raw[(t * rowBytes)..<((t + 1) * rowBytes)])
            try GGUFFile.dequantize(bytes, type: info.type, count: cols, into: out, name: info.name)
        }
    }
}
