import KVStashDigest

/// The 32-byte content key of one stored chunk: SHA-256 over the chunk's canonical
/// encoding (see `ChunkKeyer` and docs/formats.md "Chunk key").
public struct ChunkKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Exactly 32 bytes.
    public let bytes: [UInt8]

    /// The parent of the first chunk of every chain: 32 zero bytes.
    public static let root = ChunkKey(unchecked: [UInt8](repeating: 0, count: 32))

    /// Wraps 32 bytes; `nil` for any other length.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        self.bytes = bytes
    }

    package init(unchecked bytes: [UInt8]) {
        precondition(bytes.count == 32, "a chunk key has 32 bytes")
        self.bytes = bytes
    }

    /// Parses 64 hex digits (either case); `nil` for anything else.
    public init?(hex: String) {
        guard let raw = Hex.decode(hex), raw.count == 32 else { return nil }
        self.bytes = raw
    }

    /// Lower-case hex, 64 digits.
    public var hex: String { Hex.encode(bytes) }
    public var description: String { hex }

    public static func < (a: ChunkKey, b: ChunkKey) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }
}

/// Computes chained chunk keys for one model, tenant and chunk size.
///
/// key = SHA-256( u32 keyFormatVersion
///              ‖ u32 len(fingerprint) ‖ fingerprint
///              ‖ u32 len(salt) ‖ salt
///              ‖ u32 chunkSize
///              ‖ parent key (32 bytes; `ChunkKey.root` for the first chunk)
///              ‖ u32 tokenCount ‖ tokenCount × u32 token id )
/// with every integer little-endian. The KV of chunk i depends on every token before it;
/// chaining through the parent key makes the key carry exactly that dependency.
public struct ChunkKeyer: Sendable {
    /// Version of the key encoding above. Changing the encoding must bump it.
    public static let keyFormatVersion: UInt32 = 1

    public let modelFingerprint: [UInt8]
    public let tenantSalt: [UInt8]
    public let chunkSize: Int

    public init(modelFingerprint: [UInt8], tenantSalt: [UInt8] = [], chunkSize: Int) {
        precondition(chunkSize > 0 && chunkSize <= Int(UInt32.max), "chunk size out of range")
        self.modelFingerprint = modelFingerprint
        self.tenantSalt = tenantSalt
        self.chunkSize = chunkSize
    }

    /// The key of a chunk holding `tokens` whose predecessor chunk has key `parent`.
    public func key(parent: ChunkKey, tokens: ArraySlice<Int>) -> ChunkKey {
        var hasher = SHA256()
        var head: [UInt8] = []
        head.reserveCapacity(16 + modelFingerprint.count + tenantSalt.count + 32)
        Self.appendU32(Self.keyFormatVersion, to: &head)
        Self.appendU32(UInt32(modelFingerprint.count), to: &head)
        head += modelFingerprint
        Self.appendU32(UInt32(tenantSalt.count), to: &head)
        head += tenantSalt
        Self.appendU32(UInt32(chunkSize), to: &head)
        head += parent.bytes
        Self.appendU32(UInt32(tokens.count), to: &head)
        hasher.update(data: head)
        var body: [UInt8] = []
        body.reserveCapacity(tokens.count * 4)
        for token in tokens {
            precondition(token >= 0 && token <= Int(UInt32.max), "token id \(token) out of UInt32 range")
            Self.appendU32(UInt32(token), to: &body)
        }
        hasher.update(data: body)
        return ChunkKey(unchecked: Array(hasher.finalize()))
    }

    /// One key per FULL chunk of `tokens`, chained from `ChunkKey.root`.
    /// A partial last chunk gets no key (the cold tier does not store it).
    public func chain(_ tokens: [Int]) -> [ChunkKey] {
        var keys: [ChunkKey] = []
        keys.reserveCapacity(tokens.count / chunkSize)
        var parent = ChunkKey.root
        var start = 0
        while start + chunkSize <= tokens.count {
            let key = key(parent: parent, tokens: tokens[start..<start + chunkSize])
            keys.append(key)
            parent = key
            start += chunkSize
        }
        return keys
    }

    static func appendU32(_ v: UInt32, to out: inout [UInt8]) {
        out.append(UInt8(truncatingIfNeeded: v))
        out.append(UInt8(truncatingIfNeeded: v >> 8))
        out.append(UInt8(truncatingIfNeeded: v >> 16))
        out.append(UInt8(truncatingIfNeeded: v >> 24))
    }
}

/// Lower-case hex encoding and decoding.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: return c - 48
        case 97...102: return c - 87
        case 65...70: return c - 55
        default: return nil
        }
    }
}
