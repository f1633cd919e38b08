import KVStashDigest
import XCTest
@testable import KVStashStore

/// Pins the chunk-key encoding against Tests/reference/chunk_key.py (Python hashlib).
final class ChunkKeyTests: XCTestCase {
    // Printed by `python3 Tests/reference/chunk_key.py`.
    let fingerprintHex = "4e54813613b60d11d370965ad526215ab0af1f8e78c11264f138c2e8c0129835"
    let chunk0 = "d3b2bcaef803c3514735269551d6fda941963b153c6ce9109da970459f33a96d"
    let chunk1 = "160d07048da0211131799bf5286662683e857364f977437302e9070b47031260"
    let salted0 = "2d215617f56e963f80a4cb1a72c11f08fd574acd13b52aacf5d2e4a97b8227ca"
    let big0 = "e646d9308037b8d69ecc9964e4aecc73d0e78171bd057edfc649ee080da68b82"
    let variant8 = "3747923d08bd89fa704aaf00f764a28b17302bc31e7c3f037e84bf4daed0314a"

    func testFingerprintInputMatchesReference() {
        XCTAssertEqual(Hex.encode(Array(SHA256.hash(data: Array("example model".utf8)))), fingerprintHex)
    }

    /// `ModelFingerprint.variant` (the keys of a model run with other numerics) as docs/formats.md
    /// defines it, against the Python reference.
    func testNumericsVariantMatchesPythonReference() throws {
        let fp = try XCTUnwrap(Hex.decode(fingerprintHex))
        XCTAssertEqual(Hex.encode(ModelFingerprint.variant(fp, numerics: "prefill-inputs-8")), variant8)
    }

    func testWorkedExampleMatchesPythonReference() throws {
        let fp = try XCTUnwrap(Hex.decode(fingerprintHex))
        let keyer = ChunkKeyer(modelFingerprint: fp, chunkSize: 4)
        // 9 tokens: two full chunks, the partial last chunk gets no key.
        let keys = keyer.chain(Array(1...9))
        XCTAssertEqual(keys.map(\.hex), [chunk0, chunk1])
        XCTAssertEqual(keyer.key(parent: .root, tokens: [1, 2, 3, 4][...]).hex, chunk0)
        XCTAssertEqual(keyer.key(parent: keys[0], tokens: [5, 6, 7, 8][...]).hex, chunk1)
    }

    func testSaltAndChunkSizeAreInTheKey() throws {
        let fp = try XCTUnwrap(Hex.decode(fingerprintHex))
        let salted = ChunkKeyer(modelFingerprint: fp, tenantSalt: Array("tenant-a".utf8), chunkSize: 4)
        XCTAssertEqual(salted.chain([1, 2, 3, 4]).map(\.hex), [salted0])
        let big = ChunkKeyer(modelFingerprint: fp, chunkSize: 256)
        XCTAssertEqual(big.chain((0..<256).map { 49151 - $0 }).map(\.hex), [big0])
    }

    func testParentChangesKey() throws {
        let keyer = ChunkKeyer(modelFingerprint: [1, 2, 3], chunkSize: 2)
        let a = keyer.chain([1, 2, 3, 4])
        let b = keyer.chain([9, 2, 3, 4])
        XCTAssertNotEqual(a[1], b[1], "the second chunk's key must depend on the first chunk's tokens")
    }

    func testHexRoundTripAndRoot() throws {
        let k = try XCTUnwrap(ChunkKey(hex: chunk0.uppercased()))
        XCTAssertEqual(k.description, chunk0)
        XCTAssertEqual(ChunkKey.root.bytes, [UInt8](repeating: 0, count: 32))
        XCTAssertNil(ChunkKey(hex: "abc"))
        XCTAssertNil(ChunkKey(hex: String(repeating: "zz", count: 32)))
    }

    func testMetaRecordRoundTrip() throws {
        let m = ChunkMeta(parent: try XCTUnwrap(ChunkKey(hex: chunk0)), chainIndex: 7, tokens: [0, 5, 49151, 70000],
                          codec: "int4-g32", modelFingerprint: [9, 8, 7], byteSize: 1234,
                          created: Date(timeIntervalSince1970: 1_700_000_000.123),
                          lastAccess: Date(timeIntervalSince1970: 1_700_000_100.5), hits: 42,
                          docIDs: ["doc-a", "docé"], pinned: true)
        let back = try MetaCodec.decode(MetaCodec.encode(m))
        var expected = m
        expected.docIDs = []   // documents are links in the docs family, not part of the record
        XCTAssertEqual(back, expected)
        var truncated = MetaCodec.encode(m)
        truncated.removeLast()
        XCTAssertThrowsError(try MetaCodec.decode(truncated))
    }

    func testModelFingerprintIsCachedBySizeAndMtime() throws {
        let dir = NSTemporaryDirectory() + "kvstash-fp-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/m.gguf"
        try Data("GGUF fake model bytes".utf8).write(to: URL(fileURLWithPath: file))
        // hashlib.sha256(b"kvstash.model-fingerprint.v1\0" + file bytes), as for the two files below.
        let expected = Hex.decode("9d70c698b7f01ee37f2263c7ed44bf39e6f3595bc4f796ec48f470ff28c9c15a")!
        XCTAssertEqual(try ModelFingerprint.compute(path: file, cacheDir: dir), expected)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/" + ModelFingerprint.cacheFileName))
        XCTAssertEqual(try ModelFingerprint.compute(path: file, cacheDir: dir), expected)
        // A changed file (size and mtime change) is re-hashed, not served from the cache.
        try Data("GGUF other bytes, longer".utf8).write(to: URL(fileURLWithPath: file))
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 10)], ofItemAtPath: file)
        let other = Hex.decode("b535671a483675330f41bd87aaca67c3a65788f3fd82b1836321ca74566383e0")!
        XCTAssertEqual(try ModelFingerprint.compute(path: file, cacheDir: dir), other)
    }
}
