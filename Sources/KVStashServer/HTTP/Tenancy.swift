import Foundation
import HTTPTypes
import Hummingbird
import KVStashDigest

extension KVStashServer {
    /// Longest `cache_salt`: the salt of every cached namespace is held in RAM.
    static let maxSaltBytes = 256

    /// A body's `cache_salt`, refused when longer than `maxSaltBytes`.
    func checkedCacheSalt(_ cacheSalt: String?) throws -> String? {
        if let cacheSalt, cacheSalt.utf8.count > Self.maxSaltBytes {
            throw APIError.badRequest("cache_salt is longer than \(Self.maxSaltBytes) bytes", param: "cache_salt")
        }
        return cacheSalt
    }

    /// The namespace (tenant salt) of a request.
    ///
    /// Shared mode (the default): the client's `cache_salt`, or the one shared namespace
    /// when it sends none, so any client may reuse (and, through `cached_tokens` and
    /// timing, detect) prefixes that other clients computed.
    ///
    /// With `tenantFromAPIKey`, every `Authorization: Bearer` key is a namespace of its own
    /// (the salt holds a SHA-256 of the key, never the key), `cache_salt` subdivides it,
    /// and a request without a key gets 401.
    func tenantSalt(_ request: Request, cacheSalt: String?) throws -> String {
        let cacheSalt = try checkedCacheSalt(cacheSalt)
        guard configuration.tenantFromAPIKey else { return cacheSalt ?? "" }
        let prefix = "Bearer "
        guard let header = request.headers[.authorization], header.hasPrefix(prefix),
              case let key = header.dropFirst(prefix.count), !key.isEmpty else {
            throw APIError.unauthorized(
                "this server keeps one cache namespace per API key: send 'Authorization: Bearer <key>'")
        }
        let digest = SHA256.hash(data: Data(key.utf8)).map { String(format: "%02x", $0) }.joined()
        return "key:" + digest + (cacheSalt.map { "/" + $0 } ?? "")
    }
}
