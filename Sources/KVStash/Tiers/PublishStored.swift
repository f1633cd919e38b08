import KVStashChunks
import KVStashCodec
import KVStashStore

extension ChunkTiers {
    /// Hands the chunks of `keys` that the local store holds and the shared tier lacks to the
    /// publisher, waiting for room: chunks stored before the shared tier was configured (or
    /// by a frontend without one) reach it when their document is precomputed again. The
    /// shared tier is probed once for all of `keys`, so a document already published costs
    /// that probe only. A local value that fails validation is not published (logged).
    /// Returns the chunks queued.
    @discardableResult
    func publishStored(_ keys: [ChunkKey]) -> Int {
        guard let local, let shared, let publisher, !keys.isEmpty else { return 0 }
        let absent = zip(keys, shared.probe(keys)).filter { !$0.1 }.map(\.0)
        var queued = 0
        for key in absent {
            do {
                guard let meta = try local.meta(key), let value = try local.get(key, recordAccess: false) else { continue }
                _ = try KVBlockDecoder().validate(value)
                publisher.enqueue(key, value: value, meta: meta, wait: true)
                queued += 1
            } catch {
                logger.warning("a stored chunk could not be read for publishing; it stays local",
                               metadata: ["chunk": "\(key)", "error": "\(error)"])
            }
        }
        return queued
    }
}
