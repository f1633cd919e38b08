import ArgumentParser
import Foundation
import KVStash
import KVStashCodec
import KVStashEngine
import KVStashStore
import Synchronization

/// Helpers shared by `precompute` and `query`.
enum RequestCLI {
    /// The model: `--model` (a path or a short name such as `gemma3`), else the store's
    /// settings, else the first existing of `DefaultModel.searchPaths` (`$KVSTASH_MODEL`,
    /// the default model's cache path).
    static func modelPath(_ given: String?, settings: StoreSettings?) throws -> String {
        let candidates = [given.map(DefaultModel.resolve), settings?.modelPath].compactMap { $0 } + DefaultModel.searchPaths
        guard let path = candidates.first(where: { !$0.isEmpty && FileManager.default.fileExists(atPath: $0) }) else {
            throw ValidationError("no model found: pass --model PATH, set KVSTASH_MODEL, or run scripts/setup.sh")
        }
        return URL(fileURLWithPath: path).standardizedFileURL.path
    }

    static func codec(_ name: String) throws -> KVCodec {
        guard let codec = KVCodec(name: name) else {
            throw ValidationError("unknown codec '\(name)' (\(KVCodec.nameList))")
        }
        return codec
    }

    static func template(_ name: String) throws -> PromptTemplate {
        guard let t = PromptTemplate(rawValue: name) else {
            throw ValidationError("unknown template '\(name)' (chat-system, chat-user, raw)")
        }
        return t
    }

    /// Opens the store for writing; when another process holds it, read-only (no write-back).
    static func openStore(_ path: String, chunkSize: Int?, budget: StoreBudgetOptions) throws -> ChunkStore {
        do {
            return try ChunkStore(path: path, options: try budget.apply(to: StoreOptions(chunkSize: chunkSize)))
        } catch StoreError.locked(let p, let holder) {
            note("\(p) is in use by \(holder ?? "another process"); reading it read-only (no write-back)")
            return try ChunkStore(path: path, options: budget.reads(StoreOptions(createIfMissing: false, readOnly: true)))
        } catch let error as StoreError where error.isDiskFull {
            note("\(error); reading it read-only (no write-back)")
            return try ChunkStore(path: path, options: budget.reads(StoreOptions(createIfMissing: false, readOnly: true)))
        }
    }

    static func note(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    static func seconds(_ s: Double) -> String {
        s < 1 ? String(format: "%.0f ms", s * 1000) : s < 120 ? String(format: "%.1f s", s)
            : String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60)
    }

    static func bytes(_ n: Int) -> String {
        let units = ["B", "kB", "MB", "GB", "TB"]
        var v = Double(n), u = 0
        while v >= 1000 && u < units.count - 1 { v /= 1000; u += 1 }
        return u == 0 ? "\(n) B" : String(format: "%.1f ", v) + units[u]
    }
}

/// Turns SIGINT into a flag the precompute loop polls, so Ctrl-C finishes the current
/// chunk, records nothing half-done and closes the store cleanly. A second Ctrl-C exits.
final class InterruptFlag: Sendable {
    private let raised = Atomic<Int>(0)

    /// Installs the handler; keep the returned source alive while the flag is used.
    func install() -> any DispatchSourceSignal {
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler { [self] in
            if raised.add(1, ordering: .sequentiallyConsistent).newValue > 1 { exit(130) }
            RequestCLI.note("\ninterrupted: finishing the current chunk and closing the store (Ctrl-C again to abort)")
        }
        source.resume()
        return source
    }

    var isRaised: Bool { raised.load(ordering: .sequentiallyConsistent) > 0 }
}
