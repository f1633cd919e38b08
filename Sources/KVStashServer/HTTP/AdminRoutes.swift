import Foundation
import Hummingbird

/// Body of `POST /admin/evict`: explicit keys, or LRU down to a byte target.
private struct EvictBody: Decodable {
    var keys: [String]?
    var down_to_bytes: Int?
}

/// Answer of pin and unpin.
private struct PinResult: Encodable {
    var key: String
    var pinned: Bool
}

/// Admin answers use snake_case keys.
private func adminJSON(_ value: some Encodable) throws -> Response {
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.outputFormatting = [.sortedKeys]
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
}

extension KVStashServer {
    /// `/admin/*` (the group carries the bearer-token middleware).
    func addAdminRoutes(to group: RouterGroup<ServerContext>) {
        group.get("/stats") { _, _ in try await adminJSON(store().stats()) }
        group.get("/entries") { request, _ in
            let q = request.uri.queryParameters
            let limit = q["limit"].map { Int(String($0)) ?? -1 } ?? 100
            guard (1...1000).contains(limit) else {
                throw APIError.badRequest("limit must be an integer in 1...1000", param: "limit")
            }
            var filter = StoreEntryFilter()
            if let p = q["pinned"] {
                guard let b = Bool(String(p)) else { throw APIError.badRequest("pinned must be true or false", param: "pinned") }
                filter.pinned = b
            }
            filter.codec = q["codec"].map(String.init)
            filter.document = q["document"].map(String.init)
            filter.keyPrefix = q["prefix"].map { String($0).lowercased() }
            let page = try await store().entries(filter: filter, after: q["after"].map(String.init), limit: limit)
            return try adminJSON(page)
        }
        group.get("/entries/:key") { _, context in
            let key = try context.parameters.require("key")
            guard let entry = try await store().entry(key: key) else { throw noEntry(key) }
            return try adminJSON(entry)
        }
        group.post("/entries/:key/pin") { _, context in try await pin(context, true) }
        group.post("/entries/:key/unpin") { _, context in try await pin(context, false) }
        group.post("/evict") { request, _ in
            var request = request
            let body = try await request.decodeJSON(EvictBody.self, limit: configuration.maxBodyBytes)
            switch (body.keys, body.down_to_bytes) {
            case (let keys?, nil): return try await adminJSON(store().evict(.keys(keys)))
            case (nil, let bytes?) where bytes >= 0: return try await adminJSON(store().evict(.downTo(bytes: bytes)))
            case (let keys?, let bytes?): throw APIError.badRequest(
                "give either 'keys' or 'down_to_bytes', not both (got \(keys.count) keys and \(bytes) bytes)")
            case (nil, let bytes?): throw APIError.badRequest("'down_to_bytes' must be >= 0 (got \(bytes))",
                                                              param: "down_to_bytes")
            case (nil, nil): throw APIError.badRequest("give either 'keys' or 'down_to_bytes' (>= 0)")
            }
        }
        group.post("/verify") { _, _ in try await adminJSON(store().verify()) }
    }

    private func store() throws -> any StoreAdmin {
        guard let admin else { throw APIError(.serviceUnavailable, "no store is attached to this server") }
        return admin
    }

    private func noEntry(_ key: String) -> APIError {
        .notFound("no entry with key '\(key)'", param: "key", code: "entry_not_found")
    }

    private func pin(_ context: ServerContext, _ pinned: Bool) async throws -> Response {
        let key = try context.parameters.require("key")
        guard try await store().setPinned(key: key, pinned) else { throw noEntry(key) }
        return try adminJSON(PinResult(key: key, pinned: pinned))
    }
}
