import KVStashCore

/// How a KV block stores each K and V element.
///
/// The raw value is the codec id written in the block header (`docs/formats.md`).
public enum KVCodec: UInt8, Sendable, CaseIterable, Codable {
    /// IEEE binary32, lossless (for tests and exactness checks).
    case f32 = 0
    /// IEEE binary16, round to nearest even.
    case f16 = 1
    /// 8-bit asymmetric, fp16 scale and zero point per group.
    case int8 = 2
    /// 4-bit asymmetric per KIVI (K per channel, V per token), two codes per byte.
    case int4 = 3

    /// Parses a codec name as printed by `name` (case-insensitive; `q8`/`q4` are accepted too).
    public init?(name: String) {
        switch name.lowercased() {
        case "f32", "fp32", "float32": self = .f32
        case "f16", "fp16", "float16": self = .f16
        case "int8", "q8", "i8": self = .int8
        case "int4", "q4", "i4": self = .int4
        default: return nil
        }
    }

    /// The codec's canonical name: `f32`, `f16`, `int8` or `int4`.
    public var name: String {
        switch self {
        case .f32: "f32"
        case .f16: "f16"
        case .int8: "int8"
        case .int4: "int4"
        }
    }

    /// Every codec's name, comma-separated, for help texts and error messages.
    public static let nameList = allCases.map(\.name).joined(separator: ", ")

    /// Bits per code of a quantized codec, nil for f32/f16.
    public var quantBits: Int? {
        switch self {
        case .int8: 8
        case .int4: 4
        case .f32, .f16: nil
        }
    }

    /// Whether the codec is quantized (uses groups, scales and zero points).
    public var isQuantized: Bool { quantBits != nil }
}

/// How keys are grouped by a quantized codec. Values are always grouped per token.
public enum KVKeyGrouping: Sendable, Hashable {
    /// KIVI: each channel quantized over groups of `groupSize` consecutive tokens.
    case perChannel
    /// Like values: each token's channels quantized in groups of `groupSize` channels.
    case perToken
}

/// The lossless stage wrapped around every block payload.
public enum KVFrameCompression: Sendable, Hashable {
    /// LZ4 frame with content checksum (the default: fast).
    case lz4
    /// zstd frame with content checksum, at the given level (smaller, slower).
    case zstd(level: Int)
}
