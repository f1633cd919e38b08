import KVStashCore

/// Where things are in a block's decompressed payload.
///
/// The payload is one pair of sections per carried layer, K then V of the first carried
/// layer, then the next, ...
/// A section holds `paramCount` fp16 scales, then `paramCount` fp16 zero points, then
/// `codeBytes` of codes (f32/f16 sections hold only the values, row-major `[token][channel]`),
/// then zero bytes up to a multiple of 4 so every section starts 4-byte aligned.
struct KVBlockLayout: Sendable {
    let codec: KVCodec
    let tokens: Int
    let kvDim: Int
    /// Layers the payload holds (every layer of the shape, or the header's carried ones).
    let layers: Int
    let groupSize: Int
    let keyGrouping: KVKeyGrouping

    /// Sizes of one section.
    struct Section: Sendable {
        /// fp16 scales (and as many zero points) in the section.
        var paramCount: Int
        /// Bytes of codes or raw values after the parameters.
        var codeBytes: Int
        var byteCount: Int { (4 * paramCount + codeBytes + 3) & ~3 }
    }

    init(header h: KVBlockHeader) {
        self.init(codec: h.codec, tokens: h.tokenCount,
                  shape: KVShape(layers: h.layerList.count, kvHeads: h.kvHeads, headDim: h.headDim),
                  groupSize: h.groupSize, keyGrouping: h.keyGrouping)
    }

    init(codec: KVCodec, tokens: Int, shape: KVShape, groupSize: Int, keyGrouping: KVKeyGrouping) {
        self.codec = codec
        self.tokens = tokens
        self.kvDim = shape.kvDim
        self.layers = shape.layers
        self.groupSize = groupSize
        self.keyGrouping = keyGrouping
    }

    /// Bytes of one row of codes.
    var rowBytes: Int {
        switch codec {
        case .f32: 4 * kvDim
        case .f16: 2 * kvDim
        case .int8: kvDim
        case .int4: (kvDim + 1) / 2
        }
    }

    /// Whether `kind` is quantized per channel (groups along tokens).
    func perChannel(_ kind: KVKind) -> Bool { kind == .key && keyGrouping == .perChannel }

    /// Token groups of a per-channel section.
    var tokenGroups: Int { (tokens + groupSize - 1) / groupSize }
    /// Channel groups of each row of a per-token section.
    var channelGroups: Int { (kvDim + groupSize - 1) / groupSize }

    func section(_ kind: KVKind) -> Section {
        guard codec.isQuantized else { return Section(paramCount: 0, codeBytes: tokens * rowBytes) }
        let params = perChannel(kind) ? tokenGroups * kvDim : tokens * channelGroups
        return Section(paramCount: params, codeBytes: tokens * rowBytes)
    }

    /// Total decompressed payload bytes, or nil when the dimensions are absurd
    /// (beyond 1 TiB, which no header from a real model reaches).
    var contentSize: Int? {
        let limit = 1 << 40
        guard kvDim <= limit / 4 / tokens else { return nil }  // rows fit before the layer product
        let perLayer = section(.key).byteCount + section(.value).byteCount
        let (total, overflow) = perLayer.multipliedReportingOverflow(by: layers)
        return overflow || total > limit ? nil : total
    }

    /// The largest section, which sizes the decoder's scratch buffer.
    var largestSection: Int { max(section(.key).byteCount, section(.value).byteCount) }
}
