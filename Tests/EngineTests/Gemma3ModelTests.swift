import XCTest
@testable import KVStashEngine

/// Gemma 3 270M Q4_K_M against the float64 reference (Tests/reference/reference_forward.py,
/// class Gemma3, goldens committed as gemma3_goldens.json).
final class Gemma3ModelTests: XCTestCase {
    /// The configuration read through the gemma3 architecture: llama.cpp's layer pattern
    /// (every sixth layer global), window 512, RoPE 10,000 on sliding layers and the GGUF's
    /// 1e6 on global ones, scale 1/sqrt(256), embeddings × sqrt(640).
    func testConfig() throws {
        let c = try TestSupport.gemma3Model().config
        XCTAssertEqual([c.layers, c.dim, c.heads, c.kvHeads, c.headDim, c.ffnDim, c.contextLength, c.vocabSize],
                       [18, 640, 4, 1, 256, 2048, 32768, 262_144])
        XCTAssertEqual(c.block, .gemma3)
        XCTAssertEqual(c.ropeStyle, .neox)
        XCTAssertTrue(c.tiedEmbeddings)
        XCTAssertNil(c.finalLogitSoftcap)
        XCTAssertEqual(c.embeddingScale, Float(640).squareRoot())
        let global: Set = [5, 11, 17]
        for (l, a) in c.layerAttention.enumerated() {
            XCTAssertEqual(a.window, global.contains(l) ? nil : 512, "layer \(l)")
            XCTAssertEqual(a.ropeBase, global.contains(l) ? 1_000_000 : 10_000, "layer \(l)")
            XCTAssertEqual(a.scale, 1.0 / 16)
        }
    }

    /// Greedy continuations equal the reference's on every prompt (one longer than the
    /// window), and first-step logits agree as closely as SmolLM2's do.
    func testGreedyMatchesReferenceOnEveryPrompt() throws {
        let goldens = try RealModelTests.goldens(TestSupport.gemma3GoldensPath)
        XCTAssertTrue(goldens.contains { $0.promptTokens.count > 512 }, "a prompt longer than the window")
        try RealModelTests.checkGreedyAndLogits(model: try TestSupport.gemma3Model(), goldens: goldens)
    }
}
