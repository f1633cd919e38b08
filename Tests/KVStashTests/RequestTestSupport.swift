import Foundation
import XCTest
import KVStash
import KVStashCodec
import KVStashCore
import KVStashEngine
import KVStashStore
import Logging
import Synchronization

/// The default model for tests: `$KVSTASH_MODEL`. Missing: a failure under CI, a skip otherwise.
func realModelPath() throws -> String {
    try modelPath(env: "KVSTASH_MODEL", name: "the default model")
}

/// Gemma 3 270M (`$KVSTASH_GEMMA3_MODEL`, scripts/setup.sh gemma3). Missing: a failure under CI, a skip otherwise.
func gemma3ModelPath() throws -> String {
    try modelPath(env: "KVSTASH_GEMMA3_MODEL", name: "Gemma 3 270M")
}

private func modelPath(env key: String, name: String) throws -> String {
    let env = ProcessInfo.processInfo.environment
    if let p = env[key], FileManager.default.fileExists(atPath: p) { return p }
    let message = "\(key) is not set to \(name) (scripts/test.sh sets it)"
    if env["CI"] != nil { XCTFail(message); throw XCTSkip(message) }
    throw XCTSkip(message)
}

/// A tiny random-weight llama (3 layers, dim 64; or `spec`) carrying the real model's
/// tokenizer, so prompts are text and requests run in milliseconds. Written once per process.
func tinyModelPath(_ spec: TinyModelSpec = .llama) throws -> String {
    let real = try realModelPath()
    let path = NSTemporaryDirectory() + "kvstash-request-tiny-\(spec.architecture)-\(getpid()).gguf"
    if !FileManager.default.fileExists(atPath: path) {
        var spec = spec
        spec.contextLength = 4096
        try TinyModel.write(spec, to: path, tokenizerFrom: try GGUFFile(path: real))
    }
    return path
}

/// A fresh temporary directory.
func temporaryDirectory() -> String {
    let dir = NSTemporaryDirectory() + "kvstash-request-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

/// Deterministic English-like documents (seeded), so prompts are reproducible.
func syntheticDocument(seed: UInt64, words: Int) -> String {
    let vocabulary = """
        river town market bridge winter summer harbor mountain village school teacher letter \
        council garden library station engineer doctor painter farmer baker north south east \
        west old new small large quiet busy early late green blue red golden stone wooden \
        built opened closed moved sold bought wrote painted repaired visited named founded
        """.split(separator: " ").map(String.init)
    var rng = SplitMix64(seed: seed)
    var out: [String] = []
    for i in 0..<words {
        var w = vocabulary[Int(rng.next() % UInt64(vocabulary.count))]
        if i % 12 == 0 { w = w.prefix(1).uppercased() + w.dropFirst() }
        out.append(i % 12 == 11 ? w + "." : w)
    }
    return out.joined(separator: " ")
}

/// Greedy continuation computed from scratch with the engine alone (no cache of any kind):
/// the reference every cached answer must equal.
func referenceGreedy(_ model: LlamaModel, _ tokenizer: Tokenizer, _ tokens: [Int], maxTokens: Int) throws -> [Int] {
    var cache = model.newCache(capacity: tokens.count + maxTokens)
    let logits = try model.prefill(tokens, cache: &cache)
    return try GenerationLoop(model: model, tokenizer: tokenizer, maxTokens: maxTokens).run(logits: logits, cache: &cache).tokens
}

/// A model, its tokenizer and template, loaded once.
struct LoadedModel {
    let path: String
    let model: LlamaModel
    let tokenizer: Tokenizer
    let chat: ChatTemplate
    let fingerprint: [UInt8]

    init(path: String) throws {
        self.path = path
        model = try LlamaModel(path: path)
        tokenizer = try Tokenizer(gguf: model.gguf)
        chat = try ChatTemplate(gguf: model.gguf)
        fingerprint = try ModelFingerprint.compute(path: path, cacheDir: nil)
    }

    /// A request path over the store at `store` (nil: RAM only).
    func prefixCache(store: ChunkStore?, codec: KVCodec = .f32, ram: Int = 1 << 30,
                     writeBack: Bool = false, fingerprint fp: [UInt8]? = nil,
                     logger: Logger = Logger(label: "kvstash.request")) -> PrefixCache {
        PrefixCache(model: model, tokenizer: tokenizer, store: store, modelFingerprint: fp ?? fingerprint,
                    options: PrefixCacheOptions(codec: codec, ramBudgetBytes: ram, writeBackQueries: writeBack,
                                                logger: logger))
    }

    func documentTokens(_ doc: String, _ template: PromptTemplate = .chatSystem) -> [Int] {
        tokenizer.encode(template.prefix(document: doc, chat: chat), parseSpecial: true)
    }

    func queryTokens(_ doc: String, _ question: String, _ template: PromptTemplate = .chatSystem) -> [Int] {
        tokenizer.encode(template.query(document: doc, question: question, chat: chat), parseSpecial: true)
    }
}

/// Keeps what a `Logger` is given, for tests of what the library logs.
final class LogSink: Sendable {
    struct Entry: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: Logger.Metadata
    }
    private let store = Mutex<[Entry]>([])

    var entries: [Entry] { store.withLock { $0 } }

    /// A logger writing into this sink.
    var logger: Logger { Logger(label: "test") { _ in Handler(sink: self) } }

    private struct Handler: LogHandler {
        let sink: LogSink
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?,
                 source: String, file: String, function: String, line: UInt) {
            let entry = Entry(level: level, message: message.description, metadata: self.metadata.merging(metadata ?? [:]) { $1 })
            sink.store.withLock { $0.append(entry) }
        }
    }
}
