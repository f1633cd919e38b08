import Foundation

/// Writes GGUF v3 files: metadata of every value type, and tensors encoded from f32
/// as any type of `GGMLType.readable` (`GGUFQuantizer`).
public struct GGUFWriter {
    private var metadata: [(String, GGUFValue)] = []
    fileprivate var tensors: [(name: String, dims: [Int], typeID: UInt32, bytes: [UInt8])] = []
    public let alignment = 32

    public init() {}

    /// Adds metadata `key` = `value` (arrays must be homogeneous).
    public mutating func set(_ key: String, _ value: GGUFValue) {
        metadata.append((key, value))
    }

    /// Adds tensor `name` of GGUF dims `dims` (`dims[0]` is the row length), encoding `data` as `type`.
    public mutating func addTensor(_ name: String, dims: [Int], type: GGMLType, data: [Float]) throws {
        let n = dims.reduce(1, *)
        guard n == data.count else {
            throw GGUFError.badTensorShape(tensor: name, reason: "dims \(dims) hold \(n) elements, got \(data.count)")
        }
        guard let layout = type.blockLayout else { throw GGUFError.unsupportedTensorType(tensor: name, type: type.rawValue) }
        guard (dims.first ?? 0) % layout.elements == 0 else {
            throw GGUFError.badTensorShape(
                tensor: name, reason: "row length \(dims.first ?? 0) is not a multiple of the \(type) block (\(layout.elements))")
        }
        tensors.append((name, dims, type.rawValue, GGUFQuantizer.encode(data, as: type)))
    }

    /// The complete file.
    public func serialized() -> [UInt8] {
        var out = ByteWriter()
        out.u32(0x4655_4747); out.u32(3)
        out.u64(UInt64(tensors.count)); out.u64(UInt64(metadata.count))
        for (key, value) in metadata { out.string(key); out.u32(Self.typeID(value)); out.value(value) }
        var offset = 0
        for t in tensors {
            out.string(t.name); out.u32(UInt32(t.dims.count))
            t.dims.forEach { out.u64(UInt64($0)) }
            out.u32(t.typeID); out.u64(UInt64(offset))
            offset = (offset + t.bytes.count + alignment - 1) / alignment * alignment
        }
        out.pad(to: alignment)
        for t in tensors { out.bytes += t.bytes; out.pad(to: alignment) }
        return out.bytes
    }

    /// Writes the file to `path` atomically.
    public func write(to path: String) throws {
        try Data(serialized()).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    static func typeID(_ v: GGUFValue) -> UInt32 {
        switch v {
        case .uint8: 0; case .int8: 1; case .uint16: 2; case .int16: 3; case .uint32: 4; case .int32: 5
        case .float32: 6; case .bool: 7; case .string: 8; case .array: 9; case .uint64: 10; case .int64: 11
        case .float64: 12
        }
    }
}

/// Little-endian byte sink.
private struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func int<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u32(_ v: UInt32) { int(v) }
    mutating func u64(_ v: UInt64) { int(v) }
    mutating func string(_ s: String) { u64(UInt64(s.utf8.count)); bytes += s.utf8 }
    mutating func pad(to a: Int) { while bytes.count % a != 0 { bytes.append(0) } }

    mutating func value(_ v: GGUFValue) {
        switch v {
        case let .uint8(x): int(x)
        case let .int8(x): int(x)
        case let .uint16(x): int(x)
        case let .int16(x): int(x)
        case let .uint32(x): int(x)
        case let .int32(x): int(x)
        case let .uint64(x): int(x)
        case let .int64(x): int(x)
        case let .float32(x): int(x.bitPattern)
        case let .float64(x): int(x.bitPattern)
        case let .bool(x): int(UInt8(x ? 1 : 0))
        case let .string(s): string(s)
        case let .array(a):
            u32(a.first.map(GGUFWriter.typeID) ?? 0)
            u64(UInt64(a.count))
            a.forEach { value($0) }
        }
    }
}

extension GGUFWriter {
    /// Adds a tensor with raw, already-encoded bytes and any type id (for tests of
    /// what readers refuse).
    mutating func addRawTensor(_ name: String, dims: [Int], typeID: UInt32, bytes: [UInt8]) {
        tensors.append((name, dims, typeID, bytes))
    }
}
