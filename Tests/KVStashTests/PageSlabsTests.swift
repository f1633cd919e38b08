import Dispatch
import Synchronization
import XCTest
@testable import KVStashCore

/// The RAM tier's page memory: slots of one size share 2 MiB slabs from the arena pool, a
/// slab goes back when its last slot does, and what a page writes stays its own.
final class PageSlabsTests: XCTestCase {
    private let mib = 1 << 20

    func testSizesBetweenAnEighthAndHalfASlabTakeSlots() {
        XCTAssertNil(PageSlabs.slotBytes(for: 49_152), "a 3-layer Gemma 3 page takes heap memory")
        XCTAssertEqual(PageSlabs.slotBytes(for: 294_912), 294_912, "an 18-layer Gemma 3 page")
        XCTAssertEqual(PageSlabs.slotBytes(for: 140_000), 140_032, "64-byte multiples")
        XCTAssertNil(PageSlabs.slotBytes(for: 131_000), "under an eighth of a slab")
        XCTAssertEqual(PageSlabs.slotBytes(for: mib), mib)
        XCTAssertNil(PageSlabs.slotBytes(for: mib + 64), "over half a slab")
    }

    func testSlotsShareASlabThatReturnsToThePoolWithItsLastSlot() throws {
        let pool = KVArenaPool(maxBytes: 64 * mib)
        pool.prewarm(bytes: 8 * mib)
        let slabs = PageSlabs(pool: pool)
        let size = try XCTUnwrap(PageSlabs.slotBytes(for: 300_000))
        let perSlab = PageSlabs.slabBytes / size  // 6
        var slots = (0..<perSlab + 1).compactMap { _ in slabs.take(slotBytes: size) }
        XCTAssertEqual(slots.count, perSlab + 1)
        XCTAssertEqual(slabs.usage.slabs, 2, "six slots in the first slab, the seventh opens a second")
        XCTAssertEqual(pool.pooledBytes, 4 * mib, "both slabs came from the prewarmed mapping")
        let addresses = slots.map { UInt(bitPattern: $0) }.sorted()
        for (a, b) in zip(addresses, addresses.dropFirst()) {
            XCTAssertGreaterThanOrEqual(b - a, UInt(size), "slots do not overlap")
        }

        slabs.give(slots.removeLast())
        XCTAssertEqual(slabs.usage.slabs, 1, "the second slab went back with its only slot")
        XCTAssertEqual(pool.pooledBytes, 6 * mib)
        let again = try XCTUnwrap(slabs.take(slotBytes: size))
        XCTAssertEqual(slabs.usage.slabs, 2)
        slabs.give(again)
        slabs.give(slots.removeFirst())
        let reused = try XCTUnwrap(slabs.take(slotBytes: size))
        XCTAssertEqual(slabs.usage.slabs, 1, "a freed slot of a live slab is taken before a new slab")
        slots.append(reused)
        slots.forEach(slabs.give)
        XCTAssertEqual(slabs.usage.slabs, 0)
        XCTAssertEqual(slabs.usage.liveSlots, 0)
        XCTAssertEqual(pool.pooledBytes, 8 * mib, "every slab is back in the pool")
    }

    func testSizesOfOneSlabAreNotMixed() throws {
        let pool = KVArenaPool(maxBytes: 64 * mib)
        let slabs = PageSlabs(pool: pool)
        let a = try XCTUnwrap(slabs.take(slotBytes: 200 << 10))
        let b = try XCTUnwrap(slabs.take(slotBytes: 300 << 10))
        XCTAssertEqual(slabs.usage.slabs, 2)
        XCTAssertNotEqual(UInt(bitPattern: a) >> 21, UInt(bitPattern: b) >> 21)
        slabs.give(a)
        slabs.give(b)
        XCTAssertEqual(slabs.usage.slabs, 0)
    }

    /// Page buffers made and dropped on several threads keep their own contents.
    func testPageBuffersOnManyThreadsKeepTheirContents() {
        let sizes = [24_576, 147_456, 294_912, 368_640]  // bytes: heap, and slots of three sizes
        let failures = DispatchQueue.concurrentPerform(iterations: 4) { worker -> Int in
            var held: [(PageBuffer, UInt16)] = []
            var bad = 0
            for i in 0..<400 {
                let tag = UInt16(truncatingIfNeeded: worker &* 1000 &+ i)
                let count = sizes[(i + worker) % sizes.count] / 2
                held.append((PageBuffer(count: count) { $0.initialize(repeating: tag) }, tag))
                if held.count > 24 { held.remove(at: (i * 7) % held.count) }
                for (buffer, expected) in held where buffer.withUnsafeBufferPointer({ $0.contains { $0 != expected } }) {
                    bad += 1
                }
            }
            return bad
        }
        XCTAssertEqual(failures, [0, 0, 0, 0])
    }
}

private extension DispatchQueue {
    /// `concurrentPerform` collecting each iteration's result.
    static func concurrentPerform<T: Sendable>(iterations: Int, execute: @Sendable (Int) -> T) -> [T] {
        let results = Mutex([T?](repeating: nil, count: iterations))
        concurrentPerform(iterations: iterations) { i in
            let value = execute(i)
            results.withLock { $0[i] = value }
        }
        return results.withLock { $0.map { $0! } }
    }
}
