import Foundation
import XCTest
@testable import KVStashEngine

/// Seeded, structure-aware fuzzing of the GGUF reader: a tiny GGUF from our writer, whose
/// integer fields (counts, lengths, value types, dimensions, tensor types and offsets) are
/// located by walking the format and set to boundary values, mixed with generic byte
/// damage. Bounded in time; the reader may only throw `GGUFError`.
final class GGUFFuzzTests: XCTestCase {
    let boundary: [UInt64] = [0, 1, 2, 3, 4, 5, 8, 9, 12, 13, 31, 32, 33, 255, 256, 4096, 0x7FFF_FFFF, 0xFFFF_FFFF,
                              1 << 32, 1 << 40, UInt64(Int.max) / 3, UInt64(Int.max), UInt64(Int.max) + 1, UInt64.max]

    func sample() throws -> [UInt8] {
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        w.set("general.alignment", .uint32(32))
        w.set("llama.block_count", .uint32(2))
        w.set("llama.rope.freq_base", .float32(10000))
        w.set("tokenizer.ggml.tokens", .array([.string("a"), .string("bc"), .string("<s>")]))
        w.set("tokenizer.ggml.scores", .array([.float32(0), .float32(-1), .float32(-2)]))
        w.set("nested", .array([.array([.int64(-1), .int64(2)]), .array([.int64(3)])]))
        let data = (0..<128).map { Float($0 % 17) / 4 - 2 }
        try w.addTensor("f32", dims: [32, 4], type: .f32, data: data)
        try w.addTensor("q8", dims: [64, 2], type: .q8_0, data: data)
        try w.addTensor("q41", dims: [32, 4], type: .q4_1, data: data)
        try w.addTensor("f16", dims: [128], type: .f16, data: data)
        return w.serialized()
    }

    func testStructuredMutationsThrowOnlyTypedErrors() throws {
        let dir = try TestSupport.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("fuzz.gguf").path
        let original = try sample()
        let fields = try GGUFFieldWalker.integerFields(original)
        XCTAssertGreaterThan(fields.count, 30)
        var rng = SplitMix64(seed: 0x66_75_7A_7A)
        let deadline = Date(timeIntervalSinceNow: 4)
        var runs = 0, opened = 0
        while runs < 3000 && Date() < deadline {
            var m = original
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                if Int.random(in: 0..<4, using: &rng) > 0 {
                    let (at, width) = fields.randomElement(using: &rng)!
                    let v = Bool.random(using: &rng) ? boundary.randomElement(using: &rng)! : rng.next() >> UInt64.random(in: 0..<64, using: &rng)
                    for i in 0..<width where at + i < m.count { m[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
                } else {
                    generic(&m, &rng)
                }
            }
            guard !m.isEmpty else { continue }
            try Data(m).write(to: URL(fileURLWithPath: file))
            runs += 1
            do {
                let f = try GGUFFile(path: file)
                for t in f.tensors { _ = try f.dequantize(t) }
                for (_, v) in f.metadata { _ = (v.int, v.double, v.string, v.array?.count) }
                opened += 1
            } catch {
                XCTAssertNotNil(error as? GGUFError, "untyped error \(error)")
            }
        }
        XCTAssertGreaterThan(runs, 200)
        XCTAssertLessThan(opened, runs, "most mutations must be refused")
    }

    private func generic(_ m: inout [UInt8], _ rng: inout SplitMix64) {
        guard !m.isEmpty else { return }
        let at = Int.random(in: 0..<m.count, using: &rng)
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: m[at] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
        case 1: m.removeLast(m.count - at)
        case 2: m.insert(UInt8.random(in: 0...255, using: &rng), at: at)
        default: m.remove(at: at)
        }
    }
}

/// Locates every integer field of a well-formed GGUF file: (offset, width).
enum GGUFFieldWalker {
    struct Malformed: Error {}

    static func integerFields(_ b: [UInt8]) throws -> [(Int, Int)] {
        var fields: [(Int, Int)] = []
        var at = 0
        func int(_ width: Int) throws -> UInt64 {
            guard at + width <= b.count else { throw Malformed() }
            fields.append((at, width))
            defer { at += width }
            return (0..<width).reduce(UInt64(0)) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) }
        }
        func string() throws { at += Int(try int(8)) }
        func value(_ type: UInt64) throws {
            switch type {
            case 0, 1, 7: _ = try int(1)
            case 2, 3: _ = try int(2)
            case 4, 5, 6: _ = try int(4)
            case 10, 11, 12: _ = try int(8)
            case 8: try string()
            case 9:
                let element = try int(4)
                for _ in 0..<(try int(8)) { try value(element) }
            default: throw Malformed()
            }
        }
        _ = try int(4); _ = try int(4)
        let tensors = try int(8), kvs = try int(8)
        for _ in 0..<kvs { try string(); try value(try int(4)) }
        for _ in 0..<tensors {
            try string()
            for _ in 0..<(try int(4)) { _ = try int(8) }
            _ = try int(4); _ = try int(8)
        }
        return fields
    }
}
