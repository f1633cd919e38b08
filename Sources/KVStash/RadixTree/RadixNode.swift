/// Which caches may be shared: a model fingerprint plus a tenant salt. Different
/// namespaces never share a node.
public struct RadixNamespace: Sendable, Hashable {
    /// Fingerprint of the model that produced the KV.
    public var modelFingerprint: [UInt8]
    /// Tenant salt (empty by default).
    public var tenantSalt: [UInt8]

    public init(modelFingerprint: [UInt8], tenantSalt: [UInt8] = []) {
        self.modelFingerprint = modelFingerprint
        self.tenantSalt = tenantSalt
    }
}

/// One node of the radix tree: a run of whole pages following its parent's tokens.
///
/// Nodes are only touched while the tree's mutex is held, so they need no
/// synchronization of their own and are not `Sendable`.
final class RadixNode {
    /// Stable identity, used by leases to find the node again.
    let id: UInt64
    /// Tokens of this node, a multiple of `KVPage.size` long (empty only for roots).
    var tokens: [Int]
    /// One page per `KVPage.size` tokens.
    var pages: [KVPage]
    /// Partial pages that follow this node's tokens, keyed by their tokens (fewer than
    /// `KVPage.size`): the last page of sequences inserted that ended past this node.
    var partials: [[Int]: KVPage] = [:]
    /// Partial pages kept per node at most.
    static let maxPartials = 4
    /// Children keyed by their first page of tokens.
    var children: [[Int]: RadixNode] = [:]
    /// Parent; nil for a namespace root.
    weak var parent: RadixNode?
    /// Number of requests holding this node (and therefore its whole path).
    var lockCount = 0
    /// Logical clock value of the last match or insert that went through the node.
    var lastAccess: UInt64

    init(id: UInt64, tokens: [Int], pages: [KVPage], parent: RadixNode?, time: UInt64) {
        self.id = id
        self.tokens = tokens
        self.pages = pages
        self.parent = parent
        self.lastAccess = time
    }

    var isRoot: Bool { parent == nil }
    var isLeaf: Bool { children.isEmpty }
    /// Bytes of KV the node holds, partial pages included.
    var byteCount: Int { (pages + partials.values).reduce(0) { $0 + $1.byteCount } }
    /// Tokens whose KV the node holds: its own and those of its partial pages.
    var heldTokens: Int { partials.keys.reduce(tokens.count) { $0 + $1.count } }

    /// Key of the child that starts with the page at `tokens[from...]`.
    static func key<C: Collection<Int>>(_ tokens: C) -> [Int] { Array(tokens.prefix(KVPage.size)) }

    /// Number of leading pages of this node equal to `query[from...]`, at most `maxPages`.
    func matchingPages(_ query: [Int], from: Int, maxPages: Int) -> Int {
        var p = 0
        let limit = min(pages.count, maxPages)
        while p < limit {
            let a = tokens[(p * KVPage.size)..<((p + 1) * KVPage.size)]
            let b = query[(from + p * KVPage.size)..<(from + (p + 1) * KVPage.size)]
            guard a.elementsEqual(b) else { break }
            p += 1
        }
        return p
    }
}
