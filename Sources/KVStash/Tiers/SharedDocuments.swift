import Foundation
import KVStashChunks
import KVStashDigest
import KVStashStore

/// A precomputed document as the shared tier keeps it (JSON, record `doc:` + hex SHA-256 of
/// salt ‖ 0x00 ‖ id; docs/formats.md "Shared document record"): enough for another frontend
/// to rebuild the exact prompt of `query --doc ID` and to know the document's chunk chain.
public struct SharedDocument: Sendable, Codable, Equatable {
    public var version = 1
    public var id: String
    public var name: String
    /// Tenant salt, hex.
    public var salt: String
    public var template: PromptTemplate
    public var text: String
    /// Hex SHA-256 of `text` (UTF-8), checked on load.
    public var textSHA256: String
    public var tokenCount: Int
    public var chunkKeys: [ChunkKey]

    public init(text doc: DocumentText, record: DocumentRecord) {
        id = doc.id
        name = doc.name
        salt = Hex.encode(record.salt)
        template = doc.template
        text = doc.text
        textSHA256 = Hex.encode(Array(SHA256.hash(data: Array(doc.text.utf8))))
        tokenCount = record.tokenCount
        chunkKeys = record.chunkKeys
    }

    /// The record name of document `id` under `salt`.
    public static func recordName(id: String, salt: [UInt8]) -> String {
        "doc:" + Hex.encode(Array(SHA256.hash(data: salt + [0] + Array(id.utf8))))
    }

    public var documentText: DocumentText { DocumentText(id: id, name: name, template: template, text: text) }
}

extension ChunkTiers {
    /// Publishes a precomputed document's record to the shared tier (no-op without one).
    public func publishDocument(_ text: DocumentText, record: DocumentRecord) throws {
        guard let shared else { return }
        let value = try JSONEncoder().encode(SharedDocument(text: text, record: record))
        try shared.putRecord(SharedDocument.recordName(id: text.id, salt: record.salt), value: Array(value))
    }

    /// Document `id` of `salt` from the shared tier, or nil (no shared tier, absent, or a
    /// record that does not check out: another id, or a text whose hash differs).
    public func sharedDocument(id: String, salt: [UInt8] = []) throws -> SharedDocument? {
        guard let shared, let raw = try shared.record(SharedDocument.recordName(id: id, salt: salt)) else { return nil }
        guard let doc = try? JSONDecoder().decode(SharedDocument.self, from: Data(raw)), doc.id == id,
              doc.salt == Hex.encode(salt),
              doc.textSHA256 == Hex.encode(Array(SHA256.hash(data: Array(doc.text.utf8)))) else {
            logger.warning("shared document record rejected", metadata: ["id": "\(id)"])
            return nil
        }
        return doc
    }
}
