import Foundation
import XCTest
@testable import KVStashEngine
import KVStashTestSupport

/// Shared helpers of the engine tests.
enum TestSupport {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let referenceScript = repoRoot.appendingPathComponent("Tests/reference/reference_forward.py").path
    static let quantReferenceScript = repoRoot.appendingPathComponent("Tests/reference/quant_reference.py").path
    static let goldensPath = repoRoot.appendingPathComponent("Tests/EngineTests/Resources/smollm2_goldens.json").path
    static let gemma3GoldensPath = repoRoot.appendingPathComponent("Tests/EngineTests/Resources/gemma3_goldens.json").path

    /// A fresh temporary directory, removed at process exit is not needed: tests clean up.
    static func tempDir() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kvstash-engine-\(UUID())")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Writes the tiny model for `spec` into a temp dir and returns its path.
    static func tinyModelPath(_ spec: TinyModelSpec = .llama) throws -> String {
        let path = try tempDir().appendingPathComponent("tiny-\(spec.architecture).gguf").path
        try TinyModel.write(spec, to: path)
        return path
    }

    /// The real default model, or a skip (a failure when `CI` is set) if it is absent.
    static func realModelPath() throws -> String {
        try cachedModelPath(env: "KVSTASH_MODEL", file: "SmolLM2-135M-Instruct.Q4_1.gguf", name: "real model", setup: "")
    }

    /// Gemma 3 270M Q4_K_M (`scripts/setup.sh gemma3`), or a skip (a failure when `CI` is set) if it is absent.
    static func gemma3ModelPath() throws -> String {
        try cachedModelPath(env: "KVSTASH_GEMMA3_MODEL", file: "gemma-3-270m-q4_k_m.gguf", name: "Gemma 3 model", setup: " gemma3")
    }

    /// `$env`, else `file` in the model cache of scripts/setup.sh, else a skip (a failure under CI).
    private static func cachedModelPath(env key: String, file: String, name: String, setup: String) throws -> String {
        let env = ProcessInfo.processInfo.environment
        let paths = [env[key], DefaultModel.cachedModel(file)].compactMap { $0 }
        if let p = paths.first(where: { !$0.isEmpty && FileManager.default.fileExists(atPath: $0) }) { return p }
        let msg = "\(name) not found: set \(key) (scripts/test.sh does) or run scripts/setup.sh\(setup)"
        if env["CI"] != nil { XCTFail(msg); throw XCTSkip(msg) }
        throw XCTSkip(msg)
    }

    /// Loads the real model once per test process.
    static func realModel() throws -> LlamaModel {
        let path = try realModelPath()
        return try RealModelCache.shared.model(path)
    }

    /// Loads Gemma 3 270M once per test process (or skips when it is absent).
    static func gemma3Model() throws -> LlamaModel {
        try RealModelCache.shared.model(try gemma3ModelPath())
    }

    /// Runs the numpy reference with `args` and decodes its JSON output.
    static func runReference(_ args: [String]) throws -> [String: Any] {
        try runPython(referenceScript, args) as! [String: Any]
    }

    /// Runs the Python script at `script` with `args` and decodes its JSON output.
    static func runPython(_ script: String, _ args: [String]) throws -> Any {
        let run = try ChildProcess.run("/usr/bin/env", ["python3", script] + args)
        guard run.status == 0 else {
            throw NSError(domain: "reference", code: Int(run.status), userInfo: [
                NSLocalizedDescriptionKey: "\(script) failed: \(run.errorText)"])
        }
        return try JSONSerialization.jsonObject(with: run.stdout)
    }

    /// Reference logits of every position of `tokens`, `[n][vocab]`.
    /// The float64 reference's logits at every position, with K after RoPE and V rounded to
    /// f16 as they enter its cache, as the engine's `KVCache` holds them (`--kv-f16`).
    static func referenceLogits(model: String, tokens: [Int]) throws -> [[Float]] {
        let json = try runReference(["logits", "--model", model, "--kv-f16",
                                     "--tokens", tokens.map(String.init).joined(separator: ",")])
        return (json["logits"] as! [[Double]]).map { $0.map(Float.init) }
    }

    /// max |a - b| / max |b|.
    static func relativeError(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Float {
        precondition(a.count == b.count)
        var num: Float = 0, den: Float = 0
        for (x, y) in zip(a, b) { num = max(num, abs(x - y)); den = max(den, abs(y)) }
        return den == 0 ? num : num / den
    }

    static func relativeError(_ a: [Float], _ b: [Float]) -> Float { relativeError(a[...], b[...]) }

    static func argmax(_ x: [Float]) -> Int { x.indices.max { x[$0] < x[$1] }! }

    /// Deterministic pseudo-random token ids.
    static func tokens(_ n: Int, vocab: Int, seed: UInt64) -> [Int] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in Int(rng.next() % UInt64(vocab)) }
    }
}

/// Process-wide cache of loaded real models (loading takes a second and ~540 MB).
final class RealModelCache: Sendable {
    static let shared = RealModelCache()
    private let lock = NSLock()
    nonisolated(unsafe) private var models: [String: LlamaModel] = [:]
    // nonisolated(unsafe): every access to `models` holds `lock`.

    func model(_ path: String) throws -> LlamaModel {
        lock.lock()
        defer { lock.unlock() }
        if let m = models[path] { return m }
        let m = try LlamaModel(path: path)
        models[path] = m
        return m
    }
}
