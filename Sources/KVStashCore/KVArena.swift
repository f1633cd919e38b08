import CKernels

/// One allocation split into equal, 64-byte aligned tensors of `Element` (f16 bit
/// patterns for a `KVCache`, f32 for its captured pre-RoPE keys). Contents are
/// unspecified until written.
///
/// Large arenas come from `KVArenaPool`: carved from memory a freed or prewarmed cache left
/// mapped where some is free, else mapped straight from the kernel (2 MiB aligned,
/// transparent huge pages requested), so a new request neither faults nor zeroes hundreds
/// of MB of fresh pages.
final class KVArena<Element: BitwiseCopyable> {
    private let block: KVArenaPool.Block
    private let start: UnsafeMutablePointer<Element>
    private let stride: Int
    private let tensors: Int

    init(tensors: Int, elementsEach: Int) {
        self.tensors = tensors
        stride = Self.stride(elementsEach)
        block = KVArenaPool.shared.take(bytes: Self.bytes(tensors: tensors, elementsEach: elementsEach))
        start = block.pointer.bindMemory(to: Element.self, capacity: tensors * stride)
    }

    deinit { KVArenaPool.shared.give(block) }

    /// Elements from one tensor's start to the next's: `elementsEach` rounded up to 64 bytes.
    private static func stride(_ elementsEach: Int) -> Int {
        let perLine = 64 / MemoryLayout<Element>.stride
        return (max(elementsEach, 1) + perLine - 1) / perLine * perLine
    }

    /// Bytes of an arena of `tensors` tensors of `elementsEach` elements.
    static func bytes(tensors: Int, elementsEach: Int) -> Int {
        tensors * stride(elementsEach) * MemoryLayout<Element>.stride
    }

    func tensor(_ i: Int) -> UnsafeMutablePointer<Element> { start + i * stride }

    /// Copies the first `elements` of every tensor of `other` (same tensor count).
    func copyRows(from other: KVArena, elements: Int) {
        guard elements > 0 else { return }
        for t in 0..<tensors { tensor(t).update(from: other.tensor(t), count: elements) }
    }
}
