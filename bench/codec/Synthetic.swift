import CKernels
import KVStashCodec
import Foundation
import KVStashCore

/// KV-like data: keys with per-channel offsets and a few outlier channels, values
/// per-token Gaussian noise. Deterministic.
func syntheticKV(_ shape: KVShape, tokens: Int) -> KVRows {
    var state: UInt64 = 42
    func gaussian() -> Float {
        func next() -> Double {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53) + 1e-12
        }
        return Float((-2 * log(next())).squareRoot() * cos(2 * .pi * next()))
    }
    var cache = KVRows(shape: shape)
    cache.extend(by: tokens)
    let d = shape.kvDim
    for layer in 0..<shape.layers {
        let offset = (0..<d).map { _ in 2 * gaussian() }
        cache.withMutableRows(layer: layer, .key, 0..<tokens) { k in
            for t in 0..<tokens { for c in 0..<d { k[t * d + c] = offset[c] + (c % 17 == 3 ? 8 : 1) * gaussian() } }
        }
        cache.withMutableRows(layer: layer, .value, 0..<tokens) { v in
            for i in 0..<v.count { v[i] = 0.5 * gaussian() }
        }
    }
    return cache
}

func kernelISA() -> String { String(cString: kv_kernels_isa()) }

/// Decodes one configuration's blocks in a loop (for `perf`): `codec-bench profile LABEL`.
func profileDecode(_ label: String, seconds: Double) throws {
    let shape = KVShape(layers: 30, kvHeads: 3, headDim: 64)
    let source = syntheticKV(shape, tokens: 1024)
    guard let config = CodecConfig.all(kvDim: shape.kvDim).first(where: { $0.label == label }) else {
        fatalError("no config \(label)")
    }
    let blocks = try (0..<4).map { i in
        try config.encoder.encode(source, range: (i * 256)..<((i + 1) * 256), chunkKey: chunkKey(i), modelFingerprint: fingerprint)
    }
    var target = KVRows(shape: shape)
    target.extend(by: 256)
    let start = threadCPUTime()
    var n = 0
    while threadCPUTime() - start < seconds {
        for (i, b) in blocks.enumerated() {
            try KVBlockDecoder().decode(b, expectedChunkKey: chunkKey(i), expectedFingerprint: fingerprint, into: &target, at: 0)
        }
        n += 4
    }
    print("\(label): \(fmt(Double(n * 256 * shape.bytesPerPosition) / (threadCPUTime() - start) / 1e9)) GB/s")
}
