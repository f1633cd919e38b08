import CKernels
import Dispatch

/// Write access to one range of rows of a `KVCache`, handed to one worker of
/// `KVCache.writeConcurrently`. Rows outside `rows` cannot be reached through it.
public struct KVRowWriter: @unchecked Sendable {
    // @unchecked: exists only while `writeConcurrently` runs, which keeps the storage alive
    // and uniquely owned; the ranges of the writers it hands out are disjoint, so no two
    // writers touch the same memory.
    /// Rows of the cache this writer owns.
    public let rows: Range<Int>
    /// Shape of every position.
    public var shape: KVShape { storage.shape }
    fileprivate let storage: KVStorage
    /// RoPE of each layer for the rows' positions (`rows` shifted by the call's offset); nil keeps K as written.
    fileprivate let rotation: RotaryTables?
    fileprivate let firstPosition: Int
    /// This writer's own `rows.count * kvDim` floats, where `body` writes.
    fileprivate let scratch: UnsafeMutablePointer<Float>

    /// Rows per tile of `withMutableTiles`: 16 rows of one layer's K or V (12 KB for
    /// SmolLM2-135M) stay in L1 from dequantization to the store.
    public static let tileRows = 16

    /// Writes this writer's rows of `kind` in `layer` from f32 (`rows.count * kvDim`
    /// floats, row-major): `body` fills a buffer of that size (small enough to stay in the
    /// core's cache) with K before RoPE or V; K is rotated there for its positions, and both
    /// are narrowed to f16 into the cache. `body` must write every element; the buffer's
    /// earlier contents are unspecified.
    public func withMutableRows<R>(layer: Int, _ kind: KVKind,
                                   _ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        precondition(layer >= 0 && layer < shape.layers)
        let d = shape.kvDim, n = rows.count * d
        let result = try body(UnsafeMutableBufferPointer(start: scratch, count: n))
        if kind == .key, let rotation {
            rotation[layer].apply(scratch, stride: d, into: scratch, stride: d, rows: rows.count,
                           firstPosition: firstPosition, heads: shape.kvHeads, headDim: shape.headDim)
        }
        narrow(scratch, into: heads(layer: layer, kind))
        return result
    }

    /// Writes this writer's rows of `kind` in `layer` a tile of `tileRows` rows at a time,
    /// in one pass over the cache's memory. For each tile, `halves(tile, dst)` may write the
    /// rows `tile` (counted from `rows.lowerBound`) as f16 straight into the cache (`dst`,
    /// the tile's rows of every head) and return true; it is asked only where nothing is left
    /// to do to them (V, or K without a rotation). Otherwise `body(tile, buffer)` fills
    /// `buffer` (`tile.count * kvDim` floats, row-major, that stay in L1) with K before RoPE or
    /// V, and the tile is rotated (K) and narrowed to f16 into the cache in one pass. Both
    /// write with non-temporal stores where the cache's alignment allows (a splice writes far
    /// more than the caches hold, and plain stores would first read every line they write).
    public func withMutableTiles(layer: Int, _ kind: KVKind,
                                 halves: (Range<Int>, KVMutableHeadRows) throws -> Bool = { _, _ in false },
                                 _ body: (Range<Int>, UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows {
        precondition(layer >= 0 && layer < shape.layers)
        let d = shape.kvDim, hd = shape.headDim, out = heads(layer: layer, kind)
        let tiles = stride(from: 0, to: rows.count, by: Self.tileRows).lazy.map { $0..<min(self.rows.count, $0 + Self.tileRows) }
        guard kind == .key, let rotation else {
            for tile in tiles {
                let dst = out.slice(tile)
                if try halves(tile, dst) { continue }
                try body(tile, UnsafeMutableBufferPointer(start: scratch, count: tile.count * d))
                narrow(scratch, into: dst)
            }
            return
        }
        try rotation.withHalvesRotation(layer: layer, positions: firstPosition..<(firstPosition + rows.count),
                                        sourceStride: d, destinationStride: hd, destinationHeadStride: out.headStride,
                                        heads: shape.kvHeads, headDim: hd) { rotate in
            for tile in tiles {
                try body(tile, UnsafeMutableBufferPointer(start: scratch, count: tile.count * d))
                rotate(scratch, out.slice(tile).base, tile.count, firstPosition + tile.lowerBound)
            }
        }
    }

    /// The cache's own f16 rows of `kind` in `layer` (K after RoPE for the rows' positions),
    /// for a writer whose source is already in that layout.
    public func withMutableHeadRows<R>(layer: Int, _ kind: KVKind, _ body: (KVMutableHeadRows) throws -> R) rethrows -> R {
        precondition(layer >= 0 && layer < shape.layers)
        return try body(heads(layer: layer, kind))
    }

    /// This writer's rows of `kind` in `layer`.
    private func heads(layer: Int, _ kind: KVKind) -> KVMutableHeadRows { storage.headRows(layer: layer, kind, rows) }

    /// Row-major f32 rows (`dst.rows * kvDim` floats) narrowed to f16 into `dst`, with
    /// non-temporal stores where its alignment allows.
    private func narrow(_ src: UnsafePointer<Float>, into dst: KVMutableHeadRows) {
        kv_f32_to_f16_heads_stream(dst.base, dst.headDim, dst.headStride, dst.headDim, src, dst.rows, shape.kvDim)
    }
}

extension KVCache {
    /// Fills disjoint row ranges from several threads at once (a splice of many stored
    /// chunks): extends the cache to cover them, then runs `body(i, writer)` for every
    /// range concurrently, where `writer` reaches only `ranges[i]`. Returns each body's
    /// result. K written in f32 is rotated by its layer's `rotation` as row r sat at position
    /// `r + positionOffset` (a scratch cache holding rows of a later part of a sequence).
    ///
    /// Workers take the ranges in the order of `order` (indices into `ranges`; nil: as
    /// given): the costliest first, and the last ones to finish are short.
    ///
    /// - Precondition: ranges are sorted, disjoint, non-empty, and the first starts at or
    ///   before `count`.
    public mutating func writeConcurrently<R: Sendable>(_ ranges: [Range<Int>], positionOffset: Int = 0,
                                                        order: [Int]? = nil,
                                                        _ body: @Sendable (Int, KVRowWriter) -> R) -> [R] {
        guard let first = ranges.first, let last = ranges.last else { return [] }
        precondition(first.lowerBound >= 0 && first.lowerBound <= count, "rows out of range")
        precondition(ranges.allSatisfy { !$0.isEmpty }, "empty range")
        precondition(zip(ranges, ranges.dropFirst()).allSatisfy { $0.0.upperBound <= $0.1.lowerBound },
                     "ranges must be sorted and disjoint")
        let order = order ?? Array(ranges.indices)
        precondition(order.sorted() == Array(ranges.indices), "the order must name every range once")
        if last.upperBound > count { extend(by: last.upperBound - count) }
        let positions = (first.lowerBound + positionOffset)..<(last.upperBound + positionOffset)
        let rotation = self.rotation?.covering(positions)
        let storage = uniqueStorage()
        for p in first.lowerBound..<last.upperBound { storage.rawKept[p] = false }
        let results = ResultSlots<R>(count: ranges.count)
        defer { results.deallocate() }
        let kvDim = shape.kvDim
        DispatchQueue.concurrentPerform(iterations: ranges.count) { turn in
            let i = order[turn]
            let scratch = UnsafeMutableRawPointer.allocate(byteCount: ranges[i].count * kvDim * MemoryLayout<Float>.size,
                                                           alignment: 64).bindMemory(to: Float.self, capacity: ranges[i].count * kvDim)
            defer { scratch.deallocate() }
            results[i] = body(i, KVRowWriter(rows: ranges[i], storage: storage, rotation: rotation,
                                             firstPosition: ranges[i].lowerBound + positionOffset, scratch: scratch))
        }
        return results.array
    }
}

/// One result per worker, each written by its own worker only.
private struct ResultSlots<R: Sendable>: @unchecked Sendable {
    // @unchecked: every index is written by exactly one worker of a concurrentPerform and
    // read after it returns.
    private let slots: UnsafeMutableBufferPointer<R?>
    init(count: Int) { slots = .allocate(capacity: count); slots.initialize(repeating: nil) }
    subscript(i: Int) -> R {
        get { slots[i]! }
        nonmutating set { slots[i] = newValue }
    }
    var array: [R] { slots.map { $0! } }
    func deallocate() { _ = slots.deinitialize(); slots.deallocate() }
}
