/// Which primary serves each of the 16384 slots, as read from CLUSTER SHARDS (Redis 7) or
/// CLUSTER SLOTS.
public struct ClusterTopology: Sendable, Equatable {
    /// The primary of each slot; nil for an unassigned slot.
    public private(set) var owners: [RedisAddress?]

    public init() { owners = Array(repeating: nil, count: HashSlot.count) }

    public var nodes: Set<RedisAddress> { Set(owners.compactMap { $0 }) }

    public mutating func assign(_ slots: ClosedRange<Int>, to node: RedisAddress) {
        for slot in slots.clamped(to: 0...(HashSlot.count - 1)) { owners[slot] = node }
    }

    /// Parses a CLUSTER SHARDS reply: an array of shards, each a flat map with `slots` (a flat
    /// list of inclusive start/end pairs) and `nodes` (flat maps with `ip`, `endpoint`, `port`,
    /// `role`, `health`). The primary of each shard (an online one if there is one) gets its slots. `connectedTo` stands
    /// in for an endpoint reported as `?` or empty.
    public static func fromShards(_ reply: RESPValue, connectedTo: RedisAddress) -> ClusterTopology? {
        guard let shards = reply.array else { return nil }
        var topology = ClusterTopology()
        for shard in shards {
            guard let fields = shard.array.map(Self.map),
                  let slots = fields["slots"]?.array, let nodes = fields["nodes"]?.array else { return nil }
            let primaries = nodes.compactMap { $0.array.map(Self.map) }.filter { $0["role"]?.string == "master" }
            // A primary reported failed still owns its slots (without a replica nobody takes
            // over): commands to it fail naming it, and work again once it is back.
            let online = primaries.first { ($0["health"]?.string ?? "online") == "online" }
            guard let primary = online ?? primaries.first else { continue }
            guard let port = primary["port"]?.int else { return nil }
            let host = [primary["endpoint"]?.string, primary["ip"]?.string]
                .compactMap { $0 }.first { !$0.isEmpty && $0 != "?" } ?? connectedTo.host
            let address = RedisAddress(host: host, port: Int(port))
            var index = 0
            while index + 1 < slots.count {
                guard let start = slots[index].int, let end = slots[index + 1].int, start <= end else { return nil }
                topology.assign(Int(start)...Int(end), to: address)
                index += 2
            }
        }
        return topology
    }

    /// Parses a CLUSTER SLOTS reply: arrays of start, end, then the primary as [ip, port, ...].
    public static func fromSlots(_ reply: RESPValue, connectedTo: RedisAddress) -> ClusterTopology? {
        guard let ranges = reply.array else { return nil }
        var topology = ClusterTopology()
        for range in ranges {
            guard let fields = range.array, fields.count >= 3,
                  let start = fields[0].int, let end = fields[1].int, start <= end,
                  let primary = fields[2].array, primary.count >= 2, let port = primary[1].int else { return nil }
            let ip = primary[0].string ?? ""
            let host = ip.isEmpty || ip == "?" ? connectedTo.host : ip
            topology.assign(Int(start)...Int(end), to: RedisAddress(host: host, port: Int(port)))
        }
        return topology
    }

    private static func map(_ flat: [RESPValue]) -> [String: RESPValue] {
        var result: [String: RESPValue] = [:]
        var index = 0
        while index + 1 < flat.count {
            if let key = flat[index].string { result[key] = flat[index + 1] }
            index += 2
        }
        return result
    }
}
