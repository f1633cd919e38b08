import CKernels
import Synchronization

/// One allocation split into equal, 64-byte aligned tensors of `Element` (f16 bit
/// patterns for a `KVCache`, f32 for its captured pre-RoPE keys). Contents are
/// unspecified until written.
///
/// Large arenas are mapped straight from the kernel (2 MiB aligned, transparent huge
/// pages requested) and, when freed, kept in `KVArenaPool` for the next cache, so a new
/// request neither faults nor zeroes hundreds of MB of fresh pages.
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

/// Freed large KV arenas kept for reuse (like a serving engine's preallocated KV blocks),
/// up to `maxBytes` in all; the oldest are unmapped beyond that.
final class KVArenaPool: Sendable {
    /// One allocation from `kv_zeroed_alloc`, held as addresses so it can cross threads.
    struct Block: Sendable {
        let address: UInt
        let base: UInt
        let mapped: Int
        let bytes: Int
        /// Every page already faulted in (`KVArenaPool.prewarm`): preferred by `take`.
        var resident = false
        var pointer: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: address)! }
    }

    static let shared = KVArenaPool(maxBytes: 768 << 20)
    /// Bytes of free arenas kept at most.
    let maxBytes: Int
    private let free = Mutex<[Block]>([])

    init(maxBytes: Int) { self.maxBytes = maxBytes }

    /// A block of at least `bytes`: a resident pooled one of any larger size, else a pooled
    /// one no more than twice as large, else a new one.
    func take(bytes: Int) -> Block {
        let reused = free.withLock { blocks -> Block? in
            let fits = blocks.indices.filter {
                blocks[$0].bytes >= bytes && (blocks[$0].resident || blocks[$0].bytes <= 2 * bytes)
            }
            guard let best = fits.min(by: { (a, b) in
                let x = blocks[a], y = blocks[b]
                return x.resident != y.resident ? x.resident : x.bytes < y.bytes
            }) else { return nil }
            return blocks.remove(at: best)
        }
        if let reused { return reused }
        var base: UnsafeMutableRawPointer?
        var mapped = 0
        guard let p = kv_zeroed_alloc(bytes, &base, &mapped) else {
            fatalError("out of memory allocating a KV cache of \(bytes) bytes")
        }
        return Block(address: UInt(bitPattern: p), base: UInt(bitPattern: base), mapped: mapped, bytes: bytes)
    }

    /// Returns a block: mapped ones are pooled (oldest released past `maxBytes`), small ones freed.
    func give(_ block: Block) {
        guard block.mapped > 0, block.bytes <= maxBytes else { return release(block) }
        let evicted = free.withLock { blocks -> [Block] in
            blocks.append(block)
            var evicted: [Block] = []
            while blocks.reduce(0, { $0 + $1.bytes }) > maxBytes { evicted.append(blocks.removeFirst()) }
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
        block.resident = block.mapped > 0
        give(block)
    }

    /// Bytes currently pooled.
    var pooledBytes: Int { free.withLock { $0.reduce(0) { $0 + $1.bytes } } }

    private func release(_ block: Block) {
        kv_zeroed_free(UnsafeMutableRawPointer(bitPattern: block.base), block.mapped)
    }
}
