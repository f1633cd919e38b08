import Foundation
import Hummingbird
import Logging

/// Bounds of `POST /v1/precompute`: what one request may ask, how many jobs run at once,
/// how many may wait, and how long finished jobs stay visible.
public struct PrecomputeLimits: Sendable {
    /// Jobs computing at the same time (each holds a KV cache of up to the context length).
    public var concurrency: Int
    /// Jobs queued or running; past it a request gets 429 with `Retry-After`.
    public var queueLimit: Int
    /// Seconds a finished job stays visible to `GET /v1/precompute/{id}`.
    public var retentionSeconds: Int
    /// Documents in one request.
    public var maxDocuments: Int
    /// UTF-8 bytes of document text in one request.
    public var maxTextBytes: Int
    /// Finished jobs kept at most (the oldest go first), whatever their age.
    public var maxFinishedRecords: Int

    public init(concurrency: Int = 1, queueLimit: Int = 16, retentionSeconds: Int = 3600, maxDocuments: Int = 16,
                maxTextBytes: Int = 2 << 20, maxFinishedRecords: Int = 1000) {
        self.concurrency = max(1, concurrency)
        self.queueLimit = max(1, queueLimit)
        self.retentionSeconds = max(0, retentionSeconds)
        self.maxDocuments = max(1, maxDocuments)
        self.maxTextBytes = max(1, maxTextBytes)
        self.maxFinishedRecords = max(0, maxFinishedRecords)
    }
}

/// The state of one `POST /v1/precompute` job, as `GET /v1/precompute/{id}` shows it.
struct PrecomputeJobStatus: Codable, Sendable {
    var id: String
    var object = "precompute.job"
    /// `queued`, `running`, `succeeded` or `failed`.
    var status: String
    var documents_total: Int
    var documents_done = 0
    var tokens_done = 0
    var tokens_cached = 0
    var created: Int
    var finished: Int?
    var error: String?
}

/// The work of one job: computes, reporting progress, and returns the final progress.
typealias PrecomputeWork = @Sendable (_ onProgress: @escaping @Sendable (PrecomputeProgress) async -> Void)
    async throws -> PrecomputeProgress

/// Precompute jobs of this server process (jobs are not persisted; their results are):
/// a FIFO queue of at most `queueLimit` jobs, `concurrency` of them running. Finished
/// jobs are pruned after `retentionSeconds`. A job belongs to its tenant: another tenant
/// does not see it.
actor PrecomputeJobs {
    private struct Record {
        var status: PrecomputeJobStatus
        var tenant: String
        var finishedAt: ContinuousClock.Instant?
    }

    let limits: PrecomputeLimits
    private let logger: Logger
    private var records: [String: Record] = [:]
    private var waiting: [(id: String, work: PrecomputeWork)] = []
    private var running = 0
    /// Finished job ids, oldest first.
    private var finishedOrder: [String] = []

    init(limits: PrecomputeLimits = PrecomputeLimits(), logger: Logger = Logger(label: "kvstash.precompute")) {
        self.limits = limits
        self.logger = logger
    }

    /// Queues a job, or throws 429 when `queueLimit` jobs are already queued or running.
    func submit(documents: Int, tenant: String, work: @escaping PrecomputeWork) throws -> PrecomputeJobStatus {
        prune()
        guard waiting.count + running < limits.queueLimit else {
            throw APIError.tooManyRequests(
                "\(limits.queueLimit) precompute jobs are already queued or running; retry later",
                retryAfter: retryAfterSeconds)
        }
        let status = PrecomputeJobStatus(id: "pc-" + UUID().uuidString.lowercased(), status: "queued",
                                         documents_total: documents, created: Int(Date().timeIntervalSince1970))
        records[status.id] = Record(status: status, tenant: tenant)
        waiting.append((status.id, work))
        startWaiting()
        return records[status.id]?.status ?? status
    }

    /// The job `id` if it exists and belongs to `tenant`.
    func get(_ id: String, tenant: String) -> PrecomputeJobStatus? {
        prune()
        guard let record = records[id], record.tenant == tenant else { return nil }
        return record.status
    }

    /// Jobs queued or running.
    func runningCount() -> Int { waiting.count + running }

    /// Job records held (active and finished).
    func recordCount() -> Int { records.count }

    /// A rough wait before a slot frees: one job's share of a minute per queued job.
    private var retryAfterSeconds: Int { max(1, min(600, 30 * (waiting.count + 1) / limits.concurrency)) }

    private func startWaiting() {
        while running < limits.concurrency, !waiting.isEmpty {
            let (id, work) = waiting.removeFirst()
            running += 1
            records[id]?.status.status = "running"
            Task { await self.run(id, work) }
        }
    }

    private func run(_ id: String, _ work: PrecomputeWork) async {
        do {
            let done = try await work { progress in await self.update(id, progress) }
            update(id, done)
            finish(id, error: nil)
        } catch {
            finish(id, error: error)
        }
        running -= 1
        startWaiting()
    }

    private func update(_ id: String, _ p: PrecomputeProgress) {
        records[id]?.status.documents_done = p.documentsDone
        records[id]?.status.tokens_done = p.tokensDone
        records[id]?.status.tokens_cached = p.tokensCached
    }

    private func finish(_ id: String, error: (any Error)?) {
        records[id]?.status.status = error == nil ? "succeeded" : "failed"
        if let error {
            // The client sees a 4xx reason as is, a server fault only by its id; the log has the cause.
            let apiError = APIError.from(error)
            if let detail = apiError.detail { logger.error("precompute job \(id) failed: \(detail)") }
            records[id]?.status.error = apiError.message
        }
        records[id]?.status.finished = Int(Date().timeIntervalSince1970)
        records[id]?.finishedAt = .now
        finishedOrder.append(id)
        prune()
    }

    /// Drops finished jobs past the retention time, and the oldest past `maxFinishedRecords`.
    private func prune() {
        let horizon = ContinuousClock.now - .seconds(limits.retentionSeconds)
        var drop = 0
        for id in finishedOrder {
            let expired = records[id]?.finishedAt.map { $0 <= horizon } ?? true
            guard expired || finishedOrder.count - drop > limits.maxFinishedRecords else { break }
            records[id] = nil
            drop += 1
        }
        if drop > 0 { finishedOrder.removeFirst(drop) }
    }
}

extension KVStashServer {
    func addPrecomputeRoutes(to router: Router<ServerContext>) {
        router.post("/v1/precompute") { request, _ in
            var request = request
            let tenant = try tenantSalt(request, cacheSalt: nil)
            let body = try await request.bodyBytes(limit: configuration.maxBodyBytes)
            let (docs, cacheSalt) = try precomputeDocuments(body: body)
            let salt = try tenantSalt(request, cacheSalt: cacheSalt)
            let backend = self.backend
            let job = try await jobs.submit(documents: docs.count, tenant: tenant) { onProgress in
                try await backend.precompute(docs, salt: salt, onProgress: onProgress)
            }
            return try jsonResponse(job, status: .accepted)
        }
        router.get("/v1/precompute/:id") { request, context in
            let id = context.parameters.get("id") ?? ""
            guard let job = await jobs.get(id, tenant: try tenantSalt(request, cacheSalt: nil)) else {
                throw APIError.notFound("no precompute job '\(id)'", param: "id", code: "job_not_found")
            }
            return try jsonResponse(job)
        }
    }

    /// The documents a precompute body asks for, within the per-request limits, and its
    /// `cache_salt`.
    func precomputeDocuments(body bytes: [UInt8]) throws -> (documents: [PrecomputeDocument], cacheSalt: String?) {
        let body = try decodeJSONBody(PrecomputeRequest.self, from: bytes)
        let limits = jobs.limits
        guard !body.documents.isEmpty else {
            throw APIError.badRequest("'documents' must not be empty", param: "documents")
        }
        guard body.documents.count <= limits.maxDocuments else {
            throw APIError.badRequest("at most \(limits.maxDocuments) documents per request (got \(body.documents.count))",
                                      param: "documents", code: "too_many_documents")
        }
        let bytes = body.documents.reduce(0) { $0 + $1.text.utf8.count }
        guard bytes <= limits.maxTextBytes else {
            throw APIError.badRequest("at most \(limits.maxTextBytes) bytes of document text per request (got \(bytes))",
                                      param: "documents", code: "documents_too_large")
        }
        return (body.documents.map { PrecomputeDocument(id: $0.id, text: $0.text) }, body.cache_salt)
    }
}
