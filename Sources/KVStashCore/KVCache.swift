import CKernels

/// The shape of the KV a model produces for one position: every layer's K and V rows.
public struct KVShape: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Number of transformer layers.
    public var layers: Int
    /// Number of key/value heads (GQA groups).
    public var kvHeads: Int
    /// Dimension of one head.
    public var headDim: Int

    public init(layers: Int, kvHeads: Int, headDim: Int) {
        self.layers = layers
        self.kvHeads = kvHeads
        self.headDim = headDim
    }

    /// Width of one K or V row: `kvHeads * headDim`.
    public var kvDim: Int { kvHeads * headDim }

    /// Bytes of f32 K and V that one position occupies across all layers (a decoded block).
    public var bytesPerPosition: Int { layers * 2 * kvDim * MemoryLayout<Float>.size }

    /// Bytes of f16 K and V that one position occupies across all layers in a `KVCache`
    /// or a radix-tree page.
    public var cacheBytesPerPosition: Int { layers * 2 * kvDim * MemoryLayout<UInt16>.size }

    public var description: String { "layers=\(layers) kvHeads=\(kvHeads) headDim=\(headDim)" }
}

/// Which tensor of a layer's cache: K or V.
public enum KVKind: Sendable, Hashable {
    /// Keys (after RoPE in a `KVCache`, before RoPE in stored blocks and `KVRows`).
    case key
    /// Values.
    case value
}

/// The explicit KV cache of one sequence, laid out for attention.
///
/// For every layer it holds K after RoPE (row p rotated for position p) and V as IEEE f16,
/// head-major: each KV head's rows `[position][headDim]` contiguous, `capacity` rows per head
/// (`KVHeadRows`). Attention reads a head's keys as one sequential stream: where a model has
/// several KV heads, rows of every head side by side (`[position][kvDim]`) made each head's
/// pass read a third of every row, at half the rate (decision 123). Rows written
/// as f32 K before RoPE (a splice from the store, `withMutableRows`) are rotated by
/// their layer's table of `rotation` for their positions and narrowed as they land; the engine writes its own
/// rows already rotated (`store`).
///
/// The store keeps K before RoPE. With `keepsRawKeys`, the cache also keeps the f32 K
/// before RoPE of the rows the engine computes (`keepRawKeys`), and its `KVRowSource` view
/// (what the encoder reads) returns them exactly; rows without them (spliced from a
/// radix-tree page) are rotated back from f16 K instead.
///
/// `KVCache` is a value type with copy-on-write storage: copying a cache is cheap,
/// and the first mutation of a shared copy duplicates the buffers.
public struct KVCache: Sendable {
    /// Shape of every position.
    public let shape: KVShape
    /// RoPE of K written before rotation (row p at position p), per layer; nil keeps K as written.
    public let rotation: RotaryTables?
    private var storage: KVStorage

    /// Creates an empty cache with room for `capacity` positions (it grows as needed).
    public init(shape: KVShape, capacity: Int = 0, rotation: RotaryTables? = nil) {
        precondition(rotation.map { $0.tableOfLayer.count == shape.layers } ?? true, "one RoPE table per layer")
        self.shape = shape
        self.rotation = rotation
        self.storage = KVStorage(shape: shape, capacity: max(capacity, 16))
    }

    /// An empty cache whose every layer rotates K by `rotation`.
    public init(shape: KVShape, capacity: Int = 0, rotation: RotaryTable) {
        self.init(shape: shape, capacity: capacity, rotation: RotaryTables(layers: shape.layers, table: rotation))
    }

    /// Faults in and pools the buffers of a cache of `capacity` positions of `shape` (f16 K
    /// and V of every layer), so that the next cache made reuses resident memory. A server
    /// calls it once at start, as serving engines allocate their KV cache up front.
    public static func prewarm(shape: KVShape, capacity: Int) {
        KVStorage.prewarm(shape: shape, capacity: capacity)
    }

    /// Number of valid positions.
    public var count: Int { storage.count }
    /// Positions the buffers hold without growing.
    public var capacity: Int { storage.capacity }
    /// Bytes of f16 K and V held for the valid positions.
    public var byteCount: Int { count * shape.cacheBytesPerPosition }
    /// Bytes of the f16 K and V buffers, all `capacity` positions.
    public var capacityBytes: Int { capacity * shape.cacheBytesPerPosition }

    /// Whether rows the engine writes from now on keep their f32 K before RoPE (for
    /// encoding them into the store). Rows kept stay kept until truncated.
    public var keepsRawKeys: Bool {
        get { storage.keepsRaw }
        set { makeUnique(); storage.keepsRaw = newValue }
    }

    /// Drops the f32 K before RoPE kept so far: the rows' `KVRowSource` view turns their
    /// f16 K back instead, as for rows spliced from pages.
    public mutating func dropRawKeys() {
        makeUnique()
        storage.dropRaw()
    }

    private mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    /// The storage, made unique first (for writers in this module).
    mutating func uniqueStorage() -> KVStorage {
        makeUnique()
        return storage
    }

    /// Ensures room for `capacity` positions.
    public mutating func reserve(_ capacity: Int) {
        makeUnique()
        storage.grow(to: capacity)
    }

    /// Extends the valid range by `n` positions, to be written by the caller: their
    /// contents are unspecified until then (the buffers are recycled, not zeroed).
    public mutating func extend(by n: Int) {
        precondition(n >= 0)
        makeUnique()
        storage.grow(to: storage.count + n)
        storage.count += n
        storage.rawKept.append(contentsOf: repeatElement(false, count: n))
    }

    /// Drops every position at or after `newCount`.
    public mutating func truncate(to newCount: Int) {
        precondition(newCount >= 0 && newCount <= count, "truncate(to:) beyond count")
        makeUnique()
        storage.count = newCount
        storage.rawKept.removeLast(storage.rawKept.count - newCount)
    }

    private func check(_ layer: Int, _ range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "rows out of range")
        precondition(layer >= 0 && layer < shape.layers)
    }

    /// Reads the f16 rows `range` of `kind` in `layer` (K after RoPE), head by head.
    public func withHeadRows<R>(layer: Int, _ kind: KVKind, _ range: Range<Int>,
                                _ body: (KVHeadRows) throws -> R) rethrows -> R {
        check(layer, range)
        return try body(KVHeadRows(reading: storage.headRows(layer: layer, kind, range)))
    }

    /// The f16 rows `range` of `kind` in `layer` row-major, `[row][kvDim]` (a copy).
    public func halfRows(layer: Int, _ kind: KVKind, _ range: Range<Int>) -> [UInt16] {
        let d = shape.kvDim, hd = shape.headDim
        return withHeadRows(layer: layer, kind, range) { rows in
            [UInt16](unsafeUninitializedCapacity: range.count * d) { out, n in
                for g in 0..<rows.kvHeads {
                    let head = rows.head(g)
                    for r in 0..<rows.rows {
                        UnsafeMutableBufferPointer(rebasing: out[(r * d + g * hd)..<(r * d + g * hd + hd)])
                            .update(fromContentsOf: UnsafeBufferPointer(rebasing: head[(r * hd)..<(r * hd + hd)]))
                    }
                }
                n = range.count * d
            }
        }
    }

    /// Rows `range` of `kind` in `layer` widened to f32, row-major `[row][kvDim]` (K after RoPE).
    public func rows(layer: Int, _ kind: KVKind, _ range: Range<Int>) -> [Float] {
        let d = shape.kvDim
        return withHeadRows(layer: layer, kind, range) { h in
            [Float](unsafeUninitializedCapacity: range.count * d) { out, n in
                if !range.isEmpty {
                    for g in 0..<h.kvHeads {
                        kv_f16_to_f32_rows(out.baseAddress! + g * h.headDim, d, h.head(g).baseAddress!, h.headDim,
                                           h.rows, h.headDim)
                    }
                }
                n = range.count * d
            }
        }
    }

    /// Writes rows `range` of `kind` in `layer` from f32 rows `stride` floats apart that are
    /// final (K already rotated for its positions), narrowing them to f16.
    public mutating func store(layer: Int, _ kind: KVKind, _ range: Range<Int>,
                               from src: UnsafePointer<Float>, stride: Int) {
        check(layer, range)
        makeUnique()
        let hd = shape.headDim, dst = storage.headRows(layer: layer, kind, range)
        for g in 0..<shape.kvHeads {
            kv_f32_to_f16_rows(dst.head(g).baseAddress!, hd, src + g * hd, stride, range.count, hd)
        }
    }

    /// Keeps the f32 K before RoPE of rows `range` in `layer` (rows `stride` floats apart)
    /// when `keepsRawKeys` is on; does nothing otherwise. A row counts as kept once every
    /// layer's K was given.
    public mutating func keepRawKeys(layer: Int, _ range: Range<Int>, from src: UnsafePointer<Float>, stride: Int) {
        guard keepsRawKeys, !range.isEmpty else { return }
        check(layer, range)
        makeUnique()
        let d = shape.kvDim
        for (r, p) in range.enumerated() { storage.rawRow(layer: layer, position: p).update(from: src + r * stride, count: d) }
        if layer == shape.layers - 1 { for p in range { storage.rawKept[p] = true } }
    }

    /// Appends rows `range` of another cache of the same shape (f16 K and V as they are:
    /// the rows keep the positions they were rotated for).
    public mutating func append(contentsOf other: KVCache, _ range: Range<Int>) {
        precondition(other.shape == shape, "KV shape mismatch")
        let start = count
        extend(by: range.count)
        for layer in 0..<shape.layers {
            for kind in [KVKind.key, .value] {
                other.withHeadRows(layer: layer, kind, range) { src in
                    storage.headRows(layer: layer, kind, start..<(start + range.count)).update(from: src)
                }
            }
        }
    }
}

extension KVCache: KVRowSink {
    /// Writes rows `range` of `kind` in `layer` (which must lie in `0..<count`) from f32:
    /// `body` fills K before RoPE or V, which is rotated by `rotation` (K) and narrowed to
    /// f16. K is kept as raw K too when `keepsRawKeys` is on.
    public mutating func withMutableRows<R>(layer: Int, _ kind: KVKind, _ range: Range<Int>,
                                            _ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        check(layer, range)
        let d = shape.kvDim, n = range.count * d
        let scratch = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(n, 1))
        defer { scratch.deallocate() }
        let result = try body(UnsafeMutableBufferPointer(rebasing: scratch[0..<n]))
        guard n > 0 else { return result }
        if kind == .key {
            keepRawKeys(layer: layer, range, from: scratch.baseAddress!, stride: d)
            rotation?[layer].covering(range).apply(scratch.baseAddress!, stride: d, into: scratch.baseAddress!, stride: d,
                                            rows: range.count, firstPosition: range.lowerBound,
                                            heads: shape.kvHeads, headDim: shape.headDim)
        }
        store(layer: layer, kind, range, from: scratch.baseAddress!, stride: d)
        return result
    }
}

extension KVCache: KVRowSource {
    /// Reads rows `range` of `kind` in `layer` as f32 with K before RoPE: V widened; K as
    /// kept (`keepRawKeys`), or, for rows not kept, f16 K widened and rotated back by
    /// `rotation` (exact up to the f16 rounding of the rotated K).
    public func withRows<R>(layer: Int, _ kind: KVKind, _ range: Range<Int>,
                            _ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        check(layer, range)
        let d = shape.kvDim
        var out = rows(layer: layer, kind, range)
        if kind == .key {
            out.withUnsafeMutableBufferPointer { o in
                for (r, p) in range.enumerated() {
                    let row = o.baseAddress! + r * d
                    if storage.rawKept[p] {
                        row.update(from: storage.rawRow(layer: layer, position: p), count: d)
                    } else if let rotation {
                        rotation[layer].covering(p..<(p + 1)).applyInverse(row, stride: d, rows: 1, firstPosition: p,
                                                                   heads: shape.kvHeads, headDim: shape.headDim)
                    }
                }
            }
        }
        return try out.withUnsafeBufferPointer(body)
    }
}

/// Buffers behind `KVCache`: one arena holding, for each layer, two f16 tensors (K after
/// RoPE, V) of `kvHeads` runs of `[capacity][headDim]` each, and, once asked for, one
/// `[capacity][layer][kvDim]` tensor of f32 K before RoPE with a flag per position saying
/// which rows it holds. The raw keys
/// are position-major so that keeping the few rows a hit computes touches a few pages, not
/// a huge page per layer near the end of a long context.
final class KVStorage: @unchecked Sendable {
    // @unchecked: mutated only through KVCache, which enforces uniqueness (copy-on-write)
    // before every write, so a shared instance is never written.
    let shape: KVShape
    private(set) var capacity: Int
    var count = 0
    var keepsRaw = false
    /// Per valid position: whether `raw` holds its K before RoPE.
    var rawKept: [Bool] = []
    private var halves: KVArena<UInt16>
    private var raw: KVArena<Float>?

    init(shape: KVShape, capacity: Int) {
        self.shape = shape
        self.capacity = capacity
        halves = KVStorage.halfArena(shape: shape, capacity: capacity)
    }

    /// The f16 arena's layout: K and V of every layer, `capacity` rows each.
    private static func halfLayout(shape: KVShape, capacity: Int) -> (tensors: Int, elementsEach: Int) {
        (shape.layers * 2, capacity * shape.kvDim)
    }

    private static func halfArena(shape: KVShape, capacity: Int) -> KVArena<UInt16> {
        let layout = halfLayout(shape: shape, capacity: capacity)
        return KVArena(tensors: layout.tensors, elementsEach: layout.elementsEach)
    }

    static func prewarm(shape: KVShape, capacity: Int) {
        let layout = halfLayout(shape: shape, capacity: capacity)
        KVArenaPool.shared.prewarm(bytes: KVArena<UInt16>.bytes(tensors: layout.tensors, elementsEach: layout.elementsEach))
    }

    /// Head 0's row 0 of `kind` in `layer`; head g's rows start `g * headStride` further.
    func pointer(layer: Int, _ kind: KVKind) -> UnsafeMutablePointer<UInt16> {
        halves.tensor(layer * 2 + (kind == .key ? 0 : 1))
    }

    /// Halves from one KV head's rows to the next head's.
    var headStride: Int { capacity * shape.headDim }

    /// Rows `range` of `kind` in `layer`, each KV head's from the range's first position.
    func headRows(layer: Int, _ kind: KVKind, _ range: Range<Int>) -> KVMutableHeadRows {
        KVMutableHeadRows(base: pointer(layer: layer, kind) + range.lowerBound * shape.headDim,
                          layout: shape.headLayout(rows: range.count, headStride: headStride))
    }

    /// The first `rows` rows of every head of every tensor of `from` (same shape, any capacity).
    private func copyHeads(from other: KVArena<UInt16>, headStride otherStride: Int, rows: Int) {
        guard rows > 0 else { return }
        let n = rows * shape.headDim
        for t in 0..<(shape.layers * 2) {
            for g in 0..<shape.kvHeads {
                (halves.tensor(t) + g * headStride).update(from: other.tensor(t) + g * otherStride, count: n)
            }
        }
    }

    /// The f32 K before RoPE of `layer` at `position` (the tensor is allocated on first use).
    func rawRow(layer: Int, position: Int) -> UnsafeMutablePointer<Float> {
        if raw == nil { raw = KVArena(tensors: 1, elementsEach: capacity * rawRowElements) }
        return raw!.tensor(0) + (position * shape.layers + layer) * shape.kvDim
    }

    /// Releases the raw K tensor; no row holds raw K afterwards.
    func dropRaw() {
        raw = nil
        rawKept = Array(repeating: false, count: rawKept.count)
    }

    /// Floats of raw K per position (every layer's row).
    private var rawRowElements: Int { shape.layers * shape.kvDim }

    func grow(to needed: Int) {
        guard needed > capacity else { return }
        let newCapacity = max(needed, capacity * 2)
        let old = halves, oldStride = headStride
        halves = KVStorage.halfArena(shape: shape, capacity: newCapacity)
        capacity = newCapacity
        copyHeads(from: old, headStride: oldStride, rows: count)
        if let raw {
            let biggerRaw = KVArena<Float>(tensors: 1, elementsEach: newCapacity * rawRowElements)
            biggerRaw.copyRows(from: raw, elements: count * rawRowElements)
            self.raw = biggerRaw
        }
    }

    func copy() -> KVStorage {
        let c = KVStorage(shape: shape, capacity: capacity)
        c.copyHeads(from: halves, headStride: headStride, rows: count)
        if let raw, rawKept.contains(true) {
            _ = c.rawRow(layer: 0, position: 0)
            c.raw!.copyRows(from: raw, elements: count * rawRowElements)
        }
        c.count = count
        c.keepsRaw = keepsRaw
        c.rawKept = rawKept
        return c
    }
}
