import KVStashCodec
import KVStashCore

/// One codec configuration the benchmarks compare.
struct CodecConfig: Sendable {
    var label: String
    var encoder: KVBlockEncoder

    /// Every configuration measured for size and speed. `kvDim` makes int8 "plain per
    /// token": one group per row for K and V alike.
    static func all(kvDim: Int, frames: [KVFrameCompression] = [.lz4, .zstd(level: 3)]) -> [CodecConfig] {
        var out: [CodecConfig] = []
        for frame in frames {
            let f = frame == .lz4 ? "lz4" : "zstd"
            out.append(.init(label: "f32/\(f)", encoder: .init(codec: .f32, compression: frame)))
            out.append(.init(label: "f16/\(f)", encoder: .init(codec: .f16, compression: frame)))
            for g in [32, 64] {
                out.append(.init(label: "int8-kivi-g\(g)/\(f)", encoder: .init(codec: .int8, groupSize: g, compression: frame)))
            }
            out.append(.init(label: "int8-token/\(f)",
                             encoder: .init(codec: .int8, groupSize: kvDim, keyGrouping: .perToken, compression: frame)))
            for g in [32, 64] {
                out.append(.init(label: "int4-kivi-g\(g)/\(f)", encoder: .init(codec: .int4, groupSize: g, compression: frame)))
            }
        }
        return out
    }

    /// The lossy configurations the quality loop scores (frames do not change quality):
    /// int8 KIVI-grouped vs plain per-token, int4 KIVI at G = 32 and 64. f16 is left out
    /// to keep the run short on a shared CPU.
    static func quality(kvDim: Int) -> [CodecConfig] {
        let keep: Set = ["int8-kivi-g32/lz4", "int8-token/lz4", "int4-kivi-g32/lz4", "int4-kivi-g64/lz4"]
        return all(kvDim: kvDim, frames: [.lz4]).filter { keep.contains($0.label) }
    }
}
