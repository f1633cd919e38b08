import KVStashEngine

/// How a document and a question become a prompt. Precompute stores the KV of
/// `prefix(document:)`, and `query(document:question:)` starts with exactly that text,
/// so a query's first chunks are the document's stored chunks.
public enum PromptTemplate: String, Sendable, Codable, CaseIterable {
    /// The document is the system turn; the question is the user turn (ChatML). A template
    /// without a system role (Gemma) puts the document, a blank line and the question in
    /// the first user turn.
    case chatSystem = "chat-system"
    /// The document opens the user turn (after the template's default system turn); the
    /// question follows it in the same turn.
    case chatUser = "chat-user"
    /// No template: the document, a blank line, the question.
    case raw

    /// The text whose KV is precomputed for `document`.
    public func prefix(document: String, chat: ChatTemplate) -> String {
        switch self {
        case .chatSystem:
            return chat.renderSystemPrefix(document, defaultSystem: true).text
        case .chatUser:
            let full = chat.render([ChatMessage(role: "user", content: document)],
                                   addGenerationPrompt: false, defaultSystem: true)
            return String(full.dropLast(chat.endOfTurn.count))
        case .raw:
            return document
        }
    }

    /// The full prompt of `question` about `document`; it starts with `prefix(document:)`.
    public func query(document: String, question: String, chat: ChatTemplate) -> String {
        switch self {
        case .chatSystem:
            return chat.render([ChatMessage(role: "system", content: document),
                                ChatMessage(role: "user", content: question)],
                               addGenerationPrompt: true, defaultSystem: true)
        case .chatUser:
            return chat.render([ChatMessage(role: "user", content: document + "\n\n" + question)],
                               addGenerationPrompt: true, defaultSystem: true)
        case .raw:
            return document + "\n\n" + question
        }
    }
}
