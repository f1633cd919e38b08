import XCTest
@testable import KVStashEngine

final class SamplerTests: XCTestCase {
    let logits: [Float] = [0.1, 2.0, -1.0, 1.5, 0.0, 1.9]

    func testGreedyIsArgmax() {
        var s = Sampler(.greedy)
        XCTAssertEqual(s.sample(logits), 1)
        XCTAssertEqual(Sampler.argmax([3, 5, 5, 1]), 1)
    }

    func testSameSeedSameSequenceDifferentSeedDiffers() {
        let p = SamplingParams(temperature: 1.5, seed: 1234)
        var a = Sampler(p), b = Sampler(p)
        var c = Sampler(SamplingParams(temperature: 1.5, seed: 99))
        let sa = (0..<64).map { _ in a.sample(logits) }
        let sb = (0..<64).map { _ in b.sample(logits) }
        let sc = (0..<64).map { _ in c.sample(logits) }
        XCTAssertEqual(sa, sb)
        XCTAssertNotEqual(sa, sc)
        XCTAssertGreaterThan(Set(sa).count, 2, "temperature 1.5 should explore several tokens")
    }

    func testTopKRestrictsToKBest() {
        var s = Sampler(SamplingParams(temperature: 5, topK: 2, seed: 7))
        let drawn = Set((0..<200).map { _ in s.sample(logits) })
        XCTAssertEqual(drawn, [1, 5])
    }

    func testTopPKeepsSmallestNucleus() {
        // Probabilities at temperature 1: token 1 and 5 hold most of the mass.
        let p = SamplingParams(temperature: 1, topP: 0.5, seed: 3)
        let kept = Sampler.candidates(logits, params: p).map(\.id)
        XCTAssertEqual(kept, [1, 5])
        var s = Sampler(p)
        XCTAssertTrue(Set((0..<200).map { _ in s.sample(logits) }).isSubset(of: [1, 5]))
    }

    func testFrequenciesFollowSoftmax() {
        var s = Sampler(SamplingParams(temperature: 1, seed: 5))
        let two: [Float] = [0, Float(log(3.0))]  // p = 1/4, 3/4
        let ones = (0..<8000).filter { _ in s.sample(two) == 1 }.count
        XCTAssertEqual(Double(ones) / 8000, 0.75, accuracy: 0.03)
    }
}
