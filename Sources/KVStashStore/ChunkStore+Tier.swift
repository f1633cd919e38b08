@_exported import KVStashChunks

/// The local store as the first chunk tier of the request path.
extension ChunkStore: ChunkTier {
    public var tierName: String { "disk" }

    /// The value where RocksDB holds it, without RocksDB's own checksum pass: the KV block
    /// decoder checks every byte (`withValue(selfChecked: true)`). A local read has no deadline.
    public func withBlock<R>(_ key: ChunkKey, deadline: ContinuousClock.Instant?,
                             _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        try withValue(key, selfChecked: true, body)
    }

    /// `put`; an entry already present keeps its value (same codec and size) and returns false.
    public func putOnce(_ key: ChunkKey, value: [UInt8], meta: ChunkMeta) throws -> Bool {
        let existed = probe([key]) == [true]
        try put(key, value: value, meta: meta, sync: false)
        return !existed
    }

    /// Damaged blocks go through `reportCorrupt` (counted, removed, their bytes compacted
    /// away); a block of an unknown version is kept and logged.
    public func reject(_ key: ChunkKey, _ problem: BlockProblem) {
        switch problem {
        case .damaged(let why):
            do {
                try reportCorrupt(key, reason: "request path: \(why)")
            } catch {
                storeLogger.error("could not remove a corrupt chunk", metadata: ["chunk": "\(key)", "error": "\(error)"])
            }
        case .unknownVersion(let why):
            storeLogger.info("stored chunk of an unknown format version kept; read as a miss",
                             metadata: ["chunk": "\(key)", "reason": "\(why)"])
        }
    }
}
