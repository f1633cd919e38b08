import COpenSSL
import Foundation

/// SHA-256 (FIPS 180-4), from the system's OpenSSL libcrypto: chunk keys, the model
/// fingerprint, document ids and the tenant hash of an API key.
public struct SHA256 {
    /// Bytes of a digest.
    public static let byteCount = Int(SHA256_DIGEST_LENGTH)
    private var context = SHA256_CTX()

    public init() {
        SHA256_Init(&context)
    }

    /// Appends `data` to the message.
    public mutating func update(data: some ContiguousBytes) {
        data.withUnsafeBytes { raw in _ = SHA256_Update(&context, raw.baseAddress, raw.count) }
    }

    /// The digest of the message so far (the hasher can go on taking data).
    public func finalize() -> [UInt8] {
        var state = context
        var digest = [UInt8](repeating: 0, count: Self.byteCount)
        SHA256_Final(&digest, &state)
        return digest
    }

    /// The digest of `data`.
    public static func hash(data: some ContiguousBytes) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: data)
        return hasher.finalize()
    }
}
