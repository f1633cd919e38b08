import CRocksDB
import Foundation
import Synchronization

/// Column families of a chunk store, in the order they are opened.
enum Family: Int, CaseIterable, Sendable {
    case `default`, chunks, meta, docs, manifest
    var name: String { self == .default ? "default" : "\(self)" }
}

/// Per-store RocksDB settings derived from `StoreOptions`.
struct RocksSettings: Sendable {
    var readOnly = false
    var createIfMissing = true
    var blobFiles = false
    var minBlobSize: UInt64 = 64 << 10
    var syncWrites = false
    /// `allow_mmap_reads`, values read in place through pinned iterators (see `StoreOptions.mappedReads`).
    var mappedReads = true
    /// Free bytes every write must leave on the store's filesystem (see `DiskSpace`).
    var minFreeBytes = DiskSpace.defaultMinFreeBytes
}

/// What `body` returned for a value an iterator found (`RocksDB.withIteratedValue`).
private struct IteratedValue<R> {
    let result: R
}

/// A thin, safe wrapper over one RocksDB instance opened with the store's column families.
///
/// `@unchecked Sendable`: `rocksdb_t`, column-family handles and the read/write option
/// objects are documented thread-safe for concurrent use (RocksDB's DB methods may be
/// called from many threads without external synchronization; option objects are only
/// read after construction). The pointers are immutable after `init`. Closing is the one
/// unsafe operation, and `ChunkStore` only calls `close()` while holding its write lock,
/// so no other call is in flight.
final class RocksDB: @unchecked Sendable {
    private let db: OpaquePointer
    private let families: [OpaquePointer]
    private let dbOptions: OpaquePointer
    private let familyOptions: [OpaquePointer]
    private let tableOptions: [OpaquePointer]
    private let readVerified: OpaquePointer   // verify checksums, fill cache
    private let readBulk: OpaquePointer       // verify checksums, do not fill cache
    private let readSelfChecked: OpaquePointer // no block checksums (the caller checks the value), no cache fill
    private let readMemtable: OpaquePointer    // memtable-only iterators: values read where they lie
    private let readInPlace: OpaquePointer     // iterators over every tier, data pinned where it lies (mapped reads)
    private let writeOptions: OpaquePointer
    private let syncWriteOptions: OpaquePointer
    let readOnly: Bool
    /// Table files are read through memory maps (`RocksSettings.mappedReads`).
    private let mappedReads: Bool
    private let path: String
    /// The directory registered with `MappedReadGuard` while open (mapped reads only).
    private let guardedPath: String?
    private let minFreeBytes: Int
    /// Writes refused by the free-space check, since open.
    let spaceRefusals = Mutex(0)
    private var closed = false

    init(path: String, settings: RocksSettings) throws {
        self.path = path
        minFreeBytes = settings.minFreeBytes
        dbOptions = Self.makeDBOptions(settings: settings)
        let families = Family.allCases.map { Self.familyOptions($0, settings: settings) }
        familyOptions = families.map(\.0)
        tableOptions = families.map(\.1)
        readVerified = Self.makeReadOptions(verifyChecksums: true, fillCache: true)
        readBulk = Self.makeReadOptions(verifyChecksums: true, fillCache: false)
        readSelfChecked = Self.makeReadOptions(verifyChecksums: false, fillCache: false)
        readMemtable = Self.makeReadOptions(verifyChecksums: false, fillCache: false)
        rocksdb_readoptions_set_read_tier(readMemtable, 3)  // kMemtableTier
        readInPlace = Self.makeReadOptions(verifyChecksums: false, fillCache: false)
        rocksdb_readoptions_set_pin_data(readInPlace, 1)
        writeOptions = Self.makeWriteOptions(sync: settings.syncWrites)
        syncWriteOptions = Self.makeWriteOptions(sync: true)
        readOnly = settings.readOnly
        mappedReads = settings.mappedReads
        // Registered before the open: RocksDB maps table files as it opens them.
        let guarded = settings.mappedReads ? MappedReadGuard.register(path) : nil
        guardedPath = guarded
        do {
            (db, self.families) = try Self.open(path, options: dbOptions, familyOptions: familyOptions,
                                                readOnly: settings.readOnly)
        } catch {
            guarded.map(MappedReadGuard.unregister)
            Self.destroyOptions(dbOptions, familyOptions, tableOptions,
                                (reads: [readVerified, readBulk, readSelfChecked, readMemtable, readInPlace], writes: [writeOptions, syncWriteOptions]))
            throw error
        }
    }

    /// Opens the database at `path` with one handle per `Family`, in their order.
    private static func open(_ path: String, options: OpaquePointer, familyOptions: [OpaquePointer],
                             readOnly: Bool) throws -> (OpaquePointer, [OpaquePointer]) {
        var handles = [OpaquePointer?](repeating: nil, count: Family.allCases.count)
        let names = Family.allCases.map { strdup($0.name) }
        defer { names.forEach { free($0) } }
        var err: UnsafeMutablePointer<CChar>? = nil
        let cNames: [UnsafePointer<CChar>?] = names.map { UnsafePointer($0) }
        let cOpts: [OpaquePointer?] = familyOptions
        let opened: OpaquePointer? = cNames.withUnsafeBufferPointer { np in
            cOpts.withUnsafeBufferPointer { op in
                handles.withUnsafeMutableBufferPointer { hp in
                    if readOnly {
                        return rocksdb_open_for_read_only_column_families(
                            options, path, Int32(np.count), np.baseAddress, op.baseAddress, hp.baseAddress, 0, &err)
                    }
                    return rocksdb_open_column_families(
                        options, path, Int32(np.count), np.baseAddress, op.baseAddress, hp.baseAddress, &err)
                }
            }
        }
        if let message = take(err) { throw RocksError(message: message) }
        return (opened!, handles.map { $0! })
    }

    /// The database options of an open with `settings`.
    private static func makeDBOptions(settings: RocksSettings) -> OpaquePointer {
        let options = makeDBOptions()
        rocksdb_options_set_create_if_missing(options, settings.createIfMissing ? 1 : 0)
        // An existing store may lack a column family: RocksDB's repairer recreates only those
        // that still have table files (an empty `docs` is dropped), so a writer restores them.
        rocksdb_options_set_create_missing_column_families(options, settings.readOnly ? 0 : 1)
        rocksdb_options_set_paranoid_checks(options, 1)
        rocksdb_options_set_wal_recovery_mode(options, 2) // point-in-time recovery
        rocksdb_options_increase_parallelism(options, 2)
        rocksdb_options_set_keep_log_file_num(options, 3)
        if settings.mappedReads {
            // Values are read in place from the page cache. The files stay marked for random
            // access (RocksDB's default): a fault reads its own page, not a readahead window
            // around it, and `willNeed` asks for exactly a value's pages before it is read.
            rocksdb_options_set_allow_mmap_reads(options, 1)
        }
        // A read-only instance opens every table file at open, so a live writer that
        // deletes compacted files afterwards cannot pull them away (unlinked files stay readable).
        if settings.readOnly {
            rocksdb_options_set_max_open_files(options, -1)
            // Its info log goes elsewhere: opening a LOG in the store directory would rotate
            // the live writer's LOG (and write to a store whose disk may be full).
            rocksdb_options_set_db_log_dir(options, readOnlyLogDirectory)
        }
        return options
    }

    private static func makeReadOptions(verifyChecksums: Bool, fillCache: Bool) -> OpaquePointer {
        let options = rocksdb_readoptions_create()!
        rocksdb_readoptions_set_verify_checksums(options, verifyChecksums ? 1 : 0)
        rocksdb_readoptions_set_fill_cache(options, fillCache ? 1 : 0)
        return options
    }

    private static func makeWriteOptions(sync: Bool) -> OpaquePointer {
        let options = rocksdb_writeoptions_create()!
        rocksdb_writeoptions_set_sync(options, sync ? 1 : 0)
        return options
    }

    /// Database options every open starts from. `avoid_flush_during_recovery`: replaying the
    /// WAL at open keeps it in the memtable instead of writing an SST of its size first, so a
    /// store whose disk filled up opens again with little free space.
    private static func makeDBOptions() -> OpaquePointer {
        let base = rocksdb_options_create()!
        let options = rocksdb_options_create()!
        var err: UnsafeMutablePointer<CChar>? = nil
        rocksdb_get_options_from_string(base, "avoid_flush_during_recovery=true", options, &err)
        rocksdb_options_destroy(base)
        // The option string is a constant; failing to parse it is a programming error.
        if let message = take(err) { preconditionFailure("RocksDB rejected a constant option string: \(message)") }
        return options
    }

    /// Where read-only opens write their RocksDB info log (one file per store path).
    static let readOnlyLogDirectory: String = {
        let dir = NSTemporaryDirectory() + "kvstash-readonly-logs"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    private static func familyOptions(_ family: Family, settings: RocksSettings) -> (OpaquePointer, OpaquePointer) {
        let o = rocksdb_options_create()!
        let t = rocksdb_block_based_options_create()!
        rocksdb_block_based_options_set_filter_policy(t, rocksdb_filterpolicy_create_bloom_full(10))
        rocksdb_block_based_options_set_cache_index_and_filter_blocks(t, 1)
        if family == .chunks {
            // Values are LZ4 frames already: RocksDB compression would only cost time.
            rocksdb_options_set_compression(o, Int32(rocksdb_no_compression))
            rocksdb_options_set_write_buffer_size(o, 64 << 20)
            rocksdb_options_set_target_file_size_base(o, 256 << 20)
            if settings.blobFiles {
                rocksdb_options_set_enable_blob_files(o, 1)
                rocksdb_options_set_min_blob_size(o, settings.minBlobSize)
                rocksdb_options_set_blob_file_size(o, 256 << 20)
                rocksdb_options_set_enable_blob_gc(o, 1)
            }
        } else {
            rocksdb_options_set_compression(o, Int32(rocksdb_lz4_compression))
        }
        rocksdb_options_set_block_based_table_factory(o, t)
        return (o, t)
    }

    private static func destroyOptions(_ db: OpaquePointer, _ f: [OpaquePointer], _ t: [OpaquePointer],
                                       _ rw: (reads: [OpaquePointer], writes: [OpaquePointer])) {
        rocksdb_options_destroy(db)
        f.forEach { rocksdb_options_destroy($0) }
        t.forEach { rocksdb_block_based_options_destroy($0) }
        rw.reads.forEach { rocksdb_readoptions_destroy($0) }
        rw.writes.forEach { rocksdb_writeoptions_destroy($0) }
    }

    /// Closes the database. The caller guarantees no concurrent call is in flight.
    func close() {
        guard !closed else { return }
        closed = true
        // Stop flushes and compactions first: destroying the DB while they still run has
        // crashed in its destructor (RocksDB #11374).
        rocksdb_cancel_all_background_work(db, 1)
        families.forEach { rocksdb_column_family_handle_destroy($0) }
        rocksdb_close(db)
        guardedPath.map(MappedReadGuard.unregister)
        Self.destroyOptions(dbOptions, familyOptions, tableOptions,
                            (reads: [readVerified, readBulk, readSelfChecked, readMemtable, readInPlace], writes: [writeOptions, syncWriteOptions]))
    }

    deinit { close() }

    // MARK: reads

    /// The value under `key`, verified against RocksDB's block checksums.
    func get(_ family: Family, _ key: [UInt8], fillCache: Bool = true) throws -> [UInt8]? {
        try withValue(family, key, fillCache: fillCache) { Array($0.bindMemory(to: UInt8.self)) }
    }

    /// Calls `body` with the value under `key` where RocksDB holds it (pinned, not copied),
    /// verified against RocksDB's block checksums unless `selfChecked` (the caller checks
    /// every byte of the value with checksums of its own; such reads never fill the cache);
    /// nil when the key is absent. The buffer is valid only inside `body`.
    func withValue<R>(_ family: Family, _ key: [UInt8], fillCache: Bool = true, selfChecked: Bool = false,
                      _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        if selfChecked {
            // Mapped table files: an iterator over every tier hands out the value where it lies,
            // in the memtable or in the file's mapping (a point lookup would copy a block that
            // does not own its bytes). Otherwise the memtable first, then a pinned lookup.
            if mappedReads { return try withIteratedValue(family, key, readInPlace, body)?.result }
            if let inMemtable = try withIteratedValue(family, key, readMemtable, body) { return inMemtable.result }
        }
        var err: UnsafeMutablePointer<CChar>? = nil
        let ro = selfChecked ? readSelfChecked : fillCache ? readVerified : readBulk
        let slice = key.withUnsafeBufferPointer { kp in
            kp.withMemoryRebound(to: CChar.self) {
                rocksdb_get_pinned_cf(db, ro, families[family.rawValue], $0.baseAddress, $0.count, &err)
            }
        }
        if let message = Self.take(err) { throw RocksError(message: message) }
        guard let slice else { return nil }
        defer { rocksdb_pinnableslice_destroy(slice) }
        var len = 0
        guard let ptr = rocksdb_pinnableslice_value(slice, &len) else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return try body(UnsafeRawBufferPointer(start: ptr, count: len))
    }

    /// Calls `body` with the value under `key` in place, read through an iterator with
    /// `options`; nil when it finds none. With `readMemtable` (memtables only) nil also means
    /// "flushed: the tables have the answer". A point lookup copies a memtable value, and a
    /// value of a mapped table block that does not own its bytes, into a new buffer: a store
    /// freshly opened from its write-ahead log holds every recent chunk in a memtable, and a
    /// new process faulted in every page of the copies (decision 106). An iterator with
    /// pinned data reads the memtable's and the mapping's own bytes (decision 115).
    private func withIteratedValue<R>(_ family: Family, _ key: [UInt8], _ options: OpaquePointer,
                                      _ body: (UnsafeRawBufferPointer) throws -> R) throws -> IteratedValue<R>? {
        let it = rocksdb_create_iterator_cf(db, options, families[family.rawValue])!
        defer { rocksdb_iter_destroy(it) }
        key.withUnsafeBytes { rocksdb_iter_seek(it, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
        var err: UnsafeMutablePointer<CChar>? = nil
        rocksdb_iter_get_error(it, &err)
        if let message = Self.take(err) { throw RocksError(message: message) }
        guard rocksdb_iter_valid(it) != 0 else { return nil }
        var kl = 0, vl = 0
        let k = rocksdb_iter_key(it, &kl)!
        let found = kl == key.count && key.withUnsafeBytes { memcmp($0.baseAddress!, k, kl) == 0 }
        guard found, let v = rocksdb_iter_value(it, &vl) else { return nil }
        let value = UnsafeRawBufferPointer(start: v, count: vl)
        if mappedReads { Self.willNeed(value) }
        return IteratedValue(result: try body(value))
    }

    /// Asks the kernel to read a mapped value's pages now, in one request: table files are
    /// marked for random access (RocksDB's `advise_random_on_open`), so without it each page
    /// the caller touches would wait for a read of its own (decision 115). Pages already
    /// cached cost a lookup. Advice only: a failure is harmless and ignored.
    private static func willNeed(_ value: UnsafeRawBufferPointer) {
        guard let base = value.baseAddress, value.count >= pageSize else { return }
        let start = UInt(bitPattern: base) & ~UInt(pageSize - 1)
        _ = madvise(UnsafeMutableRawPointer(bitPattern: start), Int(UInt(bitPattern: base) + UInt(value.count) - start),
                    MADV_WILLNEED)
    }

    private static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Values (or `nil` for absent keys) of many keys in one call; per-key errors are thrown.
    func multiGet(_ family: Family, _ keys: [[UInt8]]) throws -> [[UInt8]?] {
        let n = keys.count
        if n == 0 { return [] }
        let cfs = [OpaquePointer?](repeating: families[family.rawValue], count: n)
        var values = [UnsafeMutablePointer<CChar>?](repeating: nil, count: n)
        var sizes = [Int](repeating: 0, count: n)
        var errs = [UnsafeMutablePointer<CChar>?](repeating: nil, count: n)
        let keyCopies = keys.map { k -> UnsafeMutablePointer<CChar> in
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: max(k.count, 1))
            k.withUnsafeBytes { UnsafeMutableRawPointer(p).copyMemory(from: $0.baseAddress!, byteCount: k.count) }
            return p
        }
        defer { keyCopies.forEach { $0.deallocate() } }
        let keyPtrs: [UnsafePointer<CChar>?] = keyCopies.map { UnsafePointer($0) }
        let keySizes = keys.map(\.count)
        rocksdb_multi_get_cf(db, readVerified, cfs, n, keyPtrs, keySizes, &values, &sizes, &errs)
        var out: [[UInt8]?] = []
        out.reserveCapacity(n)
        var firstError: String? = nil
        for i in 0..<n {
            if let message = Self.take(errs[i]) { firstError = firstError ?? message }
            if let v = values[i] {
                out.append(v.withMemoryRebound(to: UInt8.self, capacity: sizes[i]) {
                    Array(UnsafeBufferPointer(start: $0, count: sizes[i]))
                })
                rocksdb_free(v)
            } else {
                out.append(nil)
            }
        }
        if let firstError { throw RocksError(message: firstError) }
        return out
    }

    /// Calls `body(key, value)` for every entry of `family` whose key starts with `prefix`
    /// (all entries by default) in key order until it returns false.
    func scan(_ family: Family, bulk: Bool = true, prefix: [UInt8] = [],
              _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
        let it = rocksdb_create_iterator_cf(db, bulk ? readBulk : readVerified, families[family.rawValue])!
        defer { rocksdb_iter_destroy(it) }
        if prefix.isEmpty {
            rocksdb_iter_seek_to_first(it)
        } else {
            prefix.withUnsafeBytes { rocksdb_iter_seek(it, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
        }
        while rocksdb_iter_valid(it) != 0 {
            var kl = 0, vl = 0
            let k = rocksdb_iter_key(it, &kl)!
            let key = k.withMemoryRebound(to: UInt8.self, capacity: kl) { Array(UnsafeBufferPointer(start: $0, count: kl)) }
            if !key.starts(with: prefix) { break }
            let value = rocksdb_iter_value(it, &vl).map { v in
                v.withMemoryRebound(to: UInt8.self, capacity: vl) { Array(UnsafeBufferPointer(start: $0, count: vl)) }
            } ?? []
            if try !body(key, value) { break }
            rocksdb_iter_next(it)
        }
        var err: UnsafeMutablePointer<CChar>? = nil
        rocksdb_iter_get_error(it, &err)
        if let message = Self.take(err) { throw RocksError(message: message) }
    }

    // MARK: writes

    /// Applies `batch` atomically across column families.
    ///
    /// Throws `StoreError.diskFull` (and writes nothing) when the store's filesystem would
    /// keep less than `minFreeBytes` besides the batch (twice: WAL and table file) and the
    /// memtables' next flush: Debian's RocksDB aborts the process on ENOSPC in a WAL write,
    /// so a write must never reach a full disk.
    func write(_ batch: WriteBatch, sync: Bool = false) throws {
        if let free = DiskSpace.freeBytes(path) {
            let needed = minFreeBytes + 2 * batch.byteSize + memtableBytes
            if free < needed {
                spaceRefusals.withLock { $0 += 1 }
                throw StoreError.diskFull(path: path, free: free, needed: needed)
            }
        }
        var err: UnsafeMutablePointer<CChar>? = nil
        rocksdb_write(db, sync ? syncWriteOptions : writeOptions, batch.handle, &err)
        if let message = Self.take(err) { throw RocksError(message: message) }
    }

    func makeBatch() -> WriteBatch { WriteBatch(families: families) }

    /// Flushes the memtables of every column family to SST files.
    func flush() throws {
        let fo = rocksdb_flushoptions_create()!
        defer { rocksdb_flushoptions_destroy(fo) }
        rocksdb_flushoptions_set_wait(fo, 1)
        for family in Family.allCases {
            var err: UnsafeMutablePointer<CChar>? = nil
            rocksdb_flush_cf(db, fo, families[family.rawValue], &err)
            if let message = Self.take(err) { throw RocksError(message: message) }
        }
    }

    /// Full manual compaction of every column family. RocksDB's C API returns no status
    /// for it: a compaction that fails (e.g. on a damaged block) shows up as a new
    /// background error, which is thrown here.
    func compactAll() throws {
        let before = backgroundErrors
        for family in Family.allCases {
            rocksdb_compact_range_cf(db, families[family.rawValue], nil, 0, nil, 0)
        }
        if backgroundErrors > before {
            throw RocksError(message: "compaction failed (RocksDB background error; see the store's LOG)")
        }
    }

    /// Compacts the key range `[key, key]` of one family, so a deleted value leaves its files.
    func compactKey(_ family: Family, _ key: [UInt8]) {
        key.withUnsafeBytes { k in
            let p = k.baseAddress?.assumingMemoryBound(to: CChar.self)
            rocksdb_compact_range_cf(db, families[family.rawValue], p, k.count, p, k.count)
        }
    }

    /// Background errors (failed flushes and compactions) since open. After one, RocksDB
    /// refuses writes until the store is reopened (and, for damage, repaired).
    var backgroundErrors: Int { Int(property(.default, "rocksdb.background-errors") ?? "") ?? 0 }

    /// Bytes in memtables not yet flushed to table files (what the next flushes write).
    var memtableBytes: Int {
        Family.allCases.reduce(0) { $0 + (Int(property($1, "rocksdb.cur-size-all-mem-tables") ?? "") ?? 0) }
    }

    /// A RocksDB property (e.g. `rocksdb.total-sst-files-size`) of one column family.
    func property(_ family: Family, _ name: String) -> String? {
        guard let p = rocksdb_property_value_cf(db, families[family.rawValue], name) else { return nil }
        defer { rocksdb_free(p) }
        return String(cString: p)
    }

    static func take(_ err: UnsafeMutablePointer<CChar>?) -> String? {
        guard let err else { return nil }
        defer { rocksdb_free(err) }
        return String(cString: err)
    }
}

/// An atomic group of puts and deletes across column families.
final class WriteBatch {
    let handle: OpaquePointer
    private let families: [OpaquePointer]

    init(families: [OpaquePointer]) {
        self.handle = rocksdb_writebatch_create()
        self.families = families
    }
    deinit { rocksdb_writebatch_destroy(handle) }

    /// Bytes of the batch's serialized representation (what its WAL record holds).
    var byteSize: Int {
        var size = 0
        _ = rocksdb_writebatch_data(handle, &size)
        return size
    }

    func put(_ family: Family, _ key: [UInt8], _ value: [UInt8]) {
        key.withUnsafeBytes { k in
            value.withUnsafeBytes { v in
                rocksdb_writebatch_put_cf(handle, families[family.rawValue],
                                          k.baseAddress?.assumingMemoryBound(to: CChar.self), k.count,
                                          v.baseAddress?.assumingMemoryBound(to: CChar.self), v.count)
            }
        }
    }

    func delete(_ family: Family, _ key: [UInt8]) {
        key.withUnsafeBytes { k in
            rocksdb_writebatch_delete_cf(handle, families[family.rawValue],
                                         k.baseAddress?.assumingMemoryBound(to: CChar.self), k.count)
        }
    }
}

/// An error message from RocksDB.
struct RocksError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
    /// RocksDB reports checksum mismatches and damaged blocks as "Corruption: ...".
    var isCorruption: Bool { message.contains("Corruption") || message.contains("checksum mismatch") }
    /// The LOCK file of the directory is held by another process (or this one).
    var isLock: Bool { message.contains("LOCK") || message.contains("lock hold") }
}
