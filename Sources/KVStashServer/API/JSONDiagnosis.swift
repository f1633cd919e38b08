/// Explains why a request body that `JSONDecoder` rejected as a whole is wrong: a syntax
/// error (with its byte offset), invalid UTF-8 inside a string, a number no Swift integer
/// or double holds, or nesting past the depth limit, naming the field where it can.
///
/// Foundation's decoder reports all of these as "not valid JSON" with no field, so the
/// server scans the body once more (only after a failure) to say what is wrong.
struct JSONDiagnosis {
    /// The error message and the field at fault (`messages[0].content`), if known.
    struct Finding: Error, Equatable {
        var message: String
        var param: String?
    }

    /// Deepest nesting the scanner follows (the decoder's own limit is 512).
    static let maxDepth = 512

    private let bytes: [UInt8]
    private var i = 0
    private var path: [String] = []

    private init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// What is wrong with `bytes`, or nil when the scanner finds nothing (the decoder then
    /// objected to something else).
    static func diagnose(_ bytes: [UInt8]) -> Finding? {
        var scanner = JSONDiagnosis(bytes)
        do throws(Finding) {
            scanner.skipSpace()
            try scanner.value(depth: 0)
            scanner.skipSpace()
            if scanner.i < bytes.count { throw scanner.fail("unexpected data after the JSON value") }
            return nil
        } catch {
            return error
        }
    }

    private var param: String? {
        path.isEmpty ? nil : path.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
    }

    private func fail(_ what: String) -> Finding {
        Finding(message: "malformed JSON body at byte \(i): \(what)", param: param)
    }

    private mutating func skipSpace() {
        while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
    }

    private mutating func value(depth: Int) throws(Finding) {
        guard depth < Self.maxDepth else {
            throw Finding(message: "JSON nesting deeper than \(Self.maxDepth) levels", param: param)
        }
        guard i < bytes.count else { throw fail("unexpected end of the body") }
        switch bytes[i] {
        case UInt8(ascii: "{"): try object(depth: depth)
        case UInt8(ascii: "["): try array(depth: depth)
        case UInt8(ascii: "\""): _ = try string()
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
        default:
            for word in ["true", "false", "null"] where bytes[i...].starts(with: word.utf8) {
                i += word.utf8.count
                return
            }
            throw fail("unexpected character")
        }
    }

    private mutating func object(depth: Int) throws(Finding) {
        i += 1
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return }
        while true {
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a field name") }
            let key = try string()
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':' after '\(key)'") }
            i += 1
            skipSpace()
            path.append(key)
            try value(depth: depth + 1)
            path.removeLast()
            skipSpace()
            guard i < bytes.count else { throw fail("unexpected end of the body") }
            if bytes[i] == UInt8(ascii: "}") { i += 1; return }
            guard bytes[i] == UInt8(ascii: ",") else { throw fail("expected ',' or '}'") }
            i += 1
        }
    }

    private mutating func array(depth: Int) throws(Finding) {
        i += 1
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return }
        var index = 0
        while true {
            skipSpace()
            path.append("[\(index)]")
            try value(depth: depth + 1)
            path.removeLast()
            skipSpace()
            guard i < bytes.count else { throw fail("unexpected end of the body") }
            if bytes[i] == UInt8(ascii: "]") { i += 1; return }
            guard bytes[i] == UInt8(ascii: ",") else { throw fail("expected ',' or ']'") }
            i += 1
            index += 1
        }
    }

    /// A string literal; returns its raw bytes as text (escapes left as written).
    private mutating func string() throws(Finding) -> String {
        let start = i + 1
        i += 1
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                let raw = bytes[start..<i]
                i += 1
                return String(decoding: raw.prefix(64), as: UTF8.self)
            }
            if b == UInt8(ascii: "\\") {
                try escape()
                continue
            }
            if b < 0x20 { throw fail("control character in a string (escape it)") }
            if b >= 0x80 {
                try utf8Sequence()
                continue
            }
            i += 1
        }
        throw fail("unterminated string")
    }

    private mutating func escape() throws(Finding) {
        guard i + 1 < bytes.count else { throw fail("unterminated string") }
        let e = bytes[i + 1]
        if e == UInt8(ascii: "u") {
            let hex = bytes.dropFirst(i + 2).prefix(4)
            guard hex.count == 4, let unit = UInt16(String(decoding: hex, as: UTF8.self), radix: 16) else {
                throw fail("bad \\u escape")
            }
            i += 6
            if (0xD800..<0xDC00).contains(unit) {
                let next = bytes.dropFirst(i).prefix(6)
                guard next.starts(with: "\\u".utf8), next.count == 6,
                      let low = UInt16(String(decoding: next.dropFirst(2), as: UTF8.self), radix: 16),
                      (0xDC00..<0xE000).contains(low) else {
                    throw Finding(message: "invalid UTF-16 escape at byte \(i - 6): a lone surrogate is not text",
                                  param: param)
                }
                i += 6
            } else if (0xDC00..<0xE000).contains(unit) {
                throw Finding(message: "invalid UTF-16 escape at byte \(i - 6): a lone surrogate is not text",
                              param: param)
            }
            return
        }
        guard "\"\\/bfnrt".utf8.contains(e) else { throw fail("unknown escape '\\\(Character(Unicode.Scalar(e)))'") }
        i += 2
    }

    /// One multi-byte UTF-8 character starting at `i`.
    private mutating func utf8Sequence() throws(Finding) {
        let lead = bytes[i]
        let length = lead >= 0xF0 && lead <= 0xF4 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC2 && lead < 0xE0 ? 2 : 0
        let end = i + length
        guard length > 0, end <= bytes.count,
              String(validating: bytes[i..<end], as: UTF8.self) != nil else {
            throw Finding(message: "invalid UTF-8 at byte \(i) in a string: text must be valid UTF-8", param: param)
        }
        i = end
    }

    /// Skips decimal digits; returns how many.
    private mutating func digits() -> Int {
        let start = i
        while i < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i]) { i += 1 }
        return i - start
    }

    private mutating func number() throws(Finding) {
        let start = i
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        let first = i
        guard digits() > 0 else { throw fail("expected a digit") }
        if bytes[first] == UInt8(ascii: "0") && i - first > 1 { throw fail("a number must not start with 0") }
        var integral = true
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            integral = false
            i += 1
            guard digits() > 0 else { throw fail("expected a digit after '.'") }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            integral = false
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { throw fail("expected a digit in the exponent") }
        }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        let fits = integral ? Int64(text) != nil : Double(text).map { $0.isFinite && abs($0) < 0x1p63 } ?? false
        guard fits else {
            let shown = text.count > 40 ? String(text.prefix(40)) + "…" : text
            throw Finding(message: "number \(shown) is out of range: numbers must fit a 64-bit integer", param: param)
        }
    }
}
