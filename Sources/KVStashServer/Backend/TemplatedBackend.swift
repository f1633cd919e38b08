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

    /// Tokenizes the job (special tokens such as `<|im_start|>` parsed as single tokens, as
    /// llama.cpp does for chat prompts) and checks it fits the context.
    public func prepare(_ job: CompletionJob) async throws -> PreparedCompletion {
        let tokens = tokenizer.encode(promptText(job.prompt), parseSpecial: true)
        guard !tokens.isEmpty else { throw APIError.badRequest("the prompt is empty", param: "prompt") }
        let limit = try job.completionLimit(promptTokens: tokens.count, contextLength: contextLength)
        return PreparedCompletion(job: job, tokens: tokens, maxTokens: limit)
    }

    /// The job's sampling settings (a random seed when the client gave none).
    func samplingParams(_ job: CompletionJob) -> SamplingParams {
        SamplingParams(temperature: Float(job.temperature), topK: job.topK, topP: Float(job.topP),
                       seed: job.seed ?? UInt64.random(in: 0...UInt64.max))
    }
}
