import XCTest
@testable import KVStashEngine

/// Gemma 3 270M Q4_K_M, the K-quant file people download: every tensor decodes, to the
/// values of the PyPI `gguf` package.
final class Gemma3FileTests: XCTestCase {
    func testEveryTensorDequantizesAsTheGGUFPackage() throws {
        let path = try TestSupport.gemma3ModelPath()
        let types = try KQuantTests.checkAgainstGGUFPackage(path: path, rowsPerTensor: 4)
        XCTAssertEqual(types, [.f32, .q8_0, .q5_0, .q4_K, .q6_K])
        let file = try GGUFFile(path: path)
        XCTAssertEqual(file.tensors.count, 236)
        XCTAssertEqual(try file.string("general.architecture"), "gemma3")
    }
}
