import KVStashCodec
import KVStashCore
import XCTest

/// Blocks of some layers only (format version 2): the header names the layers, the
/// payload holds just their sections, and a decode writes just their rows.
final class LayerSubsetTests: XCTestCase {
    let shape = KVShape(layers: 6, kvHeads: 2, headDim: 16)

    func testSubsetBlockCarriesOnlyItsLayersAndDecodesIntoThem() throws {
        let source = syntheticCache(shape, tokens: 50, seed: 11)
        for codec in [KVCodec.f32, .int8] {
            let encoder = KVBlockEncoder(codec: codec)
            let whole = try encoder.encode(source, range: 5..<45, chunkKey: key(1), modelFingerprint: key(2))
            let part = try encoder.encode(source, range: 5..<45, chunkKey: key(1), modelFingerprint: key(2),
                                          layers: [1, 4])
            let h = try KVBlockDecoder().validate(part)
            XCTAssertEqual(h.formatVersion, 2)
            XCTAssertEqual(h.carriedLayers, [1, 4])
            XCTAssertEqual(h.shape, shape, "the shape is the model's, every layer counted")
            XCTAssertEqual(h.headerLength, KVBlockHeader.byteCount + 8)
            XCTAssertEqual(h.payloadLength, part.count - KVBlockHeader.byteCount - 8)
            XCTAssertEqual(try KVBlockDecoder().readHeader(whole).formatVersion, 1, "a whole block stays version 1")
            XCTAssertEqual(try KVBlockDecoder().readHeader(whole).carriedLayers, nil)
            // The subset's uncompressed size: two layers' sections of the six.
            let wholeContent = encoder.uncompressedBlockSize(shape: shape, tokens: 40) - KVBlockHeader.byteCount
            XCTAssertEqual(encoder.uncompressedBlockSize(shape: shape, tokens: 40, layers: [1, 4]),
                           KVBlockHeader.byteCount + 8 + wholeContent / 6 * 2)

            let poison = Float.nan
            var cache = KVRows(shape: shape)
            cache.extend(by: 40)
            for layer in 0..<shape.layers {
                for kind in [KVKind.key, .value] {
                    cache.withMutableRows(layer: layer, kind, 0..<40) { $0.update(repeating: poison) }
                }
            }
            var reference = KVRows(shape: shape)
            try KVBlockDecoder().decode(whole, expectedChunkKey: key(1), expectedFingerprint: key(2),
                                        into: &reference, at: 0)
            try KVBlockDecoder().decode(part, expectedChunkKey: key(1), expectedFingerprint: key(2),
                                        into: &cache, at: 0)
            for layer in 0..<shape.layers {
                for kind in [KVKind.key, .value] {
                    let rows = cache.rows(layer: layer, kind, 0..<40)
                    if [1, 4].contains(layer) {
                        XCTAssertEqual(rows, reference.rows(layer: layer, kind, 0..<40), "\(codec) layer \(layer)")
                    } else {
                        XCTAssertTrue(rows.allSatisfy(\.isNaN), "\(codec) layer \(layer) untouched")
                    }
                }
            }
        }
    }

    func testDamagedLayerMaskIsRejected() throws {
        let source = syntheticCache(shape, tokens: 20, seed: 12)
        let part = try KVBlockEncoder(codec: .f32).encode(source, range: 0..<20, chunkKey: key(1),
                                                          modelFingerprint: key(2), layers: [0, 2])
        var damaged = part
        damaged[104] ^= 0x08  // layer 3 added to the mask
        XCTAssertThrowsError(try KVBlockDecoder().validate(damaged)) {
            XCTAssertEqual($0 as? KVBlockError, .headerChecksumMismatch)
        }
        XCTAssertThrowsError(try KVBlockDecoder().validate(Array(part.prefix(115)))) {
            XCTAssertEqual($0 as? KVBlockError, .truncated)
        }
        XCTAssertThrowsError(try KVBlockEncoder(codec: .f32).encode(source, range: 0..<20, chunkKey: key(1),
                                                                     modelFingerprint: key(2), layers: [2, 6]))
    }
}
