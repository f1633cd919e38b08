import Foundation
import XCTest
@testable import KVStashStore

/// Values read back from table files (not the memtable) are the bytes written, whether the
/// store maps its files or copies each read, through both read paths of the request path.
final class ReadModeTests: XCTestCase {
    func testMappedAndPreadReadsReturnTheWrittenBytes() throws {
        let path = temporaryStorePath(self)
        let keys: [ChunkKey]
        do {
            let store = try ChunkStore(path: path)
            keys = try putChain(store, count: 6, valueSize: 300_000, seed: 7)
            try store.flush()
            try store.close()
        }
        XCTAssertTrue(try FileManager.default.contentsOfDirectory(atPath: path).contains { $0.hasSuffix(".sst") },
                      "the values must sit in table files")
        for mapped in [true, false] {
            let store = try ChunkStore(path: path, options: StoreOptions(mappedReads: mapped))
            defer { try? store.close() }
            XCTAssertEqual(store.probe(keys), Array(repeating: true, count: keys.count))
            for (i, key) in keys.enumerated() {
                let expected = chainValue(i, seed: 7, size: 300_000)
                XCTAssertEqual(try store.get(key), expected, "get, chunk \(i), mapped \(mapped)")
                let inPlace = try store.withValue(key, selfChecked: true) { Array($0.bindMemory(to: UInt8.self)) }
                XCTAssertEqual(inPlace, expected, "in place, chunk \(i), mapped \(mapped)")
            }
        }
    }
}
