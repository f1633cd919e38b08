import Foundation
import KVStashCore

/// Sixteen consecutive positions of KV for every layer, f32, ready to splice.
///
/// A page holds K before RoPE and V, so it can be spliced at any position of a
/// sequence (K is rotated as it lands, or lazily by the engine). Pages are immutable
/// values; the radix tree shares them between nodes and requests without copying.
public struct KVPage: Sendable {
    /// Positions per page.
    public static let size = 16

    /// Shape of every position.
    public let shape: KVShape
    /// Layout `[layer][kind: K, V][row][kvDim]`.
    private let data: [Float]

    /// Copies positions `start ..< start + KVPage.size` of `cache` (pre-RoPE K and V).
    public init(from cache: KVCache, start: Int) {
        precondition(start >= 0 && start + Self.size <= cache.count, "page out of the cache's range")
        let shape = cache.shape
        let block = Self.size * shape.kvDim
        self.shape = shape
        self.data = [Float](unsafeUninitializedCapacity: shape.layers * 2 * block) { buf, n in
            for layer in 0..<shape.layers {
                for kind in [KVKind.key, .value] {
                    cache.withRows(layer: layer, kind, start..<(start + Self.size)) { src in
                        let offset = Self.offset(layer: layer, kind, block: block)
                        _ = UnsafeMutableBufferPointer(rebasing: buf[offset..<(offset + block)])
                            .initialize(fromContentsOf: src)
                    }
                }
            }
            n = shape.layers * 2 * block
        }
    }

    /// Where the rows of `kind` in `layer` start in `data` (layout `[layer][K, V][row][kvDim]`).
    private static func offset(layer: Int, _ kind: KVKind, block: Int) -> Int {
        (layer * 2 + (kind == .key ? 0 : 1)) * block
    }

    /// Bytes of f32 K and V the page holds.
    public var byteCount: Int { data.count * MemoryLayout<Float>.size }

    /// The page's rows of `kind` in `layer` (`KVPage.size * kvDim` floats).
    func withRows<R>(layer: Int, _ kind: KVKind, _ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        let block = Self.size * shape.kvDim, offset = Self.offset(layer: layer, kind, block: block)
        return try data.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[offset..<(offset + block)])) }
    }
}

extension KVCache {
    /// Appends `pages` at the end of the cache (the splice of a radix-tree match). The pages
    /// are copied by several workers at once, four pages per task; with `rotation` (the
    /// model's RoPE table), K is rotated as it lands, so the engine does not rotate those
    /// positions again.
    public mutating func splice(_ pages: [KVPage], rotation: RotaryTable? = nil) {
        guard !pages.isEmpty else { return }
        precondition(pages.allSatisfy { $0.shape == shape }, "KV shape mismatch")
        let start = count, size = KVPage.size, kvDim = shape.kvDim, layers = shape.layers
        // Groups of a few pages, so each worker's staging buffer (KVRowWriter) stays in L1/L2.
        let step = 4
        let groups = stride(from: 0, to: pages.count, by: step).map { $0..<min(pages.count, $0 + step) }
        let ranges = groups.map { (start + $0.lowerBound * size)..<(start + $0.upperBound * size) }
        _ = writeConcurrently(ranges, rotation: rotation, succeeded: { $0 }) { i, writer in
            for layer in 0..<layers {
                for kind in [KVKind.key, .value] {
                    writer.withMutableRows(layer: layer, kind) { dst in
                        for (j, page) in pages[groups[i]].enumerated() {
                            page.withRows(layer: layer, kind) { src in
                                _ = UnsafeMutableBufferPointer(rebasing: dst[(j * size * kvDim)...])
                                    .update(fromContentsOf: src)
                            }
                        }
                    }
                }
            }
            return true
        }
    }

    /// Copies positions `range` (whose bounds are multiples of `KVPage.size`) into pages.
    public func pages(_ range: Range<Int>) -> [KVPage] {
        precondition(range.lowerBound % KVPage.size == 0 && range.count % KVPage.size == 0,
                     "page ranges are multiples of KVPage.size")
        return stride(from: range.lowerBound, to: range.upperBound, by: KVPage.size).map {
            KVPage(from: self, start: $0)
        }
    }
}
