/// Whether the store takes writes, for `GET /health` and `/metrics` (cheap: no scan).
public struct StoreHealth: Sendable, Hashable, Codable {
    /// False after a RocksDB background error or detected table damage: RocksDB refuses
    /// writes until the store is reopened (and repaired). Reads go on.
    public var writable: Bool
    /// Failed flushes and compactions since the store was opened.
    public var backgroundErrors: Int
    /// A damaged table file was found; the next read-write open (or `kvstash repair`) repairs it.
    public var needsRepair: Bool
    /// Writes refused for lack of disk space since the store was opened.
    public var writesRefusedDiskFull: Int
    /// What is wrong, for people (empty when healthy).
    public var problems: [String]

    public init(writable: Bool = true, backgroundErrors: Int = 0, needsRepair: Bool = false,
                writesRefusedDiskFull: Int = 0, problems: [String] = []) {
        self.writable = writable
        self.backgroundErrors = backgroundErrors
        self.needsRepair = needsRepair
        self.writesRefusedDiskFull = writesRefusedDiskFull
        self.problems = problems
    }

    enum CodingKeys: String, CodingKey {
        case writable, problems
        case backgroundErrors = "background_errors", needsRepair = "needs_repair"
        case writesRefusedDiskFull = "writes_refused_disk_full"
    }

    /// Healthy: writable and no write refused for space.
    public var ok: Bool { writable && writesRefusedDiskFull == 0 }
}

extension StoreAdmin {
    /// A store that reports nothing is taken as healthy.
    public func health() -> StoreHealth { StoreHealth() }
}
