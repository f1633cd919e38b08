import CKernels
import Dispatch

/// Write access to one range of rows of a `KVCache`, handed to one worker of
/// `KVCache.writeConcurrently`. Rows outside `rows` cannot be reached through it.
public struct KVRowWriter: @unchecked Sendable {
    // @unchecked: exists only while `writeConcurrently` runs, which keeps the storage alive
    // and uniquely owned; the ranges of the writers it hands out are disjoint, so no two
    // writers touch the same memory.
    /// Positions this writer owns.
    public let rows: Range<Int>
    /// Shape of every position.
    public var shape: KVShape { storage.shape }
    fileprivate let storage: KVStorage
    fileprivate let rotation: RotaryTable?
    /// This writer's own `rows.count * kvDim` floats, where `body` writes.
    fileprivate let scratch: UnsafeMutablePointer<Float>

    /// Writes this writer's rows of `kind` in `layer` (`rows.count * kvDim` floats): `body`
    /// fills a buffer of that size (small enough to stay in the core's cache), which then
    /// goes to the cache with non-temporal stores (`kv_stream_floats`: a splice writes
    /// hundreds of MB that will have left the caches before they are read, and plain
    /// stores would first read every line). With a rotation table, K is rotated in the
    /// buffer and stored again as post-RoPE K. `body` must write every element; the
    /// buffer's earlier contents are unspecified.
    public func withMutableRows<R>(layer: Int, _ kind: KVKind,
                                   _ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        precondition(layer >= 0 && layer < shape.layers)
        let d = shape.kvDim, n = rows.count * d, first = rows.lowerBound * d
        let result = try body(UnsafeMutableBufferPointer(start: scratch, count: n))
        kv_stream_floats(storage.pointer(layer: layer, kind == .key ? 0 : 1) + first, scratch, n)
        if kind == .key, let rotation {
            rotation.apply(scratch, stride: d, into: scratch, stride: d, rows: rows.count,
                           firstPosition: rows.lowerBound, heads: shape.kvHeads, headDim: shape.headDim)
            kv_stream_floats(storage.pointer(layer: layer, 2) + first, scratch, n)
        }
        return result
    }
}

extension KVCache {
    /// Fills disjoint row ranges from several threads at once (a splice of many stored
    /// chunks): extends the cache to cover them, then runs `body(i, writer)` for every
    /// range concurrently, where `writer` reaches only `ranges[i]`. Returns each body's
    /// result; a range whose result fails `succeeded` holds unspecified rows.
    ///
    /// With `rotation` (the model's RoPE table), K is also rotated as it is written, and
    /// when every body succeeds, the ranges are contiguous and the rows before them were
    /// rotated already, post-RoPE K becomes valid through the last range, so the engine
    /// does not rotate them again. A table that does not cover the ranges' positions is
    /// not used (the engine then rotates those keys itself).
    ///
    /// - Precondition: ranges are sorted, disjoint, non-empty, and the first starts at or
    ///   before `count`.
    public mutating func writeConcurrently<R: Sendable>(_ ranges: [Range<Int>], rotation: RotaryTable?,
                                                        succeeded: (R) -> Bool,
                                                        _ body: @Sendable (Int, KVRowWriter) -> R) -> [R] {
        guard let first = ranges.first, let last = ranges.last else { return [] }
        precondition(first.lowerBound >= 0 && first.lowerBound <= count, "rows out of range")
        precondition(ranges.allSatisfy { !$0.isEmpty }, "empty range")
        precondition(zip(ranges, ranges.dropFirst()).allSatisfy { $0.0.upperBound <= $0.1.lowerBound },
                     "ranges must be sorted and disjoint")
        if last.upperBound > count { extend(by: last.upperBound - count) }
        let rotation = rotation.flatMap { $0.covers(first.lowerBound..<last.upperBound) ? $0 : nil }
        let storage = uniqueStorage()
        storage.roped = min(storage.roped, first.lowerBound)
        let results = ResultSlots<R>(count: ranges.count)
        defer { results.deallocate() }
        let kvDim = shape.kvDim
        DispatchQueue.concurrentPerform(iterations: ranges.count) { i in
            let scratch = UnsafeMutableRawPointer.allocate(byteCount: ranges[i].count * kvDim * MemoryLayout<Float>.size,
                                                           alignment: 64).bindMemory(to: Float.self, capacity: ranges[i].count * kvDim)
            defer { scratch.deallocate() }
            results[i] = body(i, KVRowWriter(rows: ranges[i], storage: storage, rotation: rotation, scratch: scratch))
        }
        let outcome = results.array
        let contiguous = zip(ranges, ranges.dropFirst()).allSatisfy { $0.0.upperBound == $0.1.lowerBound }
        if rotation != nil, contiguous, outcome.allSatisfy(succeeded), storage.roped == first.lowerBound {
            storage.roped = last.upperBound
        }
        return outcome
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
