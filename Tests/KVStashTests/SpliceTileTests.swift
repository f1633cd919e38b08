import KVStashCodec
import KVStashCore
import XCTest

/// The splice's one-pass tiles (`KVRowWriter.withMutableTiles`, which the decoder uses):
/// a block decoded tile by tile into a cache (values and f16 sections straight into f16, keys
/// rotated and narrowed in one pass) gives the same f16 rows, bit for bit, as its whole
/// decoded f32 rows rotated and narrowed at once, for every codec and grouping, including
/// groups that tiles cut across, both RoPE layouts and a partial rotation.
final class SpliceTileTests: XCTestCase {
    var shape = KVShape(layers: 2, kvHeads: 2, headDim: 16)
    var table = RotaryTable(positions: 0..<128, ropeDims: 16, base: 10000, style: .adjacent)
    let key = [UInt8](repeating: 3, count: 32), fingerprint = [UInt8](repeating: 4, count: 32)

    func source(tokens: Int) -> KVRows {
        var rows = KVRows(shape: shape)
        rows.extend(by: tokens)
        var x: UInt64 = 88172645463325252
        for layer in 0..<shape.layers {
            for kind in [KVKind.key, .value] {
                rows.withMutableRows(layer: layer, kind, 0..<tokens) { r in
                    for i in r.indices {
                        x ^= x << 13; x ^= x >> 7; x ^= x << 17
                        r[i] = Float(Int(x % 2001) - 1000) / 250 + (kind == .key ? Float(i % shape.kvDim) / 4 : 0)
                    }
                }
            }
        }
        return rows
    }

    func testTiledDecodeEqualsWholeRowsRotatedAndNarrowed() throws {
        try checkTiledDecode()
    }

    /// Gemma 3's layout (one KV head of 256, halves), SmolLM2's (3 heads of 64, adjacent pairs),
    /// and a rotation of part of each head whose pairs fit no vector (12 of 20 channels).
    func testTiledDecodeOnModelLayouts() throws {
        for (heads, dim, rope, style) in [(1, 256, 256, RotaryTable.Style.halves), (3, 64, 64, .adjacent),
                                          (2, 20, 12, .halves), (2, 20, 12, .adjacent)] {
            shape = KVShape(layers: 2, kvHeads: heads, headDim: dim)
            table = RotaryTable(positions: 0..<128, ropeDims: rope, base: 1e6, style: style)
            try checkTiledDecode()
        }
    }

    private func checkTiledDecode() throws {
        let tokens = 45, offset = 7
        let src = source(tokens: tokens)
        let configs: [(KVCodec, Int, KVKeyGrouping)] = [(.f32, 0, .perChannel), (.f16, 0, .perChannel),
                                                        (.int8, 32, .perChannel), (.int8, 20, .perChannel),
                                                        (.int8, 16, .perToken), (.int4, 20, .perChannel),
                                                        (.int4, 12, .perToken)]
        for (codec, group, grouping) in configs {
            let encoder = KVBlockEncoder(codec: codec, groupSize: max(group, 1), keyGrouping: grouping)
            let block = try encoder.encode(src, range: 0..<tokens, chunkKey: key, modelFingerprint: fingerprint)
            var decoded = KVRows(shape: shape)
            try KVBlockDecoder().decode(block, expectedChunkKey: key, expectedFingerprint: fingerprint, into: &decoded, at: 0)
            var tiled = KVCache(shape: shape, rotation: table)
            let (key, fingerprint) = (self.key, self.fingerprint)
            let ok = tiled.writeConcurrently([0..<tokens], positionOffset: offset) { _, writer in
                (try? KVBlockDecoder().decode(block, expectedChunkKey: key, expectedFingerprint: fingerprint, into: writer)) != nil
            }
            XCTAssertEqual(ok, [true])
            var whole = KVCache(shape: shape, rotation: table)
            let rows = decoded
            _ = whole.writeConcurrently([0..<tokens], positionOffset: offset) { _, writer in
                for layer in 0..<rows.shape.layers {
                    for kind in [KVKind.key, .value] {
                        writer.withMutableRows(layer: layer, kind) { dst in
                            rows.withRows(layer: layer, kind, 0..<tokens) { _ = dst.update(fromContentsOf: $0) }
                        }
                    }
                }
                return true
            }
            for layer in 0..<shape.layers {
                for kind in [KVKind.key, .value] {
                    XCTAssertEqual(tiled.halfRows(layer: layer, kind, 0..<tokens),
                                   whole.halfRows(layer: layer, kind, 0..<tokens),
                                   "\(shape) \(codec.name) G=\(group) \(grouping) layer \(layer) \(kind)")
                }
            }
        }
    }
}
