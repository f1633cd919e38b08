/// The regex-free pre-tokenizers of byte-level BPE vocabularies.
///
/// Each one is a hand-written scanner over Unicode code points that splits text exactly as
/// llama.cpp's `unicode_regex_split` does for the GGUF's `tokenizer.ggml.pre`:
/// - `gpt2`:  `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// - `smollm` (also starcoder, refact, command-r, codeshell, …): every `\p{N}` is first isolated,
///   then the gpt2 expression splits the rest.
/// - `llama-bpe` (llama3): `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
///   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// - `qwen2`: the llama3 expression with `\p{N}` (single digits) instead of `\p{N}{1,3}`.
enum PreTokenizerKind: Sendable, Equatable {
    case gpt2
    case smollm
    /// The llama3-family expression with digits grouped by at most `maxDigits`.
    case llama3(maxDigits: Int)

    /// The pre-tokenizer llama.cpp uses for `tokenizer.ggml.pre == name`; nil if unknown here.
    init?(ggufName name: String) {
        switch name {
        case "gpt2", "default", "mpt", "olmo", "jais": self = .gpt2
        case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva": self = .smollm
        case "llama-bpe", "llama3", "dbrx", "smaug-bpe", "chatglm-bpe": self = .llama3(maxDigits: 3)
        case "qwen2", "stablelm2", "hunyuan", "grok-2": self = .llama3(maxDigits: 1)
        default: return nil
        }
    }

    /// Splits the code points `cps` (with their `CharClass` flags in `cls`) and appends the end
    /// index of every piece to `ends`.
    func split(_ cps: [UInt32], _ cls: [UInt8], into ends: inout [Int]) {
        switch self {
        case .gpt2:
            Scanner(cps: cps, cls: cls).gpt2(0, cps.count, &ends)
        case .smollm:
            let sc = Scanner(cps: cps, cls: cls)
            var start = 0
            for i in 0..<cps.count where cls[i] & CharClass.number != 0 {
                if start < i { sc.gpt2(start, i, &ends) }
                ends.append(i + 1)
                start = i + 1
            }
            if start < cps.count { sc.gpt2(start, cps.count, &ends) }
        case let .llama3(maxDigits):
            Scanner(cps: cps, cls: cls).llama3(0, cps.count, maxDigits, &ends)
        }
    }
}

private let L = CharClass.letter, N = CharClass.number, WS = CharClass.whitespace
private let space: UInt32 = 0x20, cr: UInt32 = 0x0D, lf: UInt32 = 0x0A, apostrophe: UInt32 = 0x27

/// One scan over a code point array; each method handles the range `lo..<hi`.
private struct Scanner {
    let cps: [UInt32]
    let cls: [UInt8]

    /// Length of a contraction (`'s`, `'re`, …) starting at `pos`, or 0.
    @inline(__always)
    func contraction(_ pos: Int, _ hi: Int, caseInsensitive: Bool) -> Int {
        guard cps[pos] == apostrophe, pos + 1 < hi else { return 0 }
        func low(_ c: UInt32) -> UInt32 { caseInsensitive && c >= 0x41 && c <= 0x5A ? c + 32 : c }
        let a = low(cps[pos + 1])
        if a == 0x73 || a == 0x74 || a == 0x6D || a == 0x64 { return 2 }  // s t m d
        guard pos + 2 < hi else { return 0 }
        let b = low(cps[pos + 2])
        if (a == 0x72 && b == 0x65) || (a == 0x76 && b == 0x65) || (a == 0x6C && b == 0x6C) { return 3 }  // re ve ll
        return 0
    }

    /// Count of whitespace code points from `pos`, and the end of the last CR/LF among them (or -1).
    @inline(__always)
    func whitespaceRun(_ pos: Int, _ hi: Int) -> (count: Int, lastNewlineEnd: Int) {
        var n = 0, lastNL = -1
        while pos + n < hi, cls[pos + n] & WS != 0 {
            if cps[pos + n] == cr || cps[pos + n] == lf { lastNL = pos + n + 1 }
            n += 1
        }
        return (n, lastNL)
    }

    func gpt2(_ lo: Int, _ hi: Int, _ ends: inout [Int]) {
        var pos = lo
        while pos < hi {
            let k = contraction(pos, hi, caseInsensitive: false)
            if k > 0 { pos += k; ends.append(pos); continue }
            let isSpace = cps[pos] == space
            // Class of the code point after an optional leading space (nil: past the end).
            let f2: UInt8? = isSpace ? (pos + 1 < hi ? cls[pos + 1] : nil) : cls[pos]
            if let f2 {
                let want: UInt8 = f2 & L != 0 ? L : (f2 & N != 0 ? N : (f2 & WS == 0 ? 0 : WS))
                if want != WS {  // ` ?\p{L}+`, ` ?\p{N}+` or ` ?[^\s\p{L}\p{N}]+`
                    pos += isSpace ? 1 : 0
                    if want == 0 {
                        while pos < hi, cls[pos] & (L | N | WS) == 0 { pos += 1 }
                    } else {
                        while pos < hi, cls[pos] & want != 0 { pos += 1 }
                    }
                    ends.append(pos)
                    continue
                }
            }
            let run = whitespaceRun(pos, hi).count
            if run > 1 && pos + run < hi {
                pos += run - 1  // `\s+(?!\S)`
            } else {
                pos += max(run, 1)  // `\s+`, or a lone unmatched code point
            }
            ends.append(pos)
        }
    }

    func llama3(_ lo: Int, _ hi: Int, _ maxDigits: Int, _ ends: inout [Int]) {
        var pos = lo
        while pos < hi {
            let k = contraction(pos, hi, caseInsensitive: true)
            if k > 0 { pos += k; ends.append(pos); continue }
            let c = cps[pos], f = cls[pos]
            // `[^\r\n\p{L}\p{N}]?\p{L}+`
            if !(c == cr || c == lf || f & N != 0), f & L != 0 || (pos + 1 < hi && cls[pos + 1] & L != 0) {
                pos += 1
                while pos < hi, cls[pos] & L != 0 { pos += 1 }
                ends.append(pos)
                continue
            }
            // `\p{N}{1,maxDigits}`
            if f & N != 0 {
                var start = pos
                while pos < hi, cls[pos] & N != 0 {
                    pos += 1
                    if pos - start >= maxDigits { ends.append(pos); start = pos }
                }
                if pos > start { ends.append(pos) }
                continue
            }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
            let isSpace = c == space
            let f2: UInt8? = isSpace ? (pos + 1 < hi ? cls[pos + 1] : nil) : f
            if let f2, f2 & (L | N | WS) == 0 {
                pos += isSpace ? 1 : 0
                while pos < hi, cls[pos] & (L | N | WS) == 0 { pos += 1 }
                while pos < hi, cps[pos] == cr || cps[pos] == lf { pos += 1 }
                ends.append(pos)
                continue
            }
            let run = whitespaceRun(pos, hi)
            if run.lastNewlineEnd >= 0 {
                pos = run.lastNewlineEnd  // `\s*[\r\n]+`
            } else if run.count > 1 && pos + run.count < hi {
                pos += run.count - 1  // `\s+(?!\S)`
            } else {
                pos += max(run.count, 1)  // `\s+`, or a lone unmatched code point
            }
            ends.append(pos)
        }
    }
}
