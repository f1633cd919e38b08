import KVStashCodec
import KVStashCore
import KVStashEngine
import KVStashStore
import Logging

/// Settings of a `PrefixCache`.
public struct PrefixCacheOptions: Sendable {
    /// Codec of the chunks this process writes (readers decode whatever a block says).
    public var codec: KVCodec
    /// Group size of the quantized codecs.
    public var groupSize: Int
    /// Byte budget of the radix tree (RAM tier); 0 disables it.
    public var ramBudgetBytes: Int
    /// Tenant salt: requests with different salts never share KV.
    public var tenantSalt: [UInt8]
    /// Write chunks computed by queries back to the store (subject to the store's
    /// admission policy; precompute always writes).
    public var writeBackQueries: Bool
    /// Prompt tails kept per stored chunk: a query's partial last chunk is stored after its
    /// last full chunk, and a later prompt that shares part of it (a new question after the
    /// same document and chat template) splices the shared rows from the store. The most
    /// recent `promptTails` after each chunk are kept (at most
    /// `ChunkStore.promptTailsPerChunkLimit`); 0 stores none. Needs `writeBackQueries`.
    public var promptTails: Int
    /// Where the request path logs what it recovers from (a stored chunk it could not read
    /// and recomputes, a write-back that failed), with the cause.
    public var logger: Logger
    /// Fills the sliding-layer rows a cold hit left out with NaN before every attention
    /// (tests: proves attention never reads them).
    var poisonsSkippedRows = false

    public init(codec: KVCodec = .int8, groupSize: Int = KVBlockEncoder.defaultGroupSize,
                ramBudgetBytes: Int = 1 << 30, tenantSalt: [UInt8] = [], writeBackQueries: Bool = true,
                promptTails: Int = 4, logger: Logger = Logger(label: "kvstash.request")) {
        self.codec = codec
        self.groupSize = groupSize
        self.ramBudgetBytes = ramBudgetBytes
        self.tenantSalt = tenantSalt
        self.writeBackQueries = writeBackQueries
        self.promptTails = min(max(0, promptTails), ChunkStore.promptTailsPerChunkLimit)
        self.logger = logger
    }
}

/// The shared, thread-safe half of the request path: model, tokenizer, radix tree (RAM),
/// chunk store (disk) and codec. Any number of requests may run on it concurrently; each
/// request's state (its KV cache, its lease on tree nodes) is a value of its own.
///
/// A request: tokenize → match in the tree → probe the store chunk by chunk past the
/// match → fetch, verify, decode → splice → prefill only the rest (holes included) →
/// decode → write new full chunks back and insert into the tree.
public final class PrefixCache: Sendable {
    public let model: LlamaModel
    public let tokenizer: Tokenizer
    /// The cold tier; nil runs with the RAM tier only.
    public let store: ChunkStore?
    /// The chunk tiers below the tree: `store`, then the shared tier if any.
    public let tiers: ChunkTiers
    /// The hot tier.
    public let tree: RadixTree
    public let options: PrefixCacheOptions
    /// Fingerprint of the model, part of every chunk key: the file's, or for a model run with
    /// other numerics (`LlamaModel.numericsTag`) its `ModelFingerprint.variant`.
    public let modelFingerprint: [UInt8]
    /// Chain keys of full chunks (chunk size of the store).
    public let keyer: ChunkKeyer
    let encoder: KVBlockEncoder
    let namespace: RadixNamespace
    /// How chunks split into a global and a sliding block (nil: one block of every layer).
    let layerSplit: LayerSplit?

    /// Wires the parts together. `modelFingerprint` must come from
    /// `ModelFingerprint.compute` for the model's file (the cache keys by its variant when the
    /// model's numerics are not the default). `tree` shares one RAM tier (and its
    /// byte budget) between caches of several tenant salts; nil gives this cache its own,
    /// of `options.ramBudgetBytes`. `tiers` shares the chunk tiers (and their counters)
    /// between views; nil gives this cache tiers of its own over `store` alone.
    public init(model: LlamaModel, tokenizer: Tokenizer, store: ChunkStore?, modelFingerprint: [UInt8],
                options: PrefixCacheOptions = PrefixCacheOptions(), chunkSize: Int = 256, tree: RadixTree? = nil,
                tiers: ChunkTiers? = nil) {
        precondition(tiers == nil || tiers?.local === store, "the tiers' local store must be the cache's store")
        self.model = model
        self.tokenizer = tokenizer
        self.store = store
        self.tiers = tiers ?? ChunkTiers(local: store, logger: options.logger)
        self.options = options
        let modelFingerprint = model.numericsTag.map { ModelFingerprint.variant(modelFingerprint, numerics: $0) }
            ?? modelFingerprint
        self.modelFingerprint = modelFingerprint
        self.tree = tree ?? RadixTree(budgetBytes: options.ramBudgetBytes)
        self.keyer = ChunkKeyer(modelFingerprint: modelFingerprint, tenantSalt: options.tenantSalt,
                                chunkSize: store?.chunkSize ?? chunkSize)
        self.encoder = KVBlockEncoder(codec: options.codec, groupSize: options.groupSize)
        self.namespace = RadixNamespace(modelFingerprint: modelFingerprint, tenantSalt: options.tenantSalt)
        self.layerSplit = LayerSplit(model.config.layerAttention)
    }

    /// Opens the model at `modelPath` and, if given, the store at `storePath`; the model's
    /// fingerprint is cached beside the store.
    public convenience init(modelPath: String, storePath: String?, storeOptions: StoreOptions = StoreOptions(),
                            options: PrefixCacheOptions = PrefixCacheOptions(), prefillInputs: PrefillInputs = .sixteen) throws {
        let model = try LlamaModel(path: modelPath, prefillInputs: prefillInputs)
        let tokenizer = try Tokenizer(gguf: model.gguf)
        let store = try storePath.map { try ChunkStore(path: $0, options: storeOptions) }
        let fingerprint = try ModelFingerprint.compute(path: modelPath, cacheDir: storePath)
        self.init(model: model, tokenizer: tokenizer, store: store, modelFingerprint: fingerprint, options: options)
    }

    /// Tokens per stored chunk.
    public var chunkSize: Int { keyer.chunkSize }

    /// Tokenizes a prompt (special tokens such as `<|im_start|>` parsed as single tokens).
    public func tokenize(_ prompt: String) -> [Int] {
        tokenizer.encode(prompt, parseSpecial: true)
    }
}
