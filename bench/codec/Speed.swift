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
            encodeWallGBps: f32Bytes / encodeTime.wall / 1e9, decodeWallGBps: f32Bytes / decodeTime.wall / 1e9))
        let r = results.last!
        print("\(config.label.padding(toLength: 20, withPad: " ", startingAt: 0)) \(fmt(r.bytesPerToken, 0)) B/tok"
              + "  raw \(fmt(r.rawBytesPerToken, 0))  gain \(fmt(r.frameGain, 3))x  vs f16 \(fmt(r.ratioToF16, 3))"
              + "  enc \(fmt(r.encodeGBps)) GB/s  dec \(fmt(r.decodeGBps)) GB/s")
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
