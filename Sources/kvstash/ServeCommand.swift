import ArgumentParser
import Foundation
import KVStash
import KVStashServer
import KVStashStore

/// `kvstash serve`: the OpenAI-compatible HTTP server over the request path.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the model over an OpenAI-compatible HTTP API, with admin endpoints and Prometheus metrics.")

    @Option(name: .long, help: "Store directory (created if missing).")
    var store: String

    @Option(name: .long, help: "GGUF model (default: the store's, $KVSTASH_MODEL, or the default model).")
    var model: String?

    @Option(name: .long, help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(name: .long, help: "Port to bind (0 picks a free port).")
    var port = 8080

    @Option(name: .long, help: "Bearer token of /admin/* (default: $KVSTASH_ADMIN_TOKEN; none closes the admin API).")
    var adminToken: String?

    @Option(name: .long, help: "Codec of chunks written to the store: f32, f16, int8, int4.")
    var codec = "int8"

    @OptionGroup var budget: StoreBudgetOptions

    @Option(name: .long, help: "Byte budget of the RAM tier (radix tree) in MiB.")
    var ramBudgetMB = 1024

    @Option(name: .long, help: "Largest request body in bytes.")
    var maxBody = 4 << 20

    @Flag(name: .long, help: "Render chats without the template's default system turn.")
    var noDefaultSystem = false

    func run() async throws {
        let modelPath = try RequestCLI.modelPath(model, settings: StoreSettings.load(storePath: store))
        let chunkStore = try ChunkStore(path: store, options: try budget.apply(to: StoreOptions()))
        defer { try? chunkStore.close() }
        let options = PrefixCacheOptions(codec: try RequestCLI.codec(codec), ramBudgetBytes: ramBudgetMB << 20)
        let backend = try PrefixCacheBackend(modelPath: modelPath, store: chunkStore, options: options,
                                             defaultSystem: !noDefaultSystem)
        let token = adminToken ?? ProcessInfo.processInfo.environment["KVSTASH_ADMIN_TOKEN"]
        let config = ServerConfiguration(host: host, port: port, adminToken: token, maxBodyBytes: maxBody)
        let server = KVStashServer(configuration: config, backend: backend, admin: ChunkStoreAdmin(store: chunkStore))
        let (host, modelID) = (self.host, backend.modelID)
        try await server.run { port in
            // One parseable line, so scripts (and the tests) can learn the port.
            FileHandle.standardOutput.write(Data("kvstash serving \(modelID) on http://\(host):\(port)\n".utf8))
        }
    }
}
