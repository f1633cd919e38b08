import CLZ4

/// Walks the blocks of an LZ4 frame in place, so that content stored raw (the frame's
/// incompressible blocks: nearly all of a quantized KV block) is handed out where it lies
/// instead of being copied by the frame decoder first. Compressed blocks are decompressed
/// whole into one buffer and handed out from there.
///
/// It does not compute the frame's content checksum: `FrameReader` uses it only when the
/// caller opted out of that (the 64-bit payload checksum checked before covers every
/// stored byte). Everything else is checked: each block's size against the frame's block
/// size and the bytes left, the content against the size the header announced, the end
/// mark, and that nothing follows the frame.
///
/// The layout (lz4 frame format 1.6): after the frame header, blocks of a 4-byte
/// little-endian size (bit 31 set: stored raw) and data, an end mark of 0, then the
/// 4-byte content checksum. Frames with block checksums, linked blocks or a dictionary
/// are not walked (`FrameReader` leaves those to liblz4).
struct LZ4Blocks {
    private let src: UnsafeRawBufferPointer
    private var offset: Int
    private let maxBlock: Int
    private let contentSize: Int
    /// Content handed out so far, including the current block's unread part.
    private var loaded = 0
    private var block = UnsafeRawBufferPointer(start: nil, count: 0)
    private var position = 0
    /// Where compressed blocks are decompressed (allocated on first use).
    private var buffer: UnsafeMutableRawBufferPointer?

    /// - Parameters:
    ///   - src: the whole frame; `headerSize` bytes of frame header come first.
    ///   - blockSizeID: the header's block maximum size code (4...7: 64 KiB...4 MiB).
    init(_ src: UnsafeRawBufferPointer, headerSize: Int, blockSizeID: Int, contentSize: Int) {
        self.src = src
        offset = headerSize
        maxBlock = 1 << (2 * blockSizeID + 8)
        self.contentSize = contentSize
    }

    /// Frees the decompression buffer.
    func deallocate() { buffer?.deallocate() }

    /// The next `count` content bytes: a view into the frame when they lie inside one
    /// block, else copied into `scratch` (at least `count` bytes). Valid while the frame is.
    mutating func view(_ count: Int, scratch: UnsafeMutableRawBufferPointer) throws(KVBlockError) -> UnsafeRawBufferPointer {
        if count > 0 && position == block.count { try nextBlock() }
        if block.count - position >= count {
            defer { position += count }
            return UnsafeRawBufferPointer(rebasing: block[position..<(position + count)])
        }
        let dst = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<count])
        try read(into: dst)
        return UnsafeRawBufferPointer(dst)
    }

    /// Fills `dst` with the next content bytes.
    mutating func read(into dst: UnsafeMutableRawBufferPointer) throws(KVBlockError) {
        var filled = 0
        while filled < dst.count {
            if position == block.count { try nextBlock() }
            let n = min(dst.count - filled, block.count - position)
            (dst.baseAddress! + filled).copyMemory(from: block.baseAddress! + position, byteCount: n)
            filled += n
            position += n
        }
    }

    /// Checks that the content was all handed out and the frame ends there: end mark,
    /// content checksum, no bytes after.
    mutating func finish() throws(KVBlockError) {
        guard loaded == contentSize, position == block.count else {
            throw .frameError("frame content longer than the block header says")
        }
        guard try nextWord() == 0 else { throw .frameError("frame content longer than the block header says") }
        guard src.count - offset == 4 else {
            throw src.count - offset < 4 ? .frameError("truncated frame") : .frameError("bytes after the frame")
        }
    }

    private mutating func nextWord() throws(KVBlockError) -> UInt32 {
        guard src.count - offset >= 4 else { throw .frameError("truncated frame") }
        defer { offset += 4 }
        return UInt32(littleEndian: src.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// Moves to the next block (raw: in place; compressed: decompressed into `buffer`).
    private mutating func nextBlock() throws(KVBlockError) {
        let word = try nextWord()
        guard word != 0 else { throw .frameError("frame content ends early") }
        let size = Int(word & 0x7FFF_FFFF)
        guard size <= maxBlock, size <= src.count - offset else { throw .frameError("LZ4 block of \(size) bytes") }
        let data = UnsafeRawBufferPointer(rebasing: src[offset..<(offset + size)])
        offset += size
        if word & 0x8000_0000 != 0 {
            block = data
        } else {
            let out = buffer ?? .allocate(byteCount: maxBlock, alignment: 64)
            buffer = out
            let n = LZ4_decompress_safe(data.baseAddress?.assumingMemoryBound(to: CChar.self),
                                        out.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(size), Int32(maxBlock))
            guard n >= 0 else { throw .frameError("LZ4: corrupt block") }
            block = UnsafeRawBufferPointer(rebasing: out[0..<Int(n)])
        }
        position = 0
        loaded += block.count
        guard loaded <= contentSize else { throw .frameError("frame content longer than the block header says") }
    }
}
