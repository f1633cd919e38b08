import Foundation
import KVStashRedis
import KVStashStore

/// `kvstash stats --json` with a shared tier: the store's fields as without one, plus `shared`.
struct StatsWithShared: Encodable {
    let store: StoreStats
    let shared: RedisTierStats

    enum Key: String, CodingKey { case shared }

    func encode(to encoder: any Encoder) throws {
        try store.encode(to: encoder)
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(shared, forKey: .shared)
    }
}

extension SharedTierOptions {
    /// What the shared tier holds (nil without `--shared` or `$KVSTASH_SHARED`). A tier that
    /// cannot be opened (wrong credentials, a bad URL) is reported, not thrown.
    func stats(scanBudget: Duration) -> RedisTierStats? {
        guard url != nil else { return nil }
        let seconds = Double(scanBudget.components.seconds) + Double(scanBudget.components.attoseconds) / 1e18
        do {
            return try open()?.stats(scanBudget: scanBudget)
        } catch {
            let text = "\(error)"
            return RedisTierStats(tier: "shared", namespace: RedisChunkTierOptions().namespace, reachable: false,
                                  error: text.hasPrefix("tier ") ? text : "tier 'shared': \(text)", nodes: [],
                                  scanBudgetSeconds: seconds)
        }
    }
}

extension RedisTierStats {
    /// The `kvstash stats` table rows of the shared tier.
    var tableRows: [[String]] {
        var rows: [[String]] = [["tier \(tier)", reachable ? "reachable, \(nodes.count) nodes, namespace \(namespace)" : "UNREACHABLE"]]
        if let error { rows.append(["  error", error]) }
        guard reachable else { return rows }
        rows.append(["  chunks", "\(chunks)\(scanComplete ? "" : "+") (\(formatBytes(chunkBytes))\(scanComplete ? "" : "+"))"
                     + (scanComplete ? "" : ", scan stopped after \(scanBudgetSeconds) s")])
        for n in nodes {
            guard n.error == nil else { rows.append(["  node \(n.node)", "error: \(n.error ?? "")"]); continue }
            let memory = n.usedMemoryBytes.map(formatBytes) ?? "?"
            let limit = n.maxMemoryBytes.map { $0 == 0 ? "no maxmemory" : "maxmemory \(formatBytes($0))" } ?? "?"
            rows.append(["  node \(n.node)", "\(n.chunks) chunks (\(formatBytes(n.chunkBytes))), \(n.keys ?? 0) keys in all, "
                         + "\(memory) used, \(limit), policy \(n.maxMemoryPolicy ?? "?"), \(n.evictedKeys ?? 0) evicted"])
        }
        return rows
    }
}
