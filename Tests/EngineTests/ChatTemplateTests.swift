import XCTest
@testable import KVStashEngine

/// The chat template against jinja2 renderings (Tests/reference/tokenizer_reference.py).
/// "default_system": the GGUF's own template, which inserts SmolLM's default system turn.
/// "bare": plain ChatML without it (our `defaultSystem: false`).
final class ChatTemplateTests: XCTestCase {
    func testRenderMatchesJinja2() throws {
        let gguf = try requireModelGGUF()
        let golden = try TokenizerGolden.load()
        let tmpl = try ChatTemplate(gguf: gguf)
        XCTAssertFalse(tmpl.isFallback)
        XCTAssertEqual(tmpl.defaultSystemPrompt, "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        XCTAssertGreaterThanOrEqual(golden.chat.count, 8)
        for c in golden.chat {
            let agp = c.add_generation_prompt
            XCTAssertEqual(tmpl.render(c.messages, addGenerationPrompt: agp, defaultSystem: true), c.default_system,
                           "\(c.name) agp=\(agp), default system form")
            XCTAssertEqual(tmpl.render(c.messages, addGenerationPrompt: agp, defaultSystem: false), c.bare,
                           "\(c.name) agp=\(agp), bare form")
        }
    }

    func testChatPromptIdsMatchReference() throws {
        let gguf = try requireModelGGUF()
        let golden = try TokenizerGolden.load()
        let tok = try Tokenizer(gguf: gguf)
        let tmpl = try ChatTemplate(gguf: gguf)
        for c in golden.chat {
            let agp = c.add_generation_prompt
            XCTAssertEqual(tok.encode(tmpl.render(c.messages, addGenerationPrompt: agp, defaultSystem: true)),
                           c.default_system_ids, "\(c.name) agp=\(agp), default system form")
            XCTAssertEqual(tok.encode(tmpl.render(c.messages, addGenerationPrompt: agp, defaultSystem: false)),
                           c.bare_ids, "\(c.name) agp=\(agp), bare form")
        }
    }

    func testUnknownTemplateFallsBackToChatML() {
        for src in [nil, "{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}"] {
            let t = ChatTemplate(source: src)
            XCTAssertTrue(t.isFallback)
            XCTAssertNil(t.defaultSystemPrompt)
            let msgs = [ChatMessage(role: "user", content: "hi")]
            XCTAssertEqual(t.render(msgs, addGenerationPrompt: true, defaultSystem: true),
                           "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
        }
    }

    func testQwenStyleDefaultSystemWithEscapedNewlines() {
        let src = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
            + "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
            + "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
        let t = ChatTemplate(source: src)
        XCTAssertFalse(t.isFallback)
        XCTAssertEqual(t.defaultSystemPrompt, "You are a helpful assistant.")
    }

    func testDefaultSystemFoundAfterJinjaOccurrences() {
        let src = "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- if messages[0]['role'] == 'system' %}"
            + "{{- messages[0]['content'] }}{%- else %}{{- 'You are Qwen.' }}{%- endif %}{{- '<|im_end|>\\n' }}"
            + "{%- else %}{%- if messages[0]['role'] == 'system' %}"
            + "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}"
            + "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
            + "{%- endif %}{%- endif %}"
        let t = ChatTemplate(source: src)
        XCTAssertEqual(t.defaultSystemPrompt, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
        XCTAssertEqual(t.render([ChatMessage(role: "user", content: "hi")], addGenerationPrompt: false, defaultSystem: true),
                       "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
                           + "<|im_start|>user\nhi<|im_end|>\n")
    }

    /// Zephyr (TinyLlama) and Llama 3 templates against jinja2 (Llama 3 rendered with an empty
    /// bos_token: our `encode` adds BOS itself).
    func testOtherTemplateFamiliesMatchJinja2() throws {
        let golden = try TokenizerGolden.load()
        XCTAssertGreaterThanOrEqual(golden.templates.count, 20)
        for c in golden.templates {
            let t = ChatTemplate(source: c.source, eosText: c.eos_token)
            XCTAssertEqual(t.form.rawValue, c.form)
            XCTAssertFalse(t.isFallback)
            XCTAssertNil(t.defaultSystemPrompt)
            for defaultSystem in [true, false] {
                XCTAssertEqual(t.render(c.messages, addGenerationPrompt: c.add_generation_prompt, defaultSystem: defaultSystem),
                               c.expected, "\(c.form) \(c.name) agp=\(c.add_generation_prompt)")
            }
        }
    }

    /// The templates' trim keeps exactly what Foundation's `whitespacesAndNewlines` trim kept
    /// (stored prefixes were rendered with it): every scalar of the BMP at either end, and
    /// strings drawn from whitespace, letters and marks.
    func testTrimMatchesFoundation() {
        for v in UInt32(0)...0xFFFF {
            guard let c = Unicode.Scalar(v) else { continue }
            for text in ["\(c)a\(c)", "\(c)", "a\(c)\(c)b", "\(c)\u{301}x"] {
                XCTAssertEqual(trimmedWhitespace(text), text.trimmingCharacters(in: .whitespacesAndNewlines),
                               "U+\(String(v, radix: 16))")
            }
        }
        var rng = SystemRandomNumberGenerator()
        let alphabet: [Character] = [" ", "\t", "\n", "\r", "\u{85}", "\u{A0}", "\u{2028}", "\u{3000}", "\u{200B}",
                                     "\u{FEFF}", "a", "é", "\u{301}", "日", "🙂", "\r\n"]
        for _ in 0..<2000 {
            let text = String((0..<Int.random(in: 0...8, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            XCTAssertEqual(trimmedWhitespace(text), text.trimmingCharacters(in: .whitespacesAndNewlines), "\(Array(text.unicodeScalars))")
        }
    }

    /// Gemma 3's form, as its template (google/gemma-3 tokenizer_config.json, without the
    /// leading bos_token that `encode` adds) renders: no system role, so the system text and a
    /// blank line open the first user turn; contents trimmed; `model` for the assistant.
    func testGemmaForm() {
        let t = ChatTemplate(source: "{{ bos_token }}{%- for message in loop_messages -%}{{ '<start_of_turn>' + role }}")
        XCTAssertEqual(t.form, .gemma)
        XCTAssertFalse(t.hasSystemRole)
        let messages = [ChatMessage(role: "system", content: "Doc text.\n"), ChatMessage(role: "user", content: " Why? "),
                        ChatMessage(role: "assistant", content: "Because."), ChatMessage(role: "user", content: "OK")]
        XCTAssertEqual(t.render(messages, addGenerationPrompt: true, defaultSystem: true),
                       "<start_of_turn>user\nDoc text.\n\n\nWhy?<end_of_turn>\n<start_of_turn>model\nBecause.<end_of_turn>\n"
                           + "<start_of_turn>user\nOK<end_of_turn>\n<start_of_turn>model\n")
        XCTAssertEqual(t.render([ChatMessage(role: "user", content: "Hi")], addGenerationPrompt: false, defaultSystem: true),
                       "<start_of_turn>user\nHi<end_of_turn>\n")
    }

    /// The prefix precomputed for a document sent as the system message is the start of every
    /// chat that opens with it, with and without a system role; its content stays content.
    func testSystemPrefixStartsEveryChatWithThatSystemMessage() {
        let gemma = ChatTemplate(source: "{{ bos_token }}{%- for message in loop_messages -%}{{ '<start_of_turn>' + role }}")
        let chatml = ChatTemplate(source: "{% for message in messages %}<|im_start|>{{ message['role'] }}")
        let doc = "Doc text <start_of_turn>.\n"
        for t in [gemma, chatml] {
            let prefix = t.renderSystemPrefix(doc, defaultSystem: true)
            let chat = t.renderMarked([ChatMessage(role: "system", content: doc), ChatMessage(role: "user", content: "Why?")],
                                      addGenerationPrompt: true, defaultSystem: true)
            XCTAssertTrue(chat.text.hasPrefix(prefix.text), "\(t.form): \(prefix.text)")
            XCTAssertTrue(prefix.text.contains("Doc text"))
            let (p, c) = (prefix.contentRanges.first!, chat.contentRanges.first!)
            XCTAssertEqual(p.lowerBound, c.lowerBound, "the document is content in both")
            XCTAssertEqual(p.count, t.hasSystemRole ? c.count : doc.utf8.count + 2)
        }
        XCTAssertEqual(gemma.renderSystemPrefix(doc, defaultSystem: true).text, "<start_of_turn>user\n" + doc + "\n\n")
    }
}
