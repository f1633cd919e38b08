import Dispatch
import KVStashChunks
import Logging
import NIOConcurrencyHelpers

/// `RedisChunkTier` as the request path's shared `ChunkTier`. The request path is
/// synchronous and runs on threads of its own (never on Swift's cooperative pool), so each
/// call starts the async Redis operation in a task and waits for it; a read with a deadline
/// stops waiting at the deadline (the late reply is dropped when it comes).
public final class SharedRedisTier: SharedChunkTier {
    public let redis: RedisChunkTier
    private let logger: Logger

    public init(_ redis: RedisChunkTier, logger: Logger = Logger(label: "kvstash.redis.tier")) {
        self.redis = redis
        self.logger = logger
    }

    public var tierName: String { redis.options.name }

    public func probe(_ keys: [ChunkKey]) -> [Bool] {
        let raw = keys.map(\.bytes)
        return Self.wait(until: nil) { [redis] in await redis.probe(raw) } ?? keys.map { _ in false }
    }

    public func withBlock<R>(_ key: ChunkKey, deadline: ContinuousClock.Instant?,
                             _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        let raw = key.bytes
        guard let reply = Self.wait(until: deadline, { [redis] in await redis.getMany([raw])[0] }) else {
            throw ChunkTierError(tier: tierName, "no reply before the fetch deadline (recomputing is faster)")
        }
        switch reply {
        case .success(let value?): return try value.withUnsafeBytes(body)
        case .success(nil): return nil
        case .failure(let error): throw ChunkTierError(tier: tierName, "\(error)")
        }
    }

    public func putOnce(_ key: ChunkKey, value: [UInt8], meta: ChunkMeta) throws -> Bool {
        let raw = key.bytes
        return try run { [redis] in try await redis.put(raw, value: value) }
    }

    /// Damaged blocks are unlinked; blocks of an unknown version stay for the readers that know it.
    public func reject(_ key: ChunkKey, _ problem: BlockProblem) {
        guard case .damaged(let why) = problem else { return }
        let raw = key.bytes
        do {
            try run { [redis] in try await redis.discard(raw) }
            logger.warning("removed a damaged shared chunk", metadata: ["chunk": "\(key)", "why": "\(why)"])
        } catch {
            logger.warning("could not remove a damaged shared chunk", metadata: ["chunk": "\(key)", "why": "\(why)", "error": "\(error)"])
        }
    }

    public func putRecord(_ name: String, value: [UInt8]) throws {
        try run { [redis] in try await redis.putRecord(name, value: value) }
    }

    public func record(_ name: String) throws -> [UInt8]? {
        try run { [redis] in try await redis.record(name) }
    }

    /// Runs `operation` to its end (commands have their own timeout), naming this tier in its error.
    private func run<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) throws(ChunkTierError) -> T {
        switch Self.waitResult(operation) {
        case .success(let value): return value
        case .failure(let error as ChunkTierError): throw error
        case .failure(let error): throw ChunkTierError(tier: tierName, "\(error)")
        }
    }

    static func waitResult<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) -> Result<T, any Error> {
        wait(until: nil) { () async -> Result<T, any Error> in
            do { return .success(try await operation()) } catch { return .failure(error) }
        } ?? .failure(ChunkTierError(tier: "shared", "abandoned"))
    }

    /// Runs `operation` in a task and waits for its result on this thread, at most until
    /// `deadline` (nil: until it ends; commands have their own timeout). Never call it from
    /// Swift's cooperative pool.
    static func wait<T: Sendable>(until deadline: ContinuousClock.Instant?,
                                  _ operation: @escaping @Sendable () async -> T) -> T? {
        let slot = NIOLockedValueBox<T?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let value = await operation()
            slot.withLockedValue { $0 = value }
            done.signal()
        }
        if let deadline {
            let left = deadline - ContinuousClock.now
            let nanos = max(0, left.components.seconds * 1_000_000_000 + left.components.attoseconds / 1_000_000_000)
            guard done.wait(timeout: .now() + .nanoseconds(Int(nanos))) == .success else { return nil }
        } else {
            done.wait()
        }
        return slot.withLockedValue { $0 }
    }
}
