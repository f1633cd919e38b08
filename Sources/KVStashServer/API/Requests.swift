import Foundation

extension SingleValueDecodingContainer {
    /// The value as `T`, or nil when the JSON value has another type. Other faults (invalid
    /// UTF-8 in a string, a number out of range) are thrown, so the client learns what is wrong.
    func decodeIfType<T: Decodable>(_ type: T.Type) throws -> T? {
        do {
            return try decode(type)
        } catch DecodingError.typeMismatch(_, _) {
            return nil
        }
    }
}

/// `stop`: one string or an array of up to four strings.
struct StopSequences: Decodable, Sendable {
    var values: [String]

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            values = []
        } else if let one = try c.decodeIfType(String.self) {
            values = [one]
        } else {
            values = try c.decode([String].self)
        }
    }
}

/// `prompt` of `/v1/completions`: a string, or an array holding one string.
struct PromptInput: Decodable, Sendable {
    var text: String

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let one = try c.decodeIfType(String.self) {
            text = one
            return
        }
        guard let many = try c.decodeIfType([String].self) else {
            throw DecodingError.typeMismatch(String.self, .init(
                codingPath: decoder.codingPath,
                debugDescription: "prompt must be a string or an array of one string"))
        }
        guard many.count == 1 else {
            throw APIError.badRequest("only one prompt per request is supported (got \(many.count))", param: "prompt")
        }
        text = many[0]
    }
}

/// `content` of a chat message: a string, null, or an array of `{"type": "text", "text": ...}` parts.
struct MessageContent: Decodable, Sendable {
    var text: String

    private struct Part: Decodable {
        var type: String
        var text: String?
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            text = ""
        } else if let s = try c.decodeIfType(String.self) {
            text = s
        } else {
            guard let parts = try c.decodeIfType([Part].self) else {
                throw DecodingError.typeMismatch(String.self, .init(
                    codingPath: decoder.codingPath,
                    debugDescription: "content must be a string or an array of text parts"))
            }
            for part in parts where part.type != "text" {
                throw APIError.badRequest("content part type '\(part.type)' is not supported", param: "messages")
            }
            text = parts.compactMap(\.text).joined()
        }
    }
}

/// One message of `/v1/chat/completions`.
struct ChatMessageInput: Decodable, Sendable {
    var role: String
    var content: MessageContent?
}

/// `stream_options`.
struct StreamOptions: Decodable, Sendable {
    var include_usage: Bool?
}

/// Fields shared by both completion endpoints.
struct SamplingFields: Decodable, Sendable {
    var model: String?
    var max_tokens: Int?
    var max_completion_tokens: Int?
    var temperature: Double?
    var top_p: Double?
    var top_k: Int?
    var seed: Int64?
    var stop: StopSequences?
    var stream: Bool?
    var stream_options: StreamOptions?
    var n: Int?
    var cache_salt: String?
}

/// Body of `POST /v1/completions`.
struct CompletionRequest: Decodable, Sendable {
    var prompt: PromptInput
    var fields: SamplingFields

    private enum CodingKeys: String, CodingKey { case prompt }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        prompt = try c.decode(PromptInput.self, forKey: .prompt)
        fields = try SamplingFields(from: decoder)
    }
}

/// Body of `POST /v1/chat/completions`.
struct ChatRequest: Decodable, Sendable {
    var messages: [ChatMessageInput]
    var fields: SamplingFields

    private enum CodingKeys: String, CodingKey { case messages }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        messages = try c.decode([ChatMessageInput].self, forKey: .messages)
        fields = try SamplingFields(from: decoder)
    }
}

/// Body of `POST /v1/precompute`: documents as strings or `{"id", "text"}` objects.
struct PrecomputeRequest: Decodable, Sendable {
    struct Document: Decodable, Sendable {
        var id: String?
        var text: String

        init(from decoder: any Decoder) throws {
            if let s = try decoder.singleValueContainer().decodeIfType(String.self) {
                id = nil
                text = s
                return
            }
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decodeIfPresent(String.self, forKey: .id)
            text = try c.decode(String.self, forKey: .text)
        }

        private enum CodingKeys: String, CodingKey { case id, text }
    }

    var documents: [Document]
    var cache_salt: String?
}
