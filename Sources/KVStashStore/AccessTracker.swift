import Foundation
import Logging
import Synchronization

/// Coalesces last-access times and hit counts in memory so reads cost no writes.
final class AccessTracker: Sendable {
    struct Pending: Sendable {
        var lastAccess: Date
        var hits: Int
    }
    private let pending = Mutex([ChunkKey: Pending]())

    /// Records one hit; returns how many keys have pending updates.
    func record(_ key: ChunkKey, at now: Date = Date()) -> Int {
        pending.withLock { p in
            p[key, default: Pending(lastAccess: now, hits: 0)].hits += 1
            p[key]!.lastAccess = now
            return p.count
        }
    }

    func forget(_ key: ChunkKey) { _ = pending.withLock { $0.removeValue(forKey: key) } }

    /// Takes every pending update, leaving none.
    func drain() -> [ChunkKey: Pending] { pending.withLock { p in defer { p = [:] }; return p } }

    /// Puts back updates that could not be written.
    func restore(_ updates: [ChunkKey: Pending]) {
        pending.withLock { p in
            for (k, u) in updates {
                if let cur = p[k] {
                    p[k] = Pending(lastAccess: max(cur.lastAccess, u.lastAccess), hits: cur.hits + u.hits)
                } else {
                    p[k] = u
                }
            }
        }
    }

    /// `meta` with pending hits and access time applied.
    func overlay(_ key: ChunkKey, _ meta: ChunkMeta) -> ChunkMeta {
        guard let u = pending.withLock({ $0[key] }) else { return meta }
        var m = meta
        m.hits += u.hits
        m.lastAccess = max(m.lastAccess, u.lastAccess)
        return m
    }

    var pendingHits: Int { pending.withLock { $0.values.reduce(0) { $0 + $1.hits } } }
}

extension ChunkStore {
    /// Writes coalesced access updates and counters now (also done periodically and on close).
    public func flushAccess() throws {
        try gate.enter(); defer { gate.leave() }
        guard !readOnly else { return }
        try flushAccessUngated()
    }

    func flushAccessUngated() throws {
        let updates = tracker.drain()
        var byStripe: [Int: [(ChunkKey, AccessTracker.Pending)]] = [:]
        for (k, u) in updates { byStripe[Int(k.bytes[0]) & 63, default: []].append((k, u)) }
        do {
            for (_, group) in byStripe {
                try withStripe(group[0].0) {
                    let batch = db.makeBatch()
                    for (key, u) in group {
                        guard var m = try readMeta(key) else { continue } // evicted meanwhile
                        m.hits += u.hits
                        m.lastAccess = max(m.lastAccess, u.lastAccess)
                        batch.put(.meta, key.bytes, MetaCodec.encode(m))
                    }
                    try rocks { try db.write(batch) }
                }
            }
        } catch {
            tracker.restore(updates)
            throw error
        }
        try persistCounters()
    }

    func persistCounters() throws {
        let c = counterState.withLock { c -> Counters? in
            guard c.dirty else { return nil }
            c.dirty = false
            return c
        }
        guard let c else { return }
        let batch = db.makeBatch()
        batch.put(.manifest, Manifest.corruptKey, Manifest.encodeInt(c.corrupt))
        batch.put(.manifest, Manifest.evictionsKey, Manifest.encodeInt(c.evictions))
        try rocks { try db.write(batch) }
    }

    /// Background thread: flushes access updates and applies the TTL every `flushInterval`.
    func startMaintenance() {
        let interval = options.flushInterval
        guard interval > 0 else { return }
        let thread = Thread { [weak self] in
            var elapsed = 0.0
            while true {
                Thread.sleep(forTimeInterval: 0.1)
                elapsed += 0.1
                guard let store = self, !store.gate.isClosed else { return }
                guard elapsed >= interval else { continue }
                elapsed = 0
                do { try store.flushAccess() } catch {
                    storeLogger.warning("access flush failed; retrying at the next interval", metadata: ["error": "\(error)"])
                }
                if store.options.ttl != nil {
                    do { _ = try store.evict(.expired) } catch {
                        storeLogger.warning("TTL eviction failed; retrying at the next interval", metadata: ["error": "\(error)"])
                    }
                }
            }
        }
        thread.name = "kvstash-store-maintenance"
        thread.start()
    }
}
