import Foundation

/// Where the default model lives: the one resolver of the model path every command, test
/// and benchmark uses when no `--model` is given.
public enum DefaultModel {
    /// File name of the default model (SmolLM2-135M-Instruct, Q4_1).
    public static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"

    /// `$KVSTASH_CACHE_DIR/models/<fileName>`, where `$KVSTASH_CACHE_DIR` defaults to
    /// `$XDG_CACHE_HOME/kvstash`, then `~/.cache/kvstash` (as scripts/setup.sh fetches it).
    public static var cachePath: String { cachedModel(fileName) }

    /// `$KVSTASH_CACHE_DIR/models/<file>`: where scripts/setup.sh puts the models it fetches.
    public static func cachedModel(_ file: String) -> String {
        let cache = env("KVSTASH_CACHE_DIR") ?? ((env("XDG_CACHE_HOME") ?? NSHomeDirectory() + "/.cache") + "/kvstash")
        return cache + "/models/" + file
    }

    /// Short names `--model` takes for the models scripts/setup.sh fetches: the file name in
    /// the model cache, and the environment variable that overrides its path.
    public static let shortNames: [String: (file: String, env: String)] = [
        "smollm2": (fileName, "KVSTASH_MODEL"),
        "gemma3": ("gemma-3-270m-q4_k_m.gguf", "KVSTASH_GEMMA3_MODEL"),
    ]

    /// The model path `name` stands for: a short name's `$env` or cached file, else `name` itself.
    public static func resolve(_ name: String) -> String {
        guard let short = shortNames[name] else { return name }
        return env(short.env) ?? cachedModel(short.file)
    }

    /// Where to look, in order: `$KVSTASH_MODEL` if set, then `cachePath`.
    public static var searchPaths: [String] { [env("KVSTASH_MODEL"), cachePath].compactMap { $0 } }

    /// `$KVSTASH_MODEL` if set, else `cachePath`.
    public static var path: String { env("KVSTASH_MODEL") ?? cachePath }

    private static func env(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }
}
