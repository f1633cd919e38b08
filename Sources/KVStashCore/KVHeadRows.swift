/// Where rows of one layer's K or V lie in a `KVCache`, from a first position: KV head g's
/// rows are `headDim` halves each, one after another from `g * headStride`.
public struct KVHeadLayout: Sendable, Hashable {
    /// Rows (positions) covered.
    public let rows: Int
    public let kvHeads: Int
    public let headDim: Int
    /// Halves from one head's rows to the next head's.
    public let headStride: Int

    public init(rows: Int, kvHeads: Int, headDim: Int, headStride: Int) {
        (self.rows, self.kvHeads, self.headDim, self.headStride) = (rows, kvHeads, headDim, headStride)
    }

    /// Head `g`'s first half and its `rows * headDim` halves.
    func head(_ g: Int) -> (offset: Int, count: Int) {
        precondition(g >= 0 && g < kvHeads, "no KV head \(g)")
        return (g * headStride, rows * headDim)
    }

    /// Rows `range` of these (counted from the first): where they start, and their layout.
    func slice(_ range: Range<Int>) -> (offset: Int, layout: KVHeadLayout) {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows, "rows outside the \(rows) held")
        return (range.lowerBound * headDim, KVHeadLayout(rows: range.count, kvHeads: kvHeads, headDim: headDim,
                                                         headStride: headStride))
    }
}

extension KVShape {
    /// `rows` rows of every KV head, heads `headStride` halves apart.
    public func headLayout(rows: Int, headStride: Int) -> KVHeadLayout {
        KVHeadLayout(rows: rows, kvHeads: kvHeads, headDim: headDim, headStride: headStride)
    }
}

/// Rows of one layer's K or V to read (`KVCache.withHeadRows`, a radix page), laid out as
/// `layout` says from `base`. Valid while the closure that hands it out runs.
@dynamicMemberLookup
public struct KVHeadRows {
    /// Head 0 at the first row.
    public let base: UnsafePointer<UInt16>
    public let layout: KVHeadLayout

    public init(base: UnsafePointer<UInt16>, layout: KVHeadLayout) { (self.base, self.layout) = (base, layout) }

    /// The same rows, to read.
    init(reading rows: KVMutableHeadRows) { self.init(base: UnsafePointer(rows.base), layout: rows.layout) }

    public subscript<T>(dynamicMember key: KeyPath<KVHeadLayout, T>) -> T { layout[keyPath: key] }

    /// Head `g`'s `rows * headDim` halves.
    public func head(_ g: Int) -> UnsafeBufferPointer<UInt16> {
        let (offset, count) = layout.head(g)
        return UnsafeBufferPointer(start: base + offset, count: count)
    }

    /// Rows `range` of these (counted from the first).
    public func slice(_ range: Range<Int>) -> KVHeadRows {
        let (offset, layout) = layout.slice(range)
        return KVHeadRows(base: base + offset, layout: layout)
    }
}

/// Rows a writer fills (a `KVRowWriter`'s), laid out as `layout` says from `base`.
@dynamicMemberLookup
public struct KVMutableHeadRows {
    public let base: UnsafeMutablePointer<UInt16>
    public let layout: KVHeadLayout

    public init(base: UnsafeMutablePointer<UInt16>, layout: KVHeadLayout) { (self.base, self.layout) = (base, layout) }

    public subscript<T>(dynamicMember key: KeyPath<KVHeadLayout, T>) -> T { layout[keyPath: key] }

    /// Head `g`'s `rows * headDim` halves.
    public func head(_ g: Int) -> UnsafeMutableBufferPointer<UInt16> {
        let (offset, count) = layout.head(g)
        return UnsafeMutableBufferPointer(start: base + offset, count: count)
    }

    /// Rows `range` of these (counted from the first).
    public func slice(_ range: Range<Int>) -> KVMutableHeadRows {
        let (offset, layout) = layout.slice(range)
        return KVMutableHeadRows(base: base + offset, layout: layout)
    }

    /// Copies `src` (as many rows and heads of the same dimension) here, head by head.
    public func update(from src: KVHeadRows) {
        precondition(src.rows == layout.rows && src.kvHeads == layout.kvHeads && src.headDim == layout.headDim,
                     "KV rows of another shape")
        for g in 0..<layout.kvHeads { head(g).baseAddress!.update(from: src.head(g).baseAddress!, count: src.head(g).count) }
    }
}
