import ArgumentParser
import Foundation
import KVStashCodec
import KVStashStore

/// `kvstash evict`: remove chunks by budget, age, model, document or key.
struct AdminEvict: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evict", abstract: "Evict chunks (pinned chunks are kept unless --include-pinned).",
        discussion: "Give exactly one rule. --to-bytes evicts by approximate LRU, deeper chunks of a chain first.")
    @OptionGroup var common: AdminStoreOptions
    @Option(help: "Evict down to this many value bytes (e.g. 2GB).") var toBytes: String?
    @Option(help: "Evict chunks last read longer ago than this (e.g. 7d).") var olderThan: String?
    @Option(help: "Evict chunks of this model (full hex fingerprint).") var model: String?
    @Option(help: "Evict chunks of this document id.") var doc: String?
    @Option(name: .customLong("key"), help: "Evict this chunk key, with its sliding-layer block if stored (repeatable).") var keys: [String] = []
    @Flag(help: "Also evict pinned chunks (not with --to-bytes).") var includePinned = false

    func rule() throws -> EvictionRule {
        var rules: [EvictionRule] = []
        if let toBytes { rules.append(.toBudget(try parseBytes(toBytes))) }
        if let olderThan { rules.append(.olderThan(Date(timeIntervalSinceNow: -(try parseDuration(olderThan))))) }
        if let model {
            guard let fp = Hex.decode(model) else { throw ValidationError("--model takes a hex fingerprint") }
            rules.append(.model(fp))
        }
        if let doc { rules.append(.document(doc)) }
        if !keys.isEmpty { rules.append(.keys(try keys.map(parseKey))) }
        guard rules.count == 1 else { throw ValidationError("give exactly one of --to-bytes, --older-than, --model, --doc, --key") }
        return rules[0]
    }

    func run() throws {
        let r = try rule()
        let store = try common.open(writing: true)
        defer { try? store.close() }
        let report = try store.evict(r, includePinned: includePinned)
        if common.json { return try printJSON(report) }
        print("evicted \(report.entries) entries, \(formatBytes(report.bytes)); run `kvstash compact` to reclaim disk space now")
    }
}

/// `kvstash pin KEY...`
struct AdminPin: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pin", abstract: "Pin chunks (never evicted).")
    @OptionGroup var common: AdminStoreOptions
    @Argument(help: "Chunk keys.") var keys: [String]
    func run() throws { try setPinned(common, keys, true) }
}

/// `kvstash unpin KEY...`
struct AdminUnpin: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unpin", abstract: "Unpin chunks.")
    @OptionGroup var common: AdminStoreOptions
    @Argument(help: "Chunk keys.") var keys: [String]
    func run() throws { try setPinned(common, keys, false) }
}

private func setPinned(_ common: AdminStoreOptions, _ keys: [String], _ pinned: Bool) throws {
    let parsed = try keys.map(parseKey)
    let store = try common.open(writing: true)
    defer { try? store.close() }
    let changed = try store.pin(parsed, pinned: pinned)
    if common.json { return try printJSON(["changed": changed]) }
    print("\(pinned ? "pinned" : "unpinned") \(changed) of \(parsed.count) chunks")
}

/// `kvstash verify`: read and check every value.
struct AdminVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Read every value, check checksums, remove bad entries.",
        discussion: """
            RocksDB block checksums are always checked. --deep also decodes every value as a KV block \
            (header, chunk key, payload checksum, LZ4/zstd frame). While a server holds the store this \
            only reports (read-only); nothing is removed.
            """)
    @OptionGroup var common: AdminStoreOptions
    @Flag(help: "Also check every value as a KV block (header, key, checksums, frame).") var deep = false

    func run() throws {
        let store = try common.open(writing: false)
        defer { try? store.close() }
        let blockCheck: KeyedValueValidator = { key, value in
            guard let header = try? KVBlockDecoder().validate(value) else { return false }
            return header.chunkKey == key.bytes
        }
        let report = try store.verify(keyedValidator: deep ? blockCheck : nil)
        if common.json { try printJSON(report) } else {
            printTable(["CHECK", "COUNT"], [["checked", "\(report.checked)"], ["ok", "\(report.ok)"],
                                            ["corrupt", "\(report.corrupt.count)"], ["half-written", "\(report.orphans.count)"],
                                            ["removed", "\(report.removed.count)"]])
            for key in report.corrupt { print("corrupt: \(key)") }
            for key in report.orphans { print("half-written: \(key)") }
            if let damage = report.tableDamage {
                print("damaged table file: \(damage)")
                print("run `kvstash repair` (with no server on the store) or restart the server: the next read-write open repairs it")
            }
            if report.backgroundErrors > 0 { print("RocksDB background errors: \(report.backgroundErrors) (see the store's LOG)") }
        }
        if !report.clean { throw ExitCode(1) }
    }
}

/// `kvstash compact`
struct AdminCompact: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "compact", abstract: "Compact the store (reclaims evicted space).")
    @OptionGroup var common: AdminStoreOptions

    func run() throws {
        let store = try common.open(writing: true)
        defer { try? store.close() }
        let before = try store.stats().diskBytes
        try store.compact()
        let after = try store.stats().diskBytes
        if common.json { return try printJSON(["diskBytesBefore": before, "diskBytesAfter": after]) }
        print("compacted: \(formatBytes(before)) -> \(formatBytes(after)) on disk")
    }
}

/// `kvstash repair`: RocksDB's repairer on a store no process holds.
struct AdminRepair: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair", abstract: "Repair a store with a damaged table file (no server may hold it).",
        discussion: """
            Runs RocksDB's repairer: table files it cannot read completely move to lost/ inside the \
            store, the MANIFEST is rebuilt from the rest. Chunks lost with a file are recomputed on \
            use; their leftover meta records are dropped by the next read or `kvstash verify`. A \
            read-write open runs the same repair by itself when a damaged block was detected \
            (the file kvstash.needs-repair in the store directory).
            """)
    @OptionGroup var common: AdminStoreOptions

    func run() throws {
        let path = try common.path
        try ChunkStore.repair(path: path)
        let store = try common.open(writing: true)
        defer { try? store.close() }
        let report = try store.verify()
        if common.json { try printJSON(report) } else {
            print("repaired \(path): \(report.ok) entries ok, \(report.removed.count) records of lost values removed")
        }
        // Records whose values went to lost/ are expected; damage left behind is not.
        if report.tableDamage != nil || report.backgroundErrors > 0 || !report.corrupt.isEmpty { throw ExitCode(1) }
    }
}
