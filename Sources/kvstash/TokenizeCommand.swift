import ArgumentParser
import Foundation
import KVStashEngine

/// `kvstash tokenize`: token ids of a text with the model's own tokenizer, or a throughput run.
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Print the token ids of a text (or of a file) using the model's tokenizer.")

    @Option(help: "GGUF model path or short name (smollm2, gemma3) (default: $KVSTASH_MODEL, else the cached SmolLM2-135M-Instruct).")
    var model: String?

    @Option(help: "Read the text from this file instead of the argument.")
    var file: String?

    @Flag(help: "Tokenize special-token text such as <|im_start|> as plain text.")
    var noSpecial = false

    @Flag(help: "Wrap the text as one user turn with the model's chat template first.")
    var chat = false

    @Flag(help: "Print JSON: ids, pieces, and counts.")
    var json = false

    @Option(help: "Encode the text this many times and report MB/s (throughput run).")
    var bench: Int?

    @Option(help: "With --bench: encode this file once before the timed runs (warm caches, another text).")
    var prime: String?

    @Flag(name: .customLong("warm-up"), help: "With --bench: run the tokenizer's warm-up first (its frequent words, as serve does at start).")
    var warmUp = false

    @Argument(help: "The text.")
    var text: String?

    func run() throws {
        let path = model.map(DefaultModel.resolve) ?? DefaultModel.path
        let gguf = try GGUFFile(path: path)
        let loadStart = Date()
        let tok = try Tokenizer(gguf: gguf)
        let loadSeconds = Date().timeIntervalSince(loadStart)
        var input: String
        if let file {
            input = try String(contentsOfFile: file, encoding: .utf8)
        } else if let text {
            input = text
        } else {
            throw ValidationError("give a text or --file")
        }
        if chat {
            input = try ChatTemplate(gguf: gguf).render([ChatMessage(role: "user", content: input)],
                                                        addGenerationPrompt: true, defaultSystem: true)
        }
        if let n = bench {
            try runBench(tok, input, max(n, 1), loadSeconds)
            return
        }
        let ids = tok.encode(input, parseSpecial: !noSpecial)
        if json {
            let out: [String: Any] = ["ids": ids, "count": ids.count, "pieces": ids.map { tok.tokenText($0) }]
            let data = try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(ids.map(String.init).joined(separator: " "))
        }
    }

    private func runBench(_ tok: Tokenizer, _ input: String, _ n: Int, _ loadSeconds: Double) throws {
        let bytes = input.utf8.count
        if warmUp { tok.warmUp() }
        if let prime { _ = tok.encode(try String(contentsOfFile: prime, encoding: .utf8), parseSpecial: !noSpecial) }
        var tokens = 0
        var times: [Double] = []
        for _ in 0..<n {
            let t0 = Date()
            tokens = tok.encode(input, parseSpecial: !noSpecial).count
            times.append(Date().timeIntervalSince(t0))
        }
        let best = times.min() ?? 0
        let result: [String: Any] = [
            "bytes": bytes, "tokens": tokens, "runs": n, "best_seconds": best,
            "first_seconds": times[0], "median_seconds": times.sorted()[n / 2],
            "mb_per_s": Double(bytes) / best / 1e6, "tokens_per_s": Double(tokens) / best,
            "load_seconds": loadSeconds, "pre_tokenizer": tok.preTokenizer,
        ]
        let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}
