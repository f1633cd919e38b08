/// SplitMix64: a small, fast, seedable generator with a fixed output sequence on every
/// platform (used for sampling and for the tiny test model's weights).
public struct SplitMix64: RandomNumberGenerator, Sendable, Hashable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform value in [0, 1) with 24 bits of precision.
    public mutating func nextUnitFloat() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// A uniform value in [-a, a).
    public mutating func uniform(_ a: Float) -> Float { (nextUnitFloat() * 2 - 1) * a }
}
