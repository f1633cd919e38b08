import Foundation

/// One turn of a conversation.
public struct ChatMessage: Sendable, Codable, Equatable {
    /// `system`, `user` or `assistant` (any role string is rendered as given).
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A rendered conversation: the prompt text and where in it (UTF-8 byte ranges, in order)
/// the messages' contents lie. The tokenizer parses special-token text only outside those
/// ranges, so a message cannot inject template markers such as `<|im_start|>`.
public struct RenderedChat: Sendable, Equatable {
    public private(set) var text = ""
    public private(set) var contentRanges: [Range<Int>] = []

    public init() {}

    /// Appends template text (its markers are special tokens).
    mutating func markup(_ s: String) { text += s }

    /// Removes `s`, template text at the end.
    mutating func dropTrailingMarkup(_ s: String) {
        precondition(text.hasSuffix(s) && (contentRanges.last?.upperBound ?? 0) <= text.utf8.count - s.utf8.count)
        text.removeLast(s.count)
    }

    /// Appends message content (plain text only).
    mutating func content(_ s: String) {
        let start = text.utf8.count
        text += s
        contentRanges.append(start..<text.utf8.count)
    }
}

/// The model's chat template, read from `tokenizer.chat_template`.
///
/// Rendered natively (no Jinja engine) once the template's family is recognized:
/// - `chatml` (SmolLM2, Qwen2): `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then
///   `<|im_start|>assistant\n` as the generation prompt; optionally with the default system turn
///   the template inserts when the first message is not a system message (SmolLM2: "You are a
///   helpful AI assistant named SmolLM, trained by Hugging Face"; Qwen2: "You are a helpful
///   assistant.").
/// - `zephyr` (TinyLlama chat): `<|{role}|>\n{content}{eos}\n` for user/system/assistant
///   messages, `<|assistant|>\n` as the generation prompt.
/// - `llama3` (Llama 3.0 instruct): `<|start_header_id|>{role}<|end_header_id|>\n\n{trimmed
///   content}<|eot_id|>`; the template's leading `bos_token` is left out because `encode` adds BOS.
/// - `gemma` (Gemma 3): `<start_of_turn>{role}\n{trimmed content}<end_of_turn>\n`, with `model`
///   for `assistant`, and `<start_of_turn>model\n` as the generation prompt. Gemma has no
///   system role: a leading system message's content and a blank line open the first user
///   turn's content (as Gemma's own template does). Also chosen when the GGUF has no template
///   but its vocabulary holds `<start_of_turn>` and `<end_of_turn>` (the base models).
/// A missing or unrecognized template falls back to plain ChatML without a default system turn
/// (`isFallback` is then true).
public struct ChatTemplate: Sendable {
    /// Template families rendered natively.
    public enum Form: String, Sendable {
        case chatml, zephyr, llama3, gemma
    }

    /// The Jinja source from the GGUF, if any.
    public let source: String?
    /// The recognized family (`.chatml` when falling back).
    public let form: Form
    /// Text of the EOS token, which the zephyr form appends to every message.
    public let eosText: String
    /// The system prompt the template inserts when the conversation has none.
    public let defaultSystemPrompt: String?
    /// True when the GGUF template was missing or not recognized and plain ChatML is used.
    public let isFallback: Bool

    /// Reads and recognizes `tokenizer.chat_template`.
    public init(gguf: GGUFFile) throws {
        let tokens = gguf["tokenizer.ggml.tokens"]?.array
        let eos = gguf["tokenizer.ggml.eos_token_id"]?.int
        let eosText = eos.flatMap { tokens?.indices.contains($0) == true ? tokens?[$0].string : nil } ?? "</s>"
        let source = gguf["tokenizer.chat_template"]?.string
        let texts = Set((tokens ?? []).lazy.compactMap(\.string).filter { $0.hasSuffix("_of_turn>") })
        let gemmaVocabulary = source == nil && texts.isSuperset(of: ["<start_of_turn>", "<end_of_turn>"])
        self.init(source: gemmaVocabulary ? Self.gemmaMarker : source, eosText: eosText)
    }

    /// What identifies a Gemma template (`<start_of_turn>`).
    static let gemmaMarker = "<start_of_turn>"

    /// Recognizes a template given as Jinja source (nil: no template); `eosText` is the EOS
    /// token's text (used by the zephyr form).
    public init(source: String?, eosText: String = "</s>") {
        self.source = source
        self.eosText = eosText
        let src = source ?? ""
        var fallback = false
        if src.contains("<|im_start|>") && src.contains("<|im_end|>") {
            form = .chatml
        } else if src.contains("<|user|>") && src.contains("<|assistant|>") && src.contains("eos_token") {
            form = .zephyr
        } else if src.contains("<|start_header_id|>") && src.contains("<|eot_id|>") {
            form = .llama3
        } else if src.contains(Self.gemmaMarker) {
            form = .gemma
        } else {
            form = .chatml
            fallback = true
        }
        isFallback = fallback
        defaultSystemPrompt = form == .chatml && !fallback ? ChatTemplate.defaultSystem(in: src) : nil
    }

    /// The prompt text for `messages`.
    /// - Parameters:
    ///   - addGenerationPrompt: end with the opening of an assistant turn.
    ///   - defaultSystem: insert the template's default system turn when the first message is not
    ///     a system message (what the template itself does, as in transformers and llama.cpp's
    ///     Jinja mode); `false` gives the bare-user-turn form. Only ChatML templates have one.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool, defaultSystem: Bool) -> String {
        renderMarked(messages, addGenerationPrompt: addGenerationPrompt, defaultSystem: defaultSystem).text
    }

    /// `render`, also telling which bytes are message content (for `Tokenizer.encode(_:)`).
    public func renderMarked(_ messages: [ChatMessage], addGenerationPrompt: Bool, defaultSystem: Bool) -> RenderedChat {
        var out = RenderedChat()
        switch form {
        case .chatml: renderChatML(messages, addGenerationPrompt, defaultSystem, into: &out)
        case .zephyr: renderZephyr(messages, addGenerationPrompt, into: &out)
        case .llama3: renderLlama3(messages, addGenerationPrompt, into: &out)
        case .gemma: renderGemma(messages, addGenerationPrompt, into: &out)
        }
        return out
    }

    /// The text every chat that opens with the system message `system` starts with (what is
    /// precomputed for a document sent as the system turn): the system turn, or, without a
    /// system role (Gemma), the first user turn up to where the user's text begins.
    public func renderSystemPrefix(_ system: String, defaultSystem: Bool) -> RenderedChat {
        let turn = ChatMessage(role: "system", content: system)
        guard !hasSystemRole else { return renderMarked([turn], addGenerationPrompt: false, defaultSystem: defaultSystem) }
        var out = renderMarked([turn, ChatMessage(role: "user", content: "")], addGenerationPrompt: false,
                               defaultSystem: defaultSystem)
        out.dropTrailingMarkup(endOfTurn)
        return out
    }

    /// Whether the template has a system turn of its own (Gemma's has not).
    public var hasSystemRole: Bool { form != .gemma }

    /// The text that closes a message's turn.
    public var endOfTurn: String {
        switch form {
        case .chatml: return "<|im_end|>\n"
        case .zephyr: return eosText + "\n"
        case .llama3: return "<|eot_id|>"
        case .gemma: return "<end_of_turn>\n"
        }
    }

    private func renderGemma(_ messages: [ChatMessage], _ addGenerationPrompt: Bool, into out: inout RenderedChat) {
        var turns = messages[...]
        var firstPrefix = ""
        if let first = turns.first, first.role == "system" {
            firstPrefix = first.content + "\n\n"
            turns = turns.dropFirst()
        }
        for (i, m) in turns.enumerated() {
            out.markup("<start_of_turn>" + (m.role == "assistant" ? "model" : m.role) + "\n")
            out.content((i == 0 ? firstPrefix : "") + trimmedWhitespace(m.content))
            out.markup("<end_of_turn>\n")
        }
        if addGenerationPrompt { out.markup("<start_of_turn>model\n") }
    }

    private func renderZephyr(_ messages: [ChatMessage], _ addGenerationPrompt: Bool, into out: inout RenderedChat) {
        for m in messages where ["user", "system", "assistant"].contains(m.role) {
            out.markup("<|" + m.role + "|>\n")
            out.content(m.content)
            out.markup(eosText + "\n")
        }
        if addGenerationPrompt && !messages.isEmpty { out.markup("<|assistant|>\n") }
    }

    private func renderLlama3(_ messages: [ChatMessage], _ addGenerationPrompt: Bool, into out: inout RenderedChat) {
        for m in messages {
            out.markup("<|start_header_id|>" + m.role + "<|end_header_id|>\n\n")
            out.content(trimmedWhitespace(m.content))
            out.markup("<|eot_id|>")
        }
        if addGenerationPrompt { out.markup("<|start_header_id|>assistant<|end_header_id|>\n\n") }
    }

    private func renderChatML(_ messages: [ChatMessage], _ addGenerationPrompt: Bool, _ defaultSystem: Bool,
                              into out: inout RenderedChat) {
        if defaultSystem, let sys = defaultSystemPrompt, let first = messages.first, first.role != "system" {
            out.markup("<|im_start|>system\n" + sys + "<|im_end|>\n")
        }
        for m in messages {
            out.markup("<|im_start|>" + m.role + "\n")
            out.content(m.content)
            out.markup("<|im_end|>\n")
        }
        if addGenerationPrompt { out.markup("<|im_start|>assistant\n") }
    }

    /// The default system text of a ChatML template: the literal between `<|im_start|>system` +
    /// newline and `<|im_end|>`, when the template also tests for a leading system message.
    static func defaultSystem(in src: String) -> String? {
        guard src.contains("'system'") || src.contains("\"system\"") else { return nil }
        for opener in ["<|im_start|>system\n", "<|im_start|>system\\n"] {
            var from = src.startIndex
            while let start = src.range(of: opener, range: from..<src.endIndex),
                  let end = src.range(of: "<|im_end|>", range: start.upperBound..<src.endIndex) {
                from = start.upperBound
                let text = String(src[start.upperBound..<end.lowerBound])
                // A template that pastes the real system message has Jinja here, not a literal.
                if text.contains("{{") || text.contains("{%") || text.contains("'") || text.contains("\"") { continue }
                return text.replacingOccurrences(of: "\\n", with: "\n")
            }
        }
        return nil
    }
}

/// `text` without leading and trailing whitespace as Foundation's `whitespacesAndNewlines`
/// trim (which rendered the prefixes already stored) defines it: Unicode White_Space (tab to
/// carriage return, space, U+0085, the Zs, Zl and Zp characters) and U+200B. Works on the
/// string's own scalars, with no copy when nothing is trimmed and no bridging to `NSString`.
func trimmedWhitespace(_ text: String) -> String {
    func trimmed(_ c: Unicode.Scalar) -> Bool { c.properties.isWhitespace || c == "\u{200B}" }
    let scalars = text.unicodeScalars
    guard let first = scalars.firstIndex(where: { !trimmed($0) }) else { return "" }
    let last = scalars.lastIndex(where: { !trimmed($0) })!
    if first == scalars.startIndex && scalars.index(after: last) == scalars.endIndex { return text }
    return String(scalars[first...last])
}
