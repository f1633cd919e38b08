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

    /// Each KV head's rows lie together (`withHeadRows`: head g's row p at `p * headDim` from
    /// `head(g)`), through growth, copies and appends, while the f32 and f16 row views stay
    /// row-major `[row][kvHeads * headDim]`.
    func testHeadsAreContiguousAndRowViewsRowMajorThroughGrowth() {
        let shape = KVShape(layers: 2, kvHeads: 3, headDim: 16), d = shape.kvDim
        func value(_ layer: Int, _ kind: KVKind, _ p: Int, _ c: Int) -> Float {
            // Integers below 2,048, halved or negated per tensor: exact in f16.
            Float((p * 48 + c) % 2039) * [1, -1, 0.5, -0.5][layer * 2 + (kind == .key ? 0 : 1)]
        }
        var cache = KVCache(shape: shape, capacity: 16)
        for chunk in 0..<5 {  // 5 x 13 rows: the capacity doubles twice on the way
            let range = (chunk * 13)..<(chunk * 13 + 13)
            cache.extend(by: range.count)
            for layer in 0..<shape.layers {
                for kind in [KVKind.key, .value] {
                    let rows = range.flatMap { p in (0..<d).map { value(layer, kind, p, $0) } }
                    rows.withUnsafeBufferPointer { cache.store(layer: layer, kind, range, from: $0.baseAddress!, stride: d) }
                }
            }
        }
        XCTAssertGreaterThanOrEqual(cache.capacity, 64)
        var copy = KVCache(shape: shape)
        copy.append(contentsOf: cache, 10..<65)
        for layer in 0..<shape.layers {
            for kind in [KVKind.key, .value] {
                let expected = (0..<65).flatMap { p in (0..<d).map { value(layer, kind, p, $0) } }
                XCTAssertEqual(cache.rows(layer: layer, kind, 0..<65), expected, "layer \(layer) \(kind)")
                XCTAssertEqual(cache.halfRows(layer: layer, kind, 0..<65), expected.map { Float16($0).bitPattern })
                XCTAssertEqual(copy.rows(layer: layer, kind, 0..<55), Array(expected[(10 * d)...]))
                cache.withHeadRows(layer: layer, kind, 7..<65) { heads in
                    XCTAssertEqual(heads.headStride, cache.capacity * shape.headDim)
                    for g in 0..<shape.kvHeads {
                        let head = heads.head(g)
                        for (r, p) in (7..<65).enumerated() {
                            for c in 0..<shape.headDim {
                                XCTAssertEqual(Float(Float16(bitPattern: head[r * shape.headDim + c])),
                                               value(layer, kind, p, g * shape.headDim + c))
                            }
                        }
                    }
                }
            }
        }
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

    /// What f16 storage may change: half an f16 ulp, relative.
    func assertClose(_ got: [Float], _ want: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, what, file: file, line: line)
        for (g, w) in zip(got, want) {
            XCTAssertEqual(g, w, accuracy: abs(w) / 2048 + 1e-6, what, file: file, line: line)
        }
    }

    func testRangesAreFilledInParallelAndKeysRotatedAsTheyLand() {
        var cache = KVCache(shape: shape, rotation: table)
        let ranges = [0..<5, 5..<12, 12..<20]
        let filler = self.filler
        let results = cache.writeConcurrently(ranges) { _, writer in
            filler.fill(writer)
            return true
        }
        XCTAssertEqual(results, [true, true, true])
        XCTAssertEqual(cache.count, 20)
        assertFilledAndRotated(cache, 0..<20)

        // Handed out in another order (the costliest first): every range still gets its own
        // rows, and the results stay in the ranges' order.
        var ordered = KVCache(shape: shape, rotation: table)
        let indices = ordered.writeConcurrently(ranges, order: [2, 0, 1]) { i, writer in
            filler.fill(writer)
            return writer.rows == ranges[i] ? i : -1
        }
        XCTAssertEqual(indices, [0, 1, 2])
        assertFilledAndRotated(ordered, 0..<20)
    }

    /// Rows `positions` hold the filler's V and its K rotated for position `p + offset`
    /// (RoPE from its definition), both rounded to f16, and the encoder's view of K (not
    /// kept raw) rotates it back.
    private func assertFilledAndRotated(_ cache: KVCache, _ positions: Range<Int>, offset: Int = 0,
                                        file: StaticString = #filePath, line: UInt = #line) {
        for layer in 0..<shape.layers {
            for p in positions {
                let raw = (0..<shape.kvDim).map { value(layer, .key, p, $0) }
                let values = (0..<shape.kvDim).map { value(layer, .value, p, $0) }
                XCTAssertEqual(cache.rows(layer: layer, .value, p..<(p + 1)), values.map { Float(Float16($0)) },
                               file: file, line: line)
                assertClose(cache.rows(layer: layer, .key, p..<(p + 1)), rotated(raw, position: p + offset),
                            "K after RoPE, row \(p)", file: file, line: line)
                if offset == 0 {
                    let back = cache.withRows(layer: layer, .key, p..<(p + 1)) { Array($0) }
                    for (g, w) in zip(back, raw) { XCTAssertEqual(g, w, accuracy: 0.02, file: file, line: line) }
                }
            }
        }
    }

    func testRowsWrittenAtAnOffsetAreRotatedForTheirPositions() {
        var cache = KVCache(shape: shape, rotation: table)
        let filler = self.filler
        _ = cache.writeConcurrently([0..<4, 4..<9], positionOffset: 30) { _, w in filler.fill(w); return true }
        assertFilledAndRotated(cache, 0..<9, offset: 30)
    }

    func testRawKeysAreKeptExactlyForTheEncoder() {
        var cache = KVCache(shape: shape, rotation: table)
        cache.keepsRawKeys = true
        cache.extend(by: 6)
        for layer in 0..<shape.layers {
            for kind in [KVKind.key, .value] {
                cache.withMutableRows(layer: layer, kind, 0..<6) { rows in
                    for p in 0..<6 { for c in 0..<shape.kvDim { rows[p * shape.kvDim + c] = value(layer, kind, p, c) } }
                }
            }
        }
        for layer in 0..<shape.layers {
            for p in 0..<6 {
                let raw = (0..<shape.kvDim).map { value(layer, .key, p, $0) }
                XCTAssertEqual(cache.withRows(layer: layer, .key, p..<(p + 1)) { Array($0) }, raw, "kept K is exact")
                assertClose(cache.rows(layer: layer, .key, p..<(p + 1)), rotated(raw, position: p), "K after RoPE")
            }
        }
        let copy = cache
        cache.truncate(to: 2)
        cache.keepsRawKeys = false
        cache.extend(by: 4)
        cache.withMutableRows(layer: 0, .key, 2..<6) { $0.update(repeating: 1) }
        XCTAssertEqual(copy.withRows(layer: 0, .key, 3..<4) { Array($0) }, (0..<shape.kvDim).map { value(0, .key, 3, $0) },
                       "a copy keeps its own raw keys")
        let back = cache.withRows(layer: 0, .key, 3..<4) { Array($0) }
        for g in back { XCTAssertEqual(g, 1, accuracy: 2e-3, "a row written without keeping is rotated back") }
    }

    /// Raw keys of every layer survive the cache growing past its capacity (they move with
    /// their positions into the larger arena) and a copy-on-write duplicate.
    func testRawKeysSurviveGrowth() {
        var cache = KVCache(shape: shape, capacity: 16, rotation: table)
        cache.keepsRawKeys = true
        cache.extend(by: 10)
        for layer in 0..<shape.layers {
            cache.withMutableRows(layer: layer, .key, 0..<10) { rows in
                for p in 0..<10 { for c in 0..<shape.kvDim { rows[p * shape.kvDim + c] = value(layer, .key, p, c) } }
            }
        }
        let copy = cache
        cache.extend(by: 40)
        XCTAssertGreaterThanOrEqual(cache.capacity, 50)
        for layer in 0..<shape.layers {
            for p in [0, 5, 9] {
                let raw = (0..<shape.kvDim).map { value(layer, .key, p, $0) }
                XCTAssertEqual(cache.withRows(layer: layer, .key, p..<(p + 1)) { Array($0) }, raw, "layer \(layer) row \(p)")
                XCTAssertEqual(copy.withRows(layer: layer, .key, p..<(p + 1)) { Array($0) }, raw, "copy, layer \(layer) row \(p)")
            }
        }
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
        _ = a.writeConcurrently([0..<4]) { _, w in filler.fill(w); return true }
        let b = a
        _ = a.writeConcurrently([4..<6]) { _, w in filler.fill(w); return true }
        XCTAssertEqual(b.count, 4)
        XCTAssertEqual(a.count, 6)
        XCTAssertEqual(b.rows(layer: 1, .value, 0..<4), a.rows(layer: 1, .value, 0..<4))
    }

    func testSplicedPagesAreCopiesOfTheirRows() {
        var source = KVCache(shape: shape, rotation: table)
        let filler = self.filler
        _ = source.writeConcurrently([0..<48]) { _, w in filler.fill(w); return true }
        var cache = KVCache(shape: shape, rotation: table)
        cache.append(contentsOf: source, 0..<16)
        cache.splice(source.pages(16..<48))
        XCTAssertEqual(cache.count, 48)
        for layer in 0..<shape.layers {
            for kind in [KVKind.key, .value] {
                XCTAssertEqual(cache.halfRows(layer: layer, kind, 0..<48),
                               source.halfRows(layer: layer, kind, 0..<48))
            }
        }
        assertFilledAndRotated(cache, 0..<48)
    }

    func testATableThatDoesNotCoverTheRowsIsExtended() {
        var cache = KVCache(shape: shape, rotation: table)  // 0..<64
        let filler = self.filler
        _ = cache.writeConcurrently([0..<40, 40..<70]) { _, w in filler.fill(w); return true }
        XCTAssertEqual(cache.count, 70)
        assertFilledAndRotated(cache, 60..<70)
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

    /// A prewarmed (resident) mapping serves small caches as pieces carved off its front,
    /// ahead of a pooled block that was only touched in part, and is whole again once they
    /// are given back in any order.
    func testPrewarmedArenaIsCarvedIntoPiecesAndJoinedAgain() {
        let mib = 1 << 20
        let pool = KVArenaPool(maxBytes: 64 * mib)
        let plain = pool.take(bytes: 5 * mib)
        XCTAssertFalse(plain.resident)
        pool.prewarm(bytes: 16 * mib)
        let whole = pool.take(bytes: 16 * mib)
        XCTAssertTrue(whole.resident)
        pool.give(whole)
        pool.give(plain)
        XCTAssertEqual(pool.pooledBytes, 21 * mib)

        let first = pool.take(bytes: 3 * mib)
        XCTAssertTrue(first.resident, "the resident mapping is carved before the plain block")
        XCTAssertEqual(first.address, whole.address)
        XCTAssertEqual(first.bytes, 4 * mib, "pieces are whole 2 MiB pages")
        let second = pool.take(bytes: 4 * mib)
        XCTAssertEqual(second.address, whole.address + UInt(4 * mib))
        let third = pool.take(bytes: 5 * mib)
        XCTAssertEqual(third.address, whole.address + UInt(8 * mib))
        XCTAssertEqual(pool.pooledBytes, 7 * mib, "the plain block and the mapping's last 2 MiB")
        let fourth = pool.take(bytes: 5 * mib)
        XCTAssertFalse(fourth.resident, "what is left of the mapping is too small: the plain block")
        XCTAssertEqual(fourth.address, plain.address)
        for piece in [first, second, third, fourth] {
            piece.pointer.initializeMemory(as: UInt8.self, repeating: 7, count: piece.bytes)
        }

        pool.give(first)
        pool.give(third)
        XCTAssertEqual(pool.pooledBlocks, 2, "the third piece joined the mapping's tail")
        pool.give(second)
        XCTAssertEqual(pool.pooledBlocks, 1, "the second piece joined both neighbours")
        let again = pool.take(bytes: 16 * mib)
        XCTAssertEqual(again.address, whole.address)
        XCTAssertTrue(again.resident)
        pool.give(again)
        pool.give(fourth)
    }

    /// Past the budget the pool releases a free piece of a mapping whose other pieces are in
    /// use (non-resident blocks first); those stay usable and join what is left on return.
    func testReleasingAFreePieceKeepsTheOthersMapped() {
        let mib = 1 << 20
        let pool = KVArenaPool(maxBytes: 10 * mib)
        pool.prewarm(bytes: 8 * mib)
        let piece = pool.take(bytes: 4 * mib)
        let plain = pool.take(bytes: 7 * mib)
        XCTAssertFalse(plain.resident)
        pool.give(plain)
        XCTAssertEqual(pool.pooledBytes, 4 * mib, "the non-resident block went, the resident rest stayed")
        piece.pointer.initializeMemory(as: UInt8.self, repeating: 1, count: piece.bytes)
        pool.give(piece)
        XCTAssertEqual(pool.pooledBytes, 8 * mib)
        XCTAssertEqual(pool.pooledBlocks, 1)
        let big = pool.take(bytes: 9 * mib)
        pool.give(big)
        XCTAssertEqual(pool.pooledBytes, 8 * mib, "the returned non-resident block goes before the resident mapping")
        XCTAssertTrue(pool.take(bytes: 8 * mib).resident)
    }
}
