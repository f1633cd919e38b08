import Logging
import NIOCore
import NIOPosix

/// Counters of a cluster client's routing work.
public struct RedisClusterStats: Sendable, Equatable {
    public var movedRedirects = 0
    public var askRedirects = 0
    public var refreshes = 0
    public var refreshFailures = 0
    public var failedCommands = 0
}

/// A Redis Cluster client: discovers the slot map (CLUSTER SHARDS, falling back to CLUSTER
/// SLOTS), keeps one pipelined `RedisNode` per primary, routes each key by its hash slot and
/// follows redirects. MOVED updates the slot and refreshes the map in the background; ASK
/// sends `ASKING` and the command back to back on the target without touching the map. A
/// node that fails fails its own commands, schedules a refresh, and is reconnected (with
/// backoff) by later commands.
public actor RedisCluster: RedisKeyedClient {
    public nonisolated let seeds: [RedisAddress]
    private let options: RedisConnectionOptions
    private let backoff: ReconnectBackoff
    private let group: EventLoopGroup
    private let logger: Logger
    private let maxRedirects: Int

    private var nodes: [RedisAddress: RedisNode] = [:]
    private var topology: ClusterTopology?
    private var refreshing: Task<ClusterTopology, Error>?
    private var refreshScheduled = false
    private var lastRefresh: ContinuousClock.Instant?
    /// Background refreshes start at most this often.
    private let minRefreshInterval = Duration.milliseconds(100)
    private var lastRefreshError = "no refresh yet"
    private var counters = RedisClusterStats()

    public init(seeds: [RedisAddress], options: RedisConnectionOptions = RedisConnectionOptions(),
                backoff: ReconnectBackoff = ReconnectBackoff(), maxRedirects: Int = 5,
                group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger = Logger(label: "kvstash.redis")) {
        precondition(!seeds.isEmpty, "a cluster client needs at least one seed node")
        self.seeds = seeds
        self.options = options
        self.backoff = backoff
        self.maxRedirects = maxRedirects
        self.group = group
        self.logger = logger
    }

    public var stats: RedisClusterStats { counters }

    /// The current slot map, discovering it first if there is none.
    public func currentTopology() async throws -> ClusterTopology {
        if let topology { return topology }
        return try await refresh()
    }

    /// Reads the slot map from the first node that answers (known primaries, then seeds).
    /// Concurrent calls share one refresh.
    @discardableResult
    public func refresh() async throws -> ClusterTopology {
        if let refreshing { return try await refreshing.value }
        lastRefresh = ContinuousClock.now
        let candidates = Array(topology?.nodes ?? []).sorted { $0.description < $1.description } + seeds
        let clients = candidates.map { node(at: $0) }
        let task = Task { try await Self.discover(from: clients) }
        refreshing = task
        defer { refreshing = nil }
        do {
            let fresh = try await task.value
            topology = fresh
            counters.refreshes += 1
            return fresh
        } catch {
            counters.refreshFailures += 1
            lastRefreshError = "\(error)"
            logger.warning("redis cluster discovery failed", metadata: ["error": "\(error)"])
            throw error
        }
    }

    private static func discover(from clients: [RedisNode]) async throws -> ClusterTopology {
        var errors: [String] = []
        for client in clients {
            do {
                let shards = try await client.send(RESPCommand("CLUSTER", "SHARDS"))
                if let topology = ClusterTopology.fromShards(shards, connectedTo: client.address) { return topology }
                let slots = try await client.send(RESPCommand("CLUSTER", "SLOTS"))
                if let topology = ClusterTopology.fromSlots(slots, connectedTo: client.address) { return topology }
                errors.append("\(client.address): no slot map in CLUSTER SHARDS or CLUSTER SLOTS (\(slots))")
            } catch {
                errors.append("\(error)")
            }
        }
        throw RedisError.noNodeForSlot(-1, "cluster discovery failed: " + errors.joined(separator: "; "))
    }

    /// The primaries of the current slot map.
    public func primaries() async throws -> [RedisNode] {
        try await currentTopology().nodes.sorted { $0.description < $1.description }.map { node(at: $0) }
    }

    private func node(at address: RedisAddress) -> RedisNode {
        if let existing = nodes[address] { return existing }
        let created = RedisNode(address: address, options: options, backoff: backoff, group: group, logger: logger)
        nodes[address] = created
        return created
    }

    /// The node serving each slot, or the reason there is none.
    private func route(_ slots: [Int]) async -> [Result<RedisNode, RedisError>] {
        let map: ClusterTopology
        do {
            map = try await currentTopology()
        } catch {
            return slots.map { .failure(.noNodeForSlot($0, lastRefreshError)) }
        }
        return slots.map { slot in
            guard let owner = map.owners[slot] else {
                refreshInBackground(because: "slot \(slot) unassigned")
                return .failure(.noNodeForSlot(slot, "unassigned in the last slot map"))
            }
            return .success(node(at: owner))
        }
    }

    private func noteMoved(slot: Int, to address: RedisAddress) -> RedisNode {
        counters.movedRedirects += 1
        if var map = topology, map.owners[slot] != address {
            map.assign(slot...slot, to: address)
            topology = map
            refreshInBackground(because: "MOVED \(slot) \(address)")
        }
        return node(at: address)
    }

    private func noteAsk() { counters.askRedirects += 1 }

    private func noteFailure(_ error: RedisError) {
        counters.failedCommands += 1
        refreshInBackground(because: "\(error)")
    }

    /// Schedules one refresh (failures are counted and logged by `refresh`).
    private func refreshInBackground(because reason: String) {
        guard !refreshScheduled, refreshing == nil else { return }
        refreshScheduled = true
        logger.debug("redis cluster refresh scheduled", metadata: ["reason": "\(reason)"])
        let wait = lastRefresh.map { minRefreshInterval - (ContinuousClock.now - $0) } ?? .zero
        Task {
            if wait > .zero { try? await Task.sleep(for: wait) }
            await self.runScheduledRefresh()
        }
    }

    private func runScheduledRefresh() async {
        refreshScheduled = false
        _ = try? await refresh()
    }

    /// A redirect in an error reply: `MOVED <slot> <host:port>` or `ASK <slot> <host:port>`.
    /// An empty host means the host of the node that answered.
    static func redirect(in message: String, from node: RedisAddress) -> (ask: Bool, slot: Int, to: RedisAddress)? {
        let parts = message.split(separator: " ")
        guard parts.count == 3, parts[0] == "MOVED" || parts[0] == "ASK", let slot = Int(parts[1]),
              (0..<HashSlot.count).contains(slot), let colon = parts[2].lastIndex(of: ":"),
              let port = Int(parts[2][parts[2].index(after: colon)...]) else { return nil }
        let host = String(parts[2][..<colon])
        return (parts[0] == "ASK", slot, RedisAddress(host: host.isEmpty ? node.host : host, port: port))
    }

    public nonisolated func execute(_ command: RESPCommand, key: [UInt8]) async -> Result<RESPValue, RedisError> {
        let slot = HashSlot.of(key)
        switch await route([slot])[0] {
        case .failure(let error): return .failure(error)
        case .success(let target): return await follow(command, slot: slot, from: target, asking: false)
        }
    }

    /// Sends the command to `target` and follows up to `maxRedirects` redirects.
    private nonisolated func follow(_ command: RESPCommand, slot: Int, from target: RedisNode,
                                    asking: Bool) async -> Result<RESPValue, RedisError> {
        var target = target
        var asking = asking
        for _ in 0...maxRedirects {
            let reply = asking
                ? await target.pipeline([RESPCommand("ASKING"), command])[1]
                : await target.pipeline([command])[0]
            switch await handle(reply, command: command, from: target) {
            case .done(let result): return result
            case .redirect(let next, let ask):
                target = next
                asking = ask
            }
        }
        return .failure(.tooManyRedirects(target.address, slot: slot))
    }

    private enum Outcome {
        case done(Result<RESPValue, RedisError>)
        case redirect(RedisNode, ask: Bool)
    }

    private func handle(_ reply: Result<RESPValue, RedisError>, command: RESPCommand, from target: RedisNode) -> Outcome {
        switch reply {
        case .success(.error(let message)):
            if let redirect = Self.redirect(in: message, from: target.address) {
                if redirect.ask {
                    noteAsk()
                    return .redirect(node(at: redirect.to), ask: true)
                }
                return .redirect(noteMoved(slot: redirect.slot, to: redirect.to), ask: false)
            }
            return .done(.failure(.server(target.address, command: command.name, message: message)))
        case .success(let value):
            return .done(.success(value))
        case .failure(let error):
            noteFailure(error)
            return .done(.failure(error))
        }
    }

    public nonisolated func executeMany(_ requests: [KeyedCommand]) async -> [Result<RESPValue, RedisError>] {
        let slots = requests.map { HashSlot.of($0.key) }
        let routes = await route(slots)
        var results = [Result<RESPValue, RedisError>](repeating: .failure(.noNodeForSlot(-1, "not run")),
                                                      count: requests.count)
        var byNode: [RedisAddress: (node: RedisNode, indices: [Int])] = [:]
        for (index, route) in routes.enumerated() {
            switch route {
            case .failure(let error): results[index] = .failure(error)
            case .success(let node): byNode[node.address, default: (node, [])].indices.append(index)
            }
        }
        let groups = Array(byNode.values)
        await withTaskGroup(of: [(Int, Result<RESPValue, RedisError>)].self) { tasks in
            for group in groups {
                tasks.addTask {
                    let replies = await group.node.pipeline(group.indices.map { requests[$0].command })
                    var answered: [(Int, Result<RESPValue, RedisError>)] = []
                    for (index, reply) in zip(group.indices, replies) {
                        let result: Result<RESPValue, RedisError>
                        switch await self.handle(reply, command: requests[index].command, from: group.node) {
                        case .done(let done): result = done
                        case .redirect(let next, let ask):
                            result = await self.follow(requests[index].command, slot: slots[index], from: next, asking: ask)
                        }
                        answered.append((index, result))
                    }
                    return answered
                }
            }
            for await answered in tasks {
                for (index, result) in answered { results[index] = result }
            }
        }
        return results
    }

    /// Closes every node connection.
    public func close() async {
        for node in nodes.values { await node.close() }
    }
}
