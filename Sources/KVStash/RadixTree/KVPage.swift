import KVStashCore

/// Sixteen consecutive positions of KV for every layer, f32, ready to splice.
///
/// A page holds K before RoPE and V, so it can be spliced at any position of a
/// sequence (the engine rotates K lazily). Pages are immutable values; the radix
/// tree shares them between nodes and requests without copying.
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
                for (k, kind) in [KVKind.key, .value].enumerated() {
                    cache.withRows(layer: layer, kind, start..<(start + Self.size)) { src in
                        let offset = (layer * 2 + k) * block
                        _ = UnsafeMutableBufferPointer(rebasing: buf[offset..<(offset + block)])
                            .initialize(fromContentsOf: src)
                    }
                }
            }
            n = shape.layers * 2 * block
        }
    }

    /// Bytes of f32 K and V the page holds.
    public var byteCount: Int { data.count * MemoryLayout<Float>.size }

    /// Writes the page into positions `position ..< position + KVPage.size` of `cache`,
    /// which must already hold them.
    public func write(into cache: inout KVCache, at position: Int) {
        precondition(cache.shape == shape, "KV shape mismatch")
        let block = Self.size * shape.kvDim
        data.withUnsafeBufferPointer { all in
            for layer in 0..<shape.layers {
                for (k, kind) in [KVKind.key, .value].enumerated() {
                    let offset = (layer * 2 + k) * block
                    cache.withMutableRows(layer: layer, kind, position..<(position + Self.size)) { dst in
                        _ = dst.update(fromContentsOf: UnsafeBufferPointer(rebasing: all[offset..<(offset + block)]))
                    }
                }
            }
        }
    }
}

extension KVCache {
    /// Appends `pages` at the end of the cache (the splice of a radix-tree match).
    public mutating func splice(_ pages: [KVPage]) {
        guard !pages.isEmpty else { return }
        var position = count
        extend(by: pages.count * KVPage.size)
        for page in pages {
            page.write(into: &self, at: position)
            position += KVPage.size
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
