import Foundation
import KVStash
import Hummingbird
import Logging
import NIOCore

/// Settings of `kvstash serve`.
public struct ServerConfiguration: Sendable {
    /// Address to bind; loopback by default.
    public var host: String
    /// Port to bind; 0 picks a free one (the tests do this).
    public var port: Int
    /// Bearer token of `/admin/*`; nil closes the admin API.
    public var adminToken: String?
    /// Largest request body accepted.
    public var maxBodyBytes: Int
    /// `max_tokens` of a chat completion that does not set it (still capped by the context).
    public var defaultChatMaxTokens: Int
    /// One cache namespace per API key (`Authorization: Bearer`), so tenants cannot see each
    /// other's prefixes; requests without a key get 401. Off: one shared namespace (plus
    /// any `cache_salt` a client sends).
    public var tenantFromAPIKey: Bool
    /// Queue and per-request bounds of precompute jobs.
    public var precompute: PrecomputeLimits
    /// Open connections and read timeouts.
    public var connections: ConnectionLimits
    /// KV positions (prompt + `max_tokens`) of all generations running at once; a request
    /// past it gets 429 with `Retry-After`.
    public var maxActiveTokens: Int

    public init(host: String = "127.0.0.1", port: Int = 8080, adminToken: String? = nil,
                maxBodyBytes: Int = 4 << 20, defaultChatMaxTokens: Int = 1024, tenantFromAPIKey: Bool = false,
                precompute: PrecomputeLimits = PrecomputeLimits(), connections: ConnectionLimits = ConnectionLimits(),
                maxActiveTokens: Int = 32_768) {
        self.host = host
        self.port = port
        self.adminToken = adminToken
        self.maxBodyBytes = maxBodyBytes
        self.defaultChatMaxTokens = defaultChatMaxTokens
        self.tenantFromAPIKey = tenantFromAPIKey
        self.precompute = precompute
        self.connections = connections
        self.maxActiveTokens = maxActiveTokens
    }
}

/// The KVStash HTTP server: OpenAI-compatible completions, precompute jobs, the admin
/// API and Prometheus metrics, on Hummingbird.
public struct KVStashServer: Sendable {
    public let configuration: ServerConfiguration
    public let backend: any CompletionBackend
    public let admin: (any StoreAdmin)?
    public let metrics: ServerMetrics
    /// The chunk tiers whose counters `/metrics` reports (nil: none).
    public let tiers: ChunkTiers?
    /// The RAM tier whose gauges and counters `/metrics` reports (nil: none).
    public let ramTier: RadixTree?
    let jobs: PrecomputeJobs
    /// Open connections (the guard of `configuration.connections.maxConnections`).
    let connectionCount = ConnectionCounter()
    /// KV positions of the running generations (`configuration.maxActiveTokens`).
    let activeTokens: TokenBudget
    let startedAt = Int(Date().timeIntervalSince1970)

    /// - Parameters:
    ///   - backend: what runs the model.
    ///   - admin: the store behind `/admin/*` and the store gauges of `/metrics`; nil disables them.
    ///   - tiers: the chunk tiers whose counters `/metrics` reports per tier.
    ///   - ramTier: the radix tree whose size and counters `/metrics` reports.
    public init(configuration: ServerConfiguration, backend: any CompletionBackend,
                admin: (any StoreAdmin)? = nil, metrics: ServerMetrics = ServerMetrics(), tiers: ChunkTiers? = nil,
                ramTier: RadixTree? = nil) {
        self.tiers = tiers
        self.ramTier = ramTier
        self.configuration = configuration
        self.backend = backend
        self.admin = admin
        self.metrics = metrics
        self.jobs = PrecomputeJobs(limits: configuration.precompute)
        self.activeTokens = TokenBudget(limit: configuration.maxActiveTokens)
    }

    /// The router with every endpoint.
    func makeRouter() -> Router<ServerContext> {
        let router = Router(context: ServerContext.self)
        router.add(middleware: OpenAIErrorMiddleware())
        router.get("/health") { _, _ in try jsonResponse(healthReport()) }
        router.get("/metrics") { _, _ in await metricsResponse() }
        addOpenAIRoutes(to: router)
        addPrecomputeRoutes(to: router)
        addAdminRoutes(to: router.group("/admin").add(middleware: AdminAuthMiddleware(token: configuration.adminToken))
            .add(middleware: SettledMiddleware(backend: backend)))
        return router
    }

    /// A Hummingbird application serving this server. `onRunning` receives the bound port.
    public func makeApplication(logger: Logger? = nil,
                                onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        var log = logger ?? Logger(label: "kvstash.server")
        if logger == nil { log.logLevel = .info }
        let (counter, limits) = (connectionCount, configuration.connections)
        return Application(
            router: makeRouter(),
            server: .http1(configuration: .init(
                additionalChannelHandlers: [ConnectionGuard(counter: counter, limits: limits), DisconnectWatcher()],
                idleTimeout: .nanoseconds(Int64(limits.idleTimeoutSeconds * 1e9)))),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port),
                                 serverName: "kvstash"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: log)
    }

    /// Runs until cancelled (or SIGINT/SIGTERM when `handleSignals`); returns once the
    /// requests answered have kept their prompts, so the caller may close the store.
    public func run(handleSignals: Bool = true, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let app = makeApplication(onRunning: onRunning)
        do {
            if handleSignals { try await app.runService() } else { try await app.run() }
        } catch {
            await backend.settled()
            throw error
        }
        await backend.settled()
    }

    private func metricsResponse() async -> Response {
        await backend.settled()
        if let admin { await refreshStoreMetrics(admin) }
        if let tiers { metrics.recordTiers(tiers) }
        if let ramTier { metrics.recordRAMTier(ramTier.stats()) }
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers,
                        body: .init(byteBuffer: ByteBuffer(string: metrics.exposition())))
    }

    private func refreshStoreMetrics(_ admin: any StoreAdmin) async {
        if let stats = try? await admin.stats() { metrics.recordStore(stats) }
        metrics.recordStoreHealth(checkedHealth(admin))
    }

    /// `GET /health`: `ok`, or `degraded` (still serving reads) with the store's problems.
    private func healthReport() -> HealthReport {
        guard let admin else { return HealthReport(status: "ok", store: nil) }
        let health = checkedHealth(admin)
        return HealthReport(status: health.ok ? "ok" : "degraded", store: health)
    }

    /// The store's health; a change to or from degraded is logged once.
    private func checkedHealth(_ admin: any StoreAdmin) -> StoreHealth {
        let health = admin.health()
        if metrics.storeHealthChanged(health) {
            let log = Logger(label: "kvstash.store")
            if health.ok {
                log.info("store healthy again")
            } else {
                log.error("store degraded: \(health.problems.joined(separator: "; "))")
            }
        }
        return health
    }
}

/// Body of `GET /health`.
struct HealthReport: Codable, Sendable {
    var status: String
    var store: StoreHealth?
}
