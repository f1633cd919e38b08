import Prometheus

extension ServerMetrics {
    /// Updates the store gauges and counters from a stats snapshot taken at scrape time.
    ///
    /// Evictions and corrupt blocks are monotonic in the store; they are exposed as
    /// counters that advance by the difference since the last scrape.
    func recordStore(_ s: StoreStatsSnapshot) {
        registry.makeGauge(descriptor: Self.d("store", "bytes", "Bytes of KV blocks in the store")).set(Double(s.bytes))
        registry.makeGauge(descriptor: Self.d("store_entries", "", "Chunks in the store")).set(Double(s.entries))
        registry.makeGauge(descriptor: Self.d("store_pinned_entries", "", "Pinned chunks in the store"))
            .set(Double(s.pinnedEntries))
        let (evictions, corrupt) = storeCounters.withLock { last -> (Int, Int) in
            defer { last = (s.evictions, s.corruptBlocks) }
            return (max(0, s.evictions - last.evictions), max(0, s.corruptBlocks - last.corrupt))
        }
        registry.makeCounter(descriptor: Self.d("store_evictions", "total", "Chunks evicted from the store"))
            .increment(by: Int64(evictions))
        registry.makeCounter(descriptor: Self.d("store_corrupt_blocks", "total", "Corrupt KV blocks found"))
            .increment(by: Int64(corrupt))
    }
}

extension ServerMetrics {
    /// Updates the store's health gauges.
    func recordStoreHealth(_ h: StoreHealth) {
        registry.makeGauge(descriptor: Self.d("store_writable", "", "1 when the store takes writes, 0 after a background error or table damage"))
            .set(Double(h.writable ? 1 : 0))
        registry.makeGauge(descriptor: Self.d("store_background_errors", "", "RocksDB background errors (failed compactions, flushes) since start"))
            .set(Double(h.backgroundErrors))
        registry.makeGauge(descriptor: Self.d("store_writes_refused_disk_full", "", "Store writes refused for lack of disk space since start"))
            .set(Double(h.writesRefusedDiskFull))
    }

    /// Records `h`; true when the store turned degraded or healthy since the last call.
    func storeHealthChanged(_ h: StoreHealth) -> Bool {
        storeHealthy.withLock { last in
            defer { last = h.ok }
            return last != h.ok
        }
    }
}
