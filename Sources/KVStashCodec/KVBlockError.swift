import KVStashCore

/// Why a KV block could not be encoded or decoded. Every damaged input maps to one
/// of these; the decoder never crashes and never returns KV it has not verified.
public enum KVBlockError: Error, Equatable, CustomStringConvertible {
    /// The bytes end before the header or before the payload the header announces.
    case truncated
    /// The first four bytes are not `KVSB`.
    case badMagic
    /// The format version is not one this reader knows.
    case unsupportedVersion
    /// The codec id is not a `KVCodec`.
    case unknownCodec
    /// Flag or reserved bits this reader does not know are set.
    case unsupportedFlags
    /// The header's own checksum does not match its bytes.
    case headerChecksumMismatch
    /// The payload's checksum does not match (a damaged payload).
    case checksumMismatch
    /// The compressed frame is malformed, or decompresses to the wrong size or content checksum.
    case frameError(String)
    /// The block's KV shape differs from the cache it is spliced into.
    case shapeMismatch(expected: KVShape, found: KVShape)
    /// The block was made by a different model.
    case fingerprintMismatch
    /// The block belongs to a different chunk.
    case chunkKeyMismatch
    /// The group size is not valid for the codec.
    case badGroupSize
    /// A header field is out of range (zero dimensions, zero or too many tokens, ...).
    case invalidHeader(String)
    /// Bytes follow the payload the header announces.
    case trailingBytes
    /// The splice position lies beyond the cache's valid positions.
    case positionOutOfRange(position: Int, count: Int)
    /// The encoder was called with arguments it cannot encode (bad range or key length).
    case invalidArgument(String)
    /// A value is NaN or infinite, or too large for the fp16 fields of the codec.
    case unencodableValue

    public var description: String {
        switch self {
        case .truncated: "KV block truncated"
        case .badMagic: "not a KV block (bad magic)"
        case .unsupportedVersion: "unsupported KV block format version"
        case .unknownCodec: "unknown KV codec id"
        case .unsupportedFlags: "unknown flag or reserved bits set in KV block header"
        case .headerChecksumMismatch: "KV block header checksum mismatch"
        case .checksumMismatch: "KV block payload checksum mismatch"
        case .frameError(let why): "KV block frame error: \(why)"
        case .shapeMismatch(let expected, let found): "KV shape mismatch: cache has \(expected), block has \(found)"
        case .fingerprintMismatch: "KV block belongs to a different model"
        case .chunkKeyMismatch: "KV block belongs to a different chunk"
        case .badGroupSize: "invalid group size for this codec"
        case .invalidHeader(let why): "invalid KV block header: \(why)"
        case .trailingBytes: "bytes after the KV block payload"
        case .positionOutOfRange(let p, let n): "splice position \(p) beyond cache count \(n)"
        case .invalidArgument(let why): "cannot encode KV block: \(why)"
        case .unencodableValue: "KV contains a value the codec cannot represent (NaN, inf or beyond fp16)"
        }
    }
}
