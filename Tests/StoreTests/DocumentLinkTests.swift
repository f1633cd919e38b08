import Foundation
import XCTest
@testable import KVStashStore

/// Document records live in their tenant's namespace; chunk links cost O(1) each.
final class DocumentLinkTests: XCTestCase {
    func testDocumentIDsDoNotLeakAcrossTenants() throws {
        let store = try ChunkStore(path: temporaryStorePath(self))
        defer { try? store.close() }
        let keys = try putChain(store, count: 2)
        let a = Array("tenant-a".utf8), b = Array("tenant-b".utf8)
        try store.putDocument(DocumentRecord(id: "manual", name: "m", tokenCount: 8, chunkKeys: keys, salt: a))
        XCTAssertNotNil(try store.document(id: "manual", salt: a))
        XCTAssertNil(try store.document(id: "manual", salt: b), "tenant B does not see tenant A's id")
        XCTAssertNil(try store.document(id: "manual"), "nor does the default tenant")
        try store.putDocument(DocumentRecord(id: "manual", name: "other", tokenCount: 4, chunkKeys: [keys[0]], salt: b))
        XCTAssertEqual(try store.document(id: "manual", salt: a)?.name, "m")
        XCTAssertEqual(try store.document(id: "manual", salt: b)?.name, "other")
        XCTAssertEqual(try store.documents().count, 2)
        // Evicting B's document keeps the chunk A still links.
        let report = try store.evict(.document("manual", salt: b))
        XCTAssertEqual(report.entries, 0)
        XCTAssertEqual(report.untagged, 1)
        XCTAssertEqual(store.probe(keys), [true, true])
        XCTAssertNil(try store.document(id: "manual", salt: b))
        XCTAssertEqual(try store.evict(.document("manual", salt: a)).entries, 2)
        XCTAssertEqual(store.probe(keys), [false, false])
    }

    /// Thousands of documents over one chunk: its meta record never grows, and each
    /// document adds the same few bytes.
    func testLinkingManyDocumentsToOneChunkIsConstantPerLink() throws {
        let store = try ChunkStore(path: temporaryStorePath(self))
        defer { try? store.close() }
        let key = try putChain(store, count: 1)[0]
        let metaBefore = try XCTUnwrap(try store.db.get(.meta, key.bytes)).count
        for i in 0..<2000 {
            try store.putDocument(DocumentRecord(id: "doc-\(i)", name: "d", tokenCount: 4, chunkKeys: [key]))
        }
        XCTAssertEqual(try XCTUnwrap(try store.db.get(.meta, key.bytes)).count, metaBefore, "links do not touch the meta record")
        XCTAssertEqual(try store.meta(key)?.docIDs.count, 2000)
        XCTAssertEqual(try store.list(filter: ChunkFilter(docID: "doc-1999")).map(\.key), [key])
        var docBytes = 0, docKeys = 0
        try store.db.scan(.docs) { k, v in docBytes += k.count + v.count; docKeys += 1; return true }
        XCTAssertEqual(docKeys, 2000 * 3, "one record and two link keys per document")
        XCTAssertLessThan(docBytes, 2000 * 400, "a few hundred bytes per document")
        XCTAssertEqual(try store.evict(.document("doc-7")).untagged, 1)
        XCTAssertEqual(try store.meta(key)?.docIDs.count, 1999)
    }

    func testLongDocumentIDIsRefused() throws {
        let store = try ChunkStore(path: temporaryStorePath(self))
        defer { try? store.close() }
        let id = String(repeating: "x", count: DocKeys.maxIDBytes + 1)
        XCTAssertThrowsError(try store.putDocument(DocumentRecord(id: id, name: "n", tokenCount: 1, chunkKeys: [])))
    }

    /// A store written by store version 1 (document ids in meta records, records keyed by
    /// raw id) opens read-write as version 2: chunks stay, unattributable records go.
    func testVersion1StoreIsUpgraded() throws {
        let path = temporaryStorePath(self)
        let keys: [ChunkKey]
        do {
            let store = try ChunkStore(path: path)
            keys = try putChain(store, count: 2, valueSize: 500)
            let batch = store.db.makeBatch()
            for key in keys {
                var v1 = MetaCodec.encode(try XCTUnwrap(try store.readMeta(key)))
                v1[0] = 1
                var w = ByteWriter()
                w.u32(1)
                w.bytes(Array("manual".utf8))
                batch.put(.meta, key.bytes, v1 + w.out)
            }
            batch.put(.docs, Array("manual".utf8), Array(#"{"id":"manual","name":"m","tokenCount":8,"chunkKeys":[]}"#.utf8))
            batch.put(.manifest, Manifest.versionKey, Manifest.encodeInt(1))
            try store.db.write(batch)
            try store.close()
        }
        XCTAssertThrowsError(try ChunkStore(path: path, options: StoreOptions(readOnly: true))) { error in
            XCTAssertTrue("\(error)".contains("upgrades a version 1 store"), "\(error)")
        }
        let store = try ChunkStore(path: path)
        defer { try? store.close() }
        XCTAssertEqual(try store.stats().storeVersion, 2)
        XCTAssertEqual(try store.documents(), [])
        XCTAssertNil(try store.document(id: "manual"))
        for (i, key) in keys.enumerated() {
            XCTAssertEqual(try store.get(key), selfCheckingValue(seed: i, size: 500))
            XCTAssertEqual(try store.meta(key)?.docIDs, [])
        }
        XCTAssertEqual(Manifest.decodeInt(try store.db.get(.manifest, Manifest.versionKey)), 2)
    }
}
