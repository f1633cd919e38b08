/// The f16 storage of one RAM-tier page: filled once when it is made, then only read, so
/// it is shared across threads as it is. Sizes `PageSlabs` serves take a slot of it (no
/// page faults on a resident slab); the rest take heap memory.
public final class PageBuffer: Sendable {
    private let address: UInt
    /// Halves held.
    public let count: Int
    private let slab: Bool

    /// `count` halves, written by `fill` (which must write every one).
    public init(count: Int, fill: (UnsafeMutableBufferPointer<UInt16>) -> Void) {
        let bytes = count * MemoryLayout<UInt16>.stride
        let slot = PageSlabs.slotBytes(for: bytes).flatMap { PageSlabs.shared.take(slotBytes: $0) }
        let memory = slot ?? UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
        fill(UnsafeMutableBufferPointer(start: memory.bindMemory(to: UInt16.self, capacity: count), count: count))
        address = UInt(bitPattern: memory)
        self.count = count
        slab = slot != nil
    }

    /// Bytes of the slabs that page buffers of this process live in (live and free slots).
    public static var slabBytesHeld: Int { PageSlabs.shared.heldBytes }

    deinit {
        let memory = UnsafeMutableRawPointer(bitPattern: address)!
        if slab { PageSlabs.shared.give(memory) } else { memory.deallocate() }
    }

    /// Calls `body` with the halves.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<UInt16>) throws -> R) rethrows -> R {
        let start = UnsafePointer<UInt16>(bitPattern: address)!
        return try body(UnsafeBufferPointer(start: start, count: count))
    }
}
