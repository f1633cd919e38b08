import Foundation
import XCTest
@testable import KVStashStore

/// SIGKILLs a writer process (`kvstash-crashwriter`) at random moments and checks the
/// store after each kill: it reopens, every entry verifies, no half-written entry is
/// visible, and every key the writer acknowledged after a synced put is present.
final class CrashTests: XCTestCase {
    func writerPath() throws -> String {
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // The XCTest binary lives in <bin>/KVStashPackageTests.xctest (a file on Linux).
        if dir.lastPathComponent.hasSuffix(".xctest") { dir.deleteLastPathComponent() }
        let path = dir.appendingPathComponent("kvstash-crashwriter").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            XCTFail("kvstash-crashwriter not found at \(path): build all targets (swift build --build-tests)")
            throw XCTSkip("no writer")
        }
        return path
    }

    func testSurvivesTwentyFiveSIGKILLs() throws {
        let writer = try writerPath()
        let path = temporaryStorePath(self)
        var acked = Set<ChunkKey>()
        var rng = SystemRandomNumberGenerator()
        for run in 0..<25 {
            let pipe = Pipe()
            let child = Process()
            child.executableURL = URL(fileURLWithPath: writer)
            child.arguments = [path, String(run)]
            child.standardOutput = pipe
            try child.run()
            usleep(UInt32.random(in: 30_000...300_000, using: &rng))
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            XCTAssertEqual(child.terminationReason, .uncaughtSignal, "writer exited by itself in run \(run)")
            let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let lines = out.split(separator: "\n").filter { $0.hasPrefix("ACK ") }
            let keys = lines.compactMap { ChunkKey(hex: String($0.dropFirst(4))) }
            XCTAssertEqual(keys.count, lines.count)
            acked.formUnion(keys)
            try checkStore(path: path, acked: acked, run: run)
        }
        XCTAssertGreaterThan(acked.count, 25, "the writer should have acknowledged writes")
    }

    /// Reopens the store and checks it.
    func checkStore(path: String, acked: Set<ChunkKey>, run: Int) throws {
        let store = try ChunkStore(path: path, options: StoreOptions(chunkSize: 4, validator: selfCheck))
        defer { try? store.close() }
        let report = try store.verify()
        XCTAssertEqual(report.corrupt, [], "run \(run): corrupt entries after SIGKILL")
        XCTAssertEqual(report.orphans, [], "run \(run): half-written entries (value without meta or meta without value)")
        XCTAssertEqual(report.ok, report.checked)
        let present = Set(try store.list().map(\.key))
        let lost = acked.subtracting(present)
        XCTAssertEqual(lost.count, 0, "run \(run): acknowledged synced keys lost: \(lost.prefix(3))")
        for key in acked.prefix(50) {
            XCTAssertNotNil(try store.get(key), "run \(run): acked key \(key) does not read back")
        }
    }
}
