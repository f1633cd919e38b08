import Foundation
import KVStashCodec
import KVStashCore
import XCTest

/// Seeded, structure-aware fuzzing of the KV block decoder: header fields set to boundary
/// values with the header checksum recomputed, so the mutation reaches the checks behind
/// it (dimensions, group size, lengths, frame). Bounded in time; only typed errors allowed.
final class HeaderFuzzTests: XCTestCase {
    /// (offset, width) of the header's integer fields (docs/formats.md "KV block").
    let fields = [(4, 2), (6, 1), (7, 1), (8, 2), (10, 2), (12, 2), (14, 2), (16, 2), (18, 2), (20, 4), (88, 8)]
    let boundary: [UInt64] = [0, 1, 2, 3, 7, 8, 15, 16, 31, 32, 33, 63, 64, 255, 256, 4095, 4096, 4097,
                              0x7FFF, 0xFFFF, 0x1_0000, 1 << 20, (1 << 20) + 1, 0x7FFF_FFFF, 0xFFFF_FFFF,
                              1 << 32, UInt64(Int.max), UInt64(Int.max) + 1, UInt64.max]

    func testResealedHeaderMutationsThrowOnlyTypedErrors() throws {
        let shape = KVShape(layers: 1, kvHeads: 2, headDim: 8)
        let tokens = 12
        let source = syntheticCache(shape, tokens: tokens, seed: 21)
        var rng = SplitMix(seed: 0xF0_22)
        let encoders = [KVBlockEncoder(codec: .f32), KVBlockEncoder(codec: .f16), KVBlockEncoder(codec: .int8),
                        KVBlockEncoder(codec: .int4), KVBlockEncoder(codec: .int8, compression: .zstd(level: 1))]
        let deadline = Date(timeIntervalSinceNow: 4)
        var runs = 0, decoded = 0
        for encoder in encoders {
            let block = try encoder.encode(source, range: 0..<tokens, chunkKey: key(1), modelFingerprint: key(2))
            for _ in 0..<400 where Date() < deadline {
                var m = block
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    let (at, width) = fields.randomElement(using: &rng)!
                    let v = Bool.random(using: &rng) ? boundary.randomElement(using: &rng)! : rng.next()
                    for i in 0..<width { m[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
                }
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: m.removeLast(Int.random(in: 1...(m.count - 112), using: &rng))
                case 1: m += [UInt8](repeating: 0, count: Int.random(in: 1...64, using: &rng))
                default: break
                }
                put64(&m, 104, xxh64Reference(Array(m[0..<104])))
                if try fuzzOnce(m, shape: shape) { decoded += 1 }
                runs += 1
            }
        }
        XCTAssertGreaterThan(runs, 100)
        XCTAssertLessThan(decoded, runs, "most boundary values must be refused")
    }

    /// Validates and decodes `m` into a cache of its claimed shape (when small) and of the
    /// real shape; returns whether a decode succeeded.
    private func fuzzOnce(_ m: [UInt8], shape: KVShape) throws -> Bool {
        var ok = false
        do { _ = try KVBlockDecoder().validate(m) } catch { XCTAssertNotNil(error as? KVBlockError, "untyped: \(error)") }
        var shapes = [shape]
        if let header = try? KVBlockDecoder().readHeader(m), header.shape.bytesPerPosition <= 1 << 16 {
            shapes.append(header.shape)
        }
        for s in shapes {
            var cache = KVCache(shape: s)
            cache.extend(by: 2)
            do {
                try KVBlockDecoder(verifiesFrameContent: false).decode(m, expectedChunkKey: key(1), expectedFingerprint: key(2),
                                                                       into: &cache, at: 1)
                ok = true
            } catch {
                XCTAssertNotNil(error as? KVBlockError, "untyped: \(error)")
                XCTAssertEqual(cache.count, 2, "a failed decode leaves the cache as it was")
            }
        }
        return ok
    }
}
