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

/// The model's chat template, read from `tokenizer.chat_template`.
///
/// Rendered natively (no Jinja engine). Recognized form: ChatML
/// (`<|im_start|>{role}\n{content}<|im_end|>\n` per message, then `<|im_start|>assistant\n` as the
/// generation prompt), optionally with a default system turn that the template inserts when the
/// first message is not a system message (SmolLM2: "You are a helpful AI assistant named SmolLM,
/// trained by Hugging Face"; Qwen2: "You are a helpful assistant."). A missing or unrecognized
/// template falls back to plain ChatML without a default system turn (`isFallback` is then true).
public struct ChatTemplate: Sendable {
    /// The Jinja source from the GGUF, if any.
    public let source: String?
    /// The system prompt the template inserts when the conversation has none.
    public let defaultSystemPrompt: String?
    /// True when the GGUF template was missing or not recognized and plain ChatML is used.
    public let isFallback: Bool

    /// Reads and recognizes `tokenizer.chat_template`.
    public init(gguf: GGUFFile) throws {
        self.init(source: gguf["tokenizer.chat_template"]?.string)
    }

    /// Recognizes a template given as Jinja source (nil: no template).
    public init(source: String?) {
        self.source = source
        guard let src = source, src.contains("<|im_start|>"), src.contains("<|im_end|>") else {
            defaultSystemPrompt = nil
            isFallback = true
            return
        }
        isFallback = false
        defaultSystemPrompt = ChatTemplate.defaultSystem(in: src)
    }

    /// The prompt text for `messages`.
    /// - Parameters:
    ///   - addGenerationPrompt: end with the opening of an assistant turn.
    ///   - defaultSystem: insert the template's default system turn when the first message is not
    ///     a system message (what the template itself does, as in transformers and llama.cpp's
    ///     Jinja mode); `false` gives the bare-user-turn form.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool, defaultSystem: Bool) -> String {
        var out = ""
        if defaultSystem, let sys = defaultSystemPrompt, let first = messages.first, first.role != "system" {
            out += "<|im_start|>system\n" + sys + "<|im_end|>\n"
        }
        for m in messages {
            out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n"
        }
        if addGenerationPrompt { out += "<|im_start|>assistant\n" }
        return out
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
