import Foundation

/// Binary encoding of `ChunkMeta` (docs/formats.md "Store layout"), little-endian:
/// u8 version=2, parent[32], u32 chainIndex, u32 n + n×u32 tokens, u64 byteSize,
/// str codec, bytes fingerprint, i64 created ms, i64 lastAccess ms, u64 hits, u8 pinned.
/// `str`/`bytes` = u32 length + bytes. Version 1 records (store version 1) end with
/// u32 m + m×str docIDs, which decoding skips (documents are links since version 2).
enum MetaCodec {
    static let version: UInt8 = 2

    static func encode(_ m: ChunkMeta) -> [UInt8] {
        var w = ByteWriter()
        w.u8(version)
        w.raw(m.parent.bytes)
        w.u32(UInt32(m.chainIndex))
        w.u32(UInt32(m.tokens.count))
        for t in m.tokens { w.u32(UInt32(truncatingIfNeeded: t)) }
        w.u64(UInt64(m.byteSize))
        w.bytes(Array(m.codec.utf8))
        w.bytes(m.modelFingerprint)
        w.i64(millis(m.created))
        w.i64(millis(m.lastAccess))
        w.u64(UInt64(max(m.hits, 0)))
        w.u8(m.pinned ? 1 : 0)
        return w.out
    }

    static func decode(_ raw: [UInt8]) throws -> ChunkMeta {
        var r = ByteReader(raw)
        let v = try r.u8()
        guard v == version || v == 1 else { throw StoreError.corruptRecord("meta record version \(v)") }
        let parent = ChunkKey(unchecked: try r.raw(32))
        let chainIndex = Int(try r.u32())
        let n = Int(try r.u32())
        guard n <= r.remaining / 4 else { throw StoreError.corruptRecord("meta token count \(n)") }
        var tokens = [Int]()
        tokens.reserveCapacity(n)
        for _ in 0..<n { tokens.append(Int(try r.u32())) }
        let byteSize = Int(try r.u64())
        let codec = String(decoding: try r.bytes(), as: UTF8.self)
        let fingerprint = try r.bytes()
        let created = date(try r.i64())
        let lastAccess = date(try r.i64())
        let hits = Int(clamping: try r.u64())
        let pinned = try r.u8() != 0
        if v == 1 {
            for _ in 0..<Int(try r.u32()) { _ = try r.bytes() }
        }
        guard r.remaining == 0 else { throw StoreError.corruptRecord("trailing bytes in meta record") }
        return ChunkMeta(parent: parent, chainIndex: chainIndex, tokens: tokens, codec: codec,
                         modelFingerprint: fingerprint, byteSize: byteSize, created: created,
                         lastAccess: lastAccess, hits: hits, pinned: pinned)
    }

    static func millis(_ d: Date) -> Int64 { Int64((d.timeIntervalSince1970 * 1000).rounded()) }
    static func date(_ ms: Int64) -> Date { Date(timeIntervalSince1970: Double(ms) / 1000) }
}

/// Appends little-endian integers and length-prefixed byte strings.
struct ByteWriter {
    var out: [UInt8] = []
    mutating func u8(_ v: UInt8) { out.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
    mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    mutating func raw(_ b: [UInt8]) { out += b }
    mutating func bytes(_ b: [UInt8]) { u32(UInt32(b.count)); out += b }
}

/// Reads what `ByteWriter` wrote; throws on truncation.
struct ByteReader {
    private let data: [UInt8]
    private var pos = 0
    init(_ data: [UInt8]) { self.data = data }
    var remaining: Int { data.count - pos }

    mutating func raw(_ n: Int) throws -> [UInt8] {
        guard n >= 0, n <= remaining else { throw StoreError.corruptRecord("truncated record") }
        defer { pos += n }
        return Array(data[pos..<pos + n])
    }
    mutating func u8() throws -> UInt8 { try raw(1)[0] }
    mutating func u32() throws -> UInt32 {
        let b = try raw(4)
        return UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
    }
    mutating func u64() throws -> UInt64 { UInt64(try u32()) | UInt64(try u32()) << 32 }
    mutating func i64() throws -> Int64 { Int64(bitPattern: try u64()) }
    mutating func bytes() throws -> [UInt8] { try raw(Int(try u32())) }
}
