import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Errors raised while reading a GGUF file. Each names what is wrong.
public enum GGUFError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, reason: String)
    case notGGUF(path: String)
    case unsupportedVersion(UInt32)
    case truncated(String)
    case badValueType(key: String, type: UInt32)
    case unsupportedTensorType(tensor: String, type: UInt32)
    case missingKey(String)
    case missingTensor(String)
    case wrongKeyType(key: String, expected: String)
    case badTensorShape(tensor: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason): return "cannot open model file \(path): \(reason)"
        case let .notGGUF(path): return "\(path) is not a GGUF file (bad magic)"
        case let .unsupportedVersion(v): return "unsupported GGUF version \(v) (supported: 2, 3)"
        case let .truncated(what): return "GGUF file is truncated while reading \(what)"
        case let .badValueType(key, type): return "GGUF metadata key '\(key)' has unknown value type \(type)"
        case let .unsupportedTensorType(t, type):
            let supported = GGMLType.readable.map(\.description).joined(separator: ", ")
            return "tensor '\(t)' has unsupported type \(GGMLType(rawValue: type).map { "\($0)" } ?? "id \(type)") (supported: \(supported))"
        case let .missingKey(k): return "GGUF metadata key '\(k)' is missing"
        case let .missingTensor(t): return "tensor '\(t)' is missing from the model"
        case let .wrongKeyType(k, e): return "GGUF metadata key '\(k)' is not of type \(e)"
        case let .badTensorShape(t, r): return "tensor '\(t)' has a bad shape: \(r)"
        }
    }
}

/// A GGUF metadata value (all types of the v3 spec, arrays included).
public indirect enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16)
    case uint32(UInt32), int32(Int32), uint64(UInt64), int64(Int64)
    case float32(Float), float64(Double), bool(Bool), string(String)
    case array([GGUFValue])

    /// The value as an integer, if it is one of the integer types.
    public var int: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return Int(exactly: v)
        case let .int64(v): return Int(v)
        case let .bool(v): return v ? 1 : 0
        default: return nil
        }
    }

    /// The value as a floating-point number, if numeric.
    public var double: Double? {
        switch self {
        case let .float32(v): return Double(v)
        case let .float64(v): return v
        default: return int.map(Double.init)
        }
    }

    /// The value as a string, if it is one.
    public var string: String? { if case let .string(s) = self { return s } else { return nil } }
    /// The value as a bool, if it is one.
    public var bool: Bool? { if case let .bool(b) = self { return b } else { return nil } }
    /// The elements, if this is an array.
    public var array: [GGUFValue]? { if case let .array(a) = self { return a } else { return nil } }
}

/// ggml tensor element types this reader knows by name.
public enum GGMLType: UInt32, Sendable, CustomStringConvertible {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, bf16 = 30

    public var description: String {
        switch self {
        case .f32: "F32"; case .f16: "F16"; case .q4_0: "Q4_0"; case .q4_1: "Q4_1"
        case .q5_0: "Q5_0"; case .q5_1: "Q5_1"; case .q8_0: "Q8_0"; case .q8_1: "Q8_1"
        case .q2_K: "Q2_K"; case .q3_K: "Q3_K"; case .q4_K: "Q4_K"; case .q5_K: "Q5_K"
        case .q6_K: "Q6_K"; case .q8_K: "Q8_K"; case .i8: "I8"; case .i16: "I16"
        case .i32: "I32"; case .i64: "I64"; case .f64: "F64"; case .bf16: "BF16"
        }
    }

    /// Elements per block and bytes per block, for the types this project reads
    /// (layouts in `CKernels`: engine.c, kquants.c).
    public var blockLayout: (elements: Int, bytes: Int)? {
        switch self {
        case .f32: (1, 4)
        case .f16, .bf16: (1, 2)
        case .q8_0: (32, 34)
        case .q4_0: (32, 18)
        case .q4_1: (32, 20)
        case .q5_0: (32, 22)
        case .q5_1: (32, 24)
        case .q4_K: (256, 144)
        case .q5_K: (256, 176)
        case .q6_K: (256, 210)
        case .q8_K: (256, 292)
        default: nil
        }
    }

    /// The types this project reads, in the order error messages list them.
    public static let readable: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1,
                                              .q4_K, .q5_K, .q6_K, .q8_K]
}

/// Where one tensor lives in the file.
public struct GGUFTensorInfo: Sendable {
    public let name: String
    /// Dimensions in GGUF order: `dims[0]` is the fastest-varying (row length).
    public let dims: [Int]
    public let type: GGMLType
    /// Offset of the data from the start of the file.
    public let fileOffset: Int
    /// Number of bytes of data.
    public let byteCount: Int
    public var elementCount: Int { dims.reduce(1, *) }
}

/// A memory-mapped GGUF v2/v3 file: metadata, tensor infos and raw tensor bytes.
public final class GGUFFile: Sendable {
    public let path: String
    public let version: UInt32
    /// Metadata in file order.
    public let metadata: [(key: String, value: GGUFValue)]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Offset of the tensor data section.
    public let dataOffset: Int
    private let mapping: FileMapping
    private let index: [String: Int]
    private let metaIndex: [String: Int]

    /// Opens and parses `path`. Tensor data stays mapped, not read.
    public init(path: String) throws {
        self.path = path
        mapping = try FileMapping(path: path)
        var r = ByteReader(base: mapping.base, count: mapping.count)
        guard mapping.count >= 4, try r.u32("magic") == 0x4655_4747 else { throw GGUFError.notGGUF(path: path) }
        version = try r.u32("version")
        guard version == 2 || version == 3 else { throw GGUFError.unsupportedVersion(version) }
        let tensorCount = try r.u64("tensor count")
        let kvCount = try r.u64("metadata count")
        guard tensorCount < 1_000_000, kvCount < 1_000_000 else { throw GGUFError.truncated("header counts") }
        let meta = try Self.readMetadata(&r, count: Int(kvCount))
        metadata = meta.map { (key: $0.0, value: $0.1) }
        metaIndex = Dictionary(meta.enumerated().map { ($0.element.0, $0.offset) }, uniquingKeysWith: { a, _ in a })
        let align = meta.first { $0.0 == "general.alignment" }?.1.int ?? 32
        guard align <= 1 << 20 else { throw GGUFError.truncated("general.alignment \(align)") }
        alignment = align > 0 ? align : 32
        let records = try Self.readTensorRecords(&r, count: Int(tensorCount), fileSize: mapping.count)
        let start = (r.offset + alignment - 1) / alignment * alignment, fileSize = mapping.count
        dataOffset = start
        let infos = try records.map { try Self.locate($0, dataOffset: start, fileSize: fileSize) }
        tensors = infos
        index = Dictionary(infos.enumerated().map { ($0.element.name, $0.offset) }, uniquingKeysWith: { a, _ in a })
    }

    /// A tensor's header record: name, dimensions, type id and offset in the data section.
    private typealias TensorRecord = (name: String, dims: [Int], type: UInt32, offset: Int)

    /// The `count` metadata key-value pairs at the reader's position.
    private static func readMetadata(_ r: inout ByteReader, count: Int) throws -> [(String, GGUFValue)] {
        var meta: [(String, GGUFValue)] = []
        meta.reserveCapacity(count)
        for _ in 0..<count {
            let key = try r.string("metadata key")
            let type = try r.u32("type of \(key)")
            meta.append((key, try r.value(type: type, key: key)))
        }
        return meta
    }

    /// The `count` tensor records at the reader's position, each dimension and offset checked
    /// against the file's size.
    private static func readTensorRecords(_ r: inout ByteReader, count: Int, fileSize: Int) throws -> [TensorRecord] {
        var records: [TensorRecord] = []
        for _ in 0..<count {
            let name = try r.string("tensor name")
            let nDims = try r.u32("dims of \(name)")
            guard nDims <= 4 else { throw GGUFError.badTensorShape(tensor: name, reason: "\(nDims) dimensions") }
            var dims: [Int] = []
            for _ in 0..<nDims {
                // Larger than the file can hold is refused here, which also keeps products in range.
                guard let d = Int(exactly: try r.u64("dims of \(name)")), d <= fileSize * 8 else {
                    throw GGUFError.badTensorShape(tensor: name, reason: "dimension larger than the file")
                }
                dims.append(d)
            }
            let type = try r.u32("type of \(name)")
            let off = try r.u64("offset of \(name)")
            guard off <= UInt64(fileSize) else { throw GGUFError.truncated("data of tensor '\(name)'") }
            records.append((name, dims, type, Int(off)))
        }
        return records
    }

    /// Where `record`'s data lies in the file: its type known, its element count within what
    /// the file can hold, its rows whole blocks, and its bytes inside the file.
    private static func locate(_ record: TensorRecord, dataOffset: Int, fileSize: Int) throws -> GGUFTensorInfo {
        let (name, dims) = (record.name, record.dims)
        guard let type = GGMLType(rawValue: record.type), let layout = type.blockLayout else {
            throw GGUFError.unsupportedTensorType(tensor: name, type: record.type)
        }
        let product = dims.reduce((1, false)) { acc, d in
            let m = acc.0.multipliedReportingOverflow(by: d)
            return (m.partialValue, acc.1 || m.overflow || m.partialValue > fileSize * 8)
        }
        guard !product.1 else { throw GGUFError.badTensorShape(tensor: name, reason: "more elements than the file holds") }
        guard (dims.first ?? 1) % layout.elements == 0 else {
            throw GGUFError.badTensorShape(
                tensor: name, reason: "row length \(dims.first ?? 1) is not a multiple of the \(type) block (\(layout.elements))")
        }
        let bytes = product.0 / layout.elements * layout.bytes
        let start = dataOffset + record.offset
        guard start + bytes <= fileSize else { throw GGUFError.truncated("data of tensor '\(name)'") }
        return GGUFTensorInfo(name: name, dims: dims, type: type, fileOffset: start, byteCount: bytes)
    }

    /// The metadata value under `key`, if present.
    public subscript(key: String) -> GGUFValue? { metaIndex[key].map { metadata[$0].value } }

    /// A required integer metadata value.
    public func int(_ key: String) throws -> Int {
        guard let v = self[key] else { throw GGUFError.missingKey(key) }
        guard let i = v.int else { throw GGUFError.wrongKeyType(key: key, expected: "integer") }
        return i
    }

    /// A required string metadata value.
    public func string(_ key: String) throws -> String {
        guard let v = self[key] else { throw GGUFError.missingKey(key) }
        guard let s = v.string else { throw GGUFError.wrongKeyType(key: key, expected: "string") }
        return s
    }

    /// The info of tensor `name`, if present.
    public func tensorInfo(_ name: String) -> GGUFTensorInfo? { index[name].map { tensors[$0] } }

    /// Calls `body` with the raw (still encoded) bytes of a tensor.
    public func withRawBytes<R>(_ info: GGUFTensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: mapping.base + info.fileOffset, count: info.byteCount))
    }

    /// Calls `body` with the start of each tensor's raw bytes, in order (valid while the
    /// file is open, as for the single-tensor form).
    public func withRawBytes<R>(_ infos: [GGUFTensorInfo], _ body: ([UnsafeRawPointer]) throws -> R) rethrows -> R {
        try body(infos.map { UnsafeRawPointer(mapping.base + $0.fileOffset) })
    }

    /// Calls `body` with bytes `range` of the whole file (for fingerprinting).
    public func withFileBytes<R>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        precondition(range.lowerBound >= 0 && range.upperBound <= mapping.count)
        return try body(UnsafeRawBufferPointer(start: mapping.base + range.lowerBound, count: range.count))
    }

    /// Size of the file in bytes.
    public var fileSize: Int { mapping.count }
}

/// A read-only memory map of a whole file.
final class FileMapping: @unchecked Sendable {
    // @unchecked: the mapping is read-only and immutable for its lifetime.
    let base: UnsafeRawPointer
    let count: Int

    init(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw GGUFError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw GGUFError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw GGUFError.cannotOpen(path: path, reason: "not a regular file") }
        count = Int(st.st_size)
        guard count > 0 else { throw GGUFError.notGGUF(path: path) }
        guard let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw GGUFError.cannotOpen(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), count) }
}

/// Bounds-checked little-endian reader over the mapped header.
struct ByteReader {
    let base: UnsafeRawPointer
    let count: Int
    var offset = 0
    /// Nesting depth of arrays being read (bounded, so a crafted file cannot exhaust the stack).
    var depth = 0

    mutating func bytes(_ n: Int, _ what: String) throws -> UnsafeRawBufferPointer {
        guard n >= 0, offset <= count - n else { throw GGUFError.truncated(what) }
        defer { offset += n }
        return UnsafeRawBufferPointer(start: base + offset, count: n)
    }

    mutating func load<T: FixedWidthInteger>(_: T.Type, _ what: String) throws -> T {
        let b = try bytes(MemoryLayout<T>.size, what)
        return T(littleEndian: b.loadUnaligned(as: T.self))
    }

    mutating func u32(_ what: String) throws -> UInt32 { try load(UInt32.self, what) }
    mutating func u64(_ what: String) throws -> UInt64 { try load(UInt64.self, what) }

    mutating func string(_ what: String) throws -> String {
        let n = try u64(what)
        guard n <= UInt64(count) else { throw GGUFError.truncated(what) }
        return String(decoding: try bytes(Int(n), what), as: UTF8.self)
    }

    mutating func value(type: UInt32, key: String) throws -> GGUFValue {
        switch type {
        case 0: return .uint8(try load(UInt8.self, key))
        case 1: return .int8(try load(Int8.self, key))
        case 2: return .uint16(try load(UInt16.self, key))
        case 3: return .int16(try load(Int16.self, key))
        case 4: return .uint32(try load(UInt32.self, key))
        case 5: return .int32(try load(Int32.self, key))
        case 6: return .float32(Float(bitPattern: try load(UInt32.self, key)))
        case 7: return .bool(try load(UInt8.self, key) != 0)
        case 8: return .string(try string(key))
        case 9:
            depth += 1
            defer { depth -= 1 }
            guard depth <= 8 else { throw GGUFError.badValueType(key: key, type: type) }
            let elementType = try u32(key)
            let n = try u64(key)
            guard n <= UInt64(count - offset) else { throw GGUFError.truncated(key) }
            var out: [GGUFValue] = []
            out.reserveCapacity(Int(n))
            for _ in 0..<n { out.append(try value(type: elementType, key: key)) }
            return .array(out)
        case 10: return .uint64(try load(UInt64.self, key))
        case 11: return .int64(try load(Int64.self, key))
        case 12: return .float64(Double(bitPattern: try load(UInt64.self, key)))
        default: throw GGUFError.badValueType(key: key, type: type)
        }
    }
}
