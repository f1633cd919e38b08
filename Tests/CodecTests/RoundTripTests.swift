import KVStashCodec
import KVStashCore
import XCTest

final class RoundTripTests: XCTestCase {
    let shape = KVShape(layers: 3, kvHeads: 2, headDim: 24)

    func testF32IsExactForEveryFrameAndSplicePosition() throws {
        let source = syntheticCache(shape, tokens: 100, seed: 1)
        for compression in [KVFrameCompression.lz4, .zstd(level: 3)] {
            let block = try KVBlockEncoder(codec: .f32, compression: compression)
                .encode(source, range: 10..<73, chunkKey: key(1), modelFingerprint: key(2))
            // Append to an empty cache, overwrite inside a cache, and straddle its end.
            for (start, existing) in [(0, 0), (5, 80), (40, 50)] {
                var cache = syntheticCache(shape, tokens: existing, seed: 9)
                let header = try KVBlockDecoder().decode(block, expectedChunkKey: key(1), expectedFingerprint: key(2),
                                                         into: &cache, at: start)
                XCTAssertEqual(header.tokenCount, 63)
                XCTAssertEqual(cache.count, max(existing, start + 63))
                XCTAssertEqual(flatKV(cache, start..<(start + 63)), flatKV(source, 10..<73))
                // Rows before and after the splice are untouched.
                let original = syntheticCache(shape, tokens: existing, seed: 9)
                for kept in [0..<start, min(start + 63, existing)..<existing] {
                    XCTAssertEqual(flatKV(cache, kept), flatKV(original, kept))
                }
            }
        }
    }

    func testHeaderDescribesTheBlock() throws {
        let source = syntheticCache(shape, tokens: 40, seed: 2)
        let block = try KVBlockEncoder(codec: .int4, groupSize: 64, keyGrouping: .perToken, compression: .zstd(level: 1))
            .encode(source, range: 0..<40, chunkKey: key(3), modelFingerprint: key(4))
        let h = try KVBlockDecoder().readHeader(block)
        XCTAssertEqual(h.magic, KVBlockHeader.magicValue)
        XCTAssertEqual(Array(block[0..<4]), Array("KVSB".utf8))
        XCTAssertEqual(h.formatVersion, 1)
        XCTAssertEqual(h.codec, .int4)
        XCTAssertEqual(h.groupSize, 64)
        XCTAssertEqual(h.flags, [.zstd, .keyPerToken])
        XCTAssertEqual(h.shape, shape)
        XCTAssertEqual(h.tokenCount, 40)
        XCTAssertEqual(h.chunkKey, key(3))
        XCTAssertEqual(h.modelFingerprint, key(4))
        XCTAssertEqual(h.payloadLength, block.count - KVBlockHeader.byteCount)
        XCTAssertEqual(try KVBlockDecoder().validate(block), h)
    }

    func testCodecNames() {
        for codec in KVCodec.allCases { XCTAssertEqual(KVCodec(name: codec.name), codec) }
        XCTAssertEqual(KVCodec(name: "Q4"), .int4)
        XCTAssertNil(KVCodec(name: "int3"))
    }
}
