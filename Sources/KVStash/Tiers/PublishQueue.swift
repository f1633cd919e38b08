import Foundation
import KVStashChunks
import Logging
import Synchronization

/// What the publisher did since start.
public struct PublishCounters: Sendable, Codable, Equatable {
    /// Chunks handed to the queue.
    public var queued = 0
    /// Chunks the shared tier stored.
    public var published = 0
    /// Chunks the shared tier already held (write-once: its value kept).
    public var alreadyPresent = 0
    /// Chunks dropped because the queue was full (query write-backs; precompute waits).
    public var dropped = 0
    /// Puts that failed (tier down, timeout); the chunk stays local only.
    public var failed = 0
    /// Bytes waiting in the queue now.
    public var pendingBytes = 0

    public init() {}
}

/// Publishes chunks to the shared tier on a thread of its own, so neither a request nor a
/// precompute waits for the network. The queue holds at most `capacityBytes` of values:
/// past it a query's chunk is dropped (counted), precompute waits for room.
public final class PublishQueue: Sendable {
    struct Item: Sendable {
        let key: ChunkKey
        let value: [UInt8]
        let meta: ChunkMeta
    }
    private struct State {
        var items: [Item] = []
        var head = 0
        var busy = false
        var closed = false
        var counters = PublishCounters()
    }
    private let state = Mutex(State())
    private let available = DispatchSemaphore(value: 0)
    private let room = DispatchSemaphore(value: 0)
    private let tier: any ChunkTier
    private let capacityBytes: Int
    private let logger: Logger

    public init(tier: any ChunkTier, capacityBytes: Int, logger: Logger) {
        self.tier = tier
        self.capacityBytes = max(capacityBytes, 1)
        self.logger = logger
        let thread = Thread { [self] in drain() }
        thread.name = "kvstash-publish"
        thread.start()
    }

    public var counters: PublishCounters { state.withLock { $0.counters } }

    /// Queues a chunk. With `wait`, blocks while the queue is full; without, drops it then.
    /// A value larger than the whole queue is taken when the queue is empty.
    public func enqueue(_ key: ChunkKey, value: [UInt8], meta: ChunkMeta, wait: Bool) {
        while true {
            let taken: Bool? = state.withLock { s in
                if s.closed { return false }
                let fits = s.counters.pendingBytes == 0 || s.counters.pendingBytes + value.count <= capacityBytes
                if fits {
                    s.items.append(Item(key: key, value: value, meta: meta))
                    s.counters.queued += 1
                    s.counters.pendingBytes += value.count
                    return true
                }
                if !wait {
                    s.counters.dropped += 1
                    return false
                }
                return nil
            }
            switch taken {
            case true?: available.signal(); return
            case false?: return
            case nil: _ = room.wait(timeout: .now() + .milliseconds(20))
            }
        }
    }

    /// Waits until every queued chunk was handed to the tier.
    public func flush() {
        _ = flush(within: nil)
    }

    /// Waits until every queued chunk was handed to the tier, or `limit` has passed (nil:
    /// no limit). Returns whether the queue is empty.
    public func flush(within limit: Duration?) -> Bool {
        let deadline = limit.map { ContinuousClock.now + $0 }
        while state.withLock({ $0.head < $0.items.count || $0.busy }) {
            if let deadline, ContinuousClock.now >= deadline { return false }
            _ = room.wait(timeout: .now() + .milliseconds(20))
        }
        return true
    }

    private func drain() {
        while true {
            available.wait()
            guard let item = state.withLock({ s -> Item? in
                guard s.head < s.items.count else { return nil }
                let item = s.items[s.head]
                s.head += 1
                if s.head > 64 && s.head * 2 > s.items.count {
                    s.items.removeFirst(s.head)
                    s.head = 0
                }
                s.busy = true
                return item
            }) else { continue }
            let outcome: Result<Bool, Error> = Result { try tier.putOnce(item.key, value: item.value, meta: item.meta) }
            if case .failure(let error) = outcome {
                logger.warning("publishing a chunk to the shared tier failed; it stays local",
                               metadata: ["tier": "\(tier.tierName)", "chunk": "\(item.key)", "error": "\(error)"])
            }
            state.withLock { s in
                s.busy = false
                s.counters.pendingBytes -= item.value.count
                switch outcome {
                case .success(true): s.counters.published += 1
                case .success(false): s.counters.alreadyPresent += 1
                case .failure: s.counters.failed += 1
                }
            }
            room.signal()
        }
    }
}
