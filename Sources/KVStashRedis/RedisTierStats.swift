import NIOCore

/// One node of a shared tier as `RedisChunkTier.stats` finds it.
public struct RedisNodeStats: Sendable, Codable, Equatable {
    public var node: String
    /// The node's error when it did not answer (it names the node).
    public var error: String?
    /// All keys on the node (`DBSIZE`), any namespace.
    public var keys: Int?
    /// `INFO memory` and `INFO stats`.
    public var usedMemoryBytes: Int?
    public var maxMemoryBytes: Int?
    public var maxMemoryPolicy: String?
    public var evictedKeys: Int?
    /// Chunk keys under the tier's namespace found by `SCAN`, and the sum of their values'
    /// lengths (`STRLEN`).
    public var chunks = 0
    public var chunkBytes = 0
    /// False when the scan stopped at its time budget (the counts are then lower bounds).
    public var scanComplete = false
}

/// What a shared tier holds, node by node. Cheap by construction: per node one `DBSIZE`,
/// one `INFO memory` and `INFO stats`, then a `SCAN ... MATCH namespace*` whose keys' sizes
/// are read with pipelined `STRLEN`s, all nodes at once and stopped at `scanBudget`.
public struct RedisTierStats: Sendable, Codable, Equatable {
    public var tier: String
    public var namespace: String
    /// False when no node answered; `error` then names the tier and why.
    public var reachable: Bool
    public var error: String?
    public var nodes: [RedisNodeStats]
    /// Sums over the nodes; `scanComplete` when every answering node's scan ended.
    public var chunks: Int
    public var chunkBytes: Int
    public var scanComplete: Bool
    public var scanBudgetSeconds: Double

    public init(tier: String, namespace: String, reachable: Bool, error: String?, nodes: [RedisNodeStats],
                scanBudgetSeconds: Double) {
        self.tier = tier
        self.namespace = namespace
        self.reachable = reachable
        self.error = error
        self.nodes = nodes
        chunks = nodes.reduce(0) { $0 + $1.chunks }
        chunkBytes = nodes.reduce(0) { $0 + $1.chunkBytes }
        scanComplete = reachable && nodes.allSatisfy { $0.error != nil || $0.scanComplete }
        self.scanBudgetSeconds = scanBudgetSeconds
    }
}

extension RedisChunkTier {
    /// The tier's nodes and what they hold under its namespace (see `RedisTierStats`).
    public func stats(scanBudget: Duration = .seconds(2)) async -> RedisTierStats {
        let deadline = ContinuousClock.now + scanBudget
        let budget = Double(scanBudget.components.seconds) + Double(scanBudget.components.attoseconds) / 1e18
        let nodes: [RedisNode]
        do {
            nodes = try await client.primaries()
        } catch {
            return RedisTierStats(tier: options.name, namespace: options.namespace, reachable: false,
                                  error: "tier '\(options.name)': \(error)", nodes: [], scanBudgetSeconds: budget)
        }
        let pattern = Self.globEscaped(options.namespace) + "*"
        let found = await withTaskGroup(of: RedisNodeStats.self) { group in
            for node in nodes { group.addTask { await Self.stats(of: node, pattern: pattern, deadline: deadline) } }
            var all: [RedisNodeStats] = []
            for await one in group { all.append(one) }
            return all.sorted { $0.node < $1.node }
        }
        let reachable = found.contains { $0.error == nil }
        return RedisTierStats(tier: options.name, namespace: options.namespace, reachable: reachable,
                              error: reachable ? nil : "tier '\(options.name)': " + found.compactMap(\.error).joined(separator: "; "),
                              nodes: found, scanBudgetSeconds: budget)
    }

    private static func stats(of node: RedisNode, pattern: String, deadline: ContinuousClock.Instant) async -> RedisNodeStats {
        var s = RedisNodeStats(node: node.address.description)
        do {
            let replies = await node.pipeline([RESPCommand("DBSIZE"), RESPCommand("INFO", "memory"), RESPCommand("INFO", "stats")])
            s.keys = try replies[0].get().int.map(Int.init)
            let info = Self.infoFields((try replies[1].get().string ?? "") + "\n" + (try replies[2].get().string ?? ""))
            s.usedMemoryBytes = info["used_memory"].flatMap { Int($0) }
            s.maxMemoryBytes = info["maxmemory"].flatMap { Int($0) }
            s.maxMemoryPolicy = info["maxmemory_policy"]
            s.evictedKeys = info["evicted_keys"].flatMap { Int($0) }
            var cursor = "0"
            repeat {
                let page = try await node.send(RESPCommand("SCAN", cursor, "MATCH", pattern, "COUNT", "1000"))
                guard let parts = page.array, parts.count == 2, let next = parts[0].string, let keys = parts[1].array else {
                    throw RedisError.unexpectedReply(node.address, command: "SCAN", "\(page)")
                }
                cursor = next
                let lengths = await node.pipeline(keys.compactMap(\.bytes).map { RESPCommand([ByteBuffer(string: "STRLEN"), ByteBuffer(bytes: $0)]) })
                for length in lengths {
                    s.chunks += 1
                    s.chunkBytes += Int(try length.get().int ?? 0)
                }
            } while cursor != "0" && ContinuousClock.now < deadline
            s.scanComplete = cursor == "0"
        } catch {
            s.error = "\(error)"
        }
        return s
    }

    /// `field:value` lines of an `INFO` reply.
    static func infoFields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = String(line[line.index(after: colon)...])
        }
        return fields
    }

    /// `text` with the glob characters of `SCAN MATCH` escaped.
    static func globEscaped(_ text: String) -> String {
        var out = ""
        for ch in text {
            if "*?[]\\".contains(ch) { out.append("\\") }
            out.append(ch)
        }
        return out
    }
}

extension SharedRedisTier {
    /// `RedisChunkTier.stats` for a synchronous caller (not on Swift's cooperative pool).
    public func stats(scanBudget: Duration = .seconds(2)) -> RedisTierStats {
        Self.wait(until: nil) { [redis] in await redis.stats(scanBudget: scanBudget) }
            ?? RedisTierStats(tier: tierName, namespace: redis.options.namespace, reachable: false,
                              error: "tier '\(tierName)': abandoned", nodes: [], scanBudgetSeconds: 0)
    }
}
