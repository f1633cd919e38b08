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

    /// Bytes of f32 K and V that one position occupies across all layers.
    public var bytesPerPosition: Int { layers * 2 * kvDim * MemoryLayout<Float>.size }

    public var description: String { "layers=\(layers) kvHeads=\(kvHeads) headDim=\(headDim)" }
}

/// Which tensor of a layer's cache: K stored before RoPE, or V.
public enum KVKind: Sendable, Hashable {
    /// Keys before rotary position embedding (position-independent).
    case key
    /// Values.
    case value
}

/// The explicit KV cache of one sequence.
///
/// For every layer it holds three row-major `[position][kvDim]` f32 tensors:
/// K before RoPE, V, and K after RoPE (what attention reads). Positions `0..<count`
/// hold valid K and V. K after RoPE is valid for `0..<ropedCount`; the engine
/// rotates the rest lazily before attention, so a store can splice pre-RoPE K
/// into any range and never deals with positions.
///
/// `KVCache` is a value type with copy-on-write storage: copying a cache is cheap,
/// and the first mutation of a shared copy duplicates the buffers.
public struct KVCache: Sendable {
    /// Shape of every position.
    public let shape: KVShape
    private var storage: KVStorage

    /// Creates an empty cache with room for `capacity` positions (it grows as needed).
    public init(shape: KVShape, capacity: Int = 0) {
        self.shape = shape
        self.storage = KVStorage(shape: shape, capacity: max(capacity, 16))
    }

    /// Number of valid positions.
    public var count: Int { storage.count }
    /// Number of positions whose post-RoPE K is valid.
    public var ropedCount: Int { storage.roped }
    /// Positions the buffers hold without growing.
    public var capacity: Int { storage.capacity }
    /// Bytes of K and V (pre-RoPE K and V only) held for the valid positions.
    public var byteCount: Int { count * shape.bytesPerPosition }

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
    /// contents are unspecified until then (the buffers are recycled, not zeroed). Their
    /// post-RoPE K is not valid until the engine rotates it.
    public mutating func extend(by n: Int) {
        precondition(n >= 0)
        makeUnique()
        storage.grow(to: storage.count + n)
        storage.count += n
    }

    /// Drops every position at or after `newCount`.
    public mutating func truncate(to newCount: Int) {
        precondition(newCount >= 0 && newCount <= count, "truncate(to:) beyond count")
        makeUnique()
        storage.count = newCount
        storage.roped = min(storage.roped, newCount)
    }

    /// Reads rows `range` of `kind` in `layer`. The buffer is `range.count * kvDim` floats.
    public func withRows<R>(layer: Int, _ kind: KVKind, _ range: Range<Int>,
                            _ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "rows out of range")
        precondition(layer >= 0 && layer < shape.layers)
        let base = storage.pointer(layer: layer, kind == .key ? 0 : 1) + range.lowerBound * shape.kvDim
        return try body(UnsafeBufferPointer(start: base, count: range.count * shape.kvDim))
    }

    /// Writes rows `range` of `kind` in `layer` (which must lie in `0..<count`).
    /// Writing K invalidates post-RoPE K from `range.lowerBound` on.
    public mutating func withMutableRows<R>(layer: Int, _ kind: KVKind, _ range: Range<Int>,
                                            _ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "rows out of range")
        precondition(layer >= 0 && layer < shape.layers)
        makeUnique()
        if kind == .key { storage.roped = min(storage.roped, range.lowerBound) }
        let base = storage.pointer(layer: layer, kind == .key ? 0 : 1) + range.lowerBound * shape.kvDim
        return try body(UnsafeMutableBufferPointer(start: base, count: range.count * shape.kvDim))
    }

    /// Copies rows `range` of `kind` in `layer` out as an array.
    public func rows(layer: Int, _ kind: KVKind, _ range: Range<Int>) -> [Float] {
        withRows(layer: layer, kind, range) { Array($0) }
    }

    /// Gives the engine the post-RoPE K of `layer` for positions `0..<count`, to fill
    /// `ropedCount..<count` (`rotate`) and then read all of it. Call `markRoped()` after
    /// rotating every layer.
    public mutating func withRopedKeys<R>(layer: Int,
                                          _ body: (_ raw: UnsafeBufferPointer<Float>,
                                                   _ roped: UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        makeUnique()
        let n = count * shape.kvDim
        let raw = UnsafeBufferPointer(start: storage.pointer(layer: layer, 0), count: n)
        let roped = UnsafeMutableBufferPointer(start: storage.pointer(layer: layer, 2), count: n)
        return try body(raw, roped)
    }

    /// Read-only access to the post-RoPE K of `layer` (valid for `0..<ropedCount`).
    public func withRopedKeys<R>(layer: Int, _ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer(layer: layer, 2), count: count * shape.kvDim))
    }

    /// Records that post-RoPE K is valid for every position.
    public mutating func markRoped() {
        makeUnique()
        storage.roped = storage.count
    }

    /// Appends rows `range` of another cache of the same shape (pre-RoPE K and V).
    public mutating func append(contentsOf other: KVCache, _ range: Range<Int>) {
        precondition(other.shape == shape, "KV shape mismatch")
        let start = count
        extend(by: range.count)
        for layer in 0..<shape.layers {
            for kind in [KVKind.key, .value] {
                other.withRows(layer: layer, kind, range) { src in
                    withMutableRows(layer: layer, kind, start..<(start + range.count)) { dst in
                        _ = dst.initialize(fromContentsOf: src)
                    }
                }
            }
        }
    }
}

/// Buffers behind `KVCache`: one arena holding, for each layer, three
/// `[capacity][kvDim]` f32 tensors (K before RoPE, V, K after RoPE).
final class KVStorage: @unchecked Sendable {
    // @unchecked: mutated only through KVCache, which enforces uniqueness (copy-on-write)
    // before every write, so a shared instance is never written.
    let shape: KVShape
    private(set) var capacity: Int
    var count = 0
    var roped = 0
    private var arena: KVArena

    init(shape: KVShape, capacity: Int) {
        self.shape = shape
        self.capacity = capacity
        arena = KVArena(tensors: shape.layers * 3, floatsEach: capacity * shape.kvDim)
    }

    func pointer(layer: Int, _ which: Int) -> UnsafeMutablePointer<Float> { arena.tensor(layer * 3 + which) }

    func grow(to needed: Int) {
        guard needed > capacity else { return }
        let newCapacity = max(needed, capacity * 2)
        let bigger = KVArena(tensors: shape.layers * 3, floatsEach: newCapacity * shape.kvDim)
        bigger.copyRows(from: arena, floats: count * shape.kvDim)
        arena = bigger
        capacity = newCapacity
    }

    func copy() -> KVStorage {
        let c = KVStorage(shape: shape, capacity: capacity)
        c.arena.copyRows(from: arena, floats: count * shape.kvDim)
        c.count = count
        c.roped = roped
        return c
    }
}
