import Foundation

/// CPU seconds of this thread so far. The machine is shared with other builders, so
/// speeds are reported in thread CPU time (what a dedicated core would take) beside
/// wall time.
func threadCPUTime() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Fastest of `reps` runs of `body` (after one warm-up run): (thread CPU s, wall s).
func bestTime(reps: Int, _ body: () throws -> Void) rethrows -> (cpu: Double, wall: Double) {
    try body()
    var best = (cpu: Double.infinity, wall: Double.infinity)
    for _ in 0..<reps {
        let c0 = threadCPUTime(), t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        best.wall = min(best.wall, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        best.cpu = min(best.cpu, threadCPUTime() - c0)
    }
    return best
}

/// Writes `value` as pretty JSON to `path`, creating its folder.
func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    try enc.encode(value).write(to: url)
}

/// `lscpu`'s model name.
func cpuModel() -> String {
    let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    let line = text.split(separator: "\n").first { $0.hasPrefix("model name") }
    return line.map { String($0.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces)) } ?? "?"
}

func fmt(_ x: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", x) }
