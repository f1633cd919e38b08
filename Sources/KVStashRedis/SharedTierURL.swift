import KVStashChunks
import Logging

/// `redis://[user:password@]host:port[,host:port...]`: the nodes of a shared tier (seeds of
/// a cluster, or one standalone server) and its credentials. `%XX` escapes are decoded in
/// user and password.
public struct RedisTierURL: Sendable, Equatable, CustomStringConvertible {
    public var username: String?
    public var password: String?
    public var nodes: [RedisAddress]

    public init(parsing text: String) throws(ChunkTierError) {
        let bad = { (why: String) in ChunkTierError(tier: "shared", "bad URL '\(RedisTierURL.redact(text))': \(why); expected redis://[user:password@]host:port[,host:port...]") }
        guard text.hasPrefix("redis://") else { throw bad("not redis://") }
        var rest = Substring(text.dropFirst("redis://".count))
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            let parts = credentials.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw bad("credentials need user:password (or :password)") }
            guard let user = Self.percentDecoded(parts[0]), let password = Self.percentDecoded(parts[1]) else {
                throw bad("bad %-escape in the credentials")
            }
            username = user.isEmpty ? nil : user
            self.password = password
        }
        nodes = []
        for node in rest.split(separator: ",") {
            guard let address = RedisAddress(String(node)) else { throw bad("'\(node)' is not host:port") }
            nodes.append(address)
        }
        guard !nodes.isEmpty else { throw bad("no host:port") }
    }

    /// The URL without its password.
    public var description: String {
        let credentials = password == nil ? "" : "\(username ?? ""):***@"
        return "redis://" + credentials + nodes.map(\.description).joined(separator: ",")
    }

    static func redact(_ text: String) -> String {
        guard let at = text.lastIndex(of: "@") else { return text }
        return "redis://***" + text[at...]
    }

    static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            guard byte == UInt8(ascii: "%") else { bytes.append(byte); continue }
            guard utf8.count >= 2, let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) else { return nil }
            bytes.append(value)
            utf8 = utf8.dropFirst(2)
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

/// One address that may be a cluster node or a standalone server, decided on first
/// contact (`CLUSTER INFO` is an error reply on a standalone server) and retried on each
/// call until a node answers.
public actor RedisAutoClient: RedisKeyedClient {
    private let node: RedisNode
    private let cluster: RedisCluster
    private var isCluster: Bool?

    public init(address: RedisAddress, options: RedisConnectionOptions, logger: Logger) {
        node = RedisNode(address: address, options: options, logger: logger)
        cluster = RedisCluster(seeds: [address], options: options, logger: logger)
    }

    private func resolved() async -> Result<any RedisKeyedClient, RedisError> {
        if let isCluster { return .success(isCluster ? cluster : node) }
        switch await node.pipeline([RESPCommand("CLUSTER", "INFO")])[0] {
        case .failure(let error): return .failure(error)
        case .success(.error): isCluster = false
        case .success: isCluster = true
        }
        return .success(isCluster == true ? cluster : node)
    }

    public nonisolated func execute(_ command: RESPCommand, key: [UInt8]) async -> Result<RESPValue, RedisError> {
        switch await resolved() {
        case .success(let client): return await client.execute(command, key: key)
        case .failure(let error): return .failure(error)
        }
    }

    public nonisolated func executeMany(_ requests: [KeyedCommand]) async -> [Result<RESPValue, RedisError>] {
        switch await resolved() {
        case .success(let client): return await client.executeMany(requests)
        case .failure(let error): return requests.map { _ in .failure(error) }
        }
    }

    public nonisolated func primaries() async throws -> [RedisNode] {
        try await resolved().get().primaries()
    }
}

extension SharedRedisTier {
    /// Opens the shared tier at `url` and checks it with a PING. Wrong credentials throw
    /// (naming the tier and node); an unreachable tier is logged and returned anyway: it
    /// reads as absent and its nodes are reconnected with backoff as requests use it.
    public static func open(_ url: RedisTierURL, name: String = "shared", commandTimeout: Duration = .seconds(2),
                            logger: Logger = Logger(label: "kvstash.redis.tier")) async throws(ChunkTierError) -> SharedRedisTier {
        let options = RedisConnectionOptions(username: url.username, password: url.password, connectTimeout: .seconds(1),
                                             commandTimeout: .nanoseconds(commandTimeout.components.seconds * 1_000_000_000
                                                                          + commandTimeout.components.attoseconds / 1_000_000_000))
        let client: any RedisKeyedClient = url.nodes.count > 1
            ? RedisCluster(seeds: url.nodes, options: options, logger: logger)
            : RedisAutoClient(address: url.nodes[0], options: options, logger: logger)
        let tier = SharedRedisTier(RedisChunkTier(client: client, options: RedisChunkTierOptions(name: name), logger: logger),
                                   logger: logger)
        if case .failure(let error) = await client.execute(RESPCommand("PING"), key: Array("kvstash".utf8)) {
            let text = "\(error)"
            if text.contains("authentication failed") || text.contains("WRONGPASS") || text.contains("NOAUTH") {
                throw ChunkTierError(tier: name, "\(url): \(text)")
            }
            logger.warning("shared tier unreachable at start; running from the local store and reconnecting as requests use it",
                           metadata: ["tier": "\(name)", "url": "\(url)", "error": "\(text)"])
        }
        return tier
    }

    /// `open` for a synchronous caller (not on Swift's cooperative pool).
    public static func openWaiting(_ url: RedisTierURL, name: String = "shared",
                                   logger: Logger = Logger(label: "kvstash.redis.tier")) throws(ChunkTierError) -> SharedRedisTier {
        switch waitResult({ try await open(url, name: name, logger: logger) }) {
        case .success(let tier): return tier
        case .failure(let error as ChunkTierError): throw error
        case .failure(let error): throw ChunkTierError(tier: name, "\(error)")
        }
    }
}
