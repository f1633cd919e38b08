import KVStashCodec
import KVStashCore
import XCTest

/// Lossy codecs against the independent numpy reference (Tests/reference/quant_reference.py).
final class ReferenceTests: XCTestCase {
    /// Odd shapes on purpose: kvDim 3*22 = 66 (int4 half split 33) and 5*13 = 65 (odd,
    /// partial channel groups), 77 tokens (partial token groups).
    let shapes = [KVShape(layers: 2, kvHeads: 3, headDim: 22), KVShape(layers: 1, kvHeads: 5, headDim: 13)]

    func check(_ codec: KVCodec, group: Int, keys: KVKeyGrouping, shape: KVShape) throws {
        let tokens = 77
        let source = syntheticCache(shape, tokens: tokens, seed: UInt64(group + shape.kvDim))
        let block = try KVBlockEncoder(codec: codec, groupSize: group, keyGrouping: keys)
            .encode(source, range: 0..<tokens, chunkKey: key(1), modelFingerprint: key(2))
        var cache = KVRows(shape: shape)
        try KVBlockDecoder().decode(block, expectedChunkKey: key(1), expectedFingerprint: key(2), into: &cache, at: 0)
        let got = flatKV(cache, 0..<tokens), original = flatKV(source, 0..<tokens)

        let input = tempFile("in-\(codec.name)-\(group)"), output = tempFile("out-\(codec.name)-\(group)")
        defer { try? FileManager.default.removeItem(at: input); try? FileManager.default.removeItem(at: output) }
        try writeFloats(original, to: input)
        _ = try runReference([codec.name, "\(group)", keys == .perChannel ? "perChannel" : "perToken",
                              "\(shape.layers)", "\(tokens)", "\(shape.kvDim)", input.path, output.path])
        let want = try readFloats(output)
        XCTAssertEqual(want.count, got.count)
        var worst: Float = 0, worstError: Float = 0
        for i in 0..<got.count {
            worst = max(worst, abs(got[i] - want[i]) / max(1, abs(want[i])))
            worstError = max(worstError, abs(got[i] - original[i]))
        }
        let what = "\(codec.name) G=\(group) \(keys) \(shape)"
        XCTAssertLessThanOrEqual(worst, 1e-6, "differs from the numpy reference: \(what)")
        // The error itself: at most ~half a step of the widest possible group (the whole
        // range over the levels, plus fp16 rounding of scale and zero), or f16's half ulp.
        let lo = original.min()!, hi = original.max()!, big = max(abs(lo), abs(hi))
        let levels: Float = codec == .int4 ? 15 : 255
        let bound = codec == .f16 ? big / 2048 : (hi - lo) / levels * 0.65 + big / 1024
        XCTAssertLessThanOrEqual(worstError, bound, what)
        XCTAssertGreaterThan(worstError, 0, what)
    }

    func testF16MatchesReference() throws {
        for shape in shapes { try check(.f16, group: 0, keys: .perChannel, shape: shape) }
    }

    func testInt8MatchesReference() throws {
        for shape in shapes {
            for group in [32, 64] { try check(.int8, group: group, keys: .perChannel, shape: shape) }
            try check(.int8, group: shape.kvDim, keys: .perToken, shape: shape)
        }
    }

    func testInt4MatchesReference() throws {
        for shape in shapes {
            for group in [32, 64] {
                try check(.int4, group: group, keys: .perChannel, shape: shape)
                try check(.int4, group: group, keys: .perToken, shape: shape)
            }
        }
    }

    func testConstantGroupsDecodeExactly() throws {
        // scale 0: every code is 0 and the value is the fp16 zero point.
        let shape = KVShape(layers: 1, kvHeads: 1, headDim: 8)
        var cache = KVRows(shape: shape)
        cache.extend(by: 40)
        cache.withMutableRows(layer: 0, .key, 0..<40) { $0.update(repeating: 1.5) }
        cache.withMutableRows(layer: 0, .value, 0..<40) { $0.update(repeating: -0.25) }
        for codec in [KVCodec.int4, .int8] {
            let block = try KVBlockEncoder(codec: codec).encode(cache, range: 0..<40, chunkKey: key(1), modelFingerprint: key(2))
            var out = KVRows(shape: shape)
            try KVBlockDecoder().decode(block, expectedChunkKey: key(1), expectedFingerprint: key(2), into: &out, at: 0)
            XCTAssertEqual(flatKV(out, 0..<40), flatKV(cache, 0..<40))
        }
    }
}
