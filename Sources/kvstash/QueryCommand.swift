import ArgumentParser
import Foundation
import KVStash
import KVStashCodec
import KVStashEngine
import KVStashStore

/// `kvstash query`: asks a question about a stored document (or a context file), reusing
/// its cached KV, and reports where the prompt's KV came from.
struct QueryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Ask a question about a precomputed document, reusing its cached KV.",
        discussion: """
            Streams the answer to stdout, then prints one line to stderr: prompt tokens, tokens \
            from RAM, from disk, prefilled, time to first token and decode tokens/s (`--json`: \
            one object per answer on stdout instead). `--repeat 2` asks twice in one \
            process: the second answer comes from the RAM tier.
            """)

    @Option(help: "Store directory.") var store: String
    @Option(help: "Id of a precomputed document (its path, or the JSONL id).") var doc: String?
    @Option(name: .customLong("context-file"), help: "A file to use as the document.") var contextFile: String?
    @Option(help: "GGUF model (default: the store's, $KVSTASH_MODEL, or the default model).") var model: String?
    @Option(help: "Codec of chunks written back (default: the store's): \(KVCodec.nameList).") var codec: String?
    @OptionGroup var budget: StoreBudgetOptions
    @OptionGroup var engine: PrefillInputOptions
    @OptionGroup var sharedTier: SharedTierOptions
    @Option(help: "Prompt template (default: the store's): chat-system, chat-user, raw.") var template: String?
    @Option(name: [.customShort("n"), .customLong("max-tokens")], help: "Maximum new tokens.") var maxTokens = 128
    @Option(help: "Ask this many times in one process (2: disk, then RAM).") var `repeat` = 1
    @Flag(name: .customLong("no-write-back"), help: "Do not write computed chunks to the store.") var noWriteBack = false
    @Flag(help: "Print one JSON object per answer instead of streaming text.") var json = false
    @OptionGroup var sampling: SamplingOptions
    @Argument(help: "The question.") var question: String

    func validate() throws {
        guard (doc == nil) != (contextFile == nil) else { throw ValidationError("pass exactly one of --doc ID or --context-file F") }
        guard maxTokens > 0, `repeat` > 0 else { throw ValidationError("--max-tokens and --repeat must be positive") }
    }

    func run() throws {
        let settings = StoreSettings.load(storePath: store)
        let modelPath = try RequestCLI.modelPath(model, settings: settings)
        let chunkStore = try RequestCLI.openStore(store, chunkSize: nil, budget: budget)
        defer { try? chunkStore.close() }
        let tiers = ChunkTiers(local: chunkStore, shared: try sharedTier.open())
        let (document, tmpl) = try documentAndTemplate(settings, tiers: tiers)
        sampling.applyThreads()
        let m = try LlamaModel(path: modelPath, prefillInputs: engine.resolved(settings))
        // The RAM tier serves only a later question of this process: with one, copying the
        // prompt's pages into it after the first token would stall the answer for nothing.
        let options = PrefixCacheOptions(codec: try RequestCLI.codec(codec ?? settings?.codec ?? "int8"),
                                         ramBudgetBytes: `repeat` > 1 ? PrefixCacheOptions().ramBudgetBytes : 0,
                                         writeBackQueries: !noWriteBack && !chunkStore.readOnly)
        let cache = PrefixCache(model: m, tokenizer: try Tokenizer(gguf: m.gguf), store: chunkStore,
                                modelFingerprint: try ModelFingerprint.compute(path: modelPath, cacheDir: store),
                                options: options, tiers: tiers)
        let prompt = tmpl.query(document: document, question: question, chat: try ChatTemplate(gguf: m.gguf))
        let generation = GenerationOptions(maxTokens: maxTokens, sampling: sampling.params)
        for _ in 0..<`repeat` {
            let result = try cache.generate(prompt: prompt, options: generation) { piece in
                if !json { FileHandle.standardOutput.write(Data(piece.text.utf8)) }
                return true
            }
            try report(result, batchInvariant: m.batchInvariant)
        }
        tiers.flush()
        tiers.report()
    }

    /// The document's text and template: from the store's library, else from the shared tier.
    private func documentAndTemplate(_ settings: StoreSettings?, tiers: ChunkTiers) throws -> (String, PromptTemplate) {
        if let doc {
            guard let stored = try DocumentLibrary(storePath: store).load(doc) ?? tiers.sharedDocument(id: doc)?.documentText else {
                throw ValidationError("no document '\(doc)' in \(store)\(tiers.shared == nil ? "" : " or the shared tier") (precompute it first)")
            }
            return (stored.text, try template.map(RequestCLI.template) ?? stored.template)
        }
        let text = try String(contentsOfFile: contextFile ?? "", encoding: .utf8)
        return (text, try template.map(RequestCLI.template) ?? settings?.template ?? .chatSystem)
    }

    private func report(_ r: RequestResult, batchInvariant: Bool) throws {
        guard json else {
            FileHandle.standardOutput.write(Data("\n".utf8))
            FileHandle.standardError.write(Data((r.summary + "\n").utf8))
            return
        }
        let out = QueryJSON(text: r.text, finishReason: r.finishReason.rawValue, promptTokens: r.sources.prompt,
                            fromRAM: r.sources.ram, fromDisk: r.sources.disk, fromShared: r.sources.shared,
                            prefilled: r.sources.prefilled,
                            corruptChunks: r.sources.corruptChunks, ttftMs: r.timeToFirstToken * 1000,
                            decodeTokensPerSecond: r.decodeTokensPerSecond, generatedTokens: r.tokens.count,
                            chunksStored: r.chunksStored, ramMs: r.timings.ram * 1000,
                            diskMs: r.timings.disk * 1000, prefillMs: r.timings.prefill * 1000,
                            batchInvariant: batchInvariant)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        print(String(decoding: try enc.encode(out), as: UTF8.self))
    }
}

/// `query --json` output.
struct QueryJSON: Codable {
    var text: String
    var finishReason: String
    var promptTokens, fromRAM, fromDisk, fromShared, prefilled, corruptChunks: Int
    var ttftMs: Double
    var decodeTokensPerSecond: Double
    var generatedTokens: Int
    var chunksStored: Int
    var ramMs, diskMs, prefillMs: Double
    /// `LlamaModel.batchInvariant`: whether this answer from cached KV (f32 codec, RAM) is, token
    /// for token, the answer without the cache.
    var batchInvariant: Bool
}
