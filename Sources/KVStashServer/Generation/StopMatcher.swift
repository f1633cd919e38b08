/// Finds OpenAI `stop` sequences in streamed text.
///
/// Text is fed piece by piece. The matcher releases only text that can no longer be the
/// start of a stop sequence, holds back a tail that might be, and reports a stop at the
/// earliest full match (the stop sequence itself is not part of the output, as in OpenAI).
/// It works on UTF-8 bytes: held-back tails are prefixes of valid UTF-8 stop strings, so
/// every split falls on a character boundary.
struct StopMatcher: Sendable {
    private let stops: [[UInt8]]
    private var pending: [UInt8] = []
    /// True once a stop sequence matched; later input is ignored.
    private(set) var stopped = false

    init(_ stops: [String]) {
        self.stops = stops.filter { !$0.isEmpty }.map { Array($0.utf8) }
    }

    /// Adds `piece` and returns the text that is now safe to emit.
    mutating func feed(_ piece: String) -> String {
        guard !stopped else { return "" }
        guard !stops.isEmpty else { return piece }
        pending.append(contentsOf: piece.utf8)
        if let cut = earliestMatch() {
            stopped = true
            let out = String(decoding: pending[..<cut], as: UTF8.self)
            pending.removeAll()
            return out
        }
        let keep = longestPartialSuffix()
        let out = String(decoding: pending[..<(pending.count - keep)], as: UTF8.self)
        pending.removeFirst(pending.count - keep)
        return out
    }

    /// Releases the held-back tail at the end of the generation.
    mutating func finish() -> String {
        defer { pending.removeAll() }
        return stopped ? "" : String(decoding: pending, as: UTF8.self)
    }

    /// Start of the earliest complete stop sequence in `pending`.
    private func earliestMatch() -> Int? {
        var best: Int?
        for stop in stops where stop.count <= pending.count {
            for start in 0...(pending.count - stop.count) where best.map({ start < $0 }) ?? true {
                if pending[start..<(start + stop.count)].elementsEqual(stop) {
                    best = start
                    break
                }
            }
        }
        return best
    }

    /// Length of the longest tail of `pending` that is a proper prefix of some stop sequence.
    private func longestPartialSuffix() -> Int {
        var best = 0
        for stop in stops {
            let maxLen = min(stop.count - 1, pending.count)
            guard maxLen > best else { continue }
            for len in stride(from: maxLen, to: best, by: -1)
            where pending[(pending.count - len)...].elementsEqual(stop[..<len]) {
                best = len
                break
            }
        }
        return best
    }
}
