import ArgumentParser
import Foundation
import KVStashStore

/// Options every admin command shares.
struct AdminStoreOptions: ParsableArguments {
    @Option(name: .long, help: "Store directory (default: $KVSTASH_STORE).")
    var store: String?

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    var path: String {
        get throws {
            if let store { return store }
            if let env = ProcessInfo.processInfo.environment["KVSTASH_STORE"], !env.isEmpty { return env }
            throw ValidationError("no store: pass --store DIR or set KVSTASH_STORE")
        }
    }

    /// Opens the store. Reading commands fall back to read-only when another process (a
    /// server) holds it; writing commands fail with a message naming the holder.
    func open(writing: Bool) throws -> ChunkStore {
        let path = try self.path
        guard FileManager.default.fileExists(atPath: path + "/CURRENT") else {
            throw ValidationError("\(path) is not a kvstash store (no RocksDB CURRENT file)")
        }
        do {
            return try ChunkStore(path: path, options: StoreOptions(createIfMissing: false, flushInterval: 0))
        } catch StoreError.locked(let p, let holder) where !writing {
            FileHandle.standardError.write(Data("note: \(p) is in use by \(holder ?? "another process"); reading a read-only snapshot\n".utf8))
            return try ChunkStore(path: path, options: StoreOptions(createIfMissing: false, readOnly: true, flushInterval: 0))
        } catch let error as StoreError where error.isDiskFull && !writing {
            FileHandle.standardError.write(Data("note: \(error); reading a read-only snapshot\n".utf8))
            return try ChunkStore(path: path, options: StoreOptions(createIfMissing: false, readOnly: true, flushInterval: 0))
        }
    }
}

/// Prints `value` as pretty JSON with sorted keys and ISO-8601 dates.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.dateEncodingStrategy = .iso8601
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Prints rows as an aligned text table.
func printTable(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, c in c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
    }
    print(line(header))
    for row in rows { print(line(row)) }
}

/// "1.6 MB" style sizes (powers of 1000).
func formatBytes(_ n: Int) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"]
    var v = Double(n), u = 0
    while v >= 1000 && u < units.count - 1 { v /= 1000; u += 1 }
    return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
}

/// Parses "500", "64k", "1.5M", "10GB", "2GiB" into bytes.
func parseBytes(_ text: String) throws -> Int {
    let t = text.trimmingCharacters(in: .whitespaces).lowercased()
    let suffixes: [(String, Double)] = [("gib", 1_073_741_824), ("mib", 1_048_576), ("kib", 1024), ("gb", 1e9), ("mb", 1e6),
                                        ("kb", 1e3), ("g", 1e9), ("m", 1e6), ("k", 1e3), ("b", 1)]
    for (s, mult) in suffixes where t.hasSuffix(s) {
        if let v = Double(t.dropLast(s.count)) {
            // Checked before the conversion: Int(_:) of an out-of-range double traps.
            guard v.isFinite, v >= 0, v * mult < 0x1p63 else { throw ValidationError("size out of range: \(text)") }
            return Int(v * mult)
        }
    }
    if let v = Int(t), v >= 0 { return v }
    throw ValidationError("not a size: \(text) (use e.g. 500MB, 2GiB)")
}

/// Parses "90s", "30m", "12h", "7d" into seconds.
func parseDuration(_ text: String) throws -> TimeInterval {
    let t = text.trimmingCharacters(in: .whitespaces).lowercased()
    let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800]
    let seconds = t.last.flatMap { units[$0] }.flatMap { mult in Double(t.dropLast()).map { $0 * mult } } ?? Double(t)
    if let seconds {
        // A date must stay representable: at most about 10,000 years back.
        guard seconds.isFinite, (0...3e11).contains(seconds) else { throw ValidationError("duration out of range: \(text)") }
        return seconds
    }
    throw ValidationError("not a duration: \(text) (use e.g. 90s, 30m, 12h, 7d)")
}

/// Parses a 64-digit hex chunk key.
func parseKey(_ text: String) throws -> ChunkKey {
    guard let key = ChunkKey(hex: text) else { throw ValidationError("not a chunk key (64 hex digits): \(text)") }
    return key
}

/// "3m ago" style ages.
func formatAge(_ date: Date, now: Date = Date()) -> String {
    let s = max(0, now.timeIntervalSince(date))
    if s < 60 { return "\(Int(s))s ago" }
    if s < 3600 { return "\(Int(s / 60))m ago" }
    if s < 86400 { return "\(Int(s / 3600))h ago" }
    return "\(Int(s / 86400))d ago"
}

/// First 12 hex digits of a fingerprint or key.
func short(_ hex: String) -> String { String(hex.prefix(12)) }
