import ArgumentParser
import KVStashStore

/// `--max-store-bytes` and `--store-reads`, shared by the commands that write chunks
/// (serve, precompute, query).
struct StoreBudgetOptions: ParsableArguments {
    @Option(name: .customLong("max-store-bytes"),
            help: "Byte budget of the store's values (e.g. 20GB), kept by LRU eviction before writes (default: half of the free space of the store's filesystem plus what the store holds; 'unlimited': none).")
    var maxStoreBytes: String?

    @Option(name: .customLong("store-reads"),
            help: "How stored chunks are read: 'mapped' (default; straight from the page cache, no copy) or 'pread' (a copy per read, through RocksDB's own reads).")
    var storeReads: StoreReads = .mapped

    enum StoreReads: String, ExpressibleByArgument, CaseIterable { case mapped, pread }

    /// `options` with the read mode set.
    func reads(_ options: StoreOptions) -> StoreOptions {
        var o = options
        o.mappedReads = storeReads == .mapped
        return o
    }

    /// `options` with the budget and the read mode set.
    func apply(to options: StoreOptions) throws -> StoreOptions {
        var o = reads(options)
        switch maxStoreBytes?.lowercased() {
        case nil: o.budgetFromFreeSpace = true
        case "unlimited"?: o.byteBudget = nil
        case let text?:
            let bytes = try parseBytes(text)
            guard bytes > 0 else { throw ValidationError("--max-store-bytes must be positive (or 'unlimited')") }
            o.byteBudget = bytes
        }
        return o
    }
}
