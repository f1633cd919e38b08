import Foundation
import KVStashDigest
import XCTest
@testable import KVStashStore

/// A fresh temporary store directory, removed at the end of the test.
func temporaryStorePath(_ test: XCTestCase) -> String {
    let dir = NSTemporaryDirectory() + "kvstash-store-\(UUID().uuidString)"
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}

/// A deterministic value whose last 32 bytes are the SHA-256 of the rest, so a validator can
/// check it without knowing the key.
func selfCheckingValue(seed: Int, size: Int) -> [UInt8] {
    var state = UInt64(truncatingIfNeeded: seed) &* 0x9E37_79B9_7F4A_7C15 | 1
    var body = [UInt8](repeating: 0, count: max(size - 32, 0))
    for i in body.indices {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        body[i] = UInt8(truncatingIfNeeded: state)
    }
    return body + Array(SHA256.hash(data: body))
}

let selfCheck: ValueValidator = { value in
    guard value.count >= 32 else { return false }
    return Array(SHA256.hash(data: value[..<(value.count - 32)])) == Array(value[(value.count - 32)...])
}

func sampleMeta(parent: ChunkKey = .root, index: Int = 0, tokens: [Int] = [1, 2, 3, 4],
                model: [UInt8] = [1, 1, 1], codec: String = "f16", docs: [String] = []) -> ChunkMeta {
    ChunkMeta(parent: parent, chainIndex: index, tokens: tokens, codec: codec, modelFingerprint: model, docIDs: docs)
}

/// Writes a chain of `count` chunks; returns their keys.
@discardableResult
func putChain(_ store: ChunkStore, count: Int, valueSize: Int = 1000, seed: Int = 0,
              model: [UInt8] = [1, 1, 1], docs: [String] = []) throws -> [ChunkKey] {
    let keyer = ChunkKeyer(modelFingerprint: model, chunkSize: 4)
    let keys = keyer.chain(chainTokens(count: count, seed: seed))
    for (i, key) in keys.enumerated() {
        try store.put(key, value: chainValue(i, seed: seed, size: valueSize),
                      meta: chainMeta(i, of: keys, seed: seed, model: model, docs: docs))
    }
    return keys
}

/// The tokens of a `putChain` chain of `count` chunks (4 tokens each).
private func chainTokens(count: Int, seed: Int) -> [Int] { (0..<(count * 4)).map { $0 + seed * 1000 } }

/// The value `putChain` wrote for chunk `i` of its chain.
func chainValue(_ i: Int, seed: Int, size: Int) -> [UInt8] { selfCheckingValue(seed: seed * 1000 + i, size: size) }

/// The metadata `putChain` wrote for chunk `i` of the chain `keys`.
func chainMeta(_ i: Int, of keys: [ChunkKey], seed: Int, model: [UInt8] = [1, 1, 1], docs: [String] = []) -> ChunkMeta {
    let tokens = chainTokens(count: keys.count, seed: seed)
    return sampleMeta(parent: i == 0 ? .root : keys[i - 1], index: i, tokens: Array(tokens[i * 4..<(i + 1) * 4]),
                      model: model, docs: docs)
}
