import Foundation
import Hummingbird

/// The state of one `POST /v1/precompute` job, as `GET /v1/precompute/{id}` shows it.
struct PrecomputeJobStatus: Codable, Sendable {
    var id: String
    var object = "precompute.job"
    /// `running`, `succeeded` or `failed`.
    var status: String
    var documents_total: Int
    var documents_done = 0
    var tokens_done = 0
    var tokens_cached = 0
    var created: Int
    var finished: Int?
    var error: String?
}

/// Precompute jobs of this server process (jobs are not persisted; their results are).
actor PrecomputeJobs {
    private var jobs: [String: PrecomputeJobStatus] = [:]

    func create(documents: Int) -> PrecomputeJobStatus {
        let job = PrecomputeJobStatus(id: "pc-" + UUID().uuidString.lowercased(), status: "running",
                                      documents_total: documents, created: Int(Date().timeIntervalSince1970))
        jobs[job.id] = job
        return job
    }

    func update(_ id: String, _ p: PrecomputeProgress) {
        jobs[id]?.documents_done = p.documentsDone
        jobs[id]?.tokens_done = p.tokensDone
        jobs[id]?.tokens_cached = p.tokensCached
    }

    func finish(_ id: String, error: (any Error)?) {
        jobs[id]?.status = error == nil ? "succeeded" : "failed"
        jobs[id]?.error = error.map { "\($0)" }
        jobs[id]?.finished = Int(Date().timeIntervalSince1970)
    }

    func get(_ id: String) -> PrecomputeJobStatus? { jobs[id] }

    /// Jobs still running.
    func runningCount() -> Int { jobs.values.filter { $0.status == "running" }.count }
}

extension KVStashServer {
    func addPrecomputeRoutes(to router: Router<ServerContext>) {
        router.post("/v1/precompute") { request, _ in
            var request = request
            let body = try await request.decodeJSON(PrecomputeRequest.self, limit: configuration.maxBodyBytes)
            guard !body.documents.isEmpty else {
                throw APIError.badRequest("'documents' must not be empty", param: "documents")
            }
            let docs = body.documents.map { PrecomputeDocument(id: $0.id, text: $0.text) }
            let job = await jobs.create(documents: docs.count)
            let (backend, jobs) = (self.backend, self.jobs)
            Task {
                do {
                    let done = try await backend.precompute(docs, salt: body.cache_salt ?? "") { progress in
                        await jobs.update(job.id, progress)
                    }
                    await jobs.update(job.id, done)
                    await jobs.finish(job.id, error: nil)
                } catch {
                    await jobs.finish(job.id, error: error)
                }
            }
            return try jsonResponse(job, status: .accepted)
        }
        router.get("/v1/precompute/:id") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard let job = await jobs.get(id) else {
                throw APIError.notFound("no precompute job '\(id)'", param: "id", code: "job_not_found")
            }
            return try jsonResponse(job)
        }
    }
}
