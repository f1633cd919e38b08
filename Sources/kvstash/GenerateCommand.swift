import ArgumentParser
import Foundation
import KVStashEngine

/// `kvstash generate`: plain generation from a prompt (no cache reuse), streamed to stdout.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text from a prompt, streaming it to stdout; timings go to stderr.")

    @Option(help: "GGUF model (default: $KVSTASH_MODEL or ~/.cache/kvstash/models/\(DefaultModel.fileName)).")
    var model: String?

    @Flag(help: "Wrap the prompt as a user turn with the model's chat template.")
    var chat = false

    @Flag(name: .customLong("no-system"), help: "With --chat: no default system turn (a bare user turn).")
    var noSystem = false

    @Option(name: .short, help: "Maximum number of tokens to generate.")
    var n = 128

    @Option(help: "Sampling temperature (0 = greedy).")
    var temp: Float = 0

    @Option(name: .customLong("top-k"), help: "Keep the K most likely tokens (0 = all).")
    var topK = 0

    @Option(name: .customLong("top-p"), help: "Nucleus sampling mass (1 = off).")
    var topP: Float = 1

    @Option(help: "Random seed for sampling.")
    var seed: UInt64 = 0

    @Option(help: "BLAS threads (default: OpenBLAS's choice).")
    var threads: Int?

    @Argument(help: "The prompt.")
    var prompt: String

    func validate() throws {
        guard n >= 0 else { throw ValidationError("-n must be >= 0") }
        guard temp >= 0, topK >= 0, topP > 0, topP <= 1 else { throw ValidationError("bad sampling parameters") }
        if let threads, threads < 1 { throw ValidationError("--threads must be >= 1") }
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
        if let threads { setThreads(threads) }
        let path = model ?? DefaultModel.path
        guard FileManager.default.fileExists(atPath: path) else {
            throw ValidationError("model file not found: \(path) (run scripts/setup.sh, or pass --model PATH)")
        }
        let llm = try LlamaModel(path: path)
        let tokenizer = try Tokenizer(gguf: llm.gguf)
        var text = prompt
        if chat {
            text = try ChatTemplate(gguf: llm.gguf).render([ChatMessage(role: "user", content: prompt)],
                                                           addGenerationPrompt: true, defaultSystem: !noSystem)
        }
        var ids = tokenizer.encode(text)
        if !chat, let bos = tokenizer.bosToken { ids.insert(bos, at: 0) }
        let run = GenerationRun(model: llm, tokenizer: tokenizer,
                                sampling: SamplingParams(temperature: temp, topK: topK, topP: topP, seed: seed))
        let stats = try run.generate(prompt: ids, maxTokens: n) { piece in
            FileHandle.standardOutput.write(Data(piece.utf8))
        }
        FileHandle.standardOutput.write(Data("\n".utf8))
        FileHandle.standardError.write(Data((stats.summary + "\n").utf8))
    }
}
