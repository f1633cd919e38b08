import ArgumentParser
import Foundation
import KVStash
import KVStashCodec
import KVStashCore
import KVStashEngine
import KVStashServer
import KVStashStore

/// `kvstash serve`: the OpenAI-compatible HTTP server over the request path.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the model over an OpenAI-compatible HTTP API, with admin endpoints and Prometheus metrics.")

    @Option(name: .long, help: "Store directory (created if missing).")
    var store: String

    @Option(name: .long, help: "GGUF model (default: the store's, $KVSTASH_MODEL, or the default model).")
    var model: String?

    @Option(name: .long, help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(name: .long, help: "Port to bind (0 picks a free port).")
    var port = 8080

    @Option(name: .long, help: "Bearer token of /admin/* (default: $KVSTASH_ADMIN_TOKEN; none closes the admin API).")
    var adminToken: String?

    @Option(name: .long, help: "Codec of chunks written to the store: \(KVCodec.nameList).")
    var codec = "int8"

    @OptionGroup var budget: StoreBudgetOptions
    @OptionGroup var engine: PrefillInputOptions

    @OptionGroup var sharedTier: SharedTierOptions

    @Option(name: .long, help: "Byte budget of the RAM tier (radix tree) in MiB.")
    var ramBudgetMB = 1024

    @Option(name: .long, help: "Prompt tails kept per stored chunk: a prompt's partial last chunk, reused by later prompts that share part of it (0: none).")
    var promptTails = 4

    @Option(name: .long, help: "Largest request body in bytes.")
    var maxBody = 4 << 20

    @Flag(name: .long, help: "Render chats without the template's default system turn.")
    var noDefaultSystem = false

    @Flag(name: .long, help: "One cache namespace per API key (Authorization: Bearer); requests without a key get 401.")
    var tenantFromApiKey = false

    @Option(name: .long, help: "Precompute jobs computing at once.")
    var precomputeConcurrency = 1

    @Option(name: .long, help: "Precompute jobs queued or running; past it POST /v1/precompute answers 429.")
    var precomputeQueue = 16

    @Option(name: .long, help: "Seconds a finished precompute job stays visible.")
    var precomputeRetention = 3600

    @Option(name: .long, help: "Documents in one precompute request.")
    var precomputeMaxDocuments = 16

    @Option(name: .long, help: "Bytes of document text in one precompute request.")
    var precomputeMaxBytes = 2 << 20

    @Option(name: .long, help: "Open connections; past it a connection is answered 503 and closed.")
    var maxConnections = 512

    @Option(name: .long, help: "Seconds a connection may go without a complete request head (slow headers, idle keep-alive).")
    var idleTimeout: Double = 15

    @Option(name: .long, help: "Seconds from a request's head to the end of its body.")
    var readTimeout: Double = 30

    @Option(name: .long, help: "KV positions (prompt + max_tokens) of all generations at once; past it: 429.")
    var maxActiveTokens = 32_768

    @Option(name: .long, help: "KV positions whose cache memory is faulted in at start (default: the model's context, at most 512 MiB; 0: none).")
    var prewarmTokens: Int?

    @Flag(name: .long, help: "Skip the warm-up at start: a forward pass, the tokenizer's frequent words and the request codecs (the first request then starts the worker threads, binds the kernels, fills the tokenizer's merge caches and resolves the request types).")
    var noWarmup = false

    @Option(name: .long, help: "On stop, seconds to wait for chunks still queued for the shared tier (0: none).")
    var publishDrainSeconds = 30

    func validate() throws {
        for (name, value) in [("--precompute-concurrency", precomputeConcurrency), ("--precompute-queue", precomputeQueue),
                              ("--precompute-max-documents", precomputeMaxDocuments),
                              ("--precompute-max-bytes", precomputeMaxBytes), ("--max-connections", maxConnections),
                              ("--max-body", maxBody), ("--max-active-tokens", maxActiveTokens)] where value < 1 {
            throw ValidationError("\(name) must be positive")
        }
        guard (0...3600).contains(publishDrainSeconds) else { throw ValidationError("--publish-drain-seconds must be in [0, 3600]") }
        guard (prewarmTokens ?? 0) >= 0 else { throw ValidationError("--prewarm-tokens must be >= 0") }
        let tailLimit = ChunkStore.promptTailsPerChunkLimit
        guard (0...tailLimit).contains(promptTails) else { throw ValidationError("--prompt-tails must be in [0, \(tailLimit)]") }
        guard precomputeRetention >= 0 else { throw ValidationError("--precompute-retention must be >= 0") }
        guard (0...(Int.max >> 20)).contains(ramBudgetMB) else { throw ValidationError("--ram-budget-mb is out of range") }
        guard idleTimeout > 0, readTimeout > 0, idleTimeout <= 86_400, readTimeout <= 86_400 else {
            throw ValidationError("--idle-timeout and --read-timeout must be in (0, 86400] seconds")
        }
    }

    func run() async throws {
        let settings = StoreSettings.load(storePath: store)
        let modelPath = try RequestCLI.modelPath(model, settings: settings)
        let chunkStore = try ChunkStore(path: store, options: try budget.apply(to: StoreOptions()))
        defer { try? chunkStore.close() }
        let options = PrefixCacheOptions(codec: try RequestCLI.codec(codec), ramBudgetBytes: ramBudgetMB << 20,
                                         promptTails: promptTails)
        let backend = try PrefixCacheBackend(modelPath: modelPath, store: chunkStore, shared: try await sharedTier.openAsync(),
                                             options: options, defaultSystem: !noDefaultSystem,
                                             prefillInputs: engine.resolved(settings))
        prewarm(backend.model.config)
        if !noWarmup { try backend.warmUp() }
        FileHandle.standardError.write(Data((backend.model.batchInvariant
            ? "rows are batch-invariant here: cached answers (f32 codec, RAM tier) equal uncached ones token for token\n"
            : "rows are not batch-invariant on this CPU or model (needs AVX-512 VNNI or AVX2, and quantized weights at default precision): "
              + "cached and uncached answers may differ at near-ties\n").utf8))
        let token = adminToken ?? ProcessInfo.processInfo.environment["KVSTASH_ADMIN_TOKEN"]
        let config = ServerConfiguration(
            host: host, port: port, adminToken: token, maxBodyBytes: maxBody, tenantFromAPIKey: tenantFromApiKey,
            precompute: PrecomputeLimits(concurrency: precomputeConcurrency, queueLimit: precomputeQueue,
                                         retentionSeconds: precomputeRetention, maxDocuments: precomputeMaxDocuments,
                                         maxTextBytes: precomputeMaxBytes),
            connections: ConnectionLimits(maxConnections: maxConnections, idleTimeoutSeconds: idleTimeout,
                                          readTimeoutSeconds: readTimeout),
            maxActiveTokens: maxActiveTokens)
        let server = KVStashServer(configuration: config, backend: backend, admin: ChunkStoreAdmin(store: chunkStore),
                                   tiers: backend.tiers, ramTier: backend.tree)
        if !noWarmup { server.warmUpCodecs() }
        let (host, modelID) = (self.host, backend.modelID)
        try await server.run { port in
            // One parseable line, so scripts (and the tests) can learn the port.
            FileHandle.standardOutput.write(Data("kvstash serving \(modelID) on http://\(host):\(port)\n".utf8))
        }
        // Stopped (SIGTERM, SIGINT): chunks still queued for the shared tier go out first.
        backend.tiers.flush(within: .seconds(publishDrainSeconds))
    }

    /// Faults in the KV cache memory of `--prewarm-tokens` positions, as serving engines
    /// allocate their KV cache at start, so a first request does not zero fresh pages.
    private func prewarm(_ config: ModelConfig) {
        let perPosition = config.kvShape.cacheBytesPerPosition
        let tokens = prewarmTokens ?? min(config.contextLength, (512 << 20) / max(perPosition, 1))
        guard tokens > 0 else { return }
        KVCache.prewarm(shape: config.kvShape, capacity: min(tokens, config.contextLength))
    }
}
