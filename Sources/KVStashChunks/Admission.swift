import Synchronization

/// Why a chunk is offered to the store.
public enum AdmissionOrigin: Sendable {
    /// Corpus precompute: the user asked for it.
    case precompute
    /// A chunk computed while answering a query.
    case query
    /// A query prompt's partial last chunk, kept among the few most recent after its parent
    /// chunk (`PrefixCacheOptions.promptTails`): that limit is its guard against flooding.
    case promptTail
}

/// Decides which chunks are worth writing to the cold tier.
public protocol AdmissionPolicy: Sendable {
    /// `seenCount` counts the sightings of `key`, this one included.
    func shouldAdmit(key: ChunkKey, meta: ChunkMeta, origin: AdmissionOrigin, seenCount: Int) -> Bool
}

/// Default policy: precompute always; query chunks from their second sighting on, so
/// one-off prompts do not flood the store; prompt tails always (their count per parent
/// chunk is bounded where they are recorded).
public struct SecondSightingPolicy: AdmissionPolicy {
    public var minimumSightings: Int
    public init(minimumSightings: Int = 2) { self.minimumSightings = minimumSightings }
    public func shouldAdmit(key: ChunkKey, meta: ChunkMeta, origin: AdmissionOrigin, seenCount: Int) -> Bool {
        origin != .query || seenCount >= minimumSightings
    }
}

/// Admits everything.
public struct AdmitAll: AdmissionPolicy {
    public init() {}
    public func shouldAdmit(key: ChunkKey, meta: ChunkMeta, origin: AdmissionOrigin, seenCount: Int) -> Bool { true }
}

/// A bounded count of recent sightings of chunk keys. When full, the older half of the
/// keys (by first sighting) is forgotten, so memory stays bounded and counts are approximate.
package final class SightingCounter: Sendable {
    private struct State {
        var counts: [ChunkKey: Int] = [:]
        var order: [ChunkKey] = []
    }
    private let capacity: Int
    private let state = Mutex(State())

    package init(capacity: Int = 1 << 16) { self.capacity = max(capacity, 2) }

    /// Records one sighting of `key` and returns its count.
    package func sight(_ key: ChunkKey) -> Int {
        state.withLock { s in
            if let n = s.counts[key] {
                s.counts[key] = n + 1
                return n + 1
            }
            if s.order.count >= capacity {
                let drop = s.order.count / 2
                for k in s.order[..<drop] { s.counts[k] = nil }
                s.order.removeFirst(drop)
            }
            s.counts[key] = 1
            s.order.append(key)
            return 1
        }
    }
}
