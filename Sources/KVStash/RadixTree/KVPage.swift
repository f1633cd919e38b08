import Foundation
import KVStashCore

/// Sixteen consecutive positions of KV for every layer (fewer for the partial last page
/// of a sequence), f16, ready to splice.
///
/// A page holds the cache's own values and layout: K after RoPE for the positions it was
/// computed at, and V, each KV head's rows together. The radix tree only splices a page at
/// those positions (a prefix match), so a splice is a copy with no rotation. Pages are immutable values; the radix tree shares
/// them between nodes and requests without copying.
public struct KVPage: Sendable {
    /// Positions per page.
    public static let size = 16

    /// Shape of every position.
    public let shape: KVShape
    /// Positions held: `KVPage.size`, or fewer for a partial page.
    public let rows: Int
    /// Layers whose rows the page does not hold (the sliding layers of positions a cold hit
    /// left out; see `SkippedRows`), ascending; a splice leaves those cache rows unwritten.
    public let skippedLayers: [Int]
    /// Layers held, ascending.
    private let heldLayers: [Int]
    /// Layout `[held layer][kind: K, V][KV head][row][headDim]`, IEEE f16.
    private let data: PageBuffer

    /// Copies positions `start ..< start + rows` of `cache` (`rows` in `1...KVPage.size`),
    /// of every layer but `skipping`.
    public init(from cache: KVCache, start: Int, rows: Int = KVPage.size, skipping: [Int] = []) {
        precondition(rows > 0 && rows <= Self.size, "a page holds 1...\(Self.size) positions")
        precondition(start >= 0 && start + rows <= cache.count, "page out of the cache's range")
        let shape = cache.shape
        let block = rows * shape.kvDim
        let held = (0..<shape.layers).filter { !skipping.contains($0) }
        self.shape = shape
        self.rows = rows
        self.skippedLayers = skipping.sorted()
        self.heldLayers = held
        self.data = PageBuffer(count: held.count * 2 * block) { buf in
            for (index, layer) in held.enumerated() {
                for kind in [KVKind.key, .value] {
                    cache.withHeadRows(layer: layer, kind, start..<(start + rows)) { src in
                        KVMutableHeadRows(base: buf.baseAddress! + Self.offset(index, kind, block: block),
                                          layout: Self.layout(shape, rows: rows)).update(from: src)
                    }
                }
            }
        }
    }

    /// Where the rows of `kind` in the `index`-th held layer start in `data`.
    private static func offset(_ index: Int, _ kind: KVKind, block: Int) -> Int {
        (index * 2 + (kind == .key ? 0 : 1)) * block
    }

    /// Whether a copy of `page`'s positions lacking only `lacking` holds rows it lacks.
    static func completes(_ page: KVPage, lacking: [Int]) -> Bool {
        Set(lacking).isStrictSubset(of: page.skippedLayers)
    }

    /// Bytes of f16 K and V the page holds.
    public var byteCount: Int { data.count * MemoryLayout<UInt16>.size }

    /// The page's rows of `kind` in `layer`, head by head (`rows * headDim` halves each, the
    /// heads one after another); `body` is not called for a skipped layer.
    func withRows(layer: Int, _ kind: KVKind, _ body: (KVHeadRows) throws -> Void) rethrows {
        guard let index = heldLayers.firstIndex(of: layer) else { return }
        let block = rows * shape.kvDim, offset = Self.offset(index, kind, block: block)
        try data.withUnsafeBufferPointer {
            try body(KVHeadRows(base: $0.baseAddress! + offset, layout: Self.layout(shape, rows: rows)))
        }
    }

    /// One layer's K or V in a page of `rows` positions: each head's rows, one head after another.
    private static func layout(_ shape: KVShape, rows: Int) -> KVHeadLayout {
        shape.headLayout(rows: rows, headStride: rows * shape.headDim)
    }
}

extension KVCache {
    /// Appends the first `rows` positions of `pages` (all of them by default) at the end of
    /// the cache: the splice of a radix-tree match, whose pages were computed at these
    /// positions. A copy of their f16 rows, four pages per task on several workers.
    ///
    /// - Precondition: every page but the last is whole, and `rows` ends in the last page.
    public mutating func splice(_ pages: [KVPage], rows: Int? = nil) {
        guard !pages.isEmpty else { return }
        let size = KVPage.size, total = rows ?? ((pages.count - 1) * size + pages.last!.rows)
        precondition(pages.allSatisfy { $0.shape == shape }, "KV shape mismatch")
        precondition(pages.dropLast().allSatisfy { $0.rows == size }, "only the last page may be partial")
        precondition(total > (pages.count - 1) * size && total <= (pages.count - 1) * size + pages.last!.rows,
                     "rows must end in the last page")
        let start = count, layers = shape.layers
        let step = 4
        let groups = stride(from: 0, to: pages.count, by: step).map { $0..<min(pages.count, $0 + step) }
        let ranges = groups.map { (start + $0.lowerBound * size)..<(start + min($0.upperBound * size, total)) }
        _ = writeConcurrently(ranges) { i, writer in
            for layer in 0..<layers {
                for kind in [KVKind.key, .value] {
                    writer.withMutableHeadRows(layer: layer, kind) { dst in
                        for (j, page) in pages[groups[i]].enumerated() {
                            let n = min(size, total - (groups[i].lowerBound + j) * size)
                            page.withRows(layer: layer, kind) { src in
                                dst.slice((j * size)..<(j * size + n)).update(from: src.slice(0..<n))
                            }
                        }
                    }
                }
            }
            return true
        }
    }

    /// Copies positions `range` (whose bounds are multiples of `KVPage.size`) into pages,
    /// without the rows `skipped` says were left out.
    public func pages(_ range: Range<Int>, skipped: SkippedRows = SkippedRows()) -> [KVPage] {
        precondition(range.lowerBound % KVPage.size == 0 && range.count % KVPage.size == 0,
                     "page ranges are multiples of KVPage.size")
        return stride(from: range.lowerBound, to: range.upperBound, by: KVPage.size).map {
            KVPage(from: self, start: $0, skipping: skipped.layers(in: $0..<($0 + KVPage.size)))
        }
    }
}
