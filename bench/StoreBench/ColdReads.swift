// Page-cache-cold reads: a 4K-token document's chunks (16 int8 values of a 256-token chunk)
// read back through the store as the request path reads them, after the store's files were
// dropped from the page cache (posix_fadvise DONTNEED), against a sequential read of the
// same files, also cold, in the same run.
import Foundation
import KVStashStore

struct ColdReadRow: Codable {
    /// "store" (ChunkStore.withValue, selfChecked, on `threads` workers; mapped table files,
    /// the default), "store, pread" (the same with `mappedReads` off) or "sequential" (pread
    /// of the store's table files in 4 MiB pieces, one thread).
    var kind: String
    var threads: Int
    var megabytes: Double
    /// Median of `runs` cold reads.
    var milliseconds: Double
    var megabytesPerSecond: Double
    var runsMs: [Double]
}

struct ColdReads: Codable {
    var machine: String
    var note: String
    var valueBytes: Int
    var chunks: Int
    var rows: [ColdReadRow]
    /// Store MB/s (2 workers, as the request path on this machine) over sequential MB/s.
    var storeOverSequential: Double
}

/// Drops every file of `dir` from the page cache.
func evictFromPageCache(_ dir: String) {
    for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
        let fd = open(dir + "/" + name, O_RDONLY)
        guard fd >= 0 else { continue }
        _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
        close(fd)
    }
}

/// Reads every `.sst` file of `dir` front to back; returns the bytes read.
func readSequentially(_ dir: String) -> Int {
    var total = 0
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: 4 << 20, alignment: 4096)
    defer { buffer.deallocate() }
    for name in ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() where name.hasSuffix(".sst") {
        let fd = open(dir + "/" + name, O_RDONLY)
        guard fd >= 0 else { continue }
        var offset = 0
        while case let n = pread(fd, buffer, 4 << 20, off_t(offset)), n > 0 { offset += n }
        total += offset
        close(fd)
    }
    return total
}

/// Writes `value` as pretty, key-sorted JSON to `path`, creating its directory.
func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try enc.encode(value).write(to: URL(fileURLWithPath: path))
}

func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

func runColdReads(runs: Int, threadCounts: [Int]) throws -> ColdReads {
    let valueBytes = 12_960 * 256, chunks = 16  // int8 (KIVI, G = 32) per formats.md
    let dir = NSTemporaryDirectory() + "kvstash-bench-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let keyer = ChunkKeyer(modelFingerprint: [3], chunkSize: 256)
    let keys = keyer.chain((0..<(chunks * 256)).map { ($0 * 7919) % 49152 })
    let options = StoreOptions(chunkSize: 256, flushInterval: 0)
    do {
        let store = try ChunkStore(path: dir, options: options)
        for (i, key) in keys.enumerated() {
            try store.put(key, value: randomBytes(valueBytes),
                          meta: ChunkMeta(parent: i == 0 ? .root : keys[i - 1], chainIndex: i, tokens: [i], codec: "int8",
                                          modelFingerprint: [3]))
        }
        try store.flush()
        try store.close()
    }
    let megabytes = Double(valueBytes * chunks) / 1e6
    var rows: [ColdReadRow] = []
    for (mapped, threads) in [true, false].flatMap({ m in threadCounts.map { (m, $0) } }) {
        var times: [Double] = []
        var readOptions = options
        readOptions.mappedReads = mapped
        for _ in 0..<runs {
            let store = try ChunkStore(path: dir, options: readOptions)  // opened first: its own reads are not timed
            evictFromPageCache(dir)
            let t0 = now()
            DispatchQueue.concurrentPerform(iterations: threads) { w in
                for i in stride(from: w, to: keys.count, by: threads) {
                    let n = try? store.withValue(keys[i], selfChecked: true) { raw in
                        var sum: UInt8 = 0  // touch every page, as a decoder would
                        for j in stride(from: 0, to: raw.count, by: 4096) { sum &+= raw[j] }
                        return raw.count + Int(sum & 0)
                    }
                    precondition(n == valueBytes, "chunk \(i) not read back")
                }
            }
            times.append(now() - t0)
            try store.close()
        }
        rows.append(ColdReadRow(kind: mapped ? "store" : "store, pread", threads: threads, megabytes: megabytes, milliseconds: median(times) * 1000,
                                megabytesPerSecond: megabytes / median(times), runsMs: times.map { $0 * 1000 }))
    }
    var times: [Double] = [], bytes = 0
    for _ in 0..<runs {
        evictFromPageCache(dir)
        let t0 = now()
        bytes = readSequentially(dir)
        times.append(now() - t0)
    }
    let sequentialMB = Double(bytes) / 1e6
    rows.append(ColdReadRow(kind: "sequential", threads: 1, megabytes: sequentialMB, milliseconds: median(times) * 1000,
                            megabytesPerSecond: sequentialMB / median(times), runsMs: times.map { $0 * 1000 }))
    let store2 = rows.first { $0.kind == "store" && $0.threads == 2 } ?? rows[0]
    return ColdReads(machine: cpuModel(), note: "store files dropped from the page cache before every run; medians of \(runs) runs",
                     valueBytes: valueBytes, chunks: chunks, rows: rows,
                     storeOverSequential: store2.megabytesPerSecond / rows.last!.megabytesPerSecond)
}
