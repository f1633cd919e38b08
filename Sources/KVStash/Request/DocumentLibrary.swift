import Foundation
import KVStashStore

/// What `precompute` recorded about one document, beside the store, so that
/// `query --doc ID` can rebuild the exact prompt: its text and the template used.
public struct DocumentText: Sendable, Codable, Equatable {
    public var id: String
    public var name: String
    public var template: PromptTemplate
    public var text: String

    public init(id: String, name: String, template: PromptTemplate, text: String) {
        self.id = id
        self.name = name
        self.template = template
        self.text = text
    }
}

/// Document texts kept as JSON files in `<store>/kvstash-documents/` (the store's `docs`
/// column family holds the chunk keys and token counts, not the text).
public struct DocumentLibrary: Sendable {
    public let directory: String

    public init(storePath: String) {
        directory = (storePath as NSString).appendingPathComponent("kvstash-documents")
    }

    /// The file of `id`: its UTF-8 in hex (unique); ids over 120 bytes keep 100 bytes
    /// plus a 64-bit FNV-1a hash of the whole id. `load` checks the stored id.
    private func file(_ id: String) -> String {
        let bytes = Array(id.utf8)
        var name = Hex.encode(Array(bytes.prefix(120)))
        if bytes.count > 120 {
            let hash = bytes.reduce(UInt64(14695981039346656037)) { ($0 ^ UInt64($1)) &* 1099511628211 }
            name = Hex.encode(Array(bytes.prefix(100))) + "-" + String(hash, radix: 16)
        }
        return (directory as NSString).appendingPathComponent(name + ".json")
    }

    /// Saves (atomically) the text of a document.
    public func save(_ doc: DocumentText) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let data = try JSONEncoder().encode(doc)
        try data.write(to: URL(fileURLWithPath: file(doc.id)), options: .atomic)
    }

    /// The text of document `id`, or nil.
    public func load(_ id: String) -> DocumentText? {
        guard let data = FileManager.default.contents(atPath: file(id)) else { return nil }
        guard let doc = try? JSONDecoder().decode(DocumentText.self, from: data), doc.id == id else { return nil }
        return doc
    }
}

/// Settings a store was precomputed with, kept in `<store>/kvstash-settings.json`, so that
/// `query` uses the same model, template and codec by default.
public struct StoreSettings: Sendable, Codable, Equatable {
    public var modelPath: String
    public var codec: String
    public var template: PromptTemplate
    /// Bits of the prefill input codes the documents were computed with (`PrefillInputs`
    /// raw value; nil in stores written before the option, which were 16).
    public var prefillInputs: String?

    public init(modelPath: String, codec: String, template: PromptTemplate, prefillInputs: String? = nil) {
        self.modelPath = modelPath
        self.codec = codec
        self.template = template
        self.prefillInputs = prefillInputs
    }

    static func file(_ storePath: String) -> String {
        (storePath as NSString).appendingPathComponent("kvstash-settings.json")
    }

    /// Reads the settings of the store at `storePath`, if any.
    public static func load(storePath: String) -> StoreSettings? {
        guard let data = FileManager.default.contents(atPath: file(storePath)) else { return nil }
        return try? JSONDecoder().decode(StoreSettings.self, from: data)
    }

    /// Writes them (atomically).
    public func save(storePath: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(self).write(to: URL(fileURLWithPath: Self.file(storePath)), options: .atomic)
    }
}
