import Foundation
import KVStashDigest

/// Keys of the `docs` column family (docs/formats.md "Documents and links"). Every
/// document lives in the namespace of its tenant salt, like its chunks:
///
///     ns    = SHA-256("kvstash.documents" ‖ salt)[0..<16]
///     D ‖ ns ‖ id                       → document record (JSON)
///     L ‖ ns ‖ u32be len(id) ‖ id ‖ key → empty   (document → chunk link)
///     C ‖ key ‖ ns ‖ id                 → empty   (chunk → document link)
///
/// Adding a link writes two small keys, whatever the number of documents a chunk has.
enum DocKeys {
    static let recordTag: UInt8 = 0x44    // "D"
    static let docLinkTag: UInt8 = 0x4C   // "L"
    static let chunkLinkTag: UInt8 = 0x43 // "C"
    static let namespaceBytes = 16
    /// Longest document id in UTF-8 bytes.
    static let maxIDBytes = 1024
    /// Most chunks one document record links (a context of 1 Mi tokens in 16-token chunks).
    static let maxChunks = 1 << 16

    static func namespace(_ salt: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: Array("kvstash.documents".utf8) + salt).prefix(namespaceBytes))
    }

    static let defaultNamespace = namespace([])

    static func record(_ ns: [UInt8], _ id: String) -> [UInt8] { [recordTag] + ns + Array(id.utf8) }

    /// Prefix of every `L` key of one document (exact: the id is length-prefixed).
    static func docLinks(_ ns: [UInt8], _ id: String) -> [UInt8] {
        let idBytes = Array(id.utf8)
        let n = UInt32(idBytes.count)
        return [docLinkTag] + ns + [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + idBytes
    }

    static func chunkLinks(_ key: ChunkKey) -> [UInt8] { [chunkLinkTag] + key.bytes }

    /// The (namespace, id) of a `C` key of `key`.
    static func parseChunkLink(_ raw: [UInt8]) -> (ns: [UInt8], id: String)? {
        let head = 1 + 32
        guard raw.count >= head + namespaceBytes else { return nil }
        return (Array(raw[head..<head + namespaceBytes]), String(decoding: raw[(head + namespaceBytes)...], as: UTF8.self))
    }

    /// How a linked document shows in listings: its id, prefixed by the first 8 hex digits of
    /// its namespace unless it is the default (empty) salt's.
    static func display(ns: [UInt8], id: String) -> String {
        ns == defaultNamespace ? id : Hex.encode(Array(ns.prefix(4))) + ":" + id
    }
}

extension ChunkStore {
    // MARK: documents

    /// Records a precomputed document in the namespace of `doc.salt` and links each of its
    /// chunks to it (two small keys per chunk, one batch), so that eviction by document
    /// finds all of them. Chunks shared with other documents keep their other links.
    public func putDocument(_ doc: DocumentRecord) throws {
        try gate.enter(); defer { gate.leave() }
        guard !readOnly else { throw StoreError.readOnly(path: path) }
        guard doc.id.utf8.count <= DocKeys.maxIDBytes else {
            throw StoreError.invalidDocument("document id longer than \(DocKeys.maxIDBytes) bytes")
        }
        guard doc.chunkKeys.count <= DocKeys.maxChunks else {
            throw StoreError.invalidDocument("more than \(DocKeys.maxChunks) chunks")
        }
        let ns = DocKeys.namespace(doc.salt)
        let batch = db.makeBatch()
        batch.put(.docs, DocKeys.record(ns, doc.id), Array(try JSONEncoder().encode(doc)))
        for key in doc.chunkKeys { addLink(batch, key, ns: ns, id: doc.id) }
        try rocks { try db.write(batch) }
    }

    func addLink(_ batch: WriteBatch, _ key: ChunkKey, ns: [UInt8], id: String) {
        batch.put(.docs, DocKeys.docLinks(ns, id) + key.bytes, [])
        batch.put(.docs, DocKeys.chunkLinks(key) + ns + Array(id.utf8), [])
    }

    /// The document record of `id` under tenant `salt`, or nil.
    public func document(id: String, salt: [UInt8] = []) throws -> DocumentRecord? {
        try gate.enter(); defer { gate.leave() }
        guard let raw = try rocks({ try db.get(.docs, DocKeys.record(DocKeys.namespace(salt), id)) }) else { return nil }
        var record = try JSONDecoder().decode(DocumentRecord.self, from: Data(raw))
        record.salt = salt
        return record
    }

    /// Every document record, of every tenant.
    public func documents() throws -> [DocumentRecord] {
        try gate.enter(); defer { gate.leave() }
        var out: [DocumentRecord] = []
        try rocks {
            try db.scan(.docs, prefix: [DocKeys.recordTag]) { _, v in
                if let d = try? JSONDecoder().decode(DocumentRecord.self, from: Data(v)) { out.append(d) }
                return true
            }
        }
        return out
    }

    /// Number of document records.
    func documentCount() throws -> Int {
        var n = 0
        try rocks { try db.scan(.docs, prefix: [DocKeys.recordTag]) { _, _ in n += 1; return true } }
        return n
    }

    /// Keys linked to document `id` of `salt`.
    func linkedChunks(id: String, salt: [UInt8]) throws -> [ChunkKey] {
        let prefix = DocKeys.docLinks(DocKeys.namespace(salt), id)
        var out: [ChunkKey] = []
        try rocks {
            try db.scan(.docs, prefix: prefix) { k, _ in
                if k.count == prefix.count + 32, let key = ChunkKey(bytes: Array(k[prefix.count...])) { out.append(key) }
                return true
            }
        }
        return out
    }

    /// The documents (namespace, id) linked to `key`.
    func links(of key: ChunkKey) throws -> [(ns: [UInt8], id: String)] {
        var out: [(ns: [UInt8], id: String)] = []
        try rocks {
            try db.scan(.docs, prefix: DocKeys.chunkLinks(key)) { k, _ in
                if let link = DocKeys.parseChunkLink(k) { out.append(link) }
                return true
            }
        }
        return out
    }

    /// Display names of the documents linked to each chunk (one scan of the `C` keys).
    func linkedDocuments() throws -> [ChunkKey: [String]] {
        var out: [ChunkKey: [String]] = [:]
        try rocks {
            try db.scan(.docs, prefix: [DocKeys.chunkLinkTag]) { k, _ in
                if k.count >= 33, let key = ChunkKey(bytes: Array(k[1..<33])), let link = DocKeys.parseChunkLink(k) {
                    out[key, default: []].append(DocKeys.display(ns: link.ns, id: link.id))
                }
                return true
            }
        }
        return out
    }

    /// `meta` with `docIDs` filled from the links of `key`.
    func withDocuments(_ key: ChunkKey, _ meta: ChunkMeta) throws -> ChunkMeta {
        var m = meta
        m.docIDs = try links(of: key).map { DocKeys.display(ns: $0.ns, id: $0.id) }
        return m
    }

    /// Adds to `batch` the deletion of every link of `key`.
    func deleteLinks(_ batch: WriteBatch, of key: ChunkKey) throws {
        for link in try links(of: key) { deleteLink(batch, key, ns: link.ns, id: link.id) }
    }

    func deleteLink(_ batch: WriteBatch, _ key: ChunkKey, ns: [UInt8], id: String) {
        batch.delete(.docs, DocKeys.docLinks(ns, id) + key.bytes)
        batch.delete(.docs, DocKeys.chunkLinks(key) + ns + Array(id.utf8))
    }
}
