import Logging
import NIOConcurrencyHelpers
import NIOCore

/// How a `RedisChunkTier` names and keeps its entries.
public struct RedisChunkTierOptions: Sendable {
    /// Names the tier in errors, logs and metrics.
    public var name: String
    /// Prefix of every Redis key; a chunk key becomes `namespace` + its lowercase hex.
    public var namespace: String
    /// Expiry of written entries (`SET ... PX`); nil: no expiry (the server's eviction
    /// policy decides).
    public var ttl: Duration?
    /// Prefix of the Redis key of a named record (`putRecord`): `recordNamespace` + name.
    public var recordNamespace: String

    public init(name: String = "redis", namespace: String = "kvstash:chunk:", ttl: Duration? = nil,
                recordNamespace: String = "kvstash:record:") {
        self.name = name
        self.namespace = namespace
        self.ttl = ttl
        self.recordNamespace = recordNamespace
    }
}

/// A failed tier operation: the tier, the operation, and the Redis error (which names the node).
public struct RedisTierError: Error, CustomStringConvertible {
    public var tier: String
    public var operation: String
    public var underlying: RedisError

    public var description: String { "tier '\(tier)' \(operation): \(underlying)" }
}

/// What a tier has done since it was created.
public struct RedisTierCounters: Sendable, Equatable {
    public var gets = 0
    public var hits = 0
    public var misses = 0
    public var bytesRead = 0
    public var puts = 0
    /// Puts that found the key already present (write-once: the stored value is kept).
    public var putsAlreadyPresent = 0
    public var bytesWritten = 0
    public var probes = 0
    public var discards = 0
    public var errors = 0
    /// Calls timed (each `get`, `getMany`, `put`, `probe`, `discard` is one).
    public var calls = 0
    public var latencySeconds = 0.0
    public var maxLatencySeconds = 0.0
}

/// A shared chunk tier on Redis (a cluster or a single node): opaque values (the project's
/// self-checking KV blocks) by chunk key, written once with `SET key value NX`.
public final class RedisChunkTier: Sendable {
    public let client: any RedisKeyedClient
    public let options: RedisChunkTierOptions
    private let counterBox = NIOLockedValueBox(RedisTierCounters())
    private let logger: Logger

    public init(client: any RedisKeyedClient, options: RedisChunkTierOptions = RedisChunkTierOptions(),
                logger: Logger = Logger(label: "kvstash.redis.tier")) {
        self.client = client
        self.options = options
        self.logger = logger
    }

    public var counters: RedisTierCounters { counterBox.withLockedValue { $0 } }

    /// The Redis key of a chunk key.
    public func redisKey(_ key: [UInt8]) -> [UInt8] {
        let digits = Array("0123456789abcdef".utf8)
        var out = Array(options.namespace.utf8)
        out.reserveCapacity(out.count + key.count * 2)
        for byte in key {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return out
    }

    /// Stores the value unless the key is present. Returns true when this call stored it.
    @discardableResult
    public func put(_ key: [UInt8], value: [UInt8]) async throws(RedisTierError) -> Bool {
        let redisKey = redisKey(key)
        var arguments = [ByteBuffer(bytes: Array("SET".utf8)), ByteBuffer(bytes: redisKey), ByteBuffer(bytes: value),
                         ByteBuffer(string: "NX")]
        if let ttl = options.ttl {
            let milliseconds = max(1, ttl.components.seconds * 1000 + ttl.components.attoseconds / 1_000_000_000_000_000)
            arguments += [ByteBuffer(string: "PX"), ByteBuffer(string: String(milliseconds))]
        }
        let reply = try await timed("put") { await client.execute(RESPCommand(arguments), key: redisKey) }
        let stored: Bool
        switch reply {
        case .simpleString("OK"): stored = true
        case .null: stored = false
        default: throw fail("put", .unexpectedReply(nil, command: "SET", "\(reply)"))
        }
        counterBox.withLockedValue {
            $0.puts += 1
            if stored { $0.bytesWritten += value.count } else { $0.putsAlreadyPresent += 1 }
        }
        return stored
    }

    /// The value of the key, or nil when it is absent.
    public func get(_ key: [UInt8]) async throws(RedisTierError) -> [UInt8]? {
        try await getMany([key])[0].get()
    }

    /// The values of many keys, pipelined per node. A failing node fails only its keys.
    public func getMany(_ keys: [[UInt8]]) async -> [Result<[UInt8]?, RedisTierError>] {
        let requests = keys.map { key in
            let redisKey = redisKey(key)
            return KeyedCommand(key: redisKey, command: RESPCommand([ByteBuffer(string: "GET"), ByteBuffer(bytes: redisKey)]))
        }
        let start = ContinuousClock.now
        let replies = await client.executeMany(requests)
        var hits = 0, misses = 0, bytes = 0
        let results = replies.map { reply -> Result<[UInt8]?, RedisTierError> in
            switch reply {
            case .success(.bulkString(let buffer)):
                hits += 1
                bytes += buffer.readableBytes
                return .success(Array(buffer.readableBytesView))
            case .success(.null):
                misses += 1
                return .success(nil)
            case .success(let other):
                return .failure(fail("get", .unexpectedReply(nil, command: "GET", "\(other)"), inBatch: true))
            case .failure(let error):
                return .failure(fail("get", error, inBatch: true))
            }
        }
        let failures = results.compactMap { result -> RedisTierError? in
            if case .failure(let error) = result { return error }
            return nil
        }
        logBatchFailures("get", failed: failures.count, of: keys.count, first: failures.first)
        record(since: start) {
            $0.gets += keys.count
            $0.hits += hits
            $0.misses += misses
            $0.bytesRead += bytes
        }
        return results
    }

    /// Which keys are present, pipelined per node. A key whose node fails reads as absent
    /// (the failure is counted and logged).
    public func probe(_ keys: [[UInt8]]) async -> [Bool] {
        let requests = keys.map { key in
            let redisKey = redisKey(key)
            return KeyedCommand(key: redisKey, command: RESPCommand([ByteBuffer(string: "EXISTS"), ByteBuffer(bytes: redisKey)]))
        }
        let start = ContinuousClock.now
        let replies = await client.executeMany(requests)
        var failed = 0
        var firstFailure: RedisTierError?
        let present = replies.map { reply -> Bool in
            let error: RedisTierError
            switch reply {
            case .success(.integer(let count)): return count > 0
            case .success(let other): error = fail("probe", .unexpectedReply(nil, command: "EXISTS", "\(other)"), inBatch: true)
            case .failure(let underlying): error = fail("probe", underlying, inBatch: true)
            }
            failed += 1
            if firstFailure == nil { firstFailure = error }
            return false
        }
        logBatchFailures("probe", failed: failed, of: keys.count, first: firstFailure)
        record(since: start) { $0.probes += keys.count }
        return present
    }

    /// Removes the key (absent keys are fine).
    public func discard(_ key: [UInt8]) async throws(RedisTierError) {
        let redisKey = redisKey(key)
        _ = try await timed("discard") {
            await client.execute(RESPCommand([ByteBuffer(string: "UNLINK"), ByteBuffer(bytes: redisKey)]), key: redisKey)
        }
        counterBox.withLockedValue { $0.discards += 1 }
    }

    /// Stores (or replaces) the record `name` (no expiry).
    public func putRecord(_ name: String, value: [UInt8]) async throws(RedisTierError) {
        let redisKey = Array((options.recordNamespace + name).utf8)
        let reply = try await timed("put record") {
            await client.execute(RESPCommand([ByteBuffer(string: "SET"), ByteBuffer(bytes: redisKey), ByteBuffer(bytes: value)]),
                                 key: redisKey)
        }
        guard case .simpleString("OK") = reply else { throw fail("put record", .unexpectedReply(nil, command: "SET", "\(reply)")) }
    }

    /// The record `name`, or nil.
    public func record(_ name: String) async throws(RedisTierError) -> [UInt8]? {
        let redisKey = Array((options.recordNamespace + name).utf8)
        let reply = try await timed("get record") {
            await client.execute(RESPCommand([ByteBuffer(string: "GET"), ByteBuffer(bytes: redisKey)]), key: redisKey)
        }
        switch reply {
        case .bulkString(let buffer): return Array(buffer.readableBytesView)
        case .null: return nil
        default: throw fail("get record", .unexpectedReply(nil, command: "GET", "\(reply)"))
        }
    }

    private func timed(_ operation: String,
                       _ body: () async -> Result<RESPValue, RedisError>) async throws(RedisTierError) -> RESPValue {
        let start = ContinuousClock.now
        let result = await body()
        record(since: start) { _ in }
        switch result {
        case .success(let value): return value
        case .failure(let error): throw fail(operation, error)
        }
    }

    private func record(since start: ContinuousClock.Instant, _ update: (inout RedisTierCounters) -> Void) {
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        counterBox.withLockedValue {
            $0.calls += 1
            $0.latencySeconds += seconds
            $0.maxLatencySeconds = max($0.maxLatencySeconds, seconds)
            update(&$0)
        }
    }

    /// Counts a failure and wraps it with the tier's name; logs it unless it belongs to a batch
    /// (batches log one line for all their failures).
    private func fail(_ operation: String, _ error: RedisError, inBatch: Bool = false) -> RedisTierError {
        counterBox.withLockedValue { $0.errors += 1 }
        let wrapped = RedisTierError(tier: options.name, operation: operation, underlying: error)
        if !inBatch { logger.warning("redis tier operation failed", metadata: ["error": "\(wrapped)"]) }
        return wrapped
    }

    private func logBatchFailures(_ operation: String, failed: Int, of total: Int, first: RedisTierError?) {
        guard failed > 0, let first else { return }
        logger.warning("redis tier batch had failures", metadata: [
            "operation": "\(operation)", "failed": "\(failed)", "keys": "\(total)", "first_error": "\(first)",
        ])
    }
}
