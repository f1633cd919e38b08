import Foundation
import KVStashDigest

/// The identity of a model file, part of every chunk key.
///
/// Choice: the fingerprint is SHA-256 over the WHOLE GGUF file (prefixed by a domain tag).
/// The key design asks for a hash of the architecture metadata, the tokenizer metadata and the
/// tensor data; the whole file contains all three, so any change to them changes the
/// fingerprint. The only cost of hashing more is that an edit of unrelated metadata
/// (say `general.name`) yields a new fingerprint: a cache miss, never a wrong splice.
/// That is the safe direction, and it needs no GGUF parser in the store.
/// Hashing 98 MB takes well under a second; the result is cached by path, size and mtime.
public enum ModelFingerprint {
    /// Tag hashed before the file bytes so that the fingerprint is not the plain file sha256.
    static let domain = Array("kvstash.model-fingerprint.v1\0".utf8)
    /// Name of the cache file inside `cacheDir`.
    public static let cacheFileName = "model-fingerprints.json"

    /// SHA-256 fingerprint of the model at `path`. With a `cacheDir`, the result is read from
    /// and written to `cacheDir/model-fingerprints.json`, keyed by absolute path, size and mtime.
    public static func compute(path: String, cacheDir: String?) throws -> [UInt8] {
        let url = URL(fileURLWithPath: path).standardizedFileURL
        let attrs = try FileManager.default.attributesOfItem(atPath: url.path)
        let size = (attrs[.size] as? NSNumber)?.int64Value ?? -1
        let mtime = (attrs[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        let entry = CacheEntry(size: size, mtime: mtime, fingerprint: "")
        if let dir = cacheDir, let hit = lookup(dir: dir, path: url.path, like: entry) {
            return hit
        }
        let fingerprint = try hashFile(url)
        if let dir = cacheDir {
            var stored = entry
            stored.fingerprint = Hex.encode(fingerprint)
            try? remember(dir: dir, path: url.path, entry: stored)
        }
        return fingerprint
    }

    /// Tag hashed before a fingerprint and a numerics name (`variant`).
    static let variantDomain = Array("kvstash.model-numerics.v1\0".utf8)

    /// The fingerprint that keys the chunks of the model `fingerprint` run with numerics other
    /// than the default (`LlamaModel.numericsTag`, e.g. 8-bit prefill inputs): SHA-256 of
    /// "kvstash.model-numerics.v1\0", the 32 fingerprint bytes and the name's UTF-8. KV computed
    /// that way is never spliced into a default run, nor the other way round.
    public static func variant(_ fingerprint: [UInt8], numerics name: String) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: variantDomain)
        hasher.update(data: fingerprint)
        hasher.update(data: Array(name.utf8))
        return Array(hasher.finalize())
    }

    /// Streams the file through SHA-256 in 8 MiB reads.
    static func hashFile(_ url: URL) throws -> [UInt8] {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var hasher = SHA256()
        hasher.update(data: domain)
        while let block = try handle.read(upToCount: 8 << 20), !block.isEmpty {
            hasher.update(data: block)
        }
        return Array(hasher.finalize())
    }

    struct CacheEntry: Codable, Equatable {
        var size: Int64
        var mtime: Double
        var fingerprint: String
    }

    private static func lookup(dir: String, path: String, like probe: CacheEntry) -> [UInt8]? {
        let file = URL(fileURLWithPath: dir).appendingPathComponent(cacheFileName)
        guard let data = try? Data(contentsOf: file),
              let table = try? JSONDecoder().decode([String: CacheEntry].self, from: data),
              let hit = table[path], hit.size == probe.size, hit.mtime == probe.mtime,
              let raw = Hex.decode(hit.fingerprint), raw.count == 32 else { return nil }
        return raw
    }

    private static func remember(dir: String, path: String, entry: CacheEntry) throws {
        let file = URL(fileURLWithPath: dir).appendingPathComponent(cacheFileName)
        var table: [String: CacheEntry] = [:]
        if let data = try? Data(contentsOf: file),
           let old = try? JSONDecoder().decode([String: CacheEntry].self, from: data) {
            table = old
        }
        table[path] = entry
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(table).write(to: file, options: .atomic)
    }
}
