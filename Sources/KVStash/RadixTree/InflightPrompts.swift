import Synchronization

/// Prompts being prefilled now by requests that take turns at the model, each until it is in
/// the tree: a request whose prompt shares more with one of them than the tree holds waits
/// for it (`PrefixCache.assemble`) instead of computing the same tokens again.
public final class InflightPrompts: Sendable {
    /// One registered prompt.
    public struct Ticket: Sendable, Hashable {
        let id: UInt64
    }

    private struct Prompt {
        let namespace: RadixNamespace
        let tokens: [Int]
    }

    private struct State {
        var next: UInt64 = 0
        var prompts: [UInt64: Prompt] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// Registers `tokens` of `namespace` as being prefilled.
    public func register(_ tokens: [Int], namespace: RadixNamespace) -> Ticket {
        state.withLock { s in
            s.next += 1
            s.prompts[s.next] = Prompt(namespace: namespace, tokens: tokens)
            return Ticket(id: s.next)
        }
    }

    /// Removes a registered prompt (again: nothing).
    public func remove(_ ticket: Ticket) {
        _ = state.withLock { $0.prompts.removeValue(forKey: ticket.id) }
    }

    /// The longest prefix of `tokens` that a prompt being prefilled in `namespace` shares.
    public func sharedPrefix(_ tokens: [Int], namespace: RadixNamespace) -> Int {
        state.withLock { s in
            s.prompts.values.lazy.filter { $0.namespace == namespace }
                .map { zip($0.tokens, tokens).prefix { $0 == $1 }.count }.max() ?? 0
        }
    }

    /// Prompts registered now.
    public var count: Int { state.withLock { $0.prompts.count } }
}
