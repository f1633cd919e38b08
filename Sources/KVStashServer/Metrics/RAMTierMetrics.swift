import KVStash
import Prometheus

extension ServerMetrics {
    /// Sets the RAM tier's gauges (radix tree and the resident caches of the last requests)
    /// and advances its counters by what happened since the previous scrape.
    func recordRAMTier(_ s: RadixStats) {
        let gauges: [(String, String, String, Int)] = [
            ("ram_tier", "bytes", "Bytes of KV pages in the radix tree", s.bytes),
            ("ram_tier_budget", "bytes", "Byte budget of the radix tree", s.budget),
            ("ram_tier_tokens", "", "Positions held by the radix tree", s.tokens),
            ("ram_tier_resident_tokens", "", "Positions of the last requests' caches kept beside the tree", s.residentTokens),
            ("ram_tier_resident", "bytes", "Bytes of the last requests' caches kept beside the tree", s.residentBytes),
            ("ram_tier_page_slabs", "bytes", "Bytes of the 2 MiB slabs holding the larger pages (live and free slots)", s.pageSlabBytes),
        ]
        for (name, unit, help, value) in gauges {
            registry.makeGauge(descriptor: Self.d(name, unit, help)).set(Double(value))
        }
        let before = ramTierCounters.withLock { last -> RadixStats in
            defer { last = s }
            return last
        }
        let counts: [(String, String, Int, Int)] = [
            ("ram_tier_evicted_tokens", "Positions evicted from the radix tree", s.evictedTokens, before.evictedTokens),
            ("ram_tier_resident_takes", "Requests that continued in a recent request's cache instead of copying pages",
             s.residentTakes, before.residentTakes),
        ]
        advanceCounters(counts)
    }
}
