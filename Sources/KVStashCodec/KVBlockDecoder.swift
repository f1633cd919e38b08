import KVStashCore

/// Reads stored KV blocks: the header alone, a full integrity check, or a decode
/// straight into a KV cache.
///
/// Every check (header checksum, dimensions, chunk key, model fingerprint, shape,
/// splice position, payload checksum, frame header) runs before the cache is touched.
/// The frame's exact length, and by default its own content checksum, are verified as
/// it is streamed.
public struct KVBlockDecoder: Sendable {
    /// Whether a decode recomputes the LZ4 frame's content checksum (`validate` always does).
    public let verifiesFrameContent: Bool

    /// A decoder. With `verifiesFrameContent` false, a decode of an LZ4 frame does not
    /// recompute the frame's 32-bit content checksum over the decompressed bytes: the
    /// 64-bit payload checksum, checked first, already covers every stored byte of the
    /// frame (its content checksum included), and decompressing the same bytes is
    /// deterministic, so what it would add is a guard against a block that was wrong
    /// when written, which a writer rules out by validating each block before storing
    /// it (as the request path does). zstd frames always check their own.
    public init(verifiesFrameContent: Bool = true) {
        self.verifiesFrameContent = verifiesFrameContent
    }

    /// Parses and checks the header (magic, version, header checksum, codec, flags,
    /// dimensions, group size, layer mask) without reading the payload. Handy for `inspect`.
    public func readHeader(_ bytes: [UInt8]) throws -> KVBlockHeader {
        try KVBlockHeader.parse(bytes[...])
    }

    /// Checks a whole block without a cache: header, length, payload checksum, and a
    /// full decompression that verifies the frame's size and content checksum.
    public func validate(_ bytes: [UInt8]) throws -> KVBlockHeader {
        try bytes.withUnsafeBytes { raw in
            let (header, _, size) = try checkedHeader(raw)
            let reader = try openFrame(raw, header, size, verifyContent: true)
            let piece = UnsafeMutableRawBufferPointer.allocate(byteCount: min(size, 1 << 20), alignment: 64)
            defer { piece.deallocate() }
            var remaining = size
            while remaining > 0 {
                let n = min(remaining, piece.count)
                try reader.read(into: UnsafeMutableRawBufferPointer(rebasing: piece[0..<n]))
                remaining -= n
            }
            try reader.finish()
            return header
        }
    }

    /// Decodes a block into `cache` at rows `position..<position + tokenCount`, extending
    /// the cache when they reach past `cache.count` (`position` must be ≤ `cache.count`).
    /// Writes pre-RoPE K and V as f32 rows (a `KVCache` rotates K for its positions).
    ///
    /// Throws before touching the cache for any mismatch or damage. If the frame fails
    /// its own checks midway (only possible if a damaged payload collides with the
    /// 64-bit payload checksum), the cache is truncated back to its old count, and rows
    /// `position..<oldCount` are left unspecified.
    @discardableResult
    public func decode(_ bytes: [UInt8], expectedChunkKey: [UInt8], expectedFingerprint: [UInt8],
                       into cache: inout some KVRowSink, at position: Int) throws -> KVBlockHeader {
        try bytes.withUnsafeBytes { raw in
            try decode(raw, expectedChunkKey: expectedChunkKey, expectedFingerprint: expectedFingerprint,
                       into: &cache, at: position)
        }
    }

    /// The cache form of `decode` for a block read in place.
    @discardableResult
    public func decode(_ raw: UnsafeRawBufferPointer, expectedChunkKey: [UInt8], expectedFingerprint: [UInt8],
                       into cache: inout some KVRowSink, at position: Int) throws -> KVBlockHeader {
        let (header, layout, size) = try checkedBlock(raw, shape: cache.shape, chunkKey: expectedChunkKey,
                                                      fingerprint: expectedFingerprint)
        guard position >= 0, position <= cache.count else {
            throw KVBlockError.positionOutOfRange(position: position, count: cache.count)
        }
        // The frame's header (and the payload checksum) are checked before the cache grows.
        let reader = try openFrame(raw, header, size, verifyContent: verifiesFrameContent)
        let oldCount = cache.count
        let rows = position..<(position + layout.tokens)
        if rows.upperBound > oldCount { cache.extend(by: rows.upperBound - oldCount) }
        do {
            try stream(reader, layout, header.layerList) { layer, kind, decode, _ in
                cache.withMutableRows(layer: layer, kind, rows) { decode(0..<layout.tokens, $0) }
            }
        } catch {
            if cache.count > oldCount { cache.truncate(to: oldCount) }
            throw error
        }
        return header
    }

    /// Decodes a block into the rows of `writer` (one worker of
    /// `KVCache.writeConcurrently`), which must hold exactly the block's token count.
    /// The same checks run first; on any error the writer's rows are unspecified.
    @discardableResult
    public func decode(_ bytes: [UInt8], expectedChunkKey: [UInt8], expectedFingerprint: [UInt8],
                       into writer: KVRowWriter) throws -> KVBlockHeader {
        try bytes.withUnsafeBytes {
            try decode($0, expectedChunkKey: expectedChunkKey, expectedFingerprint: expectedFingerprint, into: writer)
        }
    }

    /// `decode(_:expectedChunkKey:expectedFingerprint:into:)` of a block read in place (for
    /// example a value pinned by the store), without copying it first. With
    /// `requiredLayers`, a block that does not carry every one of them is rejected
    /// (`invalidHeader`) before the writer is touched.
    @discardableResult
    public func decode(_ raw: UnsafeRawBufferPointer, expectedChunkKey: [UInt8], expectedFingerprint: [UInt8],
                       requiredLayers: [Int]? = nil, into writer: KVRowWriter) throws -> KVBlockHeader {
        let (header, layout, size) = try checkedBlock(raw, shape: writer.shape, chunkKey: expectedChunkKey,
                                                      fingerprint: expectedFingerprint)
        if let requiredLayers, let carried = header.carriedLayers, !Set(requiredLayers).isSubset(of: carried) {
            throw KVBlockError.invalidHeader("carries layers \(carried), not \(requiredLayers)")
        }
        guard layout.tokens == writer.rows.count else {
            throw KVBlockError.invalidHeader("\(layout.tokens) tokens for \(writer.rows.count) rows")
        }
        try stream(openFrame(raw, header, size, verifyContent: verifiesFrameContent), layout,
                   header.layerList) { layer, kind, decode, halves in
            writer.withMutableTiles(layer: layer, kind, halves: halves, decode)
        }
        return header
    }

    /// Checks the header and its identity (shape, chunk key, model fingerprint).
    private func checkedBlock(_ raw: UnsafeRawBufferPointer, shape: KVShape, chunkKey: [UInt8],
                              fingerprint: [UInt8]) throws(KVBlockError) -> (KVBlockHeader, KVBlockLayout, Int) {
        let (header, layout, size) = try checkedHeader(raw)
        guard header.shape == shape else { throw .shapeMismatch(expected: shape, found: header.shape) }
        guard header.chunkKey == chunkKey else { throw .chunkKeyMismatch }
        guard header.modelFingerprint == fingerprint else { throw .fingerprintMismatch }
        return (header, layout, size)
    }

    /// Parses the header and checks the block's total length and content size.
    private func checkedHeader(_ raw: UnsafeRawBufferPointer) throws(KVBlockError) -> (KVBlockHeader, KVBlockLayout, Int) {
        let header = try KVBlockHeader.parse(Array(raw.prefix(KVBlockHeader.prefixLength(raw)))[...])
        let available = raw.count - header.headerLength
        guard available >= header.payloadLength else { throw .truncated }
        guard available == header.payloadLength else { throw .trailingBytes }
        let layout = KVBlockLayout(header: header)
        guard let size = layout.contentSize else { throw .invalidHeader("dimensions too large") }
        return (header, layout, size)
    }

    /// Verifies the payload checksum and opens its frame (checking the frame header).
    private func openFrame(_ raw: UnsafeRawBufferPointer, _ header: KVBlockHeader,
                           _ size: Int, verifyContent: Bool) throws(KVBlockError) -> FrameReader {
        let payload = UnsafeRawBufferPointer(rebasing: raw[header.headerLength...])
        let sum = kvXXH64(payload)
        guard sum == header.payloadChecksum else { throw .checksumMismatch }
        return try FrameReader(payload, zstd: header.isZstd, contentSize: size, verifyContent: verifyContent)
    }

    /// Streams every section out of the frame (in place where the frame allows) and has
    /// `rows(layer, kind, decode, halves)` place it (`layer` of the cache: the block's carried
    /// `layers` in order): `decode(tokens, dst)` decodes the section's rows `tokens` into f32
    /// `dst`; `halves(tokens, dst)` decodes them straight into the cache's f16 rows `dst` where
    /// the codec can (returning whether it did).
    private func stream(_ reader: FrameReader, _ layout: KVBlockLayout, _ layers: [Int],
                        into rows: (Int, KVKind, (Range<Int>, UnsafeMutableBufferPointer<Float>) -> Void,
                                    (Range<Int>, KVMutableHeadRows) -> Bool) -> Void)
        throws(KVBlockError) {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: layout.largestSection, alignment: 64)
        let work = UnsafeMutablePointer<Float>.allocate(capacity: 3 * layout.kvDim)
        defer { scratch.deallocate(); work.deallocate() }
        let codec = SectionCodec(layout: layout, work: work)
        for layer in layers {
            for kind in [KVKind.key, .value] {
                let section = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<layout.section(kind).byteCount])
                let bytes = try reader.view(section.count, scratch: section)
                rows(layer, kind, { tokens, dst in codec.decode(bytes, kind, rows: tokens, into: dst) },
                     { tokens, dst in codec.decodeHalves(bytes, kind, rows: tokens, into: dst) })
            }
        }
        try reader.finish()
    }
}
