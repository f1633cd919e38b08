import KVStashCore

/// Turns a range of KV rows (pre-RoPE K and V of every layer: a `KVCache`'s kept raw keys,
/// or `KVRows`) into one stored block:
/// a 112-byte header followed by an LZ4 (or zstd) frame of the encoded sections.
public struct KVBlockEncoder: Sendable {
    /// The element codec.
    public let codec: KVCodec
    /// Quantization group size (ignored, and written as 0, for f32 and f16).
    public let groupSize: Int
    /// How a quantized codec groups keys (values are always grouped per token).
    public let keyGrouping: KVKeyGrouping
    /// The lossless frame around the payload.
    public let compression: KVFrameCompression

    /// Default group size: int4 and int8 were measured at 32 and 64 (docs/benchmarks.md).
    public static let defaultGroupSize = 32

    /// Creates an encoder. `groupSize` must lie in 1...4096 for int8 and int4.
    public init(codec: KVCodec, groupSize: Int = KVBlockEncoder.defaultGroupSize,
                keyGrouping: KVKeyGrouping = .perChannel, compression: KVFrameCompression = .lz4) {
        self.codec = codec
        self.groupSize = codec.isQuantized ? groupSize : 0
        self.keyGrouping = codec.isQuantized ? keyGrouping : .perChannel
        self.compression = compression
    }

    /// Encodes K (before RoPE) and V for positions `range` of `cache` (see `KVCache`'s
    /// `KVRowSource` view for where its K before RoPE comes from): of every layer (a
    /// version-1 block), or of `layers` only (ascending; a version-2 block that names them).
    /// - Throws: `KVBlockError.invalidArgument` for an empty or out-of-bounds range or layer
    ///   list, or keys that are not 32 bytes, `.badGroupSize`, `.unencodableValue` for
    ///   NaN/inf or values beyond fp16.
    public func encode(_ cache: some KVRowSource, range: Range<Int>, chunkKey: [UInt8],
                       modelFingerprint: [UInt8], layers: [Int]? = nil) throws -> [UInt8] {
        var header = try makeHeader(cache.shape, range, chunkKey, modelFingerprint, layers)
        let layout = KVBlockLayout(header: header)
        guard let size = layout.contentSize else { throw KVBlockError.invalidArgument("block too large") }
        let content = try encodeContent(cache, range, layout, header.layerList, size)
        let sections = (0..<layout.layers).flatMap { _ in [layout.section(.key).byteCount, layout.section(.value).byteCount] }
        let frame = try content.withUnsafeBytes { raw in try Frame.compress(raw, pieces: sections, compression) }
        header.payloadLength = frame.count
        header.payloadChecksum = xxh64(frame[...])
        return header.serialized() + frame
    }

    private func makeHeader(_ shape: KVShape, _ range: Range<Int>, _ key: [UInt8],
                            _ fingerprint: [UInt8], _ layers: [Int]?) throws(KVBlockError) -> KVBlockHeader {
        guard key.count == 32, fingerprint.count == 32 else {
            throw .invalidArgument("chunk key and model fingerprint must be 32 bytes")
        }
        guard shape.layers <= 0xFFFF, shape.kvHeads <= 0xFFFF, shape.headDim <= 0xFFFF else {
            throw .invalidArgument("shape \(shape) exceeds the header's 16-bit fields")
        }
        var flags: KVBlockFlags = []
        if case .zstd = compression { flags.insert(.zstd) }
        if keyGrouping == .perToken { flags.insert(.keyPerToken) }
        var header = KVBlockHeader(
            chunkKey: key, modelFingerprint: fingerprint, codec: codec, flags: flags,
            layers: shape.layers, kvHeads: shape.kvHeads, headDim: shape.headDim,
            tokenCount: range.count, groupSize: groupSize, payloadLength: 0, payloadChecksum: 0)
        header.carriedLayers = layers
        do { try header.checkFields() } catch .badGroupSize { throw .badGroupSize } catch {
            throw .invalidArgument("range \(range): \(error)")
        }
        return header
    }

    /// The decompressed payload: each of `layers`' K section then V section.
    private func encodeContent(_ cache: some KVRowSource, _ range: Range<Int>, _ layout: KVBlockLayout,
                               _ layers: [Int], _ size: Int) throws(KVBlockError) -> [UInt8] {
        guard range.lowerBound >= 0, range.upperBound <= cache.count else {
            throw .invalidArgument("range \(range) outside the cache's \(cache.count) positions")
        }
        let work = UnsafeMutablePointer<Float>.allocate(capacity: 3 * layout.kvDim)
        defer { work.deallocate() }
        let codec = SectionCodec(layout: layout, work: work)
        var ok = true
        let content = [UInt8](unsafeUninitializedCapacity: size) { buf, count in
            let raw = UnsafeMutableRawBufferPointer(buf)
            raw.initializeMemory(as: UInt8.self, repeating: 0)  // section padding
            var offset = 0
            for layer in layers where ok {
                for kind in [KVKind.key, .value] where ok {
                    let n = layout.section(kind).byteCount
                    let dst = UnsafeMutableRawBufferPointer(rebasing: raw[offset..<(offset + n)])
                    ok = cache.withRows(layer: layer, kind, range) { codec.encode($0, kind, into: dst) }
                    offset += n
                }
            }
            count = size
        }
        guard ok else { throw .unencodableValue }
        return content
    }
}

extension KVBlockEncoder {
    /// Bytes a block of `tokens` positions of `shape` would take with its payload
    /// stored uncompressed: the header plus the decompressed payload. Used to report
    /// what the frame's compression gains.
    public func uncompressedBlockSize(shape: KVShape, tokens: Int, layers: [Int]? = nil) -> Int {
        var carried = shape
        carried.layers = layers?.count ?? shape.layers
        let layout = KVBlockLayout(codec: codec, tokens: tokens, shape: carried,
                                   groupSize: groupSize, keyGrouping: keyGrouping)
        return KVBlockHeader.byteCount + (layers == nil ? 0 : KVBlockHeader.maskBytes(layers: shape.layers))
            + (layout.contentSize ?? 0)
    }
}
