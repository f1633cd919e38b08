import ArgumentParser

@main
struct KVStashCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvstash", abstract: "Persist, share and reuse LLM prefix KV caches.",
        subcommands: [
            AdminList.self,
            AdminStats.self,
            AdminInspect.self,
            AdminEvict.self,
            AdminPin.self,
            AdminUnpin.self,
            AdminVerify.self,
            AdminCompact.self,
            Generate.self,
            TokenizeCommand.self,
            PrecomputeCommand.self,
            QueryCommand.self,
            ServeCommand.self,
        ])
}
