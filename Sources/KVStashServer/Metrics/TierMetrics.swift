import KVStash
import Prometheus

extension ServerMetrics {
    /// Advances the per-tier counters (`tier` label: `disk`, `shared`) by what each tier did
    /// since the previous scrape, and sets the publish queue's gauge.
    func recordTiers(_ tiers: ChunkTiers) {
        for (name, now) in tiers.counters {
            let before = tierCounters.withLock { last -> TierCounters in
                defer { last[name] = now }
                return last[name] ?? TierCounters()
            }
            let labels = [("tier", name)]
            let counts: [(String, String, Int, Int)] = [
                ("tier_hits", "Blocks read and spliced from the tier", now.hits, before.hits),
                ("tier_misses", "Blocks probed present but gone when read", now.misses, before.misses),
                ("tier_errors", "Tier reads that failed or passed their deadline", now.errors, before.errors),
                ("tier_rejected_blocks", "Blocks rejected as damaged or of an unknown version", now.damaged + now.unknownVersion,
                 before.damaged + before.unknownVersion),
                ("tier_fetches", "Block reads timed in tier_fetch_seconds_total", now.fetches, before.fetches),
            ]
            advanceCounters(counts, labels: labels)
            registry.makeCounter(descriptor: Self.d("tier_read", "bytes_total", "Bytes of blocks read from the tier"), labels: labels)
                .increment(by: Int64(max(0, now.bytesRead - before.bytesRead)))
            registry.makeCounter(descriptor: Self.d("tier_fetch", "seconds_total", "Seconds spent reading blocks from the tier"),
                                 labels: labels)
                .increment(by: max(0, now.fetchSeconds - before.fetchSeconds))
        }
        if let publish = tiers.publisher?.counters {
            registry.makeGauge(descriptor: Self.d("shared_publish_pending", "bytes", "Bytes waiting to be published to the shared tier"))
                .set(Double(publish.pendingBytes))
            registry.makeGauge(descriptor: Self.d("shared_publish_dropped", "", "Chunks not published since start: queue full"))
                .set(Double(publish.dropped))
            registry.makeGauge(descriptor: Self.d("shared_publish_failed", "", "Chunks whose publication failed since start"))
                .set(Double(publish.failed))
        }
    }

    /// Advances each `_total` counter (name, help, value now, value at the previous scrape) by
    /// what it grew since then (never backwards).
    func advanceCounters(_ counts: [(String, String, Int, Int)], labels: [(String, String)] = []) {
        for (metric, help, value, last) in counts {
            registry.makeCounter(descriptor: Self.d(metric, "total", help), labels: labels).increment(by: Int64(max(0, value - last)))
        }
    }
}
