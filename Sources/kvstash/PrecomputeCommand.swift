import ArgumentParser
import Foundation
import KVStash
import KVStashCodec
import KVStashEngine
import KVStashStore

/// `kvstash precompute`: computes and stores the KV of every document of a corpus.
struct PrecomputeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "precompute",
        abstract: "Precompute and store the KV of documents (files, directories, JSONL of {id, text}).",
        discussion: """
            Each document is wrapped in the template queries use (default: a ChatML system turn \
            holding the document), so `kvstash query --doc ID` reuses its KV. Documents already \
            stored are skipped; Ctrl-C stops after the current chunk and leaves a clean store.
            """)

    @Option(help: "Store directory (created if missing).") var store: String
    @Option(help: "GGUF model (default: the store's, $KVSTASH_MODEL, or the default model).") var model: String?
    @Option(help: "KV codec of the stored chunks: \(KVCodec.nameList).") var codec = "int8"
    @Option(name: .customLong("chunk-size"), help: "Tokens per chunk (a new store only).") var chunkSize = 256
    @OptionGroup var budget: StoreBudgetOptions
    @OptionGroup var engine: PrefillInputOptions
    @OptionGroup var sharedTier: SharedTierOptions
    @Option(help: "Prompt template: chat-system, chat-user, raw.") var template = "chat-system"
    @Option(help: "Glob on file names inside directories (repeatable), e.g. '*.md'.") var include: [String] = []
    @Flag(help: "Recompute documents that are already stored.") var force = false
    @Flag(help: "Print the summary as JSON.") var json = false
    @Flag(name: .customLong("no-progress"), help: "No progress bar.") var noProgress = false
    @Argument(help: "Files, directories or .jsonl files.") var paths: [String]

    func run() throws {
        let codec = try RequestCLI.codec(codec)
        let template = try RequestCLI.template(template)
        let settings = StoreSettings.load(storePath: store)
        let modelPath = try RequestCLI.modelPath(model, settings: settings)
        let inputs = engine.resolved(settings)
        let docs = try CorpusReader.documents(paths, include: include)
        let chunkStore = try ChunkStore(path: store, options: try budget.apply(to: StoreOptions(chunkSize: chunkSize)))
        let cache: PrefixCache
        let tiers: ChunkTiers
        do {
            tiers = ChunkTiers(local: chunkStore, shared: try sharedTier.open())
            let m = try LlamaModel(path: modelPath, prefillInputs: inputs)
            cache = PrefixCache(model: m, tokenizer: try Tokenizer(gguf: m.gguf), store: chunkStore,
                                modelFingerprint: try ModelFingerprint.compute(path: modelPath, cacheDir: store),
                                options: PrefixCacheOptions(codec: codec, ramBudgetBytes: 0), tiers: tiers)
            let name = (modelPath as NSString).lastPathComponent + (m.numericsTag.map { " [\($0)]" } ?? "")
            try chunkStore.registerModel(fingerprint: cache.modelFingerprint, name: name)
            try StoreSettings(modelPath: modelPath, codec: codec.name, template: template, prefillInputs: inputs.rawValue)
                .save(storePath: store)
        } catch {
            try? chunkStore.close()
            throw error
        }
        let summary = try precomputeAll(docs, cache: cache, template: template)
        tiers.flush()  // every chunk reaches the shared tier before the process ends
        tiers.report()
        try chunkStore.close()
        try summary.print(json: json)
        if summary.interrupted { throw ExitCode(130) }
    }

    private func precomputeAll(_ docs: [CorpusDocument], cache: PrefixCache,
                               template: PromptTemplate) throws -> PrecomputeSummary {
        let interrupt = InterruptFlag()
        let signalSource = interrupt.install()
        defer { signalSource.cancel() }
        let chat = try ChatTemplate(gguf: cache.model.gguf)
        let library = DocumentLibrary(storePath: store)
        var summary = PrecomputeSummary(documents: docs.count)
        var bar = ProgressBar(total: docs.count, enabled: !noProgress && isatty(2) != 0)
        let start = ContinuousClock.now
        for (n, doc) in docs.enumerated() {
            if interrupt.isRaised { summary.interrupted = true; break }
            let text = try doc.text()
            let tokens = cache.tokenize(template.prefix(document: text, chat: chat))
            let record = DocumentText(id: doc.id, name: doc.name, template: template, text: text)
            try library.save(record)
            let r = try cache.precompute(tokens: tokens, id: doc.id, name: doc.name, skipExisting: !force,
                                         shouldStop: { interrupt.isRaised }) { done in
                summary.tokensComputed += done
                bar.draw(docs: n, tokens: summary.tokensComputed)
            }
            summary.add(r)
            if !r.interrupted, let stored = try cache.store?.document(id: doc.id) {
                do {
                    try cache.tiers.publishDocument(record, record: stored)
                } catch {
                    RequestCLI.note("document \(doc.id) not published to the shared tier: \(error)")
                }
            }
            bar.draw(docs: n + 1, tokens: summary.tokensComputed, force: true)
            if r.interrupted { summary.interrupted = true; break }
        }
        bar.finish()
        summary.seconds = ProgressBar.seconds(ContinuousClock.now - start)
        return summary
    }
}

/// The end-of-run report of `precompute`.
struct PrecomputeSummary: Codable {
    var documents: Int
    var precomputed = 0
    var skipped = 0
    var truncated = 0
    var tokens = 0
    var tokensComputed = 0
    var chunksWritten = 0
    var chunksReused = 0
    var bytesWritten = 0
    var corruptChunks = 0
    var failures = 0
    var seconds = 0.0
    var interrupted = false

    mutating func add(_ r: PrecomputeResult) {
        if r.skipped { skipped += 1; return }
        if !r.interrupted { precomputed += 1 }
        if r.truncated { truncated += 1 }
        tokens += r.tokens
        chunksWritten += r.written.chunks
        chunksReused += r.written.alreadyStored
        bytesWritten += r.written.bytes
        corruptChunks += r.sources.corruptChunks
        failures += r.written.failures
    }

    func print(json: Bool) throws {
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            Swift.print(String(decoding: try enc.encode(self), as: UTF8.self))
            return
        }
        let rate = seconds > 0 ? Int(Double(tokensComputed) / seconds) : 0
        Swift.print("""
            \(interrupted ? "interrupted" : "done"): \(precomputed) documents precomputed, \(skipped) already stored\
            \(truncated > 0 ? ", \(truncated) truncated to the context length" : "")
            tokens: \(tokens) in documents, \(tokensComputed) computed (\(rate) tok/s)
            chunks: \(chunksWritten) written (\(RequestCLI.bytes(bytesWritten))), \(chunksReused) already stored\
            \(corruptChunks > 0 ? ", \(corruptChunks) corrupt recomputed" : "")\(failures > 0 ? ", \(failures) failed" : "")
            time: \(RequestCLI.seconds(seconds))
            """)
    }
}
