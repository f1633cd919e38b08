import CKernels
import KVStashCore

/// Flag bits of a KV block header.
public struct KVBlockFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// The payload is a zstd frame instead of an LZ4 frame.
    public static let zstd = KVBlockFlags(rawValue: 1 << 0)
    /// Keys are quantized per token (like values) instead of per channel.
    public static let keyPerToken = KVBlockFlags(rawValue: 1 << 1)
    /// Every flag this version knows.
    public static let known: KVBlockFlags = [.zstd, .keyPerToken]
}

/// The header in front of every KV block, stored outside the compressed frame so
/// `inspect` and the decoder read it without decompressing: 112 bytes for a block of
/// every layer (format version 1), plus a layer mask for a block of some layers only
/// (version 2). Byte layout: `docs/formats.md`, section "KV block".
public struct KVBlockHeader: Sendable, Equatable {
    /// `"KVSB"` read as a little-endian UInt32.
    public static let magicValue: UInt32 = 0x4253_564B
    /// The format version of a block of every layer.
    public static let currentVersion: UInt16 = 1
    /// The format version of a block of some layers (`carriedLayers`): a version-1 header
    /// with a layer mask before its checksum.
    public static let layerSubsetVersion: UInt16 = 2
    /// Size of a version-1 header in bytes (a version-2 header adds its layer mask).
    public static let byteCount = 112
    /// Largest token count a block may hold.
    public static let maxTokens = 1 << 20

    public var magic: UInt32 = magicValue
    public var formatVersion: UInt16 = currentVersion
    /// SHA-256 chunk key (32 bytes).
    public var chunkKey: [UInt8]
    /// SHA-256 model fingerprint (32 bytes).
    public var modelFingerprint: [UInt8]
    public var codec: KVCodec
    public var flags: KVBlockFlags
    public var layers: Int
    public var kvHeads: Int
    public var headDim: Int
    public var tokenCount: Int
    /// Quantization group size (0 for f32 and f16).
    public var groupSize: Int
    /// Bytes of the compressed frame that follows the header.
    public var payloadLength: Int
    /// XXH64 (seed 0) of the compressed frame.
    public var payloadChecksum: UInt64
    /// The layers the payload holds, ascending (a sliding-window model stores its global
    /// and its sliding layers apart), or nil for every layer.
    public var carriedLayers: [Int]? = nil {
        didSet { formatVersion = carriedLayers == nil ? Self.currentVersion : Self.layerSubsetVersion }
    }

    /// The layers the payload holds, ascending.
    public var layerList: [Int] { carriedLayers ?? Array(0..<layers) }
    /// Bytes of the layer mask of a version-2 header: 8 per 64 layers.
    static func maskBytes(layers: Int) -> Int { 8 * ((layers + 63) / 64) }
    /// Bytes of this header: 112, plus the layer mask in version 2.
    public var headerLength: Int { Self.byteCount + (carriedLayers == nil ? 0 : Self.maskBytes(layers: layers)) }

    /// The KV shape of one position.
    public var shape: KVShape { KVShape(layers: layers, kvHeads: kvHeads, headDim: headDim) }
    /// How keys are grouped (quantized codecs only).
    public var keyGrouping: KVKeyGrouping { flags.contains(.keyPerToken) ? .perToken : .perChannel }
    /// The frame compression named by the flags (the zstd level is not recorded).
    public var isZstd: Bool { flags.contains(.zstd) }

    /// Bytes of f32 K and V the block decodes to.
    public var decodedByteCount: Int { tokenCount * shape.bytesPerPosition / layers * layerList.count }
}

extension KVBlockHeader {
    /// The header's 112 bytes, with its checksum.
    func serialized() -> [UInt8] {
        var w = ByteWriter(capacity: Self.byteCount)
        w.put(magic, 4)
        w.put(formatVersion, 2)
        w.put(codec.rawValue, 1)
        w.put(0, 1)
        w.put(flags.rawValue, 2)
        w.put(groupSize, 2)
        w.put(layers, 2)
        w.put(kvHeads, 2)
        w.put(headDim, 2)
        w.put(0, 2)
        w.put(tokenCount, 4)
        w.bytes += chunkKey
        w.bytes += modelFingerprint
        w.put(payloadLength, 8)
        w.put(payloadChecksum, 8)
        if let carriedLayers {
            var mask = [UInt8](repeating: 0, count: Self.maskBytes(layers: layers))
            for l in carriedLayers { mask[l / 8] |= 1 << UInt8(l % 8) }
            w.bytes += mask
        }
        w.put(xxh64(w.bytes[...]), 8)
        return w.bytes
    }

    /// Bytes of `raw` the header may span: 112, or with a version-2 layer mask, as many as
    /// the layer count at offset 12 says (a parse checks them all).
    public static func prefixLength(_ raw: UnsafeRawBufferPointer) -> Int {
        guard raw.count >= byteCount, raw.load(fromByteOffset: 4, as: UInt8.self) == UInt8(layerSubsetVersion),
              raw.load(fromByteOffset: 5, as: UInt8.self) == 0 else { return byteCount }
        let layers = Int(raw.load(fromByteOffset: 12, as: UInt8.self)) | Int(raw.load(fromByteOffset: 13, as: UInt8.self)) << 8
        return byteCount + maskBytes(layers: layers)
    }

    /// Parses and checks a header: magic, version, header checksum, codec, flags,
    /// dimensions, group size and (version 2) the layer mask. Does not look at the payload.
    static func parse(_ bytes: ArraySlice<UInt8>) throws(KVBlockError) -> KVBlockHeader {
        var r = ByteReader(bytes)
        guard bytes.count >= 4 else { throw .truncated }
        guard r.get(4) == UInt64(magicValue) else { throw .badMagic }
        guard bytes.count >= 6 else { throw .truncated }
        let version = UInt16(r.get(2))
        guard version == currentVersion || version == layerSubsetVersion else { throw .unsupportedVersion }
        guard bytes.count >= byteCount else { throw .truncated }
        var layerField = ByteReader(bytes.dropFirst(12))
        let maskBytes = version == layerSubsetVersion ? Self.maskBytes(layers: Int(layerField.get(2))) : 0
        let length = byteCount + maskBytes
        guard bytes.count >= length else { throw .truncated }
        var stored = ByteReader(bytes.dropFirst(length - 8))
        guard xxh64(bytes.prefix(length - 8)) == stored.get(8) else {
            throw .headerChecksumMismatch
        }
        guard let codec = KVCodec(rawValue: UInt8(r.get(1))) else { throw .unknownCodec }
        let reserved1 = r.get(1)
        let flags = KVBlockFlags(rawValue: UInt16(r.get(2)))
        let groupSize = Int(r.get(2)), layers = Int(r.get(2)), kvHeads = Int(r.get(2)), headDim = Int(r.get(2))
        let reserved2 = r.get(2)
        let tokenCount = Int(r.get(4))
        let key = r.take(32), fingerprint = r.take(32)
        let payloadLength = r.get(8), payloadChecksum = r.get(8)
        let mask = r.take(maskBytes)
        guard reserved1 == 0, reserved2 == 0, flags.isSubset(of: .known) else { throw .unsupportedFlags }
        guard payloadLength <= UInt64(Int.max) else { throw .invalidHeader("payload length") }
        var header = KVBlockHeader(
            chunkKey: key, modelFingerprint: fingerprint, codec: codec, flags: flags,
            layers: layers, kvHeads: kvHeads, headDim: headDim, tokenCount: tokenCount,
            groupSize: groupSize, payloadLength: Int(payloadLength), payloadChecksum: payloadChecksum)
        if version == layerSubsetVersion {
            header.carriedLayers = (0..<(8 * maskBytes)).filter { mask[$0 / 8] & (1 << UInt8($0 % 8)) != 0 }
        }
        try header.checkFields()
        return header
    }

    /// Checks dimensions, token count, group size and flags against the codec.
    func checkFields() throws(KVBlockError) {
        guard layers > 0, kvHeads > 0, headDim > 0 else { throw .invalidHeader("zero dimension") }
        guard tokenCount > 0, tokenCount <= Self.maxTokens else { throw .invalidHeader("token count \(tokenCount)") }
        if let carriedLayers {
            guard !carriedLayers.isEmpty, carriedLayers.allSatisfy({ $0 >= 0 && $0 < layers }),
                  zip(carriedLayers, carriedLayers.dropFirst()).allSatisfy({ $0 < $1 }) else {
                throw .invalidHeader("layer mask \(carriedLayers) for \(layers) layers")
            }
        }
        if codec.isQuantized {
            guard groupSize >= 1, groupSize <= 4096 else { throw .badGroupSize }
        } else {
            guard groupSize == 0 else { throw .badGroupSize }
            guard !flags.contains(.keyPerToken) else { throw .unsupportedFlags }
        }
    }
}

/// XXH64 with seed 0 of a byte slice (the block's payload and header checksums).
public func xxh64(_ bytes: ArraySlice<UInt8>) -> UInt64 {
    bytes.withUnsafeBytes { kv_xxh64($0.baseAddress, $0.count, 0) }
}

/// Appends little-endian integers.
struct ByteWriter {
    var bytes: [UInt8]
    init(capacity: Int) { bytes = []; bytes.reserveCapacity(capacity) }
    mutating func put<T: BinaryInteger>(_ value: T, _ width: Int) {
        let v = UInt64(truncatingIfNeeded: value)
        for i in 0..<width { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }
}

/// Reads little-endian integers from a slice whose length the caller has checked.
struct ByteReader {
    private let bytes: ArraySlice<UInt8>
    private var offset: Int
    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes; offset = bytes.startIndex }
    mutating func get(_ width: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<width { v |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
        offset += width
        return v
    }
    mutating func take(_ n: Int) -> [UInt8] {
        defer { offset += n }
        return Array(bytes[offset..<(offset + n)])
    }
}

/// XXH64 with seed 0 of raw bytes.
func kvXXH64(_ raw: UnsafeRawBufferPointer) -> UInt64 { kv_xxh64(raw.baseAddress, raw.count, 0) }
