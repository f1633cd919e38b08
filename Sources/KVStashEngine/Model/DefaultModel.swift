import Foundation

/// Where the default model lives.
public enum DefaultModel {
    /// File name of the default model (SmolLM2-135M-Instruct, Q4_1).
    public static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"

    /// `$KVSTASH_MODEL` if set, else `~/.cache/kvstash/models/<fileName>`
    /// (honouring `$KVSTASH_CACHE_DIR` and `$XDG_CACHE_HOME` as scripts/setup.sh does).
    public static var path: String {
        let env = ProcessInfo.processInfo.environment
        if let p = env["KVSTASH_MODEL"], !p.isEmpty { return p }
        let cache = env["KVSTASH_CACHE_DIR"].flatMap { $0.isEmpty ? nil : $0 }
            ?? ((env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory() + "/.cache") + "/kvstash")
        return cache + "/models/" + fileName
    }
}
