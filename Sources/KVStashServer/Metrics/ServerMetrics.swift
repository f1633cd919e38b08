import KVStash
import Prometheus
import Synchronization

/// The server's Prometheus metrics, in a registry of its own (no global bootstrap, so
/// several servers can live in one process, as the tests do).
///
/// Names follow Prometheus conventions: `_total` counters, `_seconds` and `_bytes` units.
public final class ServerMetrics: Sendable {
    /// The registry `GET /metrics` emits.
    public let registry = PrometheusCollectorRegistry()

    private let promptTokens: Counter
    private let completionTokens: Counter
    private let cachedRAM: Counter
    private let cachedDisk: Counter
    private let cachedShared: Counter
    private let hitRatio: Gauge
    private let ttft: DurationHistogram
    private let tokenLatency: DurationHistogram
    private let active: Gauge
    private let totals = Mutex<(prompt: Int, cached: Int)>((0, 0))
    /// Store counters seen at the previous scrape.
    let storeCounters = Mutex<(evictions: Int, corrupt: Int)>((0, 0))
    /// Tier counters seen at the previous scrape, by tier name.
    let tierCounters = Mutex<[String: TierCounters]>([:])
    /// RAM tier counters seen at the previous scrape.
    let ramTierCounters = Mutex(RadixStats())
    /// Whether the store was healthy at the previous check.
    let storeHealthy = Mutex(true)

    /// Buckets in seconds: TTFT spans a cached 5 ms to an 8K-token miss of tens of seconds.
    static let ttftBuckets: [Duration] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
        .map { Duration.milliseconds(Int64($0 * 1000)) }
    /// Buckets in seconds for the gap between two generated tokens.
    static let tokenBuckets: [Duration] = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1]
        .map { Duration.microseconds(Int64($0 * 1_000_000)) }

    public init() {
        let r = registry
        let cached = Self.d("cached_tokens", "total", "Prompt tokens whose KV was reused, by tier")
        promptTokens = r.makeCounter(descriptor: Self.d("prompt_tokens", "total", "Prompt tokens of finished completions"))
        completionTokens = r.makeCounter(descriptor: Self.d("completion_tokens", "total", "Generated tokens"))
        cachedRAM = r.makeCounter(descriptor: cached, labels: [("tier", "ram")])
        cachedDisk = r.makeCounter(descriptor: cached, labels: [("tier", "disk")])
        cachedShared = r.makeCounter(descriptor: cached, labels: [("tier", "shared")])
        hitRatio = r.makeGauge(descriptor: Self.d("prefix_hit", "ratio", "Cached prompt tokens / prompt tokens since start"))
        ttft = r.makeDurationHistogram(
            descriptor: Self.d("time_to_first_token", "seconds", "Time from request arrival to the first generated token"),
            buckets: Self.ttftBuckets)
        tokenLatency = r.makeDurationHistogram(
            descriptor: Self.d("inter_token_latency", "seconds", "Time between two generated tokens of one request"),
            buckets: Self.tokenBuckets)
        active = r.makeGauge(descriptor: Self.d("active_requests", "", "Completions being generated"))
        // Families that must appear before their first sample.
        for endpoint in ["completions", "chat"] {
            for outcome in ["ok", "client_error", "server_error", "cancelled"] {
                _ = requestCounter(endpoint, outcome)
            }
        }
    }

    private func requestCounter(_ endpoint: String, _ outcome: String) -> Counter {
        registry.makeCounter(descriptor: Self.d("requests", "total", "Completion requests by endpoint and outcome"),
                             labels: [("endpoint", endpoint), ("outcome", outcome)])
    }

    /// Counts a finished request.
    func request(_ endpoint: String, outcome: String) {
        requestCounter(endpoint, outcome).increment()
    }

    /// Records the usage of a finished generation.
    func record(_ usage: CompletionUsage) {
        promptTokens.increment(by: Int64(usage.promptTokens))
        completionTokens.increment(by: Int64(usage.completionTokens))
        cachedRAM.increment(by: Int64(usage.cachedTokensRAM))
        cachedDisk.increment(by: Int64(usage.cachedTokensDisk))
        cachedShared.increment(by: Int64(usage.cachedTokensShared))
        let ratio = totals.withLock { t -> Double in
            t.prompt += usage.promptTokens
            t.cached += usage.cachedTokens
            return t.prompt == 0 ? 0 : Double(t.cached) / Double(t.prompt)
        }
        hitRatio.set(ratio)
    }

    /// Records the time to the first token.
    func recordTTFT(_ d: Duration) { ttft.record(d) }

    /// Records the gap between two tokens.
    func recordTokenGap(_ d: Duration) { tokenLatency.record(d) }

    /// Tracks the number of active generations.
    func generationStarted() { active.increment() }
    func generationEnded() { active.decrement() }

    /// A `kvstash_`-namespaced metric name.
    static func d(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "kvstash", metricName: name, unitName: unit, helpText: help)
    }

    /// Prometheus text exposition of every metric.
    public func exposition() -> String { registry.emitToString() }
}
