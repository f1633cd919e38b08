import CKernels
import Foundation

/// Rotary position embedding (RoPE): the cosine and sine tables for a run of positions,
/// and their application to the heads of Q or K rows.
///
/// Frequency i of a head is `base^(-2i/ropeDims)`; the angle at position p is `p * freq`,
/// computed in double precision and rounded once to f32. A model builds one table for
/// its whole context at load; it lives here, beside `KVCache`, because the cache's
/// post-RoPE K is defined by it and a splice may fill that K directly.
public struct RotaryTable: Sendable {
    /// Layout of the pairs that rotate together.
    public enum Style: Sendable, Hashable {
        /// Adjacent channels (2i, 2i+1): llama, as llama.cpp stores the GGUF.
        case adjacent
        /// Channel i with channel i + ropeDims/2: NeoX and Qwen2.
        case halves
    }

    /// The positions the table covers.
    public let positions: Range<Int>
    /// Channels of a head that rotate (the rest pass through).
    public let ropeDims: Int
    public let style: Style
    /// The frequency base.
    public let base: Double
    private let cos: [Float]
    private let sin: [Float]
    private var half: Int { ropeDims / 2 }

    public init(positions: Range<Int>, ropeDims: Int, base: Double, style: Style) {
        precondition(ropeDims > 0 && ropeDims % 2 == 0, "RoPE dims must be even")
        self.positions = positions
        self.ropeDims = ropeDims
        self.style = style
        self.base = base
        let half = ropeDims / 2
        let freqs = (0..<half).map { pow(base, -2.0 * Double($0) / Double(ropeDims)) }
        var c = [Float](repeating: 0, count: positions.count * half)
        var s = [Float](repeating: 0, count: positions.count * half)
        for (r, p) in positions.enumerated() {
            for i in 0..<half {
                let angle = Double(p) * freqs[i]
                c[r * half + i] = Float(Foundation.cos(angle))
                s[r * half + i] = Float(Foundation.sin(angle))
            }
        }
        cos = c
        sin = s
    }

    /// Whether the table covers every position of `range`.
    public func covers(_ range: Range<Int>) -> Bool {
        range.isEmpty || (range.lowerBound >= positions.lowerBound && range.upperBound <= positions.upperBound)
    }

    /// This table if it covers `range`, else a table of the same RoPE for `range` alone.
    public func covering(_ range: Range<Int>) -> RotaryTable {
        covers(range) ? self : RotaryTable(positions: range, ropeDims: ropeDims, base: base, style: style)
    }

    /// Rotates `rows` consecutive rows of `x` (`stride` floats apart) back, in place: the
    /// inverse of `apply` for the same positions (the rotation by minus each angle).
    public func applyInverse(_ x: UnsafeMutablePointer<Float>, stride: Int, rows: Int, firstPosition: Int,
                             heads: Int, headDim: Int) {
        guard rows > 0 else { return }
        withTables(rows: rows, firstPosition: firstPosition, heads: heads, headDim: headDim, strides: stride, stride) { c, s, neox in
            let negatedSin = (0..<(rows * half)).map { -s[$0] }
            negatedSin.withUnsafeBufferPointer {
                kv_rope(x, stride, x, stride, rows, heads, headDim, ropeDims, c, $0.baseAddress!, neox)
            }
        }
    }

    /// Rotates `rows` consecutive rows, row r at position `firstPosition + r`, each holding
    /// `heads` heads of `headDim` channels: `dst = RoPE(src)`. `dst` may equal `src`.
    ///
    /// - Precondition: the table covers the positions; both buffers hold `rows` rows at
    ///   their strides, and `heads * headDim` fits in a stride.
    public func apply(_ src: UnsafePointer<Float>, stride ldSrc: Int, into dst: UnsafeMutablePointer<Float>,
                      stride ldDst: Int, rows: Int, firstPosition: Int, heads: Int, headDim: Int) {
        guard rows > 0 else { return }
        withTables(rows: rows, firstPosition: firstPosition, heads: heads, headDim: headDim, strides: ldSrc, ldDst) { c, s, neox in
            kv_rope(dst, ldDst, src, ldSrc, rows, heads, headDim, ropeDims, c, s, neox)
        }
    }

    /// Rotates and narrows rows to f16, `rotate(src, dst, rows, firstPosition)`: `apply` with
    /// the rotated rows narrowed into `dst` in the same pass (round to nearest even; the same
    /// bits as `apply` then narrowing), with non-temporal stores where `dst` is aligned for
    /// them: K of a splice, written once into the cache. Rows of `src` are `sourceStride`
    /// floats apart (every head side by side); in `dst` head h of a row lies `h *
    /// destinationHeadStride` halves from its head 0 and rows are `destinationStride` apart (a
    /// cache's heads). `body` may call `rotate` for any rows within `positions`, which are
    /// checked once: a splice rotates a chunk tile by tile, and taking the tables per tile made
    /// both cores retain and release the same arrays for every 16 rows.
    public func withHalvesRotation<R>(
        positions range: Range<Int>, sourceStride: Int, destinationStride: Int, destinationHeadStride: Int,
        heads: Int, headDim: Int,
        _ body: ((UnsafePointer<Float>, UnsafeMutablePointer<UInt16>, Int, Int) -> Void) throws -> R
    ) rethrows -> R {
        precondition(headDim <= destinationStride && (heads == 1 || destinationHeadStride >= headDim),
                     "RoPE destination layout")
        return try withTables(rows: range.count, firstPosition: range.lowerBound, heads: heads, headDim: headDim,
                              strides: sourceStride, sourceStride) { c, s, neox in
            try body { src, dst, rows, first in
                precondition(first >= range.lowerBound && first + rows <= range.upperBound, "RoPE rows outside the range")
                let offset = (first - range.lowerBound) * half
                kv_rope_f16_stream(dst, destinationStride, destinationHeadStride, src, sourceStride, rows, heads, headDim,
                                   ropeDims, c + offset, s + offset, neox)
            }
        }
    }

    /// Checks the layout and calls `body` with the cosines and sines of `rows` positions from
    /// `firstPosition` (the table's first ones when `rows` is 0) and the kernel's style flag.
    private func withTables<R>(rows: Int, firstPosition: Int, heads: Int, headDim: Int, strides ld0: Int, _ ld1: Int,
                               _ body: (UnsafePointer<Float>, UnsafePointer<Float>, Int32) throws -> R) rethrows -> R {
        precondition(covers(firstPosition..<(firstPosition + rows)), "RoPE table does not cover the positions")
        precondition(ropeDims <= headDim && heads * headDim <= min(ld0, ld1), "RoPE layout")
        let offset = rows > 0 ? (firstPosition - positions.lowerBound) * half : 0
        return try cos.withUnsafeBufferPointer { c in
            try sin.withUnsafeBufferPointer { s in
                try body(c.baseAddress! + offset, s.baseAddress! + offset, style == .halves ? 1 : 0)
            }
        }
    }
}

/// The RoPE of every layer of a model: a few tables (one per distinct frequency base, e.g.
/// Gemma 3's sliding layers at 10,000 and global ones at 1e6) and which one each layer uses.
public struct RotaryTables: Sendable {
    /// The distinct tables.
    public let tables: [RotaryTable]
    /// Index into `tables` of each layer's table.
    public let tableOfLayer: [Int]

    public init(tables: [RotaryTable], tableOfLayer: [Int]) {
        precondition(!tables.isEmpty && tableOfLayer.allSatisfy { tables.indices.contains($0) }, "RoPE table index")
        precondition(tables.allSatisfy { $0.positions == tables[0].positions }, "RoPE tables cover different positions")
        self.tables = tables
        self.tableOfLayer = tableOfLayer
    }

    /// `table` for each of `layers` layers.
    public init(layers: Int, table: RotaryTable) {
        self.init(tables: [table], tableOfLayer: Array(repeating: 0, count: layers))
    }

    /// The table of `layer`.
    public subscript(layer: Int) -> RotaryTable { tables[tableOfLayer[layer]] }

    /// `RotaryTable.withHalvesRotation` of `layer`'s table.
    public func withHalvesRotation<R>(
        layer: Int, positions: Range<Int>, sourceStride: Int, destinationStride: Int, destinationHeadStride: Int,
        heads: Int, headDim: Int,
        _ body: ((UnsafePointer<Float>, UnsafeMutablePointer<UInt16>, Int, Int) -> Void) throws -> R
    ) rethrows -> R {
        try tables[tableOfLayer[layer]].withHalvesRotation(positions: positions, sourceStride: sourceStride,
                                                           destinationStride: destinationStride,
                                                           destinationHeadStride: destinationHeadStride,
                                                           heads: heads, headDim: headDim, body)
    }

    /// These tables if they cover `range`, else tables of the same RoPE for `range` alone.
    public func covering(_ range: Range<Int>) -> RotaryTables {
        tables[0].covers(range) ? self : RotaryTables(tables: tables.map { $0.covering(range) }, tableOfLayer: tableOfLayer)
    }
}
