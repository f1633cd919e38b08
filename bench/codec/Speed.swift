import Foundation
import KVStashCodec
import KVStashCore

/// Size and speed of one configuration over a KV cache cut into chunks.
struct SpeedResult: Codable {
    var label: String
    var codec: String
    var groupSize: Int
    var frame: String
    var tokens: Int
    /// Stored bytes per token (header + compressed frame).
    var bytesPerToken: Double
    /// Bytes per token of the same blocks with the payload uncompressed.
    var rawBytesPerToken: Double
    /// Gain of the frame's compression: raw / stored.
    var frameGain: Double
    /// Stored bytes over raw f16 bytes (2 bytes per element).
    var ratioToF16: Double
    /// f32 KV bytes consumed per second of thread CPU time while encoding, one thread.
    var encodeGBps: Double
    /// f32 KV bytes written into the cache per second of thread CPU time while decoding.
    var decodeGBps: Double
    /// The same two speeds in wall-clock time (lower when other processes share the core).
    var encodeWallGBps: Double
    var decodeWallGBps: Double
    /// The store step of a cold hit: f16 KV bytes written into a `KVCache` of all the
    /// chunks (K rotated, one pass per block, `KVRowWriter` tiles) per second of thread
    /// CPU time, one thread, with the frame's content checksum off as on the request path.
    var spliceGBps: Double
}

/// `spliceGBps` of `blocks` (chunk `i` under `chunkKey(i)`): each decoded into its rows of
/// one cache of all of them, as the request path's writers do.
func spliceSpeed(_ blocks: [[UInt8]], shape: KVShape, chunk: Int, reps: Int) -> Double {
    let rotation = RotaryTable(positions: 0..<(blocks.count * chunk), ropeDims: shape.headDim, base: 100_000,
                               style: .adjacent)
    var cache = KVCache(shape: shape, capacity: blocks.count * chunk, rotation: rotation)
    let decoder = KVBlockDecoder(verifiesFrameContent: false)
    let time = bestTime(reps: reps) {
        cache.truncate(to: 0)
        for (i, block) in blocks.enumerated() {
            let ok = cache.writeConcurrently([(i * chunk)..<((i + 1) * chunk)]) { _, writer in
                (try? decoder.decode(block, expectedChunkKey: chunkKey(i), expectedFingerprint: fingerprint,
                                     into: writer)) != nil
            }
            precondition(ok == [true], "block \(i) did not decode")
        }
    }
    return Double(blocks.count * chunk * shape.cacheBytesPerPosition) / time.cpu / 1e9
}

/// memcpy of `bytes` between two buffers of that size (both written first), GB/s of thread
/// CPU time: the baseline of `spliceSpeed`, which writes as many bytes.
func memcpySpeed(bytes: Int, reps: Int) -> Double {
    let src = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    let dst = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    defer { src.deallocate(); dst.deallocate() }
    src.initializeMemory(as: UInt8.self, repeating: 1, count: bytes)
    dst.initializeMemory(as: UInt8.self, repeating: 2, count: bytes)
    let time = bestTime(reps: reps) { dst.copyMemory(from: src, byteCount: bytes) }
    return Double(bytes) / time.cpu / 1e9
}

/// Measures every configuration on `chunks` of `source` (fastest of `reps`).
func measureSpeed(_ source: KVRows, chunk: Int, configs: [CodecConfig], reps: Int) throws -> [SpeedResult] {
    let shape = source.shape
    let ranges = stride(from: 0, to: source.count - chunk + 1, by: chunk).map { $0..<($0 + chunk) }
    let tokens = ranges.count * chunk
    let f32Bytes = Double(tokens * shape.bytesPerPosition)
    let f16Raw = Double(tokens * shape.bytesPerPosition / 2)
    var results: [SpeedResult] = []
    for config in configs {
        let enc = config.encoder
        var blocks: [[UInt8]] = []
        let encodeTime = try bestTime(reps: reps) {
            blocks = try ranges.enumerated().map { i, r in
                try enc.encode(source, range: r, chunkKey: chunkKey(i), modelFingerprint: fingerprint)
            }
        }
        var target = KVRows(shape: shape)
        target.extend(by: chunk)
        let dec = KVBlockDecoder()
        let decodeTime = try bestTime(reps: reps) {
            for (i, b) in blocks.enumerated() {
                try dec.decode(b, expectedChunkKey: chunkKey(i), expectedFingerprint: fingerprint, into: &target, at: 0)
            }
        }
        let stored = Double(blocks.reduce(0) { $0 + $1.count })
        let raw = Double(ranges.count * enc.uncompressedBlockSize(shape: shape, tokens: chunk))
        results.append(SpeedResult(
            label: config.label, codec: enc.codec.name, groupSize: enc.groupSize,
            frame: enc.compression == .lz4 ? "lz4" : "zstd", tokens: tokens,
            bytesPerToken: stored / Double(tokens), rawBytesPerToken: raw / Double(tokens),
            frameGain: raw / stored, ratioToF16: stored / f16Raw,
            encodeGBps: f32Bytes / encodeTime.cpu / 1e9, decodeGBps: f32Bytes / decodeTime.cpu / 1e9,
            encodeWallGBps: f32Bytes / encodeTime.wall / 1e9, decodeWallGBps: f32Bytes / decodeTime.wall / 1e9,
            spliceGBps: spliceSpeed(blocks, shape: shape, chunk: chunk, reps: reps)))
        let r = results.last!
        print("\(config.label.padding(toLength: 20, withPad: " ", startingAt: 0)) \(fmt(r.bytesPerToken, 0)) B/tok"
              + "  raw \(fmt(r.rawBytesPerToken, 0))  gain \(fmt(r.frameGain, 3))x  vs f16 \(fmt(r.ratioToF16, 3))"
              + "  enc \(fmt(r.encodeGBps)) GB/s  dec \(fmt(r.decodeGBps)) GB/s  splice \(fmt(r.spliceGBps)) GB/s")
        fflush(nil)
    }
    return results
}

/// memcpy of the same f32 bytes (one chunk's K and V rows into a cache), GB/s of thread CPU time.
func memcpyBaseline(_ source: KVRows, chunk: Int, reps: Int) -> Double {
    var target = KVRows(shape: source.shape)
    target.extend(by: chunk)
    let chunks = source.count / chunk
    let time = bestTime(reps: reps) {
        for c in 0..<chunks {
            for layer in 0..<source.shape.layers {
                for kind in [KVKind.key, .value] {
                    source.withRows(layer: layer, kind, (c * chunk)..<((c + 1) * chunk)) { src in
                        target.withMutableRows(layer: layer, kind, 0..<chunk) { dst in
                            UnsafeMutableRawPointer(dst.baseAddress!).copyMemory(from: src.baseAddress!, byteCount: src.count * 4)
                        }
                    }
                }
            }
        }
    }
    return Double(chunks * chunk * source.shape.bytesPerPosition) / time.cpu / 1e9
}

let fingerprint = [UInt8](repeating: 0xAB, count: 32)
func chunkKey(_ i: Int) -> [UInt8] { (0..<32).map { UInt8(truncatingIfNeeded: i &* 31 &+ $0) } }
