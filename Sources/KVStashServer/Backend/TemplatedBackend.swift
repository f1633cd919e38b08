import KVStashEngine

/// A backend that renders jobs through the model's chat template and tokenizer: the part
/// of `prepare` that the engine-only and the prefix-cache backends share.
public protocol TemplatedBackend: CompletionBackend {
    var tokenizer: Tokenizer { get }
    var template: ChatTemplate { get }
    /// Whether the template's default system turn is inserted (as transformers does).
    var defaultSystem: Bool { get }
}

extension TemplatedBackend {
    /// Token ids of a prompt. Raw text is tokenized as is, special-token text such as
    /// `<|im_start|>` parsed (the caller writes the whole prompt, markers included). Chat
    /// messages go through the chat template: only the template's markers are special;
    /// a message's content is plain text, so it cannot open or close turns.
    public func promptTokens(_ prompt: CompletionJob.Prompt) -> [Int] {
        switch prompt {
        case .text(let text):
            return tokenizer.encode(text, parseSpecial: true)
        case .chat(let turns):
            return chatTokens(turns, addGenerationPrompt: true)
        }
    }

    /// The prompt text of a job: raw text, or messages through the chat template.
    public func promptText(_ prompt: CompletionJob.Prompt) -> String {
        switch prompt {
        case .text(let text):
            return text
        case .chat(let turns):
            let messages = turns.map { ChatMessage(role: $0.role, content: $0.content) }
            return template.render(messages, addGenerationPrompt: true, defaultSystem: defaultSystem)
        }
    }

    /// Token ids of chat turns through the template (contents as plain text).
    public func chatTokens(_ turns: [ChatTurn], addGenerationPrompt: Bool) -> [Int] {
        let messages = turns.map { ChatMessage(role: $0.role, content: $0.content) }
        return tokenizer.encode(template.renderMarked(messages, addGenerationPrompt: addGenerationPrompt,
                                                      defaultSystem: defaultSystem))
    }

    /// Tokenizes the job and checks it fits the context.
    public func prepare(_ job: CompletionJob) async throws -> PreparedCompletion {
        let start = ContinuousClock.now
        let tokens = promptTokens(job.prompt)
        let tokenizing = ContinuousClock.now - start
        guard !tokens.isEmpty else { throw APIError.badRequest("the prompt is empty", param: "prompt") }
        let limit = try job.completionLimit(promptTokens: tokens.count, contextLength: contextLength)
        return PreparedCompletion(job: job, tokens: tokens, maxTokens: limit, tokenizing: tokenizing)
    }

    /// The job's sampling settings (a random seed when the client gave none).
    func samplingParams(_ job: CompletionJob) -> SamplingParams {
        SamplingParams(temperature: Float(job.temperature), topK: job.topK, topP: Float(job.topP),
                       seed: job.seed ?? UInt64.random(in: 0...UInt64.max))
    }
}
