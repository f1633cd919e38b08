import Synchronization

/// Admission by KV size: the tokens (prompt + `max_tokens`) of the generations running at
/// once. Each holds a KV cache of that many positions, so this bounds their memory. A
/// request that does not fit is refused (429) rather than queued; an idle server admits
/// any request the context allows.
final class TokenBudget: Sendable {
    let limit: Int
    private let active = Mutex(0)

    init(limit: Int) { self.limit = max(1, limit) }

    /// Reserves `tokens`; false when they do not fit beside the running generations.
    func reserve(_ tokens: Int) -> Bool {
        active.withLock { active in
            guard active == 0 || tokens <= limit - active else { return false }
            active += tokens
            return true
        }
    }

    func release(_ tokens: Int) { active.withLock { $0 -= tokens } }

    /// Tokens reserved now.
    var reserved: Int { active.withLock { $0 } }
}
