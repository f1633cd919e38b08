import KVStashCodec
import KVStashCore
import XCTest

/// The request path's decoder walks LZ4 frames in place (`LZ4Blocks`): raw blocks are
/// read where they lie, compressed ones decompressed whole, sections that straddle two
/// blocks assembled. It must decode exactly what the strict (liblz4) decoder does, from
/// any address, and refuse a damaged frame structure without crashing.
final class InPlaceFrameTests: XCTestCase {
    // 4 layers x 2 x 256 tokens x 256 channels: ~0.5 MB of int8 content, several
    // 256 KiB LZ4 blocks, with sections crossing their boundaries.
    let shape = KVShape(layers: 4, kvHeads: 4, headDim: 64)
    let tokens = 256
    let lenient = KVBlockDecoder(verifiesFrameContent: false)

    /// Decodes `block` copied to `misalignment` bytes past an aligned address.
    func decode(_ block: [UInt8], _ decoder: KVBlockDecoder, misalignment: Int) throws -> [Float] {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: block.count + 64, alignment: 64)
        defer { buffer.deallocate() }
        let at = UnsafeMutableRawBufferPointer(rebasing: buffer[misalignment..<(misalignment + block.count)])
        at.copyBytes(from: block)
        var cache = KVRows(shape: shape)
        try decoder.decode(UnsafeRawBufferPointer(at), expectedChunkKey: key(1), expectedFingerprint: key(2),
                           into: &cache, at: 0)
        return flatKV(cache, 0..<tokens)
    }

    func testInPlaceDecodeEqualsLiblz4AtAnyAddress() throws {
        var constant = KVRows(shape: shape)  // compresses: compressed LZ4 blocks
        constant.extend(by: tokens)
        for layer in 0..<shape.layers {
            for kind in [KVKind.key, .value] {
                constant.withMutableRows(layer: layer, kind, 0..<tokens) { rows in
                    for i in rows.indices { rows[i] = Float(i % 7) * 0.25 }
                }
            }
        }
        let noisy = syntheticCache(shape, tokens: tokens, seed: 21)  // does not: raw blocks
        for (name, source) in [("noisy", noisy), ("constant", constant)] {
            for codec in [KVCodec.f32, .f16, .int8, .int4] {
                let block = try KVBlockEncoder(codec: codec).encode(source, range: 0..<tokens, chunkKey: key(1),
                                                                     modelFingerprint: key(2))
                let want = try decode(block, KVBlockDecoder(), misalignment: 0)
                for misalignment in [0, 1, 2, 3] {
                    XCTAssertEqual(try decode(block, lenient, misalignment: misalignment), want,
                                   "\(name) \(codec.name) at +\(misalignment)")
                }
            }
        }
    }

    /// The encoder ends an LZ4 block at every section's end, so the walker finds each
    /// section inside one block (these sections are under the 256 KiB block size).
    func testEachSectionIsOneLZ4Block() throws {
        let source = syntheticCache(shape, tokens: tokens, seed: 24)
        for codec in [KVCodec.f32, .int8, .int4] {
            let block = try KVBlockEncoder(codec: codec).encode(source, range: 0..<tokens, chunkKey: key(1),
                                                                 modelFingerprint: key(2))
            var offset = KVBlockHeader.byteCount + 15  // magic, FLG, BD, content size, header checksum
            var blocks = 0
            while true {
                let word = (0..<4).reduce(UInt32(0)) { $0 | UInt32(block[offset + $1]) << (8 * UInt32($1)) }
                offset += 4
                if word == 0 { break }
                offset += Int(word & 0x7FFF_FFFF)
                blocks += 1
            }
            XCTAssertEqual(offset + 4, block.count, "\(codec.name): end mark, then the content checksum")
            XCTAssertEqual(blocks, 2 * shape.layers, "\(codec.name): one block per section")
        }
    }

    /// Damage behind resealed checksums (what the payload checksum would let through only
    /// on a collision): the walker throws a `KVBlockError` or decodes, and never reads
    /// outside the frame.
    func testDamagedFrameStructureThrowsOrDecodes() throws {
        let source = syntheticCache(shape, tokens: tokens, seed: 22)
        let block = try KVBlockEncoder(codec: .int8).encode(source, range: 0..<tokens, chunkKey: key(1),
                                                             modelFingerprint: key(2))
        var rng = SplitMix(seed: 23)
        var thrown = 0
        let frameStart = KVBlockHeader.byteCount
        for round in 0..<200 {
            var m = block
            switch round % 4 {
            case 0: m = Array(m[0..<Int.random(in: frameStart..<m.count, using: &rng)])  // truncated
            case 1:  // a block size word: every 4-byte window near block starts is tried over the rounds
                let at = Int.random(in: frameStart..<min(m.count, frameStart + 64), using: &rng)
                m[at] = UInt8.random(in: 0...255, using: &rng)
            case 2: m += (0..<Int.random(in: 1...16, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            default:
                let at = Int.random(in: frameStart..<m.count, using: &rng)
                m[at] ^= 0x80
            }
            put64(&m, 88, UInt64(m.count - frameStart))
            do {
                _ = try decode(reseal(m), lenient, misalignment: round % 3)
            } catch {
                XCTAssertNotNil(error as? KVBlockError, "untyped error \(error)")
                thrown += 1
            }
        }
        XCTAssertGreaterThan(thrown, 100, "truncations and extensions at least are refused")
    }
}
