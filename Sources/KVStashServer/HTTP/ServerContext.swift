import Hummingbird
import NIOCore

/// Request context of the KVStash server: Hummingbird's core storage plus the connection,
/// so handlers can learn when their client disconnects.
public struct ServerContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connection this request came on.
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// The connection's disconnect watcher, if the pipeline has one.
    func disconnectWatcher() async -> DisconnectWatcher? {
        try? await channel.pipeline.handler(type: DisconnectWatcher.self).get()
    }
}
