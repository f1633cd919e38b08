import Foundation
import KVStashCodec
import KVStashServer
import XCTest
@testable import KVStashFuzzing

/// The fuzz harnesses accept their seeds, reach past the checksums they must reach past, and
/// report what they exist to report; the committed corpus (`fuzz/corpus/TARGET`: inputs that
/// once failed, kept after the fix) replays without a finding.
final class HarnessTests: XCTestCase {
    func testSeedsRunWithoutFindings() throws {
        for target in FuzzTarget.allCases {
            let seeds = try target.seeds()
            XCTAssertFalse(seeds.isEmpty, "\(target)")
            for (i, seed) in seeds.enumerated() {
                XCTAssertNil(target.run(seed), "\(target) seed \(i)")
            }
        }
    }

    func testBlockSeedsDecodeAndResealingReachesTheFrame() throws {
        for seed in try BlockHarness.seeds() {
            XCTAssertEqual(BlockHarness.resealed(seed), seed, "a valid block is already sealed")
            XCTAssertNoThrow(try KVBlockDecoder().validate(seed))
            var damaged = seed
            damaged[damaged.count - 9] ^= 0x5A
            XCTAssertThrowsError(try KVBlockDecoder().validate(damaged)) {
                XCTAssertEqual($0 as? KVBlockError, .checksumMismatch)
            }
            do {
                _ = try KVBlockDecoder().validate(BlockHarness.resealed(damaged))
            } catch let error as KVBlockError {
                XCTAssertNotEqual(error, .checksumMismatch, "resealing must get the damage past the payload checksum")
            }
        }
    }

    func testRESPHarnessComparesPiecesWithTheWholeBuffer() {
        XCTAssertNil(RESPHarness.run(Array("*2\r\n$3\r\nabc\r\n:12\r\n+OK\r\n".utf8)))
        XCTAssertNil(RESPHarness.run(Array("*2\r\n$3\r\nabcXY:12\r\n".utf8)), "a refused reply is not a finding")
        for seed in RESPHarness.seeds() {
            XCTAssertNil(RESPHarness.run(seed))
        }
    }

    func testRequestHarnessChecksBodiesAsTheServerDoes() {
        let chat = UInt8(KVStashServer.checkedBodyPaths.firstIndex(of: "/v1/chat/completions")!)
        let precompute = UInt8(KVStashServer.checkedBodyPaths.firstIndex(of: "/v1/precompute")!)
        let harness = RequestHarness.server
        XCTAssertNil(harness.checkBody(Array(#"{"messages":[{"role":"user","content":"hi"}]}"#.utf8),
                                       path: "/v1/chat/completions"))
        // Refused bodies are answered with a 4xx that names the fault: not findings.
        for (route, body) in [(chat, #"{"messages":[]}"#), (chat, #"{"messages":[{"role":"x"}]}"#),
                              (chat, #"{"messages":[1,"#), (precompute, #"{"documents":[{"id":"a"}]}"#),
                              (precompute, #"{"documents":["a"],"cache_salt":"\#(String(repeating: "s", count: 300))"}"#)] {
            let bytes = Array(body.utf8)
            let error = harness.checkBody(bytes, path: KVStashServer.checkedBodyPaths[Int(route)])
            XCTAssertEqual(error?.status.code, 400, body)
            XCTAssertNil(RequestHarness.run([route] + bytes), body)
        }
    }

    func testTokenizerHarnessRunsOnTheModel() throws {
        guard TokenizerHarness.loaded != nil else {
            let message = "KVSTASH_MODEL is not set (scripts/test.sh sets it)"
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail(message) }
            throw XCTSkip(message)
        }
        for seed in TokenizerHarness.seeds() {
            XCTAssertNil(TokenizerHarness.run(seed))
        }
    }

    func testCommittedCorpusReplaysWithoutFindings() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../fuzz/corpus").standardized
        var replayed = 0
        for target in FuzzTarget.allCases {
            let dir = root.appendingPathComponent(target.rawValue)
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else { continue }
            for name in names.sorted() {
                let input = Array(try Data(contentsOf: dir.appendingPathComponent(name)))
                XCTAssertNil(target.run(input), "\(target.rawValue)/\(name)")
                replayed += 1
            }
        }
        print("replayed \(replayed) committed inputs")
    }
}
