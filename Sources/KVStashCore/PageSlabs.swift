import Synchronization

/// Fixed-size slots for the RAM tier's page buffers, carved from 2 MiB blocks of
/// `KVArenaPool` (its prewarmed, resident memory first, else fresh huge-page mappings).
///
/// A page of a 3.5K-token Gemma 3 prompt is 295 KB; from `malloc` each one was a fresh
/// mapping whose every 4 KB page faulted on the copy: 66 MB of pages took 160-180 ms after a
/// miss's first token, a stall before the second. A slot of a resident block takes none.
///
/// One size per slab; a freed slot goes back on its size's free list and a slab whose
/// slots are all free goes back to the pool. A new slab is taken only when every slot of
/// its size is live, so the slabs held never exceed what the most slots of each size live
/// at once needed. After evictions a slab may stay for one live slot: sizes below
/// `minSlotBytes` (a page of a few layers, a partial last page) or above half a slab take
/// heap memory, so at most `slabBytes / minSlotBytes` (16) slots share a slab and a slab
/// holds at most 16 times what its live slots hold, until new pages fill its free slots.
final class PageSlabs: Sendable {
    static let shared = PageSlabs(pool: .shared)
    static let slabBytes = KVArenaPool.granule
    static let minSlotBytes = 128 << 10

    fileprivate struct Slab {
        let block: KVArenaPool.Block
        let slotBytes: Int
        var live: Int

        /// Its slots' addresses, in order.
        var slots: [UInt] {
            (0..<(PageSlabs.slabBytes / slotBytes)).map { block.address + UInt($0 * slotBytes) }
        }
    }

    /// The start of the (2 MiB aligned) slab holding the slot at `address`.
    fileprivate static func slab(of address: UInt) -> UInt { address & ~UInt(slabBytes - 1) }

    fileprivate struct State {
        /// Free slot addresses by slot size.
        var free: [Int: [UInt]] = [:]
        /// Slabs by their (2 MiB aligned) start.
        var slabs: [UInt: Slab] = [:]
    }

    private let pool: KVArenaPool
    private let state = Mutex(State())

    init(pool: KVArenaPool) { self.pool = pool }

    /// The slot size `bytes` takes (64-byte multiples), or nil when it takes heap memory.
    static func slotBytes(for bytes: Int) -> Int? {
        let size = (bytes + 63) / 64 * 64
        return size >= minSlotBytes && size <= slabBytes / 2 ? size : nil
    }

    /// A slot of `slotBytes` (a size from `slotBytes(for:)`), contents unspecified; nil when
    /// the pool hands out no aligned block (then the caller takes heap memory).
    func take(slotBytes: Int) -> UnsafeMutableRawPointer? {
        if let address = state.withLock({ $0.takeFree(slotBytes) }) { return UnsafeMutableRawPointer(bitPattern: address) }
        let block = pool.take(bytes: Self.slabBytes)
        guard block.isMapped, block.address % UInt(Self.slabBytes) == 0 else {
            pool.give(block)
            return nil
        }
        let address = state.withLock { $0.add(Slab(block: block, slotBytes: slotBytes, live: 0)) }
        return UnsafeMutableRawPointer(bitPattern: address)
    }

    /// Returns a slot `take(slotBytes:)` gave; a slab left with no live slot goes back to the pool.
    func give(_ slot: UnsafeMutableRawPointer) {
        let address = UInt(bitPattern: slot)
        if let emptied = state.withLock({ $0.give(address) }) {
            pool.give(emptied)
        }
    }

    /// Slabs held and their live slots (for tests).
    var usage: (slabs: Int, liveSlots: Int) {
        state.withLock { s in (s.slabs.count, s.slabs.values.reduce(0) { $0 + $1.live }) }
    }

    /// Bytes of the slabs held (for metrics).
    var heldBytes: Int { state.withLock { $0.slabs.count } * Self.slabBytes }
}

extension PageSlabs.State {
    /// A free slot of `size`, counted live; nil when none is free.
    mutating func takeFree(_ size: Int) -> UInt? {
        guard let address = free[size]?.popLast() else { return nil }
        slabs[PageSlabs.slab(of: address)]!.live += 1
        return address
    }

    /// Adds `slab`, its slots free but the first, which is returned live.
    mutating func add(_ slab: PageSlabs.Slab) -> UInt {
        var slab = slab
        var slots = slab.slots
        let first = slots.removeFirst()
        slab.live = 1
        slabs[slab.block.address] = slab
        free[slab.slotBytes, default: []].append(contentsOf: slots.reversed())
        return first
    }

    /// Frees the slot at `address`; returns its slab's block when no slot of it is live any
    /// more (its slots leave the free list).
    mutating func give(_ address: UInt) -> KVArenaPool.Block? {
        let start = PageSlabs.slab(of: address)
        guard var slab = slabs[start] else { preconditionFailure("a page slot of no slab") }
        slab.live -= 1
        guard slab.live == 0 else {
            slabs[start] = slab
            free[slab.slotBytes, default: []].append(address)
            return nil
        }
        slabs[start] = nil
        let end = start + UInt(PageSlabs.slabBytes)
        free[slab.slotBytes]?.removeAll { $0 >= start && $0 < end }
        return slab.block
    }
}
