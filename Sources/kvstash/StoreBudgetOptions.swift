import ArgumentParser
import KVStashStore

/// `--max-store-bytes`, shared by the commands that write chunks (serve, precompute, query).
struct StoreBudgetOptions: ParsableArguments {
    @Option(name: .customLong("max-store-bytes"),
            help: "Byte budget of the store's values (e.g. 20GB), kept by LRU eviction before writes (default: half of the free space of the store's filesystem plus what the store holds; 'unlimited': none).")
    var maxStoreBytes: String?

    /// `options` with the budget set.
    func apply(to options: StoreOptions) throws -> StoreOptions {
        var o = options
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
