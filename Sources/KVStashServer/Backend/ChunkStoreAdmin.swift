import Dispatch
import Foundation
import KVStashStore

/// The admin API over a `ChunkStore`. Store calls block (RocksDB), so they run on a
/// dispatch queue, off Swift's cooperative pool.
public struct ChunkStoreAdmin: StoreAdmin {
    public let store: ChunkStore

    public init(store: ChunkStore) { self.store = store }

    private func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global(qos: .utility).async { continuation.resume(with: Result { try work() }) }
        }
    }

    private func key(_ hex: String) throws -> ChunkKey {
        guard let key = ChunkKey(hex: hex) else {
            throw APIError.badRequest("'\(hex)' is not a chunk key (64 hex digits)", param: "key", code: "invalid_key")
        }
        return key
    }

    public func stats() async throws -> StoreStatsSnapshot {
        let s = try await blocking { [store] in try store.stats() }
        return StoreStatsSnapshot(entries: s.entries, bytes: s.bytes, pinnedEntries: s.pinnedEntries,
                                  evictions: s.evictions, corruptBlocks: s.corruptFound, chunkSize: s.chunkSize,
                                  documents: s.documents, diskBytes: s.diskBytes, bytesByCodec: s.bytesByCodec)
    }

    public func entries(filter: StoreEntryFilter, after cursor: String?, limit: Int) async throws -> StoreEntryPage {
        let storeFilter = ChunkFilter(docID: filter.document, pinned: filter.pinned)
        let all = try await blocking { [store] in try store.list(filter: storeFilter) }
        var page: [StoreEntry] = []
        var next: String?
        // `list` returns key order, which is hex order: the cursor is the last key seen.
        for e in all where cursor.map({ e.key.hex > $0 }) ?? true {
            if let codec = filter.codec, e.meta.codec != codec { continue }
            if let prefix = filter.keyPrefix, !e.key.hex.hasPrefix(prefix) { continue }
            if page.count == limit {
                next = page.last?.key
                break
            }
            page.append(Self.entry(e.key, e.meta))
        }
        return StoreEntryPage(entries: page, next: next)
    }

    public func entry(key hex: String) async throws -> StoreEntry? {
        let k = try key(hex)
        return try await blocking { [store] in try store.meta(k) }.map { Self.entry(k, $0) }
    }

    public func evict(_ request: StoreEvictRequest) async throws -> StoreEvictResult {
        let rule: EvictionRule
        switch request {
        case .keys(let hexes): rule = .keys(try hexes.map(key))
        case .downTo(let bytes): rule = .toBudget(bytes)
        }
        let report = try await blocking { [store] in try store.evict(rule) }
        return StoreEvictResult(evicted: report.entries, bytesFreed: report.bytes)
    }

    public func setPinned(key hex: String, _ pinned: Bool) async throws -> Bool {
        let k = try key(hex)
        return try await blocking { [store] in
            guard try store.meta(k) != nil else { return false }
            try store.pin([k], pinned: pinned)
            return true
        }
    }

    public func verify() async throws -> StoreVerifyReport {
        let r = try await blocking { [store] in try store.verify() }
        return StoreVerifyReport(checked: r.checked, corrupt: r.corrupt.map(\.hex), removed: r.removed.map(\.hex))
    }

    public func health() -> StoreHealth {
        let c = store.counters
        var problems: [String] = []
        if c.backgroundErrors > 0 {
            problems.append("RocksDB background error (failed compaction or flush): writes are refused until restart")
        }
        if c.needsRepair {
            problems.append("damaged table file: restart the server (the open repairs it) or stop it and run `kvstash repair`")
        }
        if c.writesRefusedDiskFull > 0 {
            problems.append("\(c.writesRefusedDiskFull) writes refused: the store's disk is full")
        }
        return StoreHealth(writable: c.writable, backgroundErrors: c.backgroundErrors, needsRepair: c.needsRepair,
                           writesRefusedDiskFull: c.writesRefusedDiskFull, problems: problems)
    }

    static func entry(_ key: ChunkKey, _ m: ChunkMeta) -> StoreEntry {
        StoreEntry(key: key.hex, parent: m.parent == .root ? nil : m.parent.hex, tokens: m.tokenCount,
                   bytes: m.byteSize, codec: m.codec, created: m.created.timeIntervalSince1970,
                   lastAccess: m.lastAccess.timeIntervalSince1970, hits: m.hits, pinned: m.pinned,
                   documents: m.docIDs)
    }
}
