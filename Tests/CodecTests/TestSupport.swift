import CKernels
import Foundation
import KVStashCodec
import KVStashCore
import KVStashTestSupport
import XCTest

/// SplitMix64: a small deterministic generator for test data.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Standard normal (Box-Muller).
    mutating func gaussian() -> Float {
        let u1 = Double.random(in: Double.ulpOfOne..<1, using: &self)
        let u2 = Double.random(in: 0..<1, using: &self)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
    }
}

/// A cache of `tokens` positions filled with KV-like data: keys have a per-channel
/// offset and scale (a few outlier channels, as real pre-RoPE keys do), values are
/// per-token noise.
func syntheticCache(_ shape: KVShape, tokens: Int, seed: UInt64) -> KVRows {
    var rng = SplitMix(seed: seed)
    var cache = KVRows(shape: shape)
    cache.extend(by: tokens)
    let d = shape.kvDim
    for layer in 0..<shape.layers {
        let offset = (0..<d).map { _ in rng.gaussian() * 2 }
        let scale = (0..<d).map { c in c % 17 == 3 ? Float(8) : Float(1) }
        cache.withMutableRows(layer: layer, .key, 0..<tokens) { k in
            for t in 0..<tokens { for c in 0..<d { k[t * d + c] = offset[c] + scale[c] * rng.gaussian() } }
        }
        cache.withMutableRows(layer: layer, .value, 0..<tokens) { v in
            for i in 0..<v.count { v[i] = 0.5 * rng.gaussian() }
        }
    }
    return cache
}

/// Every K and V row of `range`, layer by layer (K then V), as one array.
func flatKV(_ cache: KVRows, _ range: Range<Int>) -> [Float] {
    var out: [Float] = []
    for layer in 0..<cache.shape.layers {
        out += cache.rows(layer: layer, .key, range)
        out += cache.rows(layer: layer, .value, range)
    }
    return out
}

func key(_ byte: UInt8) -> [UInt8] { (0..<32).map { UInt8(truncatingIfNeeded: Int($0) &* 7 &+ Int(byte)) } }

/// Runs `Tests/reference/quant_reference.py` with `args`; returns stdout.
/// Fails (rather than skips) when python3 or numpy is missing.
func runReference(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("reference/quant_reference.py")
    let run = try ChildProcess.run("/usr/bin/env", ["python3", script.path] + args)
    guard run.status == 0 else {
        XCTFail("reference failed: \(run.errorText)", file: file, line: line)
        throw CocoaError(.executableLoad)
    }
    return run.text
}

func tempFile(_ name: String) -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("kvcodec-\(getpid())-\(name)")
}

func writeFloats(_ xs: [Float], to url: URL) throws {
    try xs.withUnsafeBytes { try Data($0).write(to: url) }
}

func readFloats(_ url: URL) throws -> [Float] {
    let data = try Data(contentsOf: url)
    return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
}

/// Rewrites the payload checksum and the header checksum of a (damaged) block so the
/// damage reaches the frame and its own checks. Uses the format's documented layout.
func reseal(_ block: [UInt8]) -> [UInt8] {
    var b = block
    let payload = Array(b[112...])
    put64(&b, 96, xxh64Reference(payload))
    put64(&b, 104, xxh64Reference(Array(b[0..<104])))
    return b
}

func put64(_ b: inout [UInt8], _ at: Int, _ v: UInt64) {
    for i in 0..<8 { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
}

/// XXH64 (seed 0) through the codec's kernel; `HashTests` checks it against libxxhash.
func xxh64Reference(_ bytes: [UInt8]) -> UInt64 {
    bytes.withUnsafeBytes { kv_xxh64($0.baseAddress, $0.count, 0) }
}
