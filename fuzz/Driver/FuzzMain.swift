import Foundation
import KVStashFuzzing

#if KVSTASH_LIBFUZZER
/// The harness `kvstash-fuzz fuzz TARGET ...` runs (set once, before libFuzzer starts).
nonisolated(unsafe) private var target = FuzzTarget.block

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let finding = target.run(input) { fatalError("\(target.rawValue): \(finding)") }
    return 0
}

/// libFuzzer's entry for a program with its own `main`.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>,
                     _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                     _ test: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// `kvstash-fuzz fuzz TARGET [libFuzzer options and corpus directories]`.
@main
struct FuzzDriver {
    static func main() {
        let args = CommandLine.arguments
        guard args.count >= 3, args[1] == "fuzz", let chosen = FuzzTarget(rawValue: args[2]) else {
            let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")
            FileHandle.standardError.write(Data("usage: kvstash-fuzz fuzz \(names) [libFuzzer arguments]\n".utf8))
            exit(2)
        }
        target = chosen
        // libFuzzer sees the program name and what follows the target.
        var argv: [UnsafeMutablePointer<CChar>?] = [strdup(args[0])] + args.dropFirst(3).map { strdup($0) } + [nil]
        var argc = CInt(argv.count - 1)
        let status = argv.withUnsafeMutableBufferPointer { buffer -> CInt in
            var base = buffer.baseAddress
            return runFuzzerDriver(&argc, &base, fuzzOneInput)
        }
        exit(status)
    }
}
#else
/// `kvstash-fuzz seeds TARGET DIR` writes a target's seed inputs into DIR;
/// `kvstash-fuzz replay TARGET PATH...` runs files (or every file of a directory) through the
/// harness and exits 1 if any gives a finding.
@main
struct FuzzReplay {
    static func main() throws {
        let args = Array(CommandLine.arguments.dropFirst())
        guard args.count >= 2, let target = FuzzTarget(rawValue: args[1]) else { usage() }
        switch args[0] {
        case "seeds" where args.count == 3:
            try FileManager.default.createDirectory(atPath: args[2], withIntermediateDirectories: true)
            for (i, seed) in try target.seeds().enumerated() {
                try Data(seed).write(to: URL(fileURLWithPath: args[2]).appendingPathComponent("seed-\(i)"))
            }
        case "replay":
            var findings = 0, inputs = 0
            for file in try files(args.dropFirst(2)) {
                inputs += 1
                if let finding = target.run(Array(try Data(contentsOf: URL(fileURLWithPath: file)))) {
                    print("\(file): \(finding)")
                    findings += 1
                }
            }
            print("\(target.rawValue): \(inputs) inputs, \(findings) findings")
            if findings > 0 { exit(1) }
        default:
            usage()
        }
    }

    static func files(_ paths: ArraySlice<String>) throws -> [String] {
        try paths.flatMap { path -> [String] in
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                return [path]
            }
            return try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { "\(path)/\($0)" }
        }
    }

    static func usage() -> Never {
        let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")
        FileHandle.standardError.write(Data("usage: kvstash-fuzz seeds \(names) DIR | replay \(names) PATH...\n".utf8))
        exit(2)
    }
}
#endif
