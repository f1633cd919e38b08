import ArgumentParser
import KVStashEngine

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
            AdminRepair.self,
            AdminVerify.self,
            AdminCompact.self,
            Generate.self,
            TokenizeCommand.self,
            PrecomputeCommand.self,
            QueryCommand.self,
            ServeCommand.self,
        ])

    /// Entry point. OpenBLAS picks its kernels when it loads; where it fell back to generic
    /// SSE kernels on an AVX2/AVX-512 CPU, re-execute once with a fitting
    /// `OPENBLAS_CORETYPE` (a user's own setting is always kept), then parse and run.
    static func main() async {
        BLASCore.reexecWithBetterCoreIfNeeded()
        await Self.main(nil)
    }
}
