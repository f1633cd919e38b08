import XCTest
import KVStashCore

final class KVCacheTests: XCTestCase {
    func testCopyOnWriteAndGrowth() {
        var a = KVCache(shape: KVShape(layers: 2, kvHeads: 1, headDim: 4))
        a.extend(by: 20)
        a.withMutableRows(layer: 1, .value, 19..<20) { $0[3] = 7 }
        let b = a
        a.withMutableRows(layer: 1, .value, 19..<20) { $0[3] = 9 }
        XCTAssertEqual(b.rows(layer: 1, .value, 19..<20)[3], 7)
        XCTAssertEqual(a.rows(layer: 1, .value, 19..<20)[3], 9)
        XCTAssertGreaterThanOrEqual(a.capacity, 20)
        a.truncate(to: 5)
        XCTAssertEqual(a.count, 5)
    }
}
