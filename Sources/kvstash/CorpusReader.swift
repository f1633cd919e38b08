import Foundation

/// One document of a corpus to precompute.
struct CorpusDocument {
    var id: String
    var name: String
    /// Reads the text (files are read only when their turn comes).
    var text: () throws -> String
}

/// Lists the documents of precompute's PATH arguments: plain files, directories
/// (recursive, filtered by `--include` globs on the file name, hidden entries skipped),
/// and JSONL files of `{"id": ..., "text": ...}` objects (one document per line).
enum CorpusReader {
    static func documents(_ paths: [String], include: [String]) throws -> [CorpusDocument] {
        var docs: [CorpusDocument] = []
        for path in paths {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
                throw CorpusError("no such file or directory: \(path)")
            }
            if isDir.boolValue {
                for file in try files(under: path) where matches(file, include) {
                    docs += try fileDocuments(file)
                }
            } else {
                docs += try fileDocuments(path)
            }
        }
        return docs
    }

    private static func files(under dir: String) throws -> [String] {
        let url = URL(fileURLWithPath: dir)
        guard let e = FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey],
                                                     options: [.skipsHiddenFiles]) else { return [] }
        var out: [String] = []
        for case let f as URL in e where (try? f.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true {
            let rel = String(f.path.dropFirst(url.path.count)).drop { $0 == "/" }
            out.append(dir.hasSuffix("/") ? dir + rel : dir + "/" + rel)
        }
        return out.sorted()
    }

    private static func matches(_ path: String, _ globs: [String]) -> Bool {
        guard !globs.isEmpty else { return true }
        let name = (path as NSString).lastPathComponent
        return globs.contains { fnmatch($0, name, 0) == 0 || fnmatch($0, path, 0) == 0 }
    }

    private static func fileDocuments(_ path: String) throws -> [CorpusDocument] {
        guard path.hasSuffix(".jsonl") else {
            return [CorpusDocument(id: path, name: path) { try String(contentsOfFile: path, encoding: .utf8) }]
        }
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: true)
        return try lines.enumerated().map { n, line in
            struct Entry: Decodable { var id: String?; var text: String }
            guard let e = try? JSONDecoder().decode(Entry.self, from: Data(line.utf8)) else {
                throw CorpusError("\(path):\(n + 1): not a JSON object with a \"text\" field")
            }
            let id = e.id ?? "\(path):\(n + 1)"
            return CorpusDocument(id: id, name: "\(path):\(n + 1)") { e.text }
        }
    }
}

struct CorpusError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A one-line progress bar on stderr: documents, tokens/s, ETA.
struct ProgressBar {
    let total: Int
    let enabled: Bool
    private let start = ContinuousClock.now
    private var lastDraw = ContinuousClock.now - .seconds(1)

    init(total: Int, enabled: Bool) {
        self.total = total
        self.enabled = enabled
    }

    mutating func draw(docs: Int, tokens: Int, force: Bool = false) {
        guard enabled, force || ContinuousClock.now - lastDraw > .milliseconds(200) else { return }
        lastDraw = .now
        let elapsed = max(Self.seconds(ContinuousClock.now - start), 1e-3)
        let width = 24
        let filled = total == 0 ? width : width * docs / total
        let eta = docs == 0 ? "?" : RequestCLI.seconds(elapsed / Double(docs) * Double(total - docs))
        let line = "\r[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            + "\(docs)/\(total) docs | \(tokens) tokens | \(Int(Double(tokens) / elapsed)) tok/s | ETA \(eta)   "
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}
