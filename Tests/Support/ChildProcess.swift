import Foundation

/// What a finished child process left: its exit status and what it wrote.
public struct ChildOutput: Sendable {
    public let status: Int32
    /// Standard output (with standard error too, when they were merged).
    public let stdout: Data
    /// Standard error; empty when it was merged into `stdout`.
    public let stderr: Data

    public var text: String { String(decoding: stdout, as: UTF8.self) }
    public var errorText: String { String(decoding: stderr, as: UTF8.self) }
}

/// Runs other programs for the tests (the Python references, the CLI, system tools).
public enum ChildProcess {
    /// Runs `executable` with `arguments` to its end. Its output goes to temporary files, not
    /// pipes, so a child that writes more than a pipe holds to either stream never blocks
    /// waiting for a reader. With `mergeStandardError`, both streams land in `stdout`.
    public static func run(_ executable: String, _ arguments: [String],
                           mergeStandardError: Bool = false) throws -> ChildOutput {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("kvstash-child-\(UUID().uuidString)")
        let outURL = base.appendingPathExtension("out"), errURL = base.appendingPathExtension("err")
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        let out = try newFile(outURL)
        let err = mergeStandardError ? out : try newFile(errURL)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = out
        process.standardError = err
        try process.run()
        process.waitUntilExit()
        try out.close()
        if !mergeStandardError { try err.close() }
        return ChildOutput(status: process.terminationStatus, stdout: try Data(contentsOf: outURL),
                           stderr: mergeStandardError ? Data() : try Data(contentsOf: errURL))
    }

    /// An empty file at `url`, open for writing.
    private static func newFile(_ url: URL) throws -> FileHandle {
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path])
        }
        return try FileHandle(forWritingTo: url)
    }
}
