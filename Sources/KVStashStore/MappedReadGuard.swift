import CMappedReads
import Foundation

/// Keeps a store's memory-mapped table files from crashing the process.
///
/// With mapped reads a page that cannot be read (a media error, or a table file truncated
/// under its mapping) raises SIGBUS where `pread` would return an error. Every store
/// directory opened with mapped reads is registered with a SIGBUS handler
/// (`CMappedReads`) that maps a zero page over such a page and counts it. The value then
/// fails its checksum (RocksDB's block checksum, or the KV block's own XXH64), so it is
/// counted, removed and recomputed like any other damage, and the table file is marked for
/// repair. A SIGBUS anywhere else still takes the action installed before.
enum MappedReadGuard {
    /// Registers `path` (made absolute, symlinks resolved, as `/proc/self/maps` names the
    /// files); returns the registered path, or nil when it could not be registered (the
    /// store's reads are then unguarded, and a warning says so).
    static func register(_ path: String) -> String? {
        let canonical = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        guard kv_mapped_reads_register(canonical) == 0 else {
            storeLogger.warning("mapped reads of this store are not guarded against unreadable pages (too many stores open, or the path is too long); a media error under a table file would stop the process",
                                metadata: ["store": "\(path)"])
            return nil
        }
        return canonical
    }

    static func unregister(_ canonical: String) { kv_mapped_reads_unregister(canonical) }

    /// Pages of registered stores' table files read as zeros since the process started.
    static var faults: UInt64 { kv_mapped_reads_faults() }
}
