import KVStashCodec
import KVStashCore
import XCTest

/// Random damage to encoded blocks of every codec and frame: each damaged block must
/// either decode to exactly the original KV or throw a `KVBlockError`, never crash,
/// and a throw must leave the cache untouched.
final class MutationTests: XCTestCase {
    let shape = KVShape(layers: 2, kvHeads: 2, headDim: 16)
    let tokens = 40  // a partial last group for G = 32

    var encoders: [KVBlockEncoder] {
        var all: [KVBlockEncoder] = []
        for codec in KVCodec.allCases {
            for compression in [KVFrameCompression.lz4, .zstd(level: 3)] {
                all.append(KVBlockEncoder(codec: codec, compression: compression))
            }
        }
        all.append(KVBlockEncoder(codec: .int4, groupSize: 64, keyGrouping: .perToken))
        return all
    }

    /// One random mutation of `b`.
    func mutate(_ b: [UInt8], _ rng: inout SplitMix, from lower: Int = 0) -> [UInt8] {
        var m = b, g = rng
        defer { rng = g }
        func at() -> Int { Int.random(in: lower..<m.count, using: &g) }
        switch Int.random(in: 0..<8, using: &g) {
        case 0: m[at()] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &g)
        case 1: for _ in 0..<Int.random(in: 2...8, using: &g) { m[at()] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &g) }
        case 2: for _ in 0..<Int.random(in: 1...8, using: &g) { m[at()] = UInt8.random(in: 0...255, using: &g) }
        case 3: m = Array(m[0..<Int.random(in: lower..<m.count, using: &g)])
        case 4: m += (0..<Int.random(in: 1...32, using: &g)).map { _ in UInt8.random(in: 0...255, using: &g) }
        case 5: m.insert(UInt8.random(in: 0...255, using: &g), at: at())
        case 6: m.remove(at: at())
        default:
            let start = at(), end = min(m.count, start + Int.random(in: 1...64, using: &g))
            for i in start..<end { m[i] = 0 }
        }
        return m
    }

    /// Decodes `m` into a 3-token cache at position 3 and checks the outcome.
    /// Returns whether it threw.
    func check(_ m: [UInt8], _ original: [UInt8], want: [Float], requireUnchanged: Bool,
               decoder: KVBlockDecoder = KVBlockDecoder()) -> Bool {
        var cache = syntheticCache(shape, tokens: 3, seed: 99)
        let before = flatKV(cache, 0..<3)
        do {
            try decoder.decode(m, expectedChunkKey: key(1), expectedFingerprint: key(2), into: &cache, at: 3)
            if requireUnchanged { XCTAssertEqual(m, original, "a changed block decoded") }
            XCTAssertEqual(flatKV(cache, 3..<(3 + tokens)), want, "decoded KV differs from the original")
            XCTAssertNoThrow(try KVBlockDecoder().validate(m))
            return false
        } catch {
            XCTAssertNotNil(error as? KVBlockError, "untyped error \(error)")
            XCTAssertEqual(cache.count, 3)
            XCTAssertEqual(flatKV(cache, 0..<3), before)
            XCTAssertThrowsError(try KVBlockDecoder().validate(m))
            return true
        }
    }

    func reference(_ block: [UInt8]) throws -> [Float] {
        var clean = KVRows(shape: shape)
        try KVBlockDecoder().decode(block, expectedChunkKey: key(1), expectedFingerprint: key(2), into: &clean, at: 0)
        return flatKV(clean, 0..<tokens)
    }

    func testRandomDamageDecodesExactlyOrThrows() throws {
        let source = syntheticCache(shape, tokens: tokens, seed: 11)
        var rng = SplitMix(seed: 12)
        var thrown = 0, total = 0
        for encoder in encoders {
            let block = try encoder.encode(source, range: 0..<tokens, chunkKey: key(1), modelFingerprint: key(2))
            let want = try reference(block)
            for _ in 0..<400 {
                let m = mutate(block, &rng)
                if check(m, block, want: want, requireUnchanged: true) { thrown += 1 }
                // The request path's decoder, which leaves the frame's content checksum to
                // the payload checksum, must catch the same damage.
                let lenient = check(m, block, want: want, requireUnchanged: true,
                                    decoder: KVBlockDecoder(verifiesFrameContent: false))
                XCTAssertEqual(lenient, m != block, "damage to a stored block was not caught")
                total += 1
            }
        }
        XCTAssertGreaterThan(thrown, total * 9 / 10)  // no-op mutations are rare
    }

    /// The same damage to the payload, with both checksums recomputed over it, as a
    /// writer bug or a checksum collision would leave it: the frame's own checks
    /// (structure, exact size, content checksum) must still catch it.
    func testDamageBehindValidChecksumsIsCaughtByTheFrame() throws {
        let source = syntheticCache(shape, tokens: tokens, seed: 13)
        var rng = SplitMix(seed: 14)
        var thrown = 0, total = 0
        for encoder in encoders {
            let block = try encoder.encode(source, range: 0..<tokens, chunkKey: key(1), modelFingerprint: key(2))
            let want = try reference(block)
            for _ in 0..<300 {
                var m = mutate(block, &rng, from: KVBlockHeader.byteCount)
                guard m.count >= KVBlockHeader.byteCount else { continue }
                // Keep the header's payload length honest so the frame is what gets judged.
                put64(&m, 88, UInt64(m.count - KVBlockHeader.byteCount))
                if check(reseal(m), block, want: want, requireUnchanged: false) { thrown += 1 }
                total += 1
            }
        }
        XCTAssertGreaterThan(thrown, total * 9 / 10)
    }
}
