import CKernels

/// The token embedding `[vocab][dim]`, looked up row by row and dequantized per lookup from
/// the encoded tensor, instead of an f32 copy of the whole table (671 MB for Gemma 3's
/// 262,144 × 640, more than all its other weights). Where the tensor has an interleaved copy
/// (Q8_0, Q4_1, Q5_0: the one the tied output head's decode reads) a row comes from that
/// anonymous memory, so a lookup never faults on file pages an idle host dropped; other
/// types read the memory map. A forward reads one row per token.
struct EmbeddingRows: Sendable {
    let table: EncodedMatrix
    let gguf: GGUFFile
    /// Bytes of one row-major row of the interleaved copy's type, or of the file's.
    private let rowBytes: Int

    /// `table` of `gguf`; throws for a type the engine cannot dequantize, so a lookup never meets one.
    init(_ table: EncodedMatrix, gguf: GGUFFile) throws {
        (self.table, self.gguf) = (table, gguf)
        rowBytes = table.interleaved != nil ? table.interleavedRowBytes : table.info.byteCount / table.rows
        var probe = [Float](repeating: 0, count: table.cols)
        try probe.withUnsafeMutableBufferPointer { try decode(row: 0, into: $0.baseAddress!) }
    }

    var rows: Int { table.rows }

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
        let info = table.info, cols = table.cols
        guard let grouped = table.interleaved else {
            try gguf.withRawBytes(info) { raw in
                let bytes = UnsafeRawBufferPointer(rebasing: raw[(t * rowBytes)..<((t + 1) * rowBytes)])
                try GGUFFile.dequantize(bytes, type: info.type, count: cols, into: out, name: info.name)
            }
            return
        }
        let type = table.interleavedType
        try withUnsafeTemporaryAllocation(byteCount: rowBytes, alignment: 16) { row in
            grouped.withUnsafeBytes { kv_qdot_interleaved_row(Int32(type.rawValue), $0.baseAddress!, row.baseAddress!, t, cols) }
            try GGUFFile.dequantize(UnsafeRawBufferPointer(row), type: type, count: cols, into: out, name: info.name)
        }
    }
}
