/// f32 rows of every layer's K (before RoPE) and V: what the store's codec encodes.
public protocol KVRowSource {
    /// Shape of every position.
    var shape: KVShape { get }
    /// Number of valid positions.
    var count: Int { get }
    /// Reads rows `range` of `kind` in `layer` as `range.count * kvDim` floats (K before RoPE).
    func withRows<R>(layer: Int, _ kind: KVKind, _ range: Range<Int>,
                     _ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R
}

/// A destination for f32 rows of K (before RoPE) and V: what the store's codec decodes into.
public protocol KVRowSink {
    /// Shape of every position.
    var shape: KVShape { get }
    /// Number of valid positions.
    var count: Int { get }
    /// Extends the valid range by `n` positions, to be written by the caller.
    mutating func extend(by n: Int)
    /// Drops every position at or after `newCount`.
    mutating func truncate(to newCount: Int)
    /// Writes rows `range` (inside `0..<count`) of `kind` in `layer`: `body` fills
    /// `range.count * kvDim` floats (K before RoPE), whose earlier contents are unspecified.
    mutating func withMutableRows<R>(layer: Int, _ kind: KVKind, _ range: Range<Int>,
                                     _ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R
}

/// Plain f32 K (before RoPE) and V rows of every layer, `[layer][kind][position][kvDim]`:
/// a block's contents as the codec sees them, with no cache layout and no positions
/// (tests, benchmarks and tools that inspect blocks).
public struct KVRows: KVRowSource, KVRowSink, Sendable {
    public let shape: KVShape
    public private(set) var count = 0
    private var tensors: [[Float]]

    public init(shape: KVShape) {
        self.shape = shape
        tensors = Array(repeating: [], count: shape.layers * 2)
    }

    private func index(_ layer: Int, _ kind: KVKind) -> Int {
        precondition(layer >= 0 && layer < shape.layers)
        return layer * 2 + (kind == .key ? 0 : 1)
    }

    public mutating func extend(by n: Int) {
        precondition(n >= 0)
        for i in tensors.indices { tensors[i].append(contentsOf: repeatElement(0, count: n * shape.kvDim)) }
        count += n
    }

    public mutating func truncate(to newCount: Int) {
        precondition(newCount >= 0 && newCount <= count, "truncate(to:) beyond count")
        for i in tensors.indices { tensors[i].removeLast((count - newCount) * shape.kvDim) }
        count = newCount
    }

    public func withRows<R>(layer: Int, _ kind: KVKind, _ range: Range<Int>,
                            _ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "rows out of range")
        let d = shape.kvDim
        return try tensors[index(layer, kind)].withUnsafeBufferPointer {
            try body(UnsafeBufferPointer(rebasing: $0[(range.lowerBound * d)..<(range.upperBound * d)]))
        }
    }

    public mutating func withMutableRows<R>(layer: Int, _ kind: KVKind, _ range: Range<Int>,
                                            _ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "rows out of range")
        let d = shape.kvDim
        return try tensors[index(layer, kind)].withUnsafeMutableBufferPointer {
            try body(UnsafeMutableBufferPointer(rebasing: $0[(range.lowerBound * d)..<(range.upperBound * d)]))
        }
    }

    /// Copies rows `range` of `kind` in `layer` out as an array.
    public func rows(layer: Int, _ kind: KVKind, _ range: Range<Int>) -> [Float] {
        withRows(layer: layer, kind, range) { Array($0) }
    }
}
