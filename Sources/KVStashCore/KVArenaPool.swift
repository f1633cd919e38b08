import CKernels
import Synchronization

/// Memory of freed and prewarmed KV arenas, kept mapped for the next caches (like a serving
/// engine's preallocated KV blocks), up to `maxBytes` in all.
///
/// A best-fit allocator over whole mappings: `take` hands out the smallest free block that
/// fits (resident ones first), carving a request-sized piece off its front when the rest is
/// worth keeping, and `give` joins a returned piece with the free blocks on either side of
/// it. So one large prewarmed mapping serves many small caches at once and is whole again
/// for a long cached prefix once they are done, and the memory held stays the prewarm plus
/// what the caches in use need beyond it, instead of a fresh mapping per small request
/// while a large resident block sits under one of them.
final class KVArenaPool: Sendable {
    /// A range of a mapping from `kv_zeroed_alloc`, held as addresses so it can cross threads.
    struct Block: Sendable {
        /// Usable bytes `[address, address + bytes)`.
        let address: UInt
        let bytes: Int
        /// The part of the mapping this block unmaps on release, `[lo, hi)`: the usable
        /// bytes plus the alignment slack at the mapping's ends. Empty for a heap block.
        let lo: UInt
        let hi: UInt
        /// Every page already faulted in (`prewarm`, or a piece of such a block): preferred by `take`.
        var resident = false
        var pointer: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: address)! }
        var isMapped: Bool { hi > lo }
        var end: UInt { address + UInt(bytes) }

        /// `first` bytes off the front (a multiple of the page size) and the rest.
        func split(at first: Int) -> (Block, Block) {
            let cut = address + UInt(first)
            return (Block(address: address, bytes: first, lo: lo, hi: cut, resident: resident),
                    Block(address: cut, bytes: bytes - first, lo: cut, hi: hi, resident: resident))
        }

        /// `self` and `next` as one block, when `next` starts where `self` ends.
        func joined(with next: Block) -> Block? {
            guard isMapped, next.isMapped, hi == next.lo, end == next.address else { return nil }
            return Block(address: address, bytes: bytes + next.bytes, lo: lo, hi: next.hi,
                         resident: resident && next.resident)
        }
    }

    /// Pieces are carved in whole huge pages; smaller requests take heap memory.
    static let granule = 2 << 20
    static let shared = KVArenaPool(maxBytes: 768 << 20)
    /// Bytes of free blocks kept at most.
    let maxBytes: Int
    /// Free blocks, oldest first.
    private let free = Mutex<[Block]>([])

    init(maxBytes: Int) { self.maxBytes = maxBytes }

    /// A block of at least `bytes`: from the pool when a free block fits, else a new one.
    func take(bytes: Int) -> Block {
        if bytes >= Self.granule, let pooled = free.withLock({ Self.carve(bytes, from: &$0) }) { return pooled }
        var base: UnsafeMutableRawPointer?
        var mapped = 0
        guard let p = kv_zeroed_alloc(bytes, &base, &mapped) else {
            fatalError("out of memory allocating a KV cache of \(bytes) bytes")
        }
        let lo = UInt(bitPattern: base)
        return Block(address: UInt(bitPattern: p), bytes: bytes, lo: lo, hi: lo + UInt(mapped))
    }

    /// The smallest free block of at least `bytes` (resident first), removed from `blocks`;
    /// a piece of it when what is left would be a whole granule or more.
    private static func carve(_ bytes: Int, from blocks: inout [Block]) -> Block? {
        let fits = blocks.indices.filter { blocks[$0].bytes >= bytes }
        guard let best = fits.min(by: { (a, b) in
            let x = blocks[a], y = blocks[b]
            return x.resident != y.resident ? x.resident : x.bytes < y.bytes
        }) else { return nil }
        let block = blocks[best]
        let piece = (bytes + granule - 1) / granule * granule
        guard block.bytes - piece >= granule else { return blocks.remove(at: best) }
        let (taken, rest) = block.split(at: piece)
        blocks[best] = rest
        return taken
    }

    /// Returns a block: a mapped one joins the free blocks next to it (the oldest
    /// non-resident, then the oldest resident blocks are released past `maxBytes`); heap
    /// blocks are freed.
    func give(_ block: Block) {
        guard block.isMapped, block.bytes <= maxBytes else { return release(block) }
        let evicted = free.withLock { blocks -> [Block] in
            var merged = block
            if let i = blocks.firstIndex(where: { $0.joined(with: merged) != nil }) {
                merged = blocks.remove(at: i).joined(with: merged)!
            }
            if let i = blocks.firstIndex(where: { merged.joined(with: $0) != nil }) {
                merged = merged.joined(with: blocks.remove(at: i))!
            }
            blocks.append(merged)
            var evicted: [Block] = []
            while blocks.reduce(0, { $0 + $1.bytes }) > maxBytes {
                let i = blocks.firstIndex { !$0.resident } ?? 0
                evicted.append(blocks.remove(at: i))
            }
            return evicted
        }
        evicted.forEach(release)
    }

    /// Maps a block of `bytes`, faults every page in and pools it, so the first request of a
    /// process writes its KV into resident memory instead of zeroing fresh pages (hundreds
    /// of MB for a long cached prefix) on its critical path.
    func prewarm(bytes: Int) {
        var block = take(bytes: bytes)
        block.pointer.initializeMemory(as: UInt8.self, repeating: 0, count: block.bytes)
        block.resident = block.isMapped
        give(block)
    }

    /// Bytes currently pooled.
    var pooledBytes: Int { free.withLock { $0.reduce(0) { $0 + $1.bytes } } }

    /// Free blocks currently pooled.
    var pooledBlocks: Int { free.withLock { $0.count } }

    private func release(_ block: Block) {
        kv_zeroed_free(UnsafeMutableRawPointer(bitPattern: block.lo), Int(block.hi - block.lo))
    }
}
