import Foundation
import KVStashChunks
import Logging
import Synchronization
import XCTest
@testable import KVStash

/// A shared tier whose puts wait until the test opens its gate (a slow network).
private final class GatedTier: ChunkTier {
    let tierName = "gated"
    let inner = MemoryChunkTier(name: "gated")
    private let open = Mutex(false)

    func release() { open.withLock { $0 = true } }

    func probe(_ keys: [ChunkKey]) -> [Bool] { inner.probe(keys) }

    func withBlock<R>(_ key: ChunkKey, deadline: ContinuousClock.Instant?,
                      _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        try inner.withBlock(key, deadline: deadline, body)
    }

    func putOnce(_ key: ChunkKey, value: [UInt8], meta: ChunkMeta) throws -> Bool {
        while !open.withLock({ $0 }) { usleep(1000) }
        return try inner.putOnce(key, value: value, meta: meta)
    }

    func reject(_ key: ChunkKey, _ problem: BlockProblem) { inner.reject(key, problem) }
}

final class PublishQueueTests: XCTestCase {
    /// A bounded flush gives up while a put is stuck and reports it; once the tier answers,
    /// an unbounded one returns with every chunk published.
    func testBoundedFlushGivesUpOnAStuckTierAndTheQueueStillDrains() throws {
        let tier = GatedTier()
        let queue = PublishQueue(tier: tier, capacityBytes: 1 << 20, logger: Logger(label: "test"))
        let keys = (1...3).map { i in ChunkKey(bytes: [UInt8](repeating: UInt8(i), count: 32))! }
        for (i, key) in keys.enumerated() {
            let meta = ChunkMeta(parent: .root, chainIndex: i, tokens: [i], codec: "f32", modelFingerprint: [1])
            queue.enqueue(key, value: [UInt8](repeating: 7, count: 100), meta: meta, wait: true)
        }
        let started = ContinuousClock.now
        XCTAssertFalse(queue.flush(within: .milliseconds(100)), "the tier holds every put")
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - started, .milliseconds(100))
        XCTAssertEqual(queue.counters.published, 0)
        XCTAssertEqual(queue.counters.pendingBytes, 300)
        tier.release()
        XCTAssertTrue(queue.flush(within: .seconds(60)))
        XCTAssertEqual(queue.counters.published, 3)
        XCTAssertEqual(queue.counters.pendingBytes, 0)
        XCTAssertEqual(tier.inner.probe(keys), [true, true, true])
    }
}
