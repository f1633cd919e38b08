/// Bits of the input codes that products of more than one row (a prompt's prefill, a cache
/// hit's question) multiply against the packed weight codes: 8 on CPUs with AVX-512 VNNI
/// only, 16 there and on AVX2.
///
/// `.sixteen` (the default) keeps those products within about 1e-6 mean KL of the f32 ones,
/// so greedy answers equal the float64 reference's. `.eight` is llama.cpp's input precision
/// (`vpdpbusd`: twice the multiply-adds per instruction; about 1.5x faster Gemma 3 prefill,
/// mean KL about 2e-3, 97 % top-1 agreement; decision 097). Elsewhere both are the f32 path.
public enum PrefillInputs: String, Sendable, CaseIterable {
    case sixteen = "16"
    case eight = "8"

    /// The packing this asks for; `KVSTASH_PREFILL_PRODUCT` (`f32`, `int8`) overrides the
    /// default for measurements on one build.
    var productMode: PackedProduct.Mode {
        switch (self, PackedProduct.mode) {
        case (_, .f32): return .f32
        case (.eight, _), (_, .int8): return .int8
        case (.sixteen, _): return .auto
        }
    }
}
