import Foundation
import KVStashEngine

/// Logits for fidelity measurements (bench/decode_fidelity.py): `tokensFile` holds one
/// window per line (token ids separated by spaces); each window's first `context` tokens are
/// prefilled, then every later token is fed through a decode step (or, with `byPrefill`, all
/// of them through one more prefill), and the logits after each (`vocabSize` little-endian
/// f32 each, windows in order) go to `out`. The products take the activations the
/// environment selects (`KVSTASH_DECODE_ACTIVATIONS`, `KVSTASH_PREFILL_PRODUCT`).
func teacherForce(model: LlamaModel, tokensFile: String, context: Int, byPrefill: Bool, out: String) throws {
    let windows = try String(contentsOfFile: tokensFile, encoding: .utf8).split(separator: "\n")
        .map { $0.split(separator: " ").map { Int($0)! } }
    guard FileManager.default.createFile(atPath: out, contents: nil) else { throw CocoaError(.fileWriteUnknown) }
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
    defer { try? handle.close() }
    for window in windows {
        var cache = model.newCache()
        _ = try model.prefill(Array(window.prefix(context)), cache: &cache)
        if byPrefill {
            let logits = try model.prefill(Array(window.dropFirst(context)), cache: &cache, allLogits: true)
            try handle.write(contentsOf: logits.withUnsafeBufferPointer { Data(buffer: $0) })
            continue
        }
        for token in window.dropFirst(context) {
            let logits = try model.decode(token, cache: &cache)
            try handle.write(contentsOf: logits.withUnsafeBufferPointer { Data(buffer: $0) })
        }
    }
}
