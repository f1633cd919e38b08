import ArgumentParser
import Foundation
import KVStashEngine

/// `kvstash generate`: plain generation from a prompt (no cache reuse), streamed to stdout.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text from a prompt, streaming it to stdout; timings go to stderr.")

    @Option(help: "GGUF model path or short name (smollm2, gemma3) (default: $KVSTASH_MODEL or ~/.cache/kvstash/models/\(DefaultModel.fileName)).")
    var model: String?

    @Flag(help: "Wrap the prompt as a user turn with the model's chat template.")
    var chat = false

    @Flag(name: .customLong("no-system"), help: "With --chat: no default system turn (a bare user turn).")
    var noSystem = false

    @Option(name: .short, help: "Maximum number of tokens to generate.")
    var n = 128

    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var engine: PrefillInputOptions

    @Argument(help: "The prompt.")
    var prompt: String

    func validate() throws {
        guard n >= 0 else { throw ValidationError("-n must be >= 0") }
    }

    func run() throws {
        do {
            try generate()
        } catch {
            FileHandle.standardError.write(Data("kvstash generate: error: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    private func generate() throws {
        sampling.applyThreads()
        let path = model.map(DefaultModel.resolve) ?? DefaultModel.path
        guard FileManager.default.fileExists(atPath: path) else {
            throw ValidationError("model file not found: \(path) (run scripts/setup.sh, or pass --model PATH)")
        }
        let llm = try LlamaModel(path: path, prefillInputs: engine.resolved(nil))
        let tokenizer = try Tokenizer(gguf: llm.gguf)
        var text = prompt
        if chat {
            text = try ChatTemplate(gguf: llm.gguf).render([ChatMessage(role: "user", content: prompt)],
                                                           addGenerationPrompt: true, defaultSystem: !noSystem)
        }
        var ids = tokenizer.encode(text)
        if !chat, let bos = tokenizer.bosToken { ids.insert(bos, at: 0) }
        let run = GenerationRun(model: llm, tokenizer: tokenizer,
                                sampling: sampling.params)
        let stats = try run.generate(prompt: ids, maxTokens: n) { piece in
            FileHandle.standardOutput.write(Data(piece.utf8))
        }
        FileHandle.standardOutput.write(Data("\n".utf8))
        FileHandle.standardError.write(Data((stats.summary + "\n").utf8))
    }
}
