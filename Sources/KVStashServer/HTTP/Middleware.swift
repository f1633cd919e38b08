import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Turns every error a handler throws into an OpenAI-style JSON answer, so no client
/// ever sees an empty 500 or a dropped connection for bad input.
struct OpenAIErrorMiddleware: RouterMiddleware {
    typealias Context = ServerContext

    func handle(_ request: Request, context: ServerContext,
                next: (Request, ServerContext) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let apiError = APIError.from(error)
            if apiError.status.code >= 500 {
                context.logger.error("\(request.method) \(request.uri.path): \(apiError.detail ?? apiError.description)")
            }
            return apiError.response()
        }
    }
}

/// Lets `/admin/*` see what every request answered before it keeps (see `KeepLedger`).
struct SettledMiddleware: RouterMiddleware {
    typealias Context = ServerContext
    let backend: any CompletionBackend

    func handle(_ request: Request, context: ServerContext,
                next: (Request, ServerContext) async throws -> Response) async throws -> Response {
        await backend.settled()
        return try await next(request, context)
    }
}

/// Guards `/admin/*`: `Authorization: Bearer <token>` must match the configured token.
/// With no token configured the admin API is closed (every call answers 401).
struct AdminAuthMiddleware: RouterMiddleware {
    typealias Context = ServerContext
    let token: String?

    func handle(_ request: Request, context: ServerContext,
                next: (Request, ServerContext) async throws -> Response) async throws -> Response {
        guard let token, !token.isEmpty else {
            throw APIError.unauthorized("the admin API is disabled: start the server with --admin-token")
        }
        guard let header = request.headers[.authorization] else {
            throw APIError.unauthorized("missing 'Authorization: Bearer <token>' header")
        }
        let prefix = "Bearer "
        guard header.hasPrefix(prefix), constantTimeEqual(String(header.dropFirst(prefix.count)), token) else {
            throw APIError.unauthorized("invalid admin token")
        }
        return try await next(request, context)
    }

    /// Compares without an early exit, so response time does not leak the token's prefix.
    private func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return diff == 0
    }
}

extension APIError {
    /// 413 for a body over the limit.
    static func bodyTooLarge(_ limit: Int) -> APIError {
        APIError(.contentTooLarge, "request body exceeds the limit of \(limit) bytes", code: "body_too_large")
    }
}

extension Request {
    /// Reads the body: at most `limit` bytes, else 413.
    mutating func bodyBytes(limit: Int) async throws -> [UInt8] {
        do {
            return Array(try await collectBody(upTo: limit).readableBytesView)
        } catch let e as HTTPError where e.status == .contentTooLarge {
            throw APIError.bodyTooLarge(limit)
        } catch is NIOTooManyBytesError {
            throw APIError.bodyTooLarge(limit)
        }
    }

    /// Reads the body (at most `limit` bytes) and decodes it as JSON.
    mutating func decodeJSON<T: Decodable>(_ type: T.Type, limit: Int) async throws -> T {
        try decodeJSONBody(T.self, from: try await bodyBytes(limit: limit))
    }
}

/// Decodes a request body as JSON; every fault is a 400 that says what is wrong and, where
/// it can, in which field.
func decodeJSONBody<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
    guard !bytes.isEmpty else { throw APIError.badRequest("request body is empty; expected JSON") }
    do {
        return try JSONDecoder().decode(T.self, from: Data(bytes))
    } catch let e as DecodingError {
        guard case .dataCorrupted(let c) = e else { throw e }
        // The decoder's "not valid JSON" names neither the fault nor (at the root) the
        // field: scan the body to say what is wrong and where.
        if let finding = JSONDiagnosis.diagnose(bytes) {
            throw APIError.badRequest(finding.message, param: finding.param, code: "invalid_json")
        }
        if c.codingPath.isEmpty {
            let cause = (c.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            // The body is well-formed JSON (the scan found no fault), so Foundation's
            // "not valid JSON" here means a number its field's type cannot hold.
            let detail = cause ?? (c.debugDescription.hasSuffix("not valid JSON.")
                ? "a number does not fit its field (a fraction where an integer is expected, or out of range)"
                : c.debugDescription)
            throw APIError.badRequest("malformed JSON body: \(detail)", code: "invalid_json")
        }
        throw e
    }
}

/// JSON answers.
func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    return Response(status: status, headers: headers,
                    body: .init(byteBuffer: ByteBuffer(bytes: try JSONBody.bytes(value))))
}
