import KVStashEngine

/// How a request picks its next token: the engine's `SamplingParams` (temperature 0, the
/// default, is greedy), drawn by the engine's seeded `Sampler`.
public typealias RequestSampling = SamplingParams
