import KVStashCodec
import KVStashCore
import XCTest

/// Every kind of wrong block maps to its typed error, and leaves the cache untouched.
final class ErrorTests: XCTestCase {
    let shape = KVShape(layers: 2, kvHeads: 2, headDim: 16)
    lazy var source = syntheticCache(shape, tokens: 50, seed: 7)

    func block(_ codec: KVCodec = .int4) throws -> [UInt8] {
        try KVBlockEncoder(codec: codec).encode(source, range: 0..<50, chunkKey: key(1), modelFingerprint: key(2))
    }

    func expect(_ bytes: [UInt8], _ error: KVBlockError, shape: KVShape? = nil, key k: [UInt8] = key(1),
                fingerprint: [UInt8] = key(2), at position: Int = 4, line: UInt = #line) {
        var cache = syntheticCache(shape ?? self.shape, tokens: 6, seed: 8)
        let before = flatKV(cache, 0..<6)
        XCTAssertThrowsError(try KVBlockDecoder().decode(bytes, expectedChunkKey: k, expectedFingerprint: fingerprint,
                                                         into: &cache, at: position), line: line) {
            XCTAssertEqual($0 as? KVBlockError, error, line: line)
        }
        XCTAssertEqual(cache.count, 6, line: line)
        XCTAssertEqual(flatKV(cache, 0..<6), before, line: line)
    }

    func testWrongMagicVersionCodecFlags() throws {
        var b = try block()
        b[0] = UInt8(ascii: "X")
        expect(b, .badMagic)
        b = try block(); b[4] = 3
        expect(b, .unsupportedVersion)
        expect(reseal(b), .unsupportedVersion)
        b = try block(); b[6] = 9
        expect(b, .headerChecksumMismatch)
        expect(reseal(b), .unknownCodec)
        b = try block(); b[9] = 0x80
        expect(reseal(b), .unsupportedFlags)
        b = try block(); b[7] = 1
        expect(reseal(b), .unsupportedFlags)
        b = try block(.f16); b[10] = 32  // a group size on f16
        expect(reseal(b), .badGroupSize)
        b = try block(); b[10] = 0; b[11] = 0
        expect(reseal(b), .badGroupSize)
        XCTAssertThrowsError(try KVBlockDecoder().readHeader(Array(try block()[0..<3]))) {
            XCTAssertEqual($0 as? KVBlockError, .truncated)
        }
    }

    func testShapeKeyFingerprintPosition() throws {
        let b = try block()
        let other = KVShape(layers: 2, kvHeads: 2, headDim: 8)
        expect(b, .shapeMismatch(expected: other, found: shape), shape: other)
        expect(b, .chunkKeyMismatch, key: key(9))
        expect(b, .fingerprintMismatch, fingerprint: key(9))
        expect(b, .positionOutOfRange(position: 7, count: 6), at: 7)
    }

    func testTruncatedExtendedDamaged() throws {
        let b = try block()
        expect(Array(b.dropLast()), .truncated)
        expect(Array(b[0..<100]), .truncated)
        expect(b + [0], .trailingBytes)
        var c = b; c[200] ^= 1
        expect(c, .checksumMismatch)
        c = b; c[30] ^= 4
        expect(c, .headerChecksumMismatch)
        // A changed token count that passes the header checksum: the frame disagrees.
        c = b; c[20] = 49
        guard case .frameError? = catchError({ try KVBlockDecoder().validate(reseal(c)) }) else {
            return XCTFail("expected frameError")
        }
    }

    func testEncoderRejectsBadInput() throws {
        var cache = syntheticCache(shape, tokens: 10, seed: 3)
        let enc = KVBlockEncoder(codec: .int8)
        XCTAssertThrowsError(try enc.encode(cache, range: 5..<5, chunkKey: key(1), modelFingerprint: key(2)))
        XCTAssertThrowsError(try enc.encode(cache, range: 5..<11, chunkKey: key(1), modelFingerprint: key(2)))
        XCTAssertThrowsError(try enc.encode(cache, range: 0..<5, chunkKey: [1, 2], modelFingerprint: key(2)))
        XCTAssertThrowsError(try KVBlockEncoder(codec: .int4, groupSize: 0)
            .encode(cache, range: 0..<5, chunkKey: key(1), modelFingerprint: key(2))) {
            XCTAssertEqual($0 as? KVBlockError, .badGroupSize)
        }
        cache.withMutableRows(layer: 1, .value, 3..<4) { $0[2] = .nan }
        for codec in [KVCodec.f16, .int8, .int4] {
            XCTAssertThrowsError(try KVBlockEncoder(codec: codec)
                .encode(cache, range: 0..<10, chunkKey: key(1), modelFingerprint: key(2))) {
                XCTAssertEqual($0 as? KVBlockError, .unencodableValue)
            }
        }
        cache.withMutableRows(layer: 1, .value, 3..<4) { $0[2] = 70000 }
        XCTAssertThrowsError(try KVBlockEncoder(codec: .f16)
            .encode(cache, range: 0..<10, chunkKey: key(1), modelFingerprint: key(2)))
        // f32 is lossless for anything, NaN included.
        XCTAssertNoThrow(try KVBlockEncoder(codec: .f32).encode(cache, range: 0..<10, chunkKey: key(1), modelFingerprint: key(2)))
    }
}

func catchError(_ body: () throws -> Any) -> KVBlockError? {
    do { _ = try body(); return nil } catch { return error as? KVBlockError }
}
