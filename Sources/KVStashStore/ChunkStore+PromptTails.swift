import KVStashChunks

/// A prompt's partial last chunk, stored as a tail entry after its last full chunk: the
/// chunk key it is stored under and its tokens.
public struct PromptTail: Sendable, Equatable {
    public let key: ChunkKey
    public let tokens: [Int]

    public init(key: ChunkKey, tokens: [Int]) {
        self.key = key
        self.tokens = tokens
    }

    /// Tokens this tail shares with the start of `other`.
    public func sharedPrefix(with other: ArraySlice<Int>) -> Int {
        zip(tokens, other).prefix { $0 == $1 }.count
    }
}

/// The prompt tails stored after each chunk: one manifest record per parent key (see
/// docs/formats.md, "Prompt tails"), most recent first and at most a caller's limit long.
/// A request whose prompt continues a stored chunk past its end finds there the tail that
/// shares the most tokens with it and splices those rows, as a server's saved slot would;
/// a chunk key alone cannot find it, since it commits to a whole tail's tokens.
extension ChunkStore {
    static let promptTailsPrefix = "prompt-tails/"
    static let promptTailsVersion: UInt8 = 1
    /// Tokens of one tail at most (a tail is shorter than a chunk; the bound guards decoding).
    static let promptTailMaxTokens = 1 << 16
    /// Tails kept after one chunk at most, whatever limit a caller asks for (the record
    /// counts its tails in 16 bits and is rewritten whole on every new tail).
    public static let promptTailsPerChunkLimit = 256

    /// The tails recorded after `parent`, most recent first. A record that does not decode
    /// is logged and read as none.
    public func promptTails(after parent: ChunkKey) throws -> [PromptTail] {
        try gate.enter(); defer { gate.leave() }
        return try readPromptTails(parent)
    }

    /// Records `tail` (already stored under `tail.key`) as the most recent after `parent`,
    /// keeping the `limit` most recent (at most `promptTailsPerChunkLimit`); the tails
    /// dropped past it are removed from the
    /// store, unless pinned or part of a document. Returns the keys removed.
    @discardableResult
    public func recordPromptTail(_ tail: PromptTail, after parent: ChunkKey, limit: Int) throws -> [ChunkKey] {
        try gate.enter(); defer { gate.leave() }
        let limit = min(limit, Self.promptTailsPerChunkLimit)
        guard !readOnly, limit > 0, tail.tokens.count < Self.promptTailMaxTokens else { return [] }
        let dropped: [PromptTail] = try withStripe(parent) {
            let listed = try readPromptTails(parent)
            if listed.first == tail, listed.count <= limit { return [] }  // already the most recent: no write
            var tails = listed.filter { $0.key != tail.key }
            tails.insert(tail, at: 0)
            let dropped = Array(tails.dropFirst(limit))
            let batch = db.makeBatch()
            batch.put(.manifest, Self.promptTailsKey(parent), Self.encodePromptTails(Array(tails.prefix(limit))))
            try rocks { try db.write(batch) }
            return dropped
        }
        var removed: [ChunkKey] = []
        for old in dropped where try links(of: old.key).isEmpty {
            for key in [old.key, old.key.slidingLayersKey] where try remove(key, includePinned: false) { removed.append(key) }
        }
        return removed
    }

    /// The keys of every recorded prompt tail (and of their sliding-layer blocks), from one
    /// scan of the records; a record that does not decode adds none.
    func promptTailKeys() throws -> Set<ChunkKey> {
        var keys: Set<ChunkKey> = []
        try rocks {
            try db.scan(.manifest, prefix: Array(Self.promptTailsPrefix.utf8)) { _, raw in
                for tail in Self.decodePromptTails(raw) ?? [] {
                    keys.insert(tail.key)
                    keys.insert(tail.key.slidingLayersKey)
                }
                return true
            }
        }
        return keys
    }

    private func readPromptTails(_ parent: ChunkKey) throws -> [PromptTail] {
        guard let raw = try rocks({ try db.get(.manifest, Self.promptTailsKey(parent)) }) else { return [] }
        guard let tails = Self.decodePromptTails(raw) else {
            storeLogger.warning("prompt-tail record does not decode; read as empty", metadata: ["parent": "\(parent)"])
            return []
        }
        return tails
    }

    static func promptTailsKey(_ parent: ChunkKey) -> [UInt8] {
        Array(promptTailsPrefix.utf8) + parent.bytes
    }

    /// Version byte, count (u16), then per tail its 32-byte key, token count (u32) and
    /// tokens (u32 each), little-endian.
    static func encodePromptTails(_ tails: [PromptTail]) -> [UInt8] {
        var out: [UInt8] = [promptTailsVersion]
        func u32(_ v: Int) { for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
        out += [UInt8(tails.count & 0xFF), UInt8(tails.count >> 8)]
        for tail in tails {
            out += tail.key.bytes
            u32(tail.tokens.count)
            for t in tail.tokens { u32(t) }
        }
        return out
    }

    /// The tails of a record, or nil when it is not a well-formed record of this version.
    static func decodePromptTails(_ raw: [UInt8]) -> [PromptTail]? {
        var at = 0
        func take(_ n: Int) -> ArraySlice<UInt8>? {
            guard n >= 0, at <= raw.count - n else { return nil }
            defer { at += n }
            return raw[at..<(at + n)]
        }
        func u32() -> Int? { take(4).map { $0.reversed().reduce(0) { $0 << 8 | Int($1) } } }
        guard take(1)?.first == promptTailsVersion, let count = take(2).map({ Int($0.first!) | Int($0.last!) << 8 })
        else { return nil }
        var tails: [PromptTail] = []
        for _ in 0..<count {
            guard let keyBytes = take(32), let key = ChunkKey(bytes: Array(keyBytes)), let n = u32(),
                  n < promptTailMaxTokens, at <= raw.count - 4 * n else { return nil }
            tails.append(PromptTail(key: key, tokens: (0..<n).map { _ in u32()! }))
        }
        return at == raw.count ? tails : nil
    }
}
