import Foundation

extension ChunkStore {
    /// Entries matching `filter`, in key order.
    public func list(filter: ChunkFilter = ChunkFilter()) throws -> [ChunkEntry] {
        try gate.enter(); defer { gate.leave() }
        var out: [ChunkEntry] = []
        let limit = filter.limit ?? Int.max
        let documents = try linkedDocuments()
        let tails = try promptTailKeys()
        try rocks {
            try db.scan(.meta) { k, v in
                guard let key = ChunkKey(bytes: k), var m = try? MetaCodec.decode(v) else { return true }
                m.docIDs = documents[key] ?? []
                let meta = tracker.overlay(key, m)
                if filter.matches(meta) { out.append(ChunkEntry(key: key, meta: meta, promptTail: tails.contains(key) ? true : nil)) }
                return out.count < limit
            }
        }
        return out
    }

    /// Counts and sizes (one scan of the meta records).
    public func stats() throws -> StoreStats {
        try gate.enter(); defer { gate.leave() }
        var s = StoreStats()
        let tails = try promptTailKeys()
        for e in try scanMeta({ _, _ in true }) {
            let m = e.meta
            s.entries += 1
            s.bytes += m.byteSize
            s.hits += m.hits
            if m.pinned { s.pinnedEntries += 1 }
            if tails.contains(e.key) {
                s.promptTailEntries += 1
                s.promptTailBytes += m.byteSize
            }
            s.bytesByCodec[m.codec, default: 0] += m.byteSize
            let model = Hex.encode(m.modelFingerprint)
            s.bytesByModel[model, default: 0] += m.byteSize
            s.entriesByModel[model, default: 0] += 1
        }
        s.documents = try documentCount()
        let c = counterState.withLock { $0 }
        s.reads = c.reads
        s.misses = c.misses
        s.corruptFound = c.corrupt
        s.evictions = c.evictions
        s.chunkSize = chunkSize
        s.storeVersion = Manifest.storeVersion
        s.needsRepair = needsRepair
        s.backgroundErrors = db.backgroundErrors
        s.writesRefusedDiskFull = db.spaceRefusals.withLock { $0 }
        s.byteBudget = byteBudget
        s.diskBytes = ["rocksdb.total-sst-files-size", "rocksdb.total-blob-file-size"].reduce(0) { sum, p in
            sum + Family.allCases.reduce(0) { $0 + (Int(db.property($1, p) ?? "") ?? 0) }
        }
        return s
    }

    /// Pins (or unpins) `keys`; returns how many changed.
    @discardableResult
    public func pin(_ keys: [ChunkKey], pinned: Bool = true) throws -> Int {
        try gate.enter(); defer { gate.leave() }
        guard !readOnly else { throw StoreError.readOnly(path: path) }
        var changed = 0
        for key in keys {
            try withStripe(key) {
                guard var m = try readMeta(key), m.pinned != pinned else { return }
                m.pinned = pinned
                let batch = db.makeBatch()
                batch.put(.meta, key.bytes, MetaCodec.encode(m))
                try rocks { try db.write(batch) }
                changed += 1
            }
        }
        return changed
    }

    /// Unpins `keys`; returns how many changed.
    @discardableResult
    public func unpin(_ keys: [ChunkKey]) throws -> Int { try pin(keys, pinned: false) }

    /// Reads every value, checks RocksDB checksums and `validator` (default: the store's),
    /// and checks that values and meta records pair up. Bad entries are removed (and logged
    /// under `quarantine/` in the manifest) unless the store is read-only.
    public func verify(validator: ValueValidator? = nil) throws -> VerifyReport {
        guard let check = validator ?? options.validator else { return try verify(keyedValidator: nil) }
        let keyed: KeyedValueValidator = { _, value in check(value) }
        return try verify(keyedValidator: keyed)
    }

    /// `verify` with a validator that also gets the key.
    public func verify(keyedValidator check: KeyedValueValidator?) throws -> VerifyReport {
        try gate.enter(); defer { gate.leave() }
        var report = VerifyReport()
        var metaKeys = Set<ChunkKey>()
        try rocks { try db.scan(.meta) { k, _ in if let key = ChunkKey(bytes: k) { metaKeys.insert(key) }; return true } }
        for key in metaKeys.sorted() {
            report.checked += 1
            let value: [UInt8]?
            do {
                value = try db.get(.chunks, key.bytes, fillCache: false)
            } catch let error as RocksError where error.isCorruption {
                report.corrupt.append(key)
                handleCorrupt(key, reason: error.message, blockDamage: true)
                if !readOnly { report.removed.append(key) }
                continue
            }
            guard let value else {
                report.orphans.append(key)
                continue
            }
            if let check, !check(key, value) {
                report.corrupt.append(key)
                handleCorrupt(key, reason: "value rejected by validator")
                if !readOnly { report.removed.append(key) }
                continue
            }
            report.ok += 1
        }
        // One pass over every block of the value family, deleted entries' blocks included: a
        // block that fails its checksum there makes the next compaction fail.
        do {
            try db.scan(.chunks) { k, _ in
                if let key = ChunkKey(bytes: k), !metaKeys.contains(key) { report.orphans.append(key) }
                return true
            }
        } catch let error as RocksError where error.isCorruption {
            report.tableDamage = error.message
            RepairFlag.set(storePath: path, reason: "verify: \(error.message)")
        }
        report.backgroundErrors = db.backgroundErrors
        if !readOnly {
            for key in report.orphans where !report.removed.contains(key) {
                try withStripe(key) {
                    let batch = db.makeBatch()
                    batch.delete(.chunks, key.bytes)
                    batch.delete(.meta, key.bytes)
                    try rocks { try db.write(batch) }
                }
                report.removed.append(key)
            }
        }
        return report
    }

    /// Flushes memtables and compacts every column family (reclaims evicted space).
    public func compact() throws {
        try gate.enter(); defer { gate.leave() }
        guard !readOnly else { throw StoreError.readOnly(path: path) }
        try rocks { try db.flush() }
        try rocks { try db.compactAll() }
    }

    /// Flushes memtables to SST files (tests and benchmarks use it).
    public func flush() throws {
        try gate.enter(); defer { gate.leave() }
        guard !readOnly else { throw StoreError.readOnly(path: path) }
        try rocks { try db.flush() }
    }

    // MARK: models and quarantine

    /// Records a model fingerprint (with a human-readable name, e.g. its file name) in the manifest.
    public func registerModel(fingerprint: [UInt8], name: String) throws {
        try gate.enter(); defer { gate.leave() }
        guard !readOnly else { return }
        let batch = db.makeBatch()
        batch.put(.manifest, Array((Manifest.modelPrefix + Hex.encode(fingerprint)).utf8), Array(name.utf8))
        try rocks { try db.write(batch) }
    }

    /// Known models: hex fingerprint → name.
    public func models() throws -> [String: String] { try manifestEntries(prefix: Manifest.modelPrefix) }

    /// Removed corrupt entries: hex key → "time reason".
    public func quarantineLog() throws -> [String: String] { try manifestEntries(prefix: Manifest.quarantinePrefix) }

    func manifestEntries(prefix: String) throws -> [String: String] {
        try gate.enter(); defer { gate.leave() }
        var out: [String: String] = [:]
        try rocks {
            try db.scan(.manifest, bulk: false) { k, v in
                let name = String(decoding: k, as: UTF8.self)
                if name.hasPrefix(prefix) { out[String(name.dropFirst(prefix.count))] = String(decoding: v, as: UTF8.self) }
                return true
            }
        }
        return out
    }
}
