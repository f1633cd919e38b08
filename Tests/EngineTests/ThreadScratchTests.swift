import CKernels
import Foundation
import Synchronization
import XCTest
@testable import KVStashEngine

/// `kv_thread_scratch`: one buffer per thread, kept between its calls and grown when a call
/// asks for more; two threads never share one (attention's tasks write their scores there).
final class ThreadScratchTests: XCTestCase {
    func testAThreadKeepsItsBufferAndGrowsIt() throws {
        let first = try XCTUnwrap(kv_thread_scratch(1000))
        XCTAssertEqual(UInt(bitPattern: first) % 64, 0, "64-byte aligned")
        XCTAssertEqual(kv_thread_scratch(1000), first, "the same buffer for the same size")
        XCTAssertEqual(kv_thread_scratch(10), first, "and for a smaller one")
        let grown = try XCTUnwrap(kv_thread_scratch(300_000))
        XCTAssertEqual(UInt(bitPattern: grown) % 64, 0)
        grown.update(repeating: 1, count: 300_000)  // every float asked for is there
        XCTAssertEqual(grown[299_999], 1)
        XCTAssertEqual(kv_thread_scratch(1000), grown, "kept at its largest size")
        XCTAssertNil(kv_thread_scratch(Int.max), "a size past memory is refused, not wrapped")
    }

    /// Two threads hold their buffers at once, each fills its own with its number and checks it
    /// after the other has filled its: no write of one thread reaches the other's buffer.
    func testThreadsHaveBuffersOfTheirOwn() {
        let count = 50_000, filled = Atomic(0), failures = Atomic(0)
        let done = DispatchGroup()
        for id in 1...2 {
            done.enter()
            let thread = Thread {
                defer { done.leave() }
                guard let mine = kv_thread_scratch(count) else { failures.add(1, ordering: .relaxed); return }
                mine.update(repeating: Float(id), count: count)
                filled.add(1, ordering: .sequentiallyConsistent)
                while filled.load(ordering: .sequentiallyConsistent) < 2 { usleep(100) }
                if (0..<count).contains(where: { mine[$0] != Float(id) }) { failures.add(1, ordering: .relaxed) }
            }
            thread.start()
        }
        done.wait()
        XCTAssertEqual(failures.load(ordering: .relaxed), 0)
    }

    /// The warm-up grows a thread's buffer to the largest an attention call of that head size
    /// asks, so no request grows it (or faults it in) later.
    func testPrewarmGrowsToTheLargestAttentionScratch() {
        let same = Atomic(false)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            CausalAttention.prewarmThreadScratch(headDim: 256)
            let small = kv_thread_scratch(1)
            let largest = kv_thread_scratch(CausalAttention.scratchFloats(mp: Int(KV_ATTEND_MAX_ROWS), headDim: 256))
            same.store(small != nil && small == largest, ordering: .releasing)
            done.signal()
        }
        thread.start()
        done.wait()
        XCTAssertTrue(same.load(ordering: .acquiring), "a fresh thread's buffer was not grown to the largest size")
    }
}
