import Foundation

/// The metadata record stored beside every chunk value (column family `meta`).
public struct ChunkMeta: Sendable, Hashable, Codable {
    /// Key of the previous chunk of the chain (`ChunkKey.root` for the first chunk).
    public var parent: ChunkKey
    /// Position of the chunk in its chain (0 for the first chunk). Eviction prefers deeper chunks.
    public var chainIndex: Int
    /// The chunk's token ids.
    public var tokens: [Int]
    /// Size of the stored value in bytes (filled in by `put`).
    public var byteSize: Int
    /// Name of the codec that encoded the value; opaque to the store.
    public var codec: String
    /// Fingerprint of the model whose KV this is.
    public var modelFingerprint: [UInt8]
    /// When the chunk was first written.
    public var created: Date
    /// When the chunk was last read (coalesced; see `ChunkStore`).
    public var lastAccess: Date
    /// How many times the chunk was read.
    public var hits: Int
    /// Documents linked to this chunk (kept as links in the `docs` family, not in the meta
    /// record; ids of a non-default tenant show as `nnnnnnnn:id`, its namespace's prefix).
    public var docIDs: [String]
    /// Pinned chunks are never evicted.
    public var pinned: Bool

    /// Number of tokens of the chunk.
    public var tokenCount: Int { tokens.count }

    public init(parent: ChunkKey, chainIndex: Int = 0, tokens: [Int], codec: String,
                modelFingerprint: [UInt8], byteSize: Int = 0, created: Date = Date(),
                lastAccess: Date? = nil, hits: Int = 0, docIDs: [String] = [], pinned: Bool = false) {
        self.parent = parent
        self.chainIndex = chainIndex
        self.tokens = tokens
        self.byteSize = byteSize
        self.codec = codec
        self.modelFingerprint = modelFingerprint
        self.created = created
        self.lastAccess = lastAccess ?? created
        self.hits = hits
        self.docIDs = docIDs
        self.pinned = pinned
    }
}

extension ChunkMeta {
    enum CodingKeys: String, CodingKey {
        case parent, chainIndex, tokens, byteSize, codec, modelFingerprint, created, lastAccess, hits, docIDs, pinned
    }

    /// JSON form: the fingerprint as hex, dates with the encoder's date strategy.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let fp = try c.decode(String.self, forKey: .modelFingerprint)
        guard let raw = Hex.decode(fp) else {
            throw DecodingError.dataCorruptedError(forKey: .modelFingerprint, in: c, debugDescription: "not hex")
        }
        self.init(parent: try c.decode(ChunkKey.self, forKey: .parent), chainIndex: try c.decode(Int.self, forKey: .chainIndex),
                  tokens: try c.decode([Int].self, forKey: .tokens), codec: try c.decode(String.self, forKey: .codec),
                  modelFingerprint: raw, byteSize: try c.decode(Int.self, forKey: .byteSize),
                  created: try c.decode(Date.self, forKey: .created), lastAccess: try c.decode(Date.self, forKey: .lastAccess),
                  hits: try c.decode(Int.self, forKey: .hits), docIDs: try c.decode([String].self, forKey: .docIDs),
                  pinned: try c.decode(Bool.self, forKey: .pinned))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(parent, forKey: .parent)
        try c.encode(chainIndex, forKey: .chainIndex)
        try c.encode(tokens, forKey: .tokens)
        try c.encode(byteSize, forKey: .byteSize)
        try c.encode(codec, forKey: .codec)
        try c.encode(Hex.encode(modelFingerprint), forKey: .modelFingerprint)
        try c.encode(created, forKey: .created)
        try c.encode(lastAccess, forKey: .lastAccess)
        try c.encode(hits, forKey: .hits)
        try c.encode(docIDs, forKey: .docIDs)
        try c.encode(pinned, forKey: .pinned)
    }
}

extension ChunkKey: Codable {
    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let key = ChunkKey(hex: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a chunk key: \(text)"))
        }
        self = key
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(hex)
    }
}
