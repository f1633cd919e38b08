import ArgumentParser

@main
struct KVStashCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kvstash", abstract: "Persist, share and reuse LLM prefix KV caches.",
        subcommands: [
            TokenizeCommand.self,
        ])
}
