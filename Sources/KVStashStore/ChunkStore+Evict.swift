import Foundation

/// What to evict.
public enum EvictionRule: Sendable {
    /// Approximate LRU down to this many value bytes: least recently read first (at one-minute
    /// granularity), and at equal age the deeper chunks of a chain (leaves) before their roots.
    case toBudget(Int)
    /// Entries last read before this date.
    case olderThan(Date)
    /// Entries last read longer ago than the store's TTL (nothing without a TTL).
    case expired
    /// Entries of one model fingerprint.
    case model([UInt8])
    /// Entries of document `id` of tenant `salt` (also drops the document record). Entries
    /// another document shares are kept; only this document's link to them goes.
    case document(String, salt: [UInt8] = [])
    /// These keys, each with its chunk's sliding-layer block where one is stored (that block
    /// is unusable without the first; the first stays usable alone, outside the window).
    case keys([ChunkKey])
}

/// What `evict` removed.
public struct EvictionReport: Sendable, Codable, Equatable {
    public var entries = 0
    public var bytes = 0
    public var keys: [ChunkKey] = []
    /// Entries kept because another document shares them (`.document` only): the evicted
    /// document's id was removed from their meta.
    public var untagged = 0
    public init() {}
}

extension ChunkStore {
    /// Removes entries by `rule`. Pinned entries are kept unless `includePinned`.
    @discardableResult
    public func evict(_ rule: EvictionRule, includePinned: Bool = false) throws -> EvictionReport {
        try gate.enter(); defer { gate.leave() }
        guard !readOnly else { throw StoreError.readOnly(path: path) }
        return try evictUngated(rule, includePinned: includePinned)
    }

    /// `evict` inside the gate. `making` is the key of a value about to be put (see
    /// `makeRoom`): the first block of its chunk is kept.
    func evictUngated(_ rule: EvictionRule, includePinned: Bool, making key: ChunkKey? = nil) throws -> EvictionReport {
        var victims = try candidates(rule, includePinned: includePinned)
        if let key { victims.removeAll { $0.isCompleted(by: key) } }
        var report = EvictionReport()
        for unit in victims {
            if case .toBudget(let budget) = rule, counterState.withLock({ $0.totalBytes }) <= budget { break }
            for entry in unit.members { try evictEntry(entry, rule, includePinned: includePinned, report: &report) }
        }
        if case .document(let id, let salt) = rule, !readOnly {
            let ns = DocKeys.namespace(salt)
            let batch = db.makeBatch()
            batch.delete(.docs, DocKeys.record(ns, id))
            for key in try linkedChunks(id: id, salt: salt) { deleteLink(batch, key, ns: ns, id: id) }
            try rocks { try db.write(batch) }
        }
        if report.entries > 0 { try persistCounters() }
        return report
    }

    /// Removes one entry `rule` selected (for `.document`, only its link when another
    /// document shares it) and counts it in `report`.
    private func evictEntry(_ entry: ChunkEntry, _ rule: EvictionRule, includePinned: Bool,
                            report: inout EvictionReport) throws {
        if case .document(let id, let salt) = rule {
            let ns = DocKeys.namespace(salt)
            let linked = try links(of: entry.key)
            if linked.contains(where: { $0.ns != ns || $0.id != id }) {
                // Shared with another document: only this document's link goes.
                let batch = db.makeBatch()
                deleteLink(batch, entry.key, ns: ns, id: id)
                try rocks { try db.write(batch) }
                report.untagged += 1
                return
            }
        }
        if try remove(entry.key, includePinned: includePinned) {
            report.entries += 1
            report.bytes += entry.meta.byteSize
            report.keys.append(entry.key)
        }
    }

    /// What `rule` selects, in eviction order. The age and budget rules and `.keys` take a
    /// chunk's two blocks as one unit (`EvictionUnit`); the others select values one by one (a
    /// document links both blocks, a model's are both its own).
    func candidates(_ rule: EvictionRule, includePinned: Bool) throws -> [EvictionUnit] {
        let now = Date()
        let keep = { (m: ChunkMeta) in includePinned || !m.pinned }
        let units = { (accept: (ChunkMeta) -> Bool) in
            EvictionUnit.group(try self.scanMeta { _, _ in true }).filter { accept($0.summary.meta) }
        }
        switch rule {
        case .toBudget:
            return try units { !$0.pinned }.sorted { Self.lruOrder($0.summary, $1.summary) }
        case .olderThan(let date):
            return try units { keep($0) && $0.lastAccess < date }
        case .expired:
            guard let ttl = options.ttl else { return [] }
            return try units { !$0.pinned && now.timeIntervalSince($0.lastAccess) > ttl }
        case .model(let fp):
            return try scanMeta { _, m in keep(m) && m.modelFingerprint == fp }.map { EvictionUnit([$0]) }
        case .document(let id, let salt):
            return try linkedChunks(id: id, salt: salt).compactMap { k in
                try readMeta(k).flatMap { keep($0) ? EvictionUnit([ChunkEntry(key: k, meta: $0)]) : nil }
            }
        case .keys(let keys):
            return try keys.compactMap { k in
                guard let meta = try readMeta(k) else { return nil }
                let second = k.slidingLayersKey
                let partner = try readMeta(second).map { [ChunkEntry(key: second, meta: $0)] } ?? []
                let unit = EvictionUnit([ChunkEntry(key: k, meta: meta)] + partner)
                return keep(unit.summary.meta) ? unit : nil  // a pin on either block keeps both
            }
        }
    }

    /// Approximate LRU: older minute first; within a minute, deeper chunk first.
    static func lruOrder(_ a: ChunkEntry, _ b: ChunkEntry) -> Bool {
        let ma = Int(a.meta.lastAccess.timeIntervalSince1970 / 60)
        let mb = Int(b.meta.lastAccess.timeIntervalSince1970 / 60)
        if ma != mb { return ma < mb }
        if a.meta.chainIndex != b.meta.chainIndex { return a.meta.chainIndex > b.meta.chainIndex }
        return a.meta.lastAccess < b.meta.lastAccess
    }

    /// Deletes value and meta of `key` atomically; false if it was gone (or pinned meanwhile).
    func remove(_ key: ChunkKey, includePinned: Bool) throws -> Bool {
        let size: Int? = try withStripe(key) {
            guard let m = try readMeta(key), includePinned || !m.pinned else { return nil }
            let batch = db.makeBatch()
            batch.delete(.chunks, key.bytes)
            batch.delete(.meta, key.bytes)
            try deleteLinks(batch, of: key)
            try rocks { try db.write(batch) }
            return m.byteSize
        }
        guard let size else { return false }
        tracker.forget(key)
        counterState.withLock { $0.totalBytes -= size; $0.entries -= 1; $0.evictions += 1; $0.dirty = true }
        return true
    }
}
