import Foundation
import HTTPTypes
import Hummingbird
import KVStash

/// An error the server answers with an OpenAI-style JSON body:
/// `{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}`.
public struct APIError: Error, Sendable, CustomStringConvertible {
    /// HTTP status of the answer.
    public var status: HTTPResponse.Status
    /// Human-readable reason.
    public var message: String
    /// OpenAI error type, e.g. `invalid_request_error`.
    public var type: String
    /// The request field at fault, if any.
    public var param: String?
    /// Machine-readable code, e.g. `model_not_found`.
    public var code: String?
    /// What went wrong inside the server, for the log only (never sent: it may name files).
    public var detail: String?
    /// Seconds for a `Retry-After` header (429, 503).
    public var retryAfter: Int?

    public init(_ status: HTTPResponse.Status, _ message: String, type: String = "invalid_request_error",
                param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    public var description: String { "\(status.code) \(type): \(message)" }

    /// 400 for a request that cannot be served as sent.
    static func badRequest(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(.badRequest, message, param: param, code: code)
    }

    /// 401 for a missing or wrong admin token.
    static func unauthorized(_ message: String) -> APIError {
        APIError(.unauthorized, message, type: "authentication_error", code: "invalid_api_key")
    }

    /// 429 when a queue or limit is full; the client may retry after `retryAfter` seconds.
    static func tooManyRequests(_ message: String, retryAfter: Int, code: String = "rate_limit_exceeded") -> APIError {
        var e = APIError(.tooManyRequests, message, type: "rate_limit_error", code: code)
        e.retryAfter = retryAfter
        return e
    }

    /// 404 for an unknown model, entry or job.
    static func notFound(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(.notFound, message, param: param, code: code)
    }

    /// The JSON body.
    var body: ErrorBody { ErrorBody(error: .init(message: message, type: type, param: param, code: code)) }

    /// The HTTP response carrying the JSON body.
    func response() -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        let data = (try? JSONEncoder().encode(body)) ?? Data("{}".utf8)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// The OpenAI error envelope.
struct ErrorBody: Codable, Sendable {
    struct Detail: Codable, Sendable {
        var message: String
        var type: String
        var param: String?
        var code: String?

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(message, forKey: .message)
            try c.encode(type, forKey: .type)
            try c.encode(param, forKey: .param)   // explicit null, as OpenAI does
            try c.encode(code, forKey: .code)
        }
    }
    var error: Detail
}

extension APIError {
    /// Maps any error thrown while handling a request to the error the client sees.
    static func from(_ error: any Error) -> APIError {
        switch error {
        case let e as APIError:
            return e
        case is CancellationError:
            return APIError(.init(code: 499, reasonPhrase: "Client Closed Request"), "request cancelled",
                            type: "cancelled")
        case let e as DecodingError:
            return .badRequest(describe(e), param: paramName(e), code: "invalid_value")
        case let e as KVStashError:
            switch e {
            case .contextOverflow: return .badRequest(e.description, code: "context_length_exceeded")
            case .emptyPrompt, .invalid: return .badRequest(e.description)
            case .notFound: return .notFound(e.description)
            case .storeFull:
                return APIError(.init(code: 507, reasonPhrase: "Insufficient Storage"), e.description,
                                type: "server_error", code: "store_full")
            }
        case let e as HTTPError:
            let message = e.body ?? e.status.reasonPhrase
            if e.status == .contentTooLarge {
                return APIError(.contentTooLarge, "request body too large: \(message)", code: "body_too_large")
            }
            return APIError(e.status, message, type: e.status.code >= 500 ? "server_error" : "invalid_request_error")
        default:
            return internalError(error)
        }
    }

    /// A 500 whose message carries only an id; the cause stays in `detail` for the log.
    static func internalError(_ error: any Error) -> APIError {
        let id = "err-" + UUID().uuidString.prefix(8).lowercased()
        var e = APIError(.internalServerError, "internal server error (id \(id)); the server log has the cause",
                         type: "server_error", code: "internal_error")
        e.detail = "\(id): \(error)"
        return e
    }

    private static func path(_ context: DecodingError.Context) -> String {
        context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            .joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
    }

    private static func paramName(_ error: DecodingError) -> String? {
        switch error {
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c):
            let p = path(c)
            return p.isEmpty ? nil : p
        case .keyNotFound(let key, let c):
            let p = path(c)
            return p.isEmpty ? key.stringValue : p + "." + key.stringValue
        @unknown default:
            return nil
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .typeMismatch(_, let c) where c.codingPath.isEmpty:
            return "the request body must be a JSON object"
        case .typeMismatch(let type, let c):
            return "invalid type for '\(path(c))': expected \(typeName(type))"
        case .valueNotFound(let type, let c):
            return "'\(path(c))' must not be null (expected \(typeName(type)))"
        case .keyNotFound(let key, let c):
            let p = path(c)
            return "missing required field '\(p.isEmpty ? key.stringValue : p + "." + key.stringValue)'"
        case .dataCorrupted(let c):
            let p = path(c)
            // Foundation words a number the field's type cannot hold (0.5 for an integer,
            // 1e300) as "not valid JSON"; its underlying error says which number it was.
            let cause = (c.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            let detail = c.debugDescription.hasSuffix("not valid JSON.")
                ? (cause.map { "\($0) (a number of the wrong kind or out of range)" } ?? "a number of the wrong kind or out of range")
                : c.debugDescription
            if p.isEmpty { return "malformed JSON body: \(detail)" }
            return "invalid value for '\(p)': \(detail)"
        @unknown default:
            return "invalid request body"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is Int64.Type, is UInt64.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is Bool.Type: return "a boolean"
        default: return "\(type)"
        }
    }
}
