import Foundation

/// Free space of the filesystem that holds a store, and the store's default byte budget.
///
/// Debian's RocksDB aborts the process when a WAL write meets ENOSPC (an assertion in its
/// file writer), and a store whose WAL outgrew the free space could not reopen. So writes
/// check the free space first (`RocksDB.write`), a read-write open needs `openReserveBytes`,
/// and the default budget keeps the store's values to a fraction of the free space.
public enum DiskSpace {
    /// Free bytes a write must leave besides itself and the next memtable flush.
    public static let defaultMinFreeBytes = 16 << 20
    /// Free bytes a read-write open needs (a new WAL, MANIFEST, OPTIONS and LOG file).
    public static let openReserveBytes = 4 << 20
    /// Share of the free space (plus what the store's values already take) that the default
    /// byte budget allows.
    public static let defaultBudgetFraction = 0.5

    /// Bytes available to unprivileged writers on the filesystem of `path` (or of its
    /// nearest existing ancestor); nil when it cannot be read.
    public static func freeBytes(_ path: String) -> Int? {
        var url = URL(fileURLWithPath: path)
        while !FileManager.default.fileExists(atPath: url.path) && url.path != "/" {
            url.deleteLastPathComponent()
        }
        var st = statvfs()
        guard statvfs(url.path, &st) == 0 else { return nil }
        return Int(clamping: UInt64(st.f_bavail) &* UInt64(st.f_frsize))
    }

    /// The default byte budget of a store at `path` whose values take `storedBytes`:
    /// `defaultBudgetFraction` of (free space + stored bytes); nil when the free space
    /// cannot be read.
    public static func defaultBudget(path: String, storedBytes: Int) -> Int? {
        guard let free = freeBytes(path) else { return nil }
        return Int(Double(free + storedBytes) * defaultBudgetFraction)
    }
}
