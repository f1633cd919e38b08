import CLZ4
import CZstd

/// The lossless frame around a block payload: LZ4 (or zstd), always with a content
/// checksum and the exact content size recorded in the frame header.
enum Frame {
    /// Compresses `content` into one frame. For LZ4, each of `pieces` (byte counts that
    /// sum to the content's: the block's sections; by default the whole content) starts a
    /// new LZ4 block, so that a reader walking the frame in place finds each section whole
    /// inside one stored block.
    static func compress(_ content: UnsafeRawBufferPointer, pieces: [Int]? = nil,
                         _ compression: KVFrameCompression) throws(KVBlockError) -> [UInt8] {
        let pieces = pieces ?? [content.count]
        precondition(pieces.reduce(0, +) == content.count, "pieces must cover the content exactly")
        switch compression {
        case .lz4: return try lz4(content, pieces: pieces)
        case .zstd(let level): return try zstd(content, level: level)
        }
    }

    private static func lz4(_ content: UnsafeRawBufferPointer, pieces: [Int]) throws(KVBlockError) -> [UInt8] {
        var prefs = LZ4F_preferences_t()
        prefs.frameInfo.blockSizeID = LZ4F_max256KB
        prefs.frameInfo.blockMode = LZ4F_blockIndependent
        prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled
        prefs.frameInfo.contentSize = UInt64(content.count)
        prefs.autoFlush = 1  // every update ends its last block: pieces start blocks
        var ctx: OpaquePointer?
        guard LZ4F_isError(LZ4F_createCompressionContext(&ctx, UInt32(LZ4F_VERSION))) == 0, let ctx else {
            throw .frameError("LZ4: no compression context")
        }
        defer { LZ4F_freeCompressionContext(ctx) }
        let bound = Int(LZ4F_HEADER_SIZE_MAX) + pieces.reduce(0) { $0 + LZ4F_compressBound($1, &prefs) }
            + LZ4F_compressBound(0, &prefs)
        var failure: String?
        let out = [UInt8](unsafeUninitializedCapacity: bound) { buf, count in
            count = 0
            func step(_ r: Int) -> Bool {
                if LZ4F_isError(r) != 0 { failure = String(cString: LZ4F_getErrorName(r)); return false }
                count += r
                return true
            }
            guard step(LZ4F_compressBegin(ctx, buf.baseAddress, bound, &prefs)) else { return }
            var offset = 0
            for piece in pieces {
                guard step(LZ4F_compressUpdate(ctx, buf.baseAddress! + count, bound - count,
                                               content.baseAddress.map { $0 + offset }, piece, nil)) else { return }
                offset += piece
            }
            guard step(LZ4F_compressEnd(ctx, buf.baseAddress! + count, bound - count, nil)) else { return }
        }
        if let failure { throw .frameError("LZ4 compression: \(failure)") }
        return out
    }

    private static func zstd(_ content: UnsafeRawBufferPointer, level: Int) throws(KVBlockError) -> [UInt8] {
        guard let cctx = ZSTD_createCCtx() else { throw .frameError("zstd: no context") }
        defer { ZSTD_freeCCtx(cctx) }
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, Int32(clamping: level))
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1)
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1)
        let bound = ZSTD_compressBound(content.count)
        var failure: String?
        let out = [UInt8](unsafeUninitializedCapacity: bound) { buf, count in
            let r = ZSTD_compress2(cctx, buf.baseAddress, bound, content.baseAddress, content.count)
            if ZSTD_isError(r) != 0 { failure = String(cString: ZSTD_getErrorName(r)); count = 0 } else { count = r }
        }
        if let failure { throw .frameError("zstd compression: \(failure)") }
        return out
    }
}

/// Streams the content of one frame out in pieces of the caller's choosing, so the
/// decoder never holds the whole decompressed payload. The frame header is checked
/// on creation: it must announce exactly `contentSize` bytes and carry a content
/// checksum. `finish()` checks that the frame ends where the content ends (its content
/// checksum verified, unless the reader was opened with `verifyContent: false`) and
/// that no bytes follow it.
final class FrameReader {
    private let src: UnsafeRawBufferPointer
    private var offset = 0
    private var done = false
    private let lz4: OpaquePointer?
    private let zstd: OpaquePointer?
    private var lz4Options = LZ4F_decompressOptions_t()
    /// The in-place block walker, for LZ4 frames read without their content checksum.
    private var blocks: LZ4Blocks?

    init(_ src: UnsafeRawBufferPointer, zstd isZstd: Bool, contentSize: Int,
         verifyContent: Bool = true) throws(KVBlockError) {
        self.src = src
        lz4Options.skipChecksums = verifyContent ? 0 : 1
        if isZstd {
            lz4 = nil
            zstd = ZSTD_createDCtx()
            try checkZstdHeader(contentSize)
        } else {
            var ctx: OpaquePointer?
            let r = LZ4F_createDecompressionContext(&ctx, UInt32(LZ4F_VERSION))
            lz4 = LZ4F_isError(r) == 0 ? ctx : nil
            zstd = nil
            let info = try checkLZ4Header(contentSize)
            if !verifyContent && info.blockChecksumFlag == LZ4F_noBlockChecksum && info.blockMode == LZ4F_blockIndependent
                && info.dictID == 0 && (4...7).contains(Int(info.blockSizeID.rawValue)) {
                blocks = LZ4Blocks(src, headerSize: offset, blockSizeID: Int(info.blockSizeID.rawValue), contentSize: contentSize)
            }
        }
    }

    deinit {
        if let lz4 { LZ4F_freeDecompressionContext(lz4) }
        if let zstd { ZSTD_freeDCtx(zstd) }
        blocks?.deallocate()
    }

    private func checkLZ4Header(_ contentSize: Int) throws(KVBlockError) -> LZ4F_frameInfo_t {
        guard let lz4 else { throw .frameError("LZ4: no context") }
        var info = LZ4F_frameInfo_t()
        var consumed = src.count
        let r = LZ4F_getFrameInfo(lz4, &info, src.baseAddress, &consumed)
        if LZ4F_isError(r) != 0 { throw .frameError("LZ4 header: \(String(cString: LZ4F_getErrorName(r)))") }
        guard info.frameType == LZ4F_frame, info.contentChecksumFlag == LZ4F_contentChecksumEnabled,
              info.contentSize == UInt64(contentSize) else {
            throw .frameError("LZ4 frame header does not match the block header")
        }
        offset = consumed
        return info
    }

    private func checkZstdHeader(_ contentSize: Int) throws(KVBlockError) {
        guard zstd != nil else { throw .frameError("zstd: no context") }
        // Magic FD 2F B5 28, then the frame header descriptor; bit 2 is Content_Checksum_flag.
        guard src.count >= 5, src.load(as: UInt32.self) == 0xFD2F_B528 else { throw .frameError("zstd magic") }
        guard src[4] & 0x04 != 0 else { throw .frameError("zstd frame has no content checksum") }
        let size = ZSTD_getFrameContentSize(src.baseAddress, src.count)
        guard size == UInt64(contentSize) else { throw .frameError("zstd frame size does not match the block header") }
    }

    /// The next `count` content bytes: where the frame stores them raw in one block, a
    /// view of them in place (no copy); else read into `scratch` (at least `count`
    /// bytes). Valid until the next call.
    func view(_ count: Int, scratch: UnsafeMutableRawBufferPointer) throws(KVBlockError) -> UnsafeRawBufferPointer {
        if blocks != nil { return try blocks!.view(count, scratch: scratch) }
        let dst = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<count])
        try read(into: dst)
        return UnsafeRawBufferPointer(dst)
    }

    /// Fills `dst` entirely with the next content bytes.
    func read(into dst: UnsafeMutableRawBufferPointer) throws(KVBlockError) {
        if blocks != nil { return try blocks!.read(into: dst) }
        var filled = 0
        while filled < dst.count {
            guard !done else { throw .frameError("frame content ends early") }
            let (wrote, used, finished) = try step(dst.baseAddress! + filled, dst.count - filled)
            filled += wrote
            offset += used
            done = finished
            if wrote == 0 && used == 0 && !finished { throw .frameError("truncated frame") }
        }
    }

    /// Consumes the end of the frame (verifying its content checksum) and checks that
    /// no content and no bytes remain.
    func finish() throws(KVBlockError) {
        if blocks != nil { return try blocks!.finish() }
        var spare: UInt8 = 0
        while !done {
            let (wrote, used, finished) = try step(&spare, 1)
            guard wrote == 0 else { throw .frameError("frame content longer than the block header says") }
            offset += used
            done = finished
            if used == 0 && !finished { throw .frameError("truncated frame") }
        }
        guard offset == src.count else { throw .frameError("bytes after the frame") }
    }

    /// One call into the decompressor: bytes written, bytes consumed, frame complete.
    private func step(_ dst: UnsafeMutableRawPointer, _ capacity: Int) throws(KVBlockError) -> (Int, Int, Bool) {
        let input = src.baseAddress.map { $0 + offset }
        let available = src.count - offset
        if let lz4 {
            var dstSize = capacity, srcSize = available
            let r = LZ4F_decompress(lz4, dst, &dstSize, input, &srcSize, &lz4Options)
            if LZ4F_isError(r) != 0 { throw .frameError("LZ4: \(String(cString: LZ4F_getErrorName(r)))") }
            return (dstSize, srcSize, r == 0)
        }
        var out = ZSTD_outBuffer(dst: dst, size: capacity, pos: 0)
        var inp = ZSTD_inBuffer(src: input, size: available, pos: 0)
        let r = ZSTD_decompressStream(zstd, &out, &inp)
        if ZSTD_isError(r) != 0 { throw .frameError("zstd: \(String(cString: ZSTD_getErrorName(r)))") }
        return (out.pos, inp.pos, r == 0)
    }
}
