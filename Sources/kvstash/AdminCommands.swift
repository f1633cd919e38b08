import ArgumentParser
import Foundation
import KVStashCodec
import KVStashStore

/// `kvstash ls`: list stored chunks.
struct AdminList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List stored chunks.")
    @OptionGroup var common: AdminStoreOptions
    @Option(help: "Only chunks of this model (hex fingerprint or a prefix of it).") var model: String?
    @Option(help: "Only chunks of this document id.") var doc: String?
    @Flag(help: "Only pinned chunks.") var pinned = false
    @Option(help: "Only chunks last read longer ago than this (e.g. 7d).") var olderThan: String?
    @Option(help: "At most this many rows.") var limit: Int?

    func validate() throws {
        if let limit, limit < 0 { throw ValidationError("--limit must be >= 0") }
    }

    func run() throws {
        let store = try common.open(writing: false)
        defer { try? store.close() }
        var filter = ChunkFilter(docID: doc, pinned: pinned ? true : nil, limit: model == nil ? limit : nil)
        if let olderThan { filter.olderThan = Date(timeIntervalSinceNow: -(try parseDuration(olderThan))) }
        var entries = try store.list(filter: filter)
        if let model = model?.lowercased() {
            entries = entries.filter { Hex.encode($0.meta.modelFingerprint).hasPrefix(model) }
            if let limit { entries = Array(entries.prefix(limit)) }
        }
        if common.json { return try printJSON(entries) }
        printTable(["KEY", "IDX", "TOKENS", "SIZE", "CODEC", "MODEL", "HITS", "LAST READ", "PIN", "DOCS"], entries.map { e in
            let m = e.meta
            return [e.key.hex, "\(m.chainIndex)", "\(m.tokenCount)", formatBytes(m.byteSize), m.codec,
                    short(Hex.encode(m.modelFingerprint)), "\(m.hits)", formatAge(m.lastAccess),
                    m.pinned ? "yes" : "", e.promptTail == true ? "(prompt tail)" : m.docIDs.joined(separator: ",")]
        })
        print("\(entries.count) entries, \(formatBytes(entries.reduce(0) { $0 + $1.meta.byteSize }))")
    }
}

/// `kvstash stats`: counts and sizes.
struct AdminStats: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats", abstract: "Show store counts and sizes (and the shared tier's, with --shared).",
        discussion: """
            With --shared (or $KVSTASH_SHARED): whether the shared tier answers (or its error), and per node             DBSIZE, INFO memory / stats, and the chunks and value bytes under the tier's namespace, counted with             SCAN + STRLEN on all nodes at once for at most --shared-scan-seconds (then lower bounds).
            """)
    @OptionGroup var common: AdminStoreOptions
    @OptionGroup var sharedTier: SharedTierOptions
    @Option(name: .customLong("shared-scan-seconds"), help: "Time budget of the shared tier's key scan.")
    var sharedScanSeconds = 2.0

    func run() throws {
        let store = try common.open(writing: false)
        defer { try? store.close() }
        let s = try store.stats()
        let shared = sharedTier.stats(scanBudget: .milliseconds(Int(min(max(sharedScanSeconds, 0), 3600) * 1000)))
        if common.json {
            if let shared { return try printJSON(StatsWithShared(store: s, shared: shared)) }
            return try printJSON(s)
        }
        let models = (try? store.models()) ?? [:]
        var rows: [[String]] = [
            ["store", store.path + (store.readOnly ? " (read-only snapshot)" : "")],
            ["store version", "\(s.storeVersion)"], ["chunk size", "\(s.chunkSize) tokens"],
            ["entries", "\(s.entries) (\(s.pinnedEntries) pinned)"], ["value bytes", formatBytes(s.bytes)],
            ["prompt tails", "\(s.promptTailEntries) entries, \(formatBytes(s.promptTailBytes))"],
            ["disk bytes", formatBytes(s.diskBytes)], ["documents", "\(s.documents)"], ["hits", "\(s.hits)"],
            ["corrupt found", "\(s.corruptFound)"], ["evictions", "\(s.evictions)"],
        ]
        if s.needsRepair {
            rows.append(["needs repair", "yes: a damaged table file was found; the next read-write open (or `kvstash repair`) repairs it"])
        }
        for (codec, bytes) in s.bytesByCodec.sorted(by: { $0.key < $1.key }) { rows.append(["codec \(codec)", formatBytes(bytes)]) }
        for (model, bytes) in s.bytesByModel.sorted(by: { $0.key < $1.key }) {
            let name = models[model].map { " \($0)" } ?? ""
            rows.append(["model \(short(model))\(name)", "\(formatBytes(bytes)) in \(s.entriesByModel[model] ?? 0) entries"])
        }
        printTable(["STAT", "VALUE"], rows + (shared?.tableRows ?? []))
    }
}

/// `kvstash inspect KEY`: one entry in full.
struct AdminInspect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show one chunk's metadata.")
    @OptionGroup var common: AdminStoreOptions
    @Argument(help: "Chunk key (64 hex digits).") var key: String

    struct Report: Encodable {
        var key: ChunkKey
        var meta: ChunkMeta
        var valueBytes: Int?
        var valueReadable: Bool
        /// The KV block header, when the value parses as one.
        var block: Block?
    }

    struct Block: Encodable {
        var codec: String
        var layers: Int, kvHeads: Int, headDim: Int, tokenCount: Int, groupSize: Int
        var payloadBytes: Int
        var keyMatches: Bool
        /// The layers a version-2 block carries (a sliding-window model's global or sliding
        /// layers); nil for a block of every layer.
        var carriedLayers: [Int]?
    }

    static func block(_ value: [UInt8]?, key: ChunkKey) -> Block? {
        guard let value, let h = try? KVBlockDecoder().readHeader(value) else { return nil }
        return Block(codec: "\(h.codec)", layers: h.layers, kvHeads: h.kvHeads, headDim: h.headDim, tokenCount: h.tokenCount,
                     groupSize: h.groupSize, payloadBytes: h.payloadLength, keyMatches: h.chunkKey == key.bytes,
                     carriedLayers: h.carriedLayers)
    }

    func run() throws {
        let k = try parseKey(key)
        let store = try common.open(writing: false)
        defer { try? store.close() }
        guard let meta = try store.meta(k) else { throw ValidationError("no chunk \(k) in \(store.path)") }
        let value = try store.get(k, recordAccess: false)
        let block = Self.block(value, key: k)
        let report = Report(key: k, meta: meta, valueBytes: value?.count, valueReadable: value != nil, block: block)
        if common.json { return try printJSON(report) }
        let f = ISO8601DateFormatter()
        var rows: [[String]] = []
        if let b = block {
            let layers = b.carriedLayers.map { "layers \($0.map(String.init).joined(separator: ",")) of \(b.layers)" } ?? "\(b.layers) layers"
            rows.append(["block", "\(b.codec), \(layers) × \(b.kvHeads) kv heads × \(b.headDim), \(b.tokenCount) tokens"
                         + (b.groupSize > 0 ? ", group \(b.groupSize)" : "") + (b.keyMatches ? ", key matches" : ", KEY MISMATCH")])
        }
        printTable(["FIELD", "VALUE"], rows + [
            ["key", k.hex], ["parent", meta.parent == .root ? "(root)" : meta.parent.hex],
            ["chain index", "\(meta.chainIndex)"], ["tokens", "\(meta.tokenCount): \(meta.tokens.prefix(16).map(String.init).joined(separator: " "))\(meta.tokenCount > 16 ? " …" : "")"],
            ["value", value.map { "\(formatBytes($0.count)), checksums ok" } ?? "UNREADABLE (counted as corrupt)"],
            ["codec", meta.codec], ["model", Hex.encode(meta.modelFingerprint)],
            ["created", f.string(from: meta.created)], ["last read", "\(f.string(from: meta.lastAccess)) (\(formatAge(meta.lastAccess)))"],
            ["hits", "\(meta.hits)"], ["pinned", meta.pinned ? "yes" : "no"], ["documents", meta.docIDs.joined(separator: ", ")],
        ])
    }
}
