import Foundation
import Logging
import Synchronization

/// The cold tier: KV chunks under content-hashed chained keys in RocksDB.
///
/// Column families: `chunks` (key → value), `meta` (key → `ChunkMeta` record),
/// `docs` (document id → `DocumentRecord`), `manifest` (version, chunk size, models,
/// counters). Every chunk is written with its meta in one `WriteBatch`, so a crash leaves
/// whole entries or none. Reads do not write: last-access times and hit counts are
/// coalesced in memory and flushed every `flushInterval` seconds, every `flushEvery`
/// reads and on `close()`.
///
/// Thread-safe: any number of threads may call any method concurrently.
public final class ChunkStore: Sendable {
    /// The store directory.
    public let path: String
    /// Tokens per chunk, as recorded in the manifest.
    public let chunkSize: Int
    /// Whether the store was opened read-only.
    public let readOnly: Bool
    let options: StoreOptions
    let db: RocksDB
    let gate = CloseGate()
    let tracker = AccessTracker()
    let sightings = SightingCounter()
    let stripes: [NSLock] = (0..<64).map { _ in NSLock() }
    let counterState: Mutex<Counters>

    struct Counters {
        var reads = 0
        var misses = 0
        var corrupt = 0
        var evictions = 0
        /// Value bytes `put` keeps the store to (nil: unbounded).
        var budget: Int?
        var totalBytes = 0
        var entries = 0
        var dirty = false
    }

    /// Opens (or creates) the store at `path`.
    /// Throws `StoreError.locked` naming the holder when another process has it open for
    /// writing (open with `readOnly: true` to read alongside it).
    public init(path: String, options: StoreOptions = StoreOptions()) throws {
        self.path = path
        self.options = options
        self.readOnly = options.readOnly
        if options.createIfMissing && !options.readOnly {
            try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        var settings = RocksSettings()
        settings.readOnly = options.readOnly
        settings.createIfMissing = options.createIfMissing && !options.readOnly
        settings.blobFiles = options.blobFiles
        settings.minBlobSize = UInt64(options.minBlobSize)
        settings.syncWrites = options.syncWrites
        settings.mappedReads = options.mappedReads
        settings.minFreeBytes = options.minFreeBytes
        if !options.readOnly, let free = DiskSpace.freeBytes(path), free < DiskSpace.openReserveBytes {
            throw StoreError.diskFull(path: path, free: free, needed: DiskSpace.openReserveBytes)
        }
        if !options.readOnly && RepairFlag.isSet(storePath: path) {
            try Self.repair(path: path)
        }
        db = try Self.openRocks(path: path, settings: settings)
        do {
            chunkSize = try Manifest.open(db, path: path, requestedChunkSize: options.chunkSize)
        } catch let error as RocksError {
            db.close()
            throw error.isCorruption ? StoreError.damaged(path: path, message: error.message) : StoreError.rocksdb(error.message)
        } catch {
            db.close()
            throw error
        }
        var c = Counters()
        c.corrupt = Manifest.decodeInt(try? db.get(.manifest, Manifest.corruptKey)) ?? 0
        c.evictions = Manifest.decodeInt(try? db.get(.manifest, Manifest.evictionsKey)) ?? 0
        counterState = Mutex(c)
        let all = try scanMeta { _, _ in true }
        let total = all.reduce(0) { $0 + $1.meta.byteSize }
        let budget = options.byteBudget
            ?? (options.budgetFromFreeSpace ? DiskSpace.defaultBudget(path: path, storedBytes: total) : nil)
        counterState.withLock { $0.totalBytes = total; $0.entries = all.count; $0.budget = budget }
        if !readOnly {
            LockHolderFile.write(storePath: path)
            startMaintenance()
        }
    }

    deinit {
        if !gate.isClosed { try? close() }
    }

    /// Opens RocksDB, mapping a held LOCK to `StoreError.locked`. A read-only open races
    /// with a live writer that deletes compacted SST files between reading the MANIFEST
    /// and opening them; such opens are retried.
    static func openRocks(path: String, settings: RocksSettings) throws -> RocksDB {
        var attempt = 0
        while true {
            do {
                return try RocksDB(path: path, settings: settings)
            } catch let error as RocksError {
                if error.isLock { throw StoreError.locked(path: path, holder: LockHolderFile.read(storePath: path)) }
                attempt += 1
                // A table file the live writer compacted away reads as "Corruption: Can't
                // access …: No such file": retried, not damage.
                let vanished = error.message.contains("No such file")
                if settings.readOnly && vanished && attempt < 20 { usleep(50_000); continue }
                if error.isCorruption { throw StoreError.damaged(path: path, message: error.message) }
                throw StoreError.rocksdb(error.message)
            }
        }
    }

    /// Value bytes `put` keeps the store to (nil: unbounded); see `StoreOptions.byteBudget`.
    public var byteBudget: Int? { counterState.withLock { $0.budget } }

    /// Flushes coalesced access updates and counters, then closes RocksDB. Idempotent.
    public func close() throws {
        guard gate.beginClose() else { return }
        gate.waitForIdle()
        var failure: Error? = nil
        if !readOnly {
            do { try flushAccessUngated() } catch { failure = error }
            LockHolderFile.remove(storePath: path)
        }
        db.close()
        if let failure { throw failure }
    }

    // MARK: core API

    /// Writes a chunk: value and meta in one atomic batch. `meta.byteSize` is set from the
    /// value. An existing entry keeps its created time, hits and pin; its value is rewritten
    /// only when codec or size differ. `meta.docIDs` are linked in the default (empty salt)
    /// namespace in the same batch; tenants link through `putDocument`.
    /// With `sync` (or `StoreOptions.syncWrites`) the WAL is fsynced before returning.
    public func put(_ key: ChunkKey, value: [UInt8], meta: ChunkMeta, sync: Bool = false) throws {
        try gate.enter(); defer { gate.leave() }
        guard !readOnly else { throw StoreError.readOnly(path: path) }
        var record = meta
        record.byteSize = value.count
        record.docIDs = []
        try makeRoom(for: key, bytes: value.count)
        let (delta, added): (Int, Int) = try withStripe(key) {
            let old = try readMeta(key)
            let batch = db.makeBatch()
            for id in meta.docIDs { addLink(batch, key, ns: DocKeys.defaultNamespace, id: id) }
            if let old {
                record = Self.merge(old: old, new: record)
                // Re-puts are rare (callers probe first); reading the value back guards against
                // a meta record whose value was lost to a repair.
                let valuePresent = (try? db.get(.chunks, key.bytes, fillCache: false)).flatMap { $0 } != nil
                if old.codec != record.codec || old.byteSize != value.count || !valuePresent {
                    batch.put(.chunks, key.bytes, value)
                } else if old == record && meta.docIDs.isEmpty {
                    return (0, 0)
                }
            } else {
                batch.put(.chunks, key.bytes, value)
            }
            batch.put(.meta, key.bytes, MetaCodec.encode(record))
            try rocks { try db.write(batch, sync: sync || options.syncWrites) }
            return (value.count - (old?.byteSize ?? 0), old == nil ? 1 : 0)
        }
        counterState.withLock { c in
            c.totalBytes += delta
            c.entries += added
        }
    }

    /// Evicts (approximate LRU, to 90% of the budget less the new value) before a write of
    /// `bytes` new bytes under `key` that would exceed `byteBudget`, keeping the block `key`
    /// pairs with (see `EvictionUnit`); throws
    /// `StoreError.overBudget` when what is left (pinned) still leaves no room.
    func makeRoom(for key: ChunkKey, bytes: Int) throws {
        guard let budget = byteBudget else { return }
        let fits = { self.counterState.withLock { $0.totalBytes } + bytes <= budget }
        if fits() { return }
        if (try? readMeta(key)) != nil { return }   // a re-put replaces its own bytes
        _ = try evictUngated(.toBudget(max(0, budget * 9 / 10 - bytes)), includePinned: false, making: key)
        if !fits() { throw StoreError.overBudget(path: path, budget: budget, needed: bytes) }
    }

    static func merge(old: ChunkMeta, new: ChunkMeta) -> ChunkMeta {
        var m = new
        m.created = old.created
        m.lastAccess = max(old.lastAccess, new.lastAccess)
        m.hits = old.hits
        m.pinned = old.pinned || new.pinned
        return m
    }

    /// The value of `key`, or nil. RocksDB block checksums are verified on the way and the
    /// `validator` (if any) is applied: a value that fails either is counted as corrupt,
    /// removed, and reported as a miss (nil).
    /// `recordAccess: false` reads without counting a hit (admin inspection).
    public func get(_ key: ChunkKey, recordAccess: Bool = true) throws -> [UInt8]? {
        try withValue(key, recordAccess: recordAccess) { Array($0.bindMemory(to: UInt8.self)) }
    }

    /// `get` without the copy: calls `body` with the value where RocksDB holds it (valid
    /// only inside `body`) and returns its result, or nil under the same conditions as
    /// `get` (absent, damaged, or rejected by the validator).
    ///
    /// With `selfChecked`, RocksDB does not recompute its block checksum over the value:
    /// for a caller that verifies every byte of it with checksums of its own, as the KV
    /// block decoder does (header and payload XXH64, chunk key in the header), and that
    /// reports what fails them with `reportCorrupt`. Damage is then caught once, not twice.
    public func withValue<R>(_ key: ChunkKey, recordAccess: Bool = true, selfChecked: Bool = false,
                             _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        try gate.enter(); defer { gate.leave() }
        let validator = options.validator
        let outcome: ValueRead<R>
        let faults = MappedReadGuard.faults
        defer { logUnreadablePages(key, since: faults) }
        do {
            outcome = try db.withValue(.chunks, key.bytes, fillCache: false, selfChecked: selfChecked) { raw -> ValueRead<R> in
                if let validator, !validator(Array(raw.bindMemory(to: UInt8.self))) { return .rejected }
                return .read(try body(raw))
            } ?? .absent
        } catch let error as RocksError where error.isCorruption {
            handleCorrupt(key, reason: error.message, blockDamage: true)
            return nil
        } catch let error as RocksError {
            throw StoreError.rocksdb(error.message)
        }
        switch outcome {
        case .absent:
            counterState.withLock { $0.reads += 1; $0.misses += 1 }
            dropOrphanMeta(key)
            return nil
        case .rejected:
            handleCorrupt(key, reason: "value rejected by validator")
            return nil
        case .read(let result):
            guard recordAccess else { return result }
            counterState.withLock { $0.reads += 1 }
            if tracker.record(key) >= options.flushEvery && !readOnly {
                do {
                    try flushAccessUngated()
                } catch {
                    storeLogger.warning("access flush failed; updates kept for the next one", metadata: ["error": "\(error)"])
                }
            }
            return result
        }
    }

    /// Which of `keys` are present (holes included), in order. Reads only the small meta
    /// records, in one multi-get with bloom filters.
    public func probe(_ keys: [ChunkKey]) -> [Bool] {
        guard (try? gate.enter()) != nil else { return keys.map { _ in false } }
        defer { gate.leave() }
        if let found = try? db.multiGet(.meta, keys.map(\.bytes)) {
            return found.map { $0 != nil }
        }
        return keys.map { (try? db.get(.meta, $0.bytes)).flatMap { $0 } != nil }
    }

    /// The metadata of `key` including not yet flushed hits and its documents, or nil.
    public func meta(_ key: ChunkKey) throws -> ChunkMeta? {
        try gate.enter(); defer { gate.leave() }
        return try readMeta(key).map { tracker.overlay(key, try withDocuments(key, $0)) }
    }

    /// The request path calls this when the codec rejects a value `get` returned
    /// (bad header, key or fingerprint mismatch, checksum): counted and removed.
    public func reportCorrupt(_ key: ChunkKey, reason: String = "reported by reader") throws {
        try gate.enter(); defer { gate.leave() }
        handleCorrupt(key, reason: reason)
    }

    /// Records one sighting of `key` and asks the admission policy whether to write it.
    public func shouldAdmit(key: ChunkKey, meta: ChunkMeta, origin: AdmissionOrigin) -> Bool {
        let seen = sightings.sight(key)
        return options.admission.shouldAdmit(key: key, meta: meta, origin: origin, seenCount: seen)
    }

    // MARK: internals

    func readMeta(_ key: ChunkKey) throws -> ChunkMeta? {
        guard let raw = try rocks({ try db.get(.meta, key.bytes) }) else { return nil }
        return try MetaCodec.decode(raw)
    }

    func withStripe<T>(_ key: ChunkKey, _ body: () throws -> T) rethrows -> T {
        let lock = stripes[Int(key.bytes[0]) & 63]
        lock.lock(); defer { lock.unlock() }
        return try body()
    }

    /// Runs a RocksDB call, mapping its errors to `StoreError`.
    func rocks<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as RocksError { throw StoreError.rocksdb(error.message) }
    }

    /// Logs the cause when pages of a mapped table file could not be read while `key` was
    /// read: the process-wide count of such pages moved since `faults` (a read of another
    /// store at the same moment can move it too).
    private func logUnreadablePages(_ key: ChunkKey, since faults: UInt64) {
        let now = MappedReadGuard.faults
        guard now != faults else { return }
        storeLogger.warning("pages of a mapped table file could not be read (a media error, or a file truncated under the store) and were read as zeros; the value they held fails its checksum and is recomputed",
                            metadata: ["chunk": "\(key)", "store": "\(path)", "pages": "\(now - faults)"])
    }

    /// Counts a corrupt entry and deletes it (best effort: after a failed compaction RocksDB
    /// refuses writes, and the read must still answer a miss). Block damage also asks for a
    /// repair at the next open (see `RepairFlag`).
    ///
    /// A value rejected above RocksDB (validator, codec) is read once more with RocksDB's
    /// block checksums: damage on disk sets the repair flag (a compaction would fail on the
    /// block), anything else is deleted and its key range compacted in the background, so
    /// the bad bytes leave the table files.
    func handleCorrupt(_ key: ChunkKey, reason: String, blockDamage: Bool = false) {
        counterState.withLock { $0.corrupt += 1; $0.reads += 1; $0.misses += 1; $0.dirty = true }
        storeLogger.warning("corrupt chunk: counted as a miss and removed",
                            metadata: ["chunk": "\(key)", "reason": "\(reason)", "readOnly": "\(readOnly)"])
        tracker.forget(key)
        guard !readOnly else { return }
        var damaged = blockDamage
        if !damaged {
            do { _ = try db.get(.chunks, key.bytes, fillCache: false) } catch let error as RocksError {
                damaged = error.isCorruption
            } catch {
                damaged = false
            }
        }
        if damaged { RepairFlag.set(storePath: path, reason: "\(key.hex): \(reason)") }
        withStripe(key) {
            let size = (try? readMeta(key))?.byteSize
            let batch = db.makeBatch()
            batch.delete(.chunks, key.bytes)
            batch.delete(.meta, key.bytes)
            try? deleteLinks(batch, of: key)
            let note = "\(ISO8601DateFormatter().string(from: Date())) \(reason)"
            batch.put(.manifest, Array((Manifest.quarantinePrefix + key.hex).utf8), Array(note.utf8))
            do {
                try db.write(batch)
                if let size { forgetEntry(bytes: size) }
            } catch {
                storeLogger.error("could not remove a corrupt chunk", metadata: ["chunk": "\(key)", "error": "\(error)"])
            }
        }
        if !damaged { compactInBackground(key) }
    }

    /// Compacts the range of `key` in the `chunks` family off the calling thread.
    func compactInBackground(_ key: ChunkKey) {
        DispatchQueue.global(qos: .utility).async { [self] in
            guard (try? gate.enter()) != nil else { return }
            defer { gate.leave() }
            db.compactKey(.chunks, key.bytes)
        }
    }

    /// A meta record without its value (its table file was lost to a repair) is deleted so
    /// that `probe` stops reporting the key and the next `put` writes the value again.
    func dropOrphanMeta(_ key: ChunkKey) {
        guard !readOnly else { return }
        withStripe(key) {
            guard let meta = (try? readMeta(key)).flatMap({ $0 }),
                  (try? db.get(.chunks, key.bytes, fillCache: false)).flatMap({ $0 }) == nil else { return }
            let batch = db.makeBatch()
            batch.delete(.meta, key.bytes)
            if (try? db.write(batch)) != nil { forgetEntry(bytes: meta.byteSize) }
        }
        tracker.forget(key)
    }

    func forgetEntry(bytes: Int) {
        counterState.withLock { $0.totalBytes -= bytes; $0.entries -= 1 }
    }

    /// Cheap live counters kept in memory (no scan), for metrics endpoints.
    public var counters: StoreCounters {
        let c = counterState.withLock { $0 }
        return StoreCounters(entries: c.entries, bytes: c.totalBytes, reads: c.reads, misses: c.misses,
                             corruptFound: c.corrupt, evictions: c.evictions, pendingHits: tracker.pendingHits,
                             backgroundErrors: backgroundErrors,
                             writesRefusedDiskFull: db.spaceRefusals.withLock { $0 },
                             needsRepair: !readOnly && needsRepair)
    }

    /// RocksDB background errors since open (0 once closed).
    var backgroundErrors: Int {
        guard (try? gate.enter()) != nil else { return 0 }
        defer { gate.leave() }
        return db.backgroundErrors
    }

    /// Calls `body` for every decodable meta record; collects those it accepts.
    func scanMeta(_ accept: (ChunkKey, ChunkMeta) -> Bool) throws -> [ChunkEntry] {
        var out: [ChunkEntry] = []
        try rocks {
            try db.scan(.meta) { k, v in
                guard let key = ChunkKey(bytes: k), let m = try? MetaCodec.decode(v) else { return true }
                let meta = tracker.overlay(key, m)
                if accept(key, meta) { out.append(ChunkEntry(key: key, meta: meta)) }
                return true
            }
        }
        return out
    }
}

/// Lets operations run concurrently and `close()` wait for them to finish.
/// What `withValue` found under a key.
private enum ValueRead<R> {
    case absent
    case rejected
    case read(R)
}

final class CloseGate: Sendable {
    private let state = Mutex((closed: false, inflight: 0))

    func enter() throws {
        try state.withLock { s in
            if s.closed { throw StoreError.closed }
            s.inflight += 1
        }
    }
    func leave() { state.withLock { $0.inflight -= 1 } }
    var isClosed: Bool { state.withLock { $0.closed } }

    /// Marks the gate closed; false if it already was.
    func beginClose() -> Bool {
        state.withLock { s in
            if s.closed { return false }
            s.closed = true
            return true
        }
    }
    func waitForIdle() {
        while state.withLock({ $0.inflight }) > 0 { usleep(1000) }
    }
}
