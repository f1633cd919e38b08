/// GPT-2's reversible byte <-> unicode mapping, used by byte-level BPE vocabularies.
///
/// Printable Latin-1 bytes (`!`..`~`, `¡`..`¬`, `®`..`ÿ`) map to themselves; the other 68 bytes map,
/// in order, to U+0100, U+0101, … so every byte has a visible, non-space character (space → `Ġ`).
enum ByteLevel {
    /// `scalarForByte[b]` is the character that stands for byte `b` in vocabulary entries.
    static let scalarForByte: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
                table[b] = Unicode.Scalar(UInt8(b))
            } else {
                table[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// Inverse of `scalarForByte`: scalar value -> byte.
    static let byteForScalar: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (b, s) in scalarForByte.enumerated() { map[s.value] = UInt8(b) }
        return map
    }()

    /// The vocabulary spelling of raw bytes (e.g. `" hi"` -> `"Ġhi"`).
    static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(scalarForByte[Int(b)]) }
        return String(s)
    }

    /// The raw bytes a vocabulary entry stands for. Characters outside the map (not produced by
    /// GPT-2 byte encoding) are kept as their own UTF-8, as llama.cpp does.
    static func decode(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for s in text.unicodeScalars {
            if let b = byteForScalar[s.value] { out.append(b) } else { out.append(contentsOf: String(s).utf8) }
        }
        return out
    }
}

/// Character classes the pre-tokenizers need, as bit flags.
enum CharClass {
    static let letter: UInt8 = 1      // \p{L}
    static let number: UInt8 = 2      // \p{N}
    static let whitespace: UInt8 = 4  // \s (Unicode White_Space)

    /// Flags of the Basic Multilingual Plane, computed once (64 KiB).
    private static let bmp: [UInt8] = (0..<0x10000).map { slowClassify(UInt32($0)) }

    /// The class flags of one code point.
    @inline(__always)
    static func of(_ v: UInt32) -> UInt8 {
        v < 0x10000 ? bmp[Int(v)] : slowClassify(v)
    }

    private static func slowClassify(_ v: UInt32) -> UInt8 {
        guard let s = Unicode.Scalar(v) else { return 0 }
        let p = s.properties
        var c: UInt8 = 0
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: c = letter
        case .decimalNumber, .letterNumber, .otherNumber: c = number
        default: break
        }
        if p.isWhitespace { c |= whitespace }
        return c
    }
}
