import XCTest
import CKernels
@testable import KVStashCore
import KVStash
import Foundation

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

/// Writes known values through a row writer (Sendable, for the concurrent workers).
private struct Filler: Sendable {
    let shape: KVShape

    /// The value written at (layer, kind, position, channel).
    func value(_ layer: Int, _ kind: KVKind, _ p: Int, _ c: Int) -> Float {
        Float(layer * 1000 + (kind == .key ? 0 : 500) + p * 7 + c) / 100
    }

    func fill(_ writer: KVRowWriter) {
        for layer in 0..<shape.layers {
            for kind in [KVKind.key, .value] {
                writer.withMutableRows(layer: layer, kind) { rows in
                    for (r, p) in writer.rows.enumerated() {
                        for c in 0..<shape.kvDim { rows[r * shape.kvDim + c] = value(layer, kind, p, c) }
                    }
                }
            }
        }
    }
}

final class KVCacheConcurrentWriteTests: XCTestCase {
    let shape = KVShape(layers: 2, kvHeads: 2, headDim: 8)
    let table = RotaryTable(positions: 0..<64, ropeDims: 8, base: 10000, style: .adjacent)
    private var filler: Filler { Filler(shape: shape) }

    func value(_ layer: Int, _ kind: KVKind, _ p: Int, _ c: Int) -> Float { filler.value(layer, kind, p, c) }

    /// RoPE of adjacent pairs in double precision, written here from its definition.
    func rotated(_ x: [Float], position: Int) -> [Float] {
        var y = x
        for h in 0..<shape.kvHeads {
            for i in 0..<4 {
                let angle = Double(position) * pow(10000, -2.0 * Double(i) / 8)
                let a = Double(x[h * 8 + 2 * i]), b = Double(x[h * 8 + 2 * i + 1])
                y[h * 8 + 2 * i] = Float(a * cos(angle) - b * sin(angle))
                y[h * 8 + 2 * i + 1] = Float(a * sin(angle) + b * cos(angle))
            }
        }
        return y
    }

    func testRangesAreFilledInParallelAndKeysRotatedOnce() {
        var cache = KVCache(shape: shape)
        let ranges = [0..<5, 5..<12, 12..<20]
        let filler = self.filler
        let results = cache.writeConcurrently(ranges, rotation: table, succeeded: { $0 }) { _, writer in
            filler.fill(writer)
            return true
        }
        XCTAssertEqual(results, [true, true, true])
        XCTAssertEqual(cache.count, 20)
        XCTAssertEqual(cache.ropedCount, 20, "every row rotated as it was written")
        assertFilledAndRotated(cache, 0..<20)
    }

    /// Rows `positions` hold the filler's K and V, and their post-RoPE K is the rotation
    /// from its definition.
    private func assertFilledAndRotated(_ cache: KVCache, _ positions: Range<Int>,
                                        file: StaticString = #filePath, line: UInt = #line) {
        for layer in 0..<shape.layers {
            for p in positions {
                let raw = (0..<shape.kvDim).map { value(layer, .key, p, $0) }
                XCTAssertEqual(cache.rows(layer: layer, .key, p..<(p + 1)), raw, file: file, line: line)
                XCTAssertEqual(cache.rows(layer: layer, .value, p..<(p + 1)), (0..<shape.kvDim).map { value(layer, .value, p, $0) },
                               file: file, line: line)
                let roped = cache.withRopedKeys(layer: layer) { Array($0[(p * shape.kvDim)..<((p + 1) * shape.kvDim)]) }
                for (got, want) in zip(roped, rotated(raw, position: p)) {
                    XCTAssertEqual(got, want, accuracy: 1e-4, file: file, line: line)
                }
            }
        }
    }

    func testAFailedRangeLeavesRotationToTheEngine() {
        var cache = KVCache(shape: shape)
        let filler = self.filler
        let results = cache.writeConcurrently([0..<4, 4..<8], rotation: table, succeeded: { $0 }) { i, writer in
            filler.fill(writer)
            return i == 0
        }
        XCTAssertEqual(results, [true, false])
        XCTAssertEqual(cache.count, 8)
        XCTAssertEqual(cache.ropedCount, 0, "post-RoPE K is not claimed valid when a range failed")
        // Without a table nothing is rotated either.
        var plain = KVCache(shape: shape)
        _ = plain.writeConcurrently([0..<3], rotation: nil, succeeded: { $0 }) { _, w in filler.fill(w); return true }
        XCTAssertEqual(plain.ropedCount, 0)
    }

    func testSplicedPagesAreCopiedInParallelAndRotatedAsTheyLand() {
        var source = KVCache(shape: shape)
        let filler = self.filler
        _ = source.writeConcurrently([0..<48], rotation: nil, succeeded: { $0 }) { _, w in filler.fill(w); return true }
        var cache = KVCache(shape: shape)
        cache.append(contentsOf: source, 0..<16)
        cache.markRoped()  // stands in for the engine having rotated the first page
        cache.splice(source.pages(16..<48), rotation: table)
        XCTAssertEqual(cache.count, 48)
        XCTAssertEqual(cache.ropedCount, 48, "spliced keys rotated as they landed")
        assertFilledAndRotated(cache, 16..<48)
    }

    func testATableThatDoesNotCoverTheRowsIsNotUsed() {
        var cache = KVCache(shape: shape)
        let filler = self.filler
        _ = cache.writeConcurrently([0..<40, 40..<70], rotation: table, succeeded: { $0 }) { _, w in
            filler.fill(w)
            return true
        }
        XCTAssertEqual(cache.count, 70)
        XCTAssertEqual(cache.ropedCount, 0, "rows past the table (0..<64) are left to the engine")
    }

    /// The vector kernel (rope dims a multiple of 16) against RoPE from its definition, in
    /// double precision, for both pairings, in place and out of place, with a head tail
    /// past the rotated dims that is copied unchanged.
    func testRotaryTableMatchesTheDefinitionForBothStyles() {
        let heads = 2, headDim = 80, ropeDims = 64, rows = 40, base = 10000.0
        let x = (0..<(rows * heads * headDim)).map { Float(sin(Double($0) * 0.37)) }
        for style in [RotaryTable.Style.adjacent, .halves] {
            let table = RotaryTable(positions: 0..<64, ropeDims: ropeDims, base: base, style: style)
            var out = [Float](repeating: .nan, count: x.count)
            var inPlace = x
            x.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    table.apply(src.baseAddress! + heads * headDim, stride: heads * headDim, into: dst.baseAddress! + heads * headDim,
                                stride: heads * headDim, rows: rows - 1, firstPosition: 7, heads: heads, headDim: headDim)
                }
            }
            inPlace.withUnsafeMutableBufferPointer { b in
                table.apply(b.baseAddress! + heads * headDim, stride: heads * headDim, into: b.baseAddress! + heads * headDim,
                            stride: heads * headDim, rows: rows - 1, firstPosition: 7, heads: heads, headDim: headDim)
            }
            for r in 1..<rows {
                let position = Double(7 + r - 1)
                for h in 0..<heads {
                    let o = (r * heads + h) * headDim
                    var want = Array(x[o..<(o + headDim)]).map(Double.init)
                    for i in 0..<(ropeDims / 2) {
                        let angle = position * pow(base, -2.0 * Double(i) / Double(ropeDims))
                        let (j, k) = style == .adjacent ? (2 * i, 2 * i + 1) : (i, i + ropeDims / 2)
                        let a = Double(x[o + j]), b = Double(x[o + k])
                        want[j] = a * cos(angle) - b * sin(angle)
                        want[k] = a * sin(angle) + b * cos(angle)
                    }
                    for c in 0..<headDim {
                        XCTAssertEqual(Double(out[o + c]), want[c], accuracy: 1e-5, "\(style) row \(r) head \(h) dim \(c)")
                        XCTAssertEqual(inPlace[o + c], out[o + c], "\(style): in place equals out of place")
                    }
                }
            }
            XCTAssertTrue(out[0..<(heads * headDim)].allSatisfy(\.isNaN), "rows outside the call untouched")
        }
    }

    /// The splice's streaming copy: aligned destinations take non-temporal stores, others
    /// and the tail past the last whole vector plain ones; either way dst equals src and
    /// nothing past n is written.
    func testStreamingCopyEqualsSource() {
        let src = (0..<200).map { Float($0) * 0.5 - 17 }
        for (offset, n) in [(0, 0), (0, 5), (0, 16), (0, 160), (0, 199), (3, 150), (16, 37)] {
            let raw = UnsafeMutableRawPointer.allocate(byteCount: 256 * 4 + 64, alignment: 64)
            defer { raw.deallocate() }
            let dst = raw.bindMemory(to: Float.self, capacity: 256 + 16) + offset
            dst.initialize(repeating: .nan, count: 256)
            src.withUnsafeBufferPointer { kv_stream_floats(dst, $0.baseAddress!, n) }
            XCTAssertEqual(Array(UnsafeBufferPointer(start: dst, count: n)), Array(src[..<n]), "offset \(offset) n \(n)")
            XCTAssertTrue(UnsafeBufferPointer(start: dst + n, count: 256 - n).allSatisfy(\.isNaN), "offset \(offset) n \(n)")
        }
    }

    func testWritesDoNotLeakIntoACopy() {
        let filler = self.filler
        var a = KVCache(shape: shape)
        _ = a.writeConcurrently([0..<4], rotation: nil, succeeded: { $0 }) { _, w in filler.fill(w); return true }
        let b = a
        _ = a.writeConcurrently([4..<6], rotation: nil, succeeded: { $0 }) { _, w in filler.fill(w); return true }
        XCTAssertEqual(b.count, 4)
        XCTAssertEqual(a.count, 6)
        XCTAssertEqual(b.rows(layer: 1, .value, 0..<4), a.rows(layer: 1, .value, 0..<4))
    }

    func testArenaPoolReusesFreedArenasWithinItsBudget() {
        let pool = KVArenaPool(maxBytes: 8 << 20)
        let a = pool.take(bytes: 3 << 20)
        pool.give(a)
        XCTAssertEqual(pool.pooledBytes, 3 << 20)
        let b = pool.take(bytes: 2 << 20)
        XCTAssertEqual(b.address, a.address, "a freed arena up to twice the size is reused")
        XCTAssertEqual(pool.pooledBytes, 0)
        let small = pool.take(bytes: 1 << 20)
        XCTAssertNotEqual(small.address, b.address)
        pool.give(small)
        XCTAssertEqual(pool.pooledBytes, 0, "small blocks are freed, not pooled")
        let c = pool.take(bytes: 6 << 20)
        pool.give(b)
        pool.give(c)
        XCTAssertEqual(pool.pooledBytes, 6 << 20, "the oldest arena is released past the budget")
        let big = pool.take(bytes: 32 << 20)
        pool.give(big)
        XCTAssertEqual(pool.pooledBytes, 6 << 20, "an arena larger than the budget is released")
    }
}
