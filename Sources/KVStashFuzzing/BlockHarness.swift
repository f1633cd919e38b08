import KVStashCodec
import KVStashCore

/// A KV block with forged checksums. The product reads blocks through
/// `KVBlockDecoder.decode(_:expectedChunkKey:expectedFingerprint:requiredLayers:into:)` into
/// a `KVRowWriter` of exactly the block's rows, without recomputing the frame's own content
/// checksum (`ChunkFetcher`); the harness does the same, which must accept what `validate`
/// accepts, and the growing-cache decode with every check, which must agree with `validate`.
enum BlockHarness {
    /// Largest cache a harness builds for a header's claimed shape (f16 rows of K and V).
    static let cacheByteLimit = 8 << 20

    static func run(_ input: [UInt8]) -> String? {
        let block = resealed(input)
        let decoder = KVBlockDecoder()
        let validated: Bool
        do { _ = try decoder.validate(block); validated = true } catch {
            guard error is KVBlockError else { return "validate threw an untyped error: \(error)" }
            validated = false
        }
        guard let header = try? decoder.readHeader(block) else {
            return validated ? "validate accepted a block whose header does not parse" : nil
        }
        let shape = header.shape
        let positions = header.tokenCount + 2
        let (cacheBytes, overflow) = shape.cacheBytesPerPosition.multipliedReportingOverflow(by: positions)
        guard !overflow, cacheBytes <= cacheByteLimit, shape.cacheBytesPerPosition > 0 else { return nil }
        let rotation = shape.headDim >= 2
            ? RotaryTable(positions: 0..<positions, ropeDims: shape.headDim & ~1, base: 10_000, style: .adjacent) : nil
        if let finding = writerDecode(block, header, rotation, validated: validated) { return finding }
        return growingDecode(block, header, rotation, validated: validated)
    }

    /// The request path's decode: one writer over exactly the block's rows. It skips the
    /// frame's content checksum (the payload checksum covers the frame), so it may accept a
    /// block that `validate` refuses for that checksum alone.
    private static func writerDecode(_ block: [UInt8], _ header: KVBlockHeader, _ rotation: RotaryTable?,
                                     validated: Bool) -> String? {
        var cache = rotation.map { KVCache(shape: header.shape, rotation: $0) } ?? KVCache(shape: header.shape)
        let outcome = cache.writeConcurrently([0..<header.tokenCount]) { _, writer -> String? in
            do {
                try KVBlockDecoder(verifiesFrameContent: false).decode(
                    block, expectedChunkKey: header.chunkKey, expectedFingerprint: header.modelFingerprint, into: writer)
                return nil
            } catch {
                guard error is KVBlockError else { return "decode threw an untyped error: \(error)" }
                return validated ? "decode refused a block that validate accepted: \(error)" : nil
            }
        }
        return outcome[0]
    }

    /// The decode that grows a cache, with every check: it agrees with `validate`, and on
    /// failure the cache keeps its old count.
    private static func growingDecode(_ block: [UInt8], _ header: KVBlockHeader, _ rotation: RotaryTable?,
                                      validated: Bool) -> String? {
        var cache = rotation.map { KVCache(shape: header.shape, rotation: $0) } ?? KVCache(shape: header.shape)
        cache.extend(by: 2)
        do {
            try KVBlockDecoder().decode(block, expectedChunkKey: header.chunkKey,
                                        expectedFingerprint: header.modelFingerprint, into: &cache, at: 1)
            guard cache.count == 1 + header.tokenCount else { return "decode left \(cache.count) rows" }
            return validated ? nil : "decode accepted a block that validate refused"
        } catch {
            guard error is KVBlockError else { return "decode threw an untyped error: \(error)" }
            guard cache.count == 2 else { return "a failed decode changed the cache's count to \(cache.count)" }
            return validated ? "decode refused a block that validate accepted: \(error)" : nil
        }
    }

    /// `input` with its payload length, payload checksum and header checksum made to match
    /// (docs/formats.md, "KV block"), where it is long enough to hold a header.
    static func resealed(_ input: [UInt8]) -> [UInt8] {
        var m = input
        guard m.count >= KVBlockHeader.byteCount else { return m }
        let headerLength = m.withUnsafeBytes { KVBlockHeader.prefixLength($0) }
        let mask = headerLength - KVBlockHeader.byteCount
        guard m.count >= headerLength else { return m }
        put64(&m, at: 88, UInt64(m.count - headerLength))
        put64(&m, at: 96, xxh64(m[headerLength...]))
        put64(&m, at: 104 + mask, xxh64(m[0..<(104 + mask)]))
        return m
    }

    static func seeds() throws -> [[UInt8]] {
        let shape = KVShape(layers: 3, kvHeads: 2, headDim: 8)
        let rows = syntheticRows(shape, tokens: 8)
        let key = [UInt8](repeating: 1, count: 32), fingerprint = [UInt8](repeating: 2, count: 32)
        let encoders = [KVBlockEncoder(codec: .f32), KVBlockEncoder(codec: .f16),
                        KVBlockEncoder(codec: .int8, groupSize: 4),
                        KVBlockEncoder(codec: .int4, groupSize: 4, keyGrouping: .perToken),
                        KVBlockEncoder(codec: .int8, groupSize: 8, compression: .zstd(level: 1))]
        var out = try encoders.map { try $0.encode(rows, range: 0..<8, chunkKey: key, modelFingerprint: fingerprint) }
        out.append(try KVBlockEncoder(codec: .int8, groupSize: 4).encode(rows, range: 2..<6, chunkKey: key,
                                                                          modelFingerprint: fingerprint, layers: [0, 2]))
        return out
    }

    /// Deterministic rows in the range the codecs meet in a model (values within fp16).
    private static func syntheticRows(_ shape: KVShape, tokens: Int) -> KVRows {
        var rows = KVRows(shape: shape)
        rows.extend(by: tokens)
        var state: UInt32 = 12_345
        func next() -> Float {
            state = state &* 1_664_525 &+ 1_013_904_223
            return Float(Int32(bitPattern: state) >> 8) / Float(1 << 22)
        }
        for layer in 0..<shape.layers {
            for kind in [KVKind.key, .value] {
                rows.withMutableRows(layer: layer, kind, 0..<tokens) { r in
                    for i in r.indices { r[i] = next() }
                }
            }
        }
        return rows
    }

    private static func put64(_ m: inout [UInt8], at offset: Int, _ v: UInt64) {
        for i in 0..<8 { m[offset + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
    }
}
