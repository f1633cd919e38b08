import Foundation
import KVStashCodec
import KVStashCore
import KVStashStore
import KVStashTestSupport
import XCTest

/// Runs the `kvstash` admin CLI against a store holding real KV blocks from the codec:
/// `inspect` shows the block header, `verify --deep` catches a block whose payload was
/// damaged before it reached RocksDB (RocksDB's own checksums cannot see that).
final class AdminCLIBlockTests: XCTestCase {
    func kvstashBinary() throws -> String {
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        if dir.lastPathComponent.hasSuffix(".xctest") { dir.deleteLastPathComponent() }
        let path = dir.appendingPathComponent("kvstash").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            XCTFail("kvstash not found at \(path): build all targets (swift build --build-tests)")
            throw XCTSkip("no kvstash binary")
        }
        return path
    }

    func run(_ args: [String]) throws -> (Int32, Data) {
        let run = try ChildProcess.run(try kvstashBinary(), args)
        return (run.status, run.stdout)
    }

    func testInspectAndDeepVerifyOnRealBlocks() throws {
        let path = NSTemporaryDirectory() + "kvstash-admin-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        var cache = KVRows(shape: KVShape(layers: 2, kvHeads: 1, headDim: 8))
        cache.extend(by: 8)
        for layer in 0..<2 {
            for kind in [KVKind.key, .value] {
                cache.withMutableRows(layer: layer, kind, 0..<8) { rows in
                    for i in rows.indices { rows[i] = Float((i * 7 + layer * 3) % 11) / 5 - 1 }
                }
            }
        }
        let fingerprint = [UInt8](repeating: 9, count: 32)
        let keys = ChunkKeyer(modelFingerprint: fingerprint, chunkSize: 4).chain(Array(100..<108))
        let encoder = KVBlockEncoder(codec: .int8)
        let store = try ChunkStore(path: path, options: StoreOptions(chunkSize: 4))
        for (i, key) in keys.enumerated() {
            var block = try encoder.encode(cache, range: i * 4..<(i + 1) * 4, chunkKey: key.bytes, modelFingerprint: fingerprint)
            if i == 1 { block[block.count - 3] ^= 0x55 }   // damaged in the payload
            let meta = ChunkMeta(parent: i == 0 ? .root : keys[0], chainIndex: i, tokens: Array(100 + i * 4..<104 + i * 4),
                                 codec: "int8", modelFingerprint: fingerprint)
            try store.put(key, value: block, meta: meta)
        }
        try store.close()

        let (status, data) = try run(["inspect", keys[0].hex, "--store", path, "--json"])
        XCTAssertEqual(status, 0)
        let info = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let block = try XCTUnwrap(info["block"] as? [String: Any])
        XCTAssertEqual(block["tokenCount"] as? Int, 4)
        XCTAssertEqual(block["layers"] as? Int, 2)
        XCTAssertEqual(block["keyMatches"] as? Bool, true)

        let (shallowStatus, _) = try run(["verify", "--store", path, "--json"])
        XCTAssertEqual(shallowStatus, 0, "RocksDB checksums alone cannot see a block damaged before the write")
        let (deepStatus, deepData) = try run(["verify", "--deep", "--store", path, "--json"])
        XCTAssertEqual(deepStatus, 1)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: deepData) as? [String: Any])
        XCTAssertEqual(report["corrupt"] as? [String], [keys[1].hex])
        XCTAssertEqual(report["ok"] as? Int, 1)
    }
}
