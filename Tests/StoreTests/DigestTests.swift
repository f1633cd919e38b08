import KVStashChunks
import KVStashDigest
import XCTest

/// SHA-256 on libcrypto against the FIPS 180-2 example digests.
final class DigestTests: XCTestCase {
    func testFIPSExamples() {
        XCTAssertEqual(Hex.encode(SHA256.hash(data: [UInt8]())),
                       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(Hex.encode(SHA256.hash(data: Array("abc".utf8))),
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(Hex.encode(SHA256.hash(data: Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    /// A million "a" fed in uneven pieces (one straddles every 64-byte block edge), with a
    /// digest taken midway that must not disturb the rest.
    func testIncrementalUpdatesEqualTheWholeMessage() {
        var hasher = SHA256()
        var fed = 0
        var piece = 1
        while fed < 1_000_000 {
            let n = min(piece, 1_000_000 - fed)
            hasher.update(data: [UInt8](repeating: UInt8(ascii: "a"), count: n)[...])
            fed += n
            piece = piece * 3 % 1009 + 1
            if fed > 500_000 && fed - n <= 500_000 { _ = hasher.finalize() }
        }
        XCTAssertEqual(Hex.encode(hasher.finalize()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
