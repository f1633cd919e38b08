import ArgumentParser
import Foundation
import KVStash
import KVStashRedis
import KVStashStore

/// `--shared redis://...`: the shared tier of `serve`, `query` and `precompute`.
struct SharedTierOptions: ParsableArguments {
    @Option(name: .customLong("shared"),
            help: "Shared tier: redis://[user:password@]host:port[,host:port...] (a Redis Cluster or one server; default: $KVSTASH_SHARED).")
    var shared: String?

    /// The URL given, or `$KVSTASH_SHARED`.
    var url: String? {
        if let shared { return shared }
        let env = ProcessInfo.processInfo.environment["KVSTASH_SHARED"] ?? ""
        return env.isEmpty ? nil : env
    }

    /// Opens the shared tier for a synchronous command (nil without a URL).
    func open() throws -> SharedRedisTier? {
        guard let url else { return nil }
        return try SharedRedisTier.openWaiting(try RedisTierURL(parsing: url))
    }

    /// Opens the shared tier for `serve`.
    func openAsync() async throws -> SharedRedisTier? {
        guard let url else { return nil }
        return try await SharedRedisTier.open(try RedisTierURL(parsing: url))
    }
}

extension ChunkTiers {
    /// With a shared tier, one stderr line per tier that did anything (hits, misses, bytes,
    /// errors, fetch time) and what was published to the shared tier.
    func report() {
        guard shared != nil else { return }
        for (name, c) in counters where c.probes > 0 {
            RequestCLI.note("tier \(name): \(c.hits) hits, \(c.misses) misses, \(RequestCLI.bytes(c.bytesRead)) read, "
                + "\(c.errors) errors (\(c.deadlines) past deadline), \(c.damaged) damaged, \(c.unknownVersion) unknown-version, "
                + "\(c.copiedToLocal) copied to disk, fetch \(RequestCLI.seconds(c.fetchSeconds))")
        }
        if let p = publisher?.counters, p.queued > 0 || p.dropped > 0 {
            RequestCLI.note("published to \(shared?.tierName ?? "shared"): \(p.published) chunks, \(p.alreadyPresent) already there, "
                + "\(p.dropped) dropped (queue full), \(p.failed) failed")
        }
    }
}
