import Foundation
import XCTest
@testable import KVStashServer

/// A strict reader of the Prometheus text format (version 0.0.4): every sample belongs to a
/// family declared by `# TYPE`, values are numbers, histograms are cumulative.
struct Exposition {
    struct Sample: Hashable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    var types: [String: String] = [:]
    var samples: [Sample] = []

    init(_ text: String) throws {
        for line in text.split(separator: "\n").map(String.init) where !line.isEmpty {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                guard parts.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3])
                else { throw Failure("bad TYPE line: \(line)") }
                types[String(parts[2])] = String(parts[3])
            } else if line.hasPrefix("#") {
                continue
            } else {
                samples.append(try Self.sample(line))
            }
        }
        for s in samples where family(of: s.name) == nil { throw Failure("sample \(s.name) has no # TYPE") }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    private static func sample(_ line: String) throws -> Sample {
        let pattern = #"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? ([^ ]+)$"#
        let regex = try NSRegularExpression(pattern: pattern)
        let ns = line as NSString
        guard let m = regex.firstMatch(in: line, range: NSRange(location: 0, length: ns.length)) else {
            throw Failure("unparseable sample line: \(line)")
        }
        let name = ns.substring(with: m.range(at: 1))
        var labels: [String: String] = [:]
        if m.range(at: 3).location != NSNotFound {
            let labelRegex = try NSRegularExpression(pattern: #"([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)""#)
            let body = ns.substring(with: m.range(at: 3))
            for lm in labelRegex.matches(in: body, range: NSRange(location: 0, length: (body as NSString).length)) {
                labels[(body as NSString).substring(with: lm.range(at: 1))] = (body as NSString).substring(with: lm.range(at: 2))
            }
        }
        let raw = ns.substring(with: m.range(at: 4))
        guard let value = raw == "+Inf" ? Double.infinity : Double(raw) else { throw Failure("bad value: \(line)") }
        return Sample(name: name, labels: labels, value: value)
    }

    /// The declared family a sample name belongs to.
    func family(of name: String) -> String? {
        if types[name] != nil { return name }
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if types[base] == "histogram" || types[base] == "summary" { return base }
        }
        return nil
    }

    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { s in s.name == name && labels.allSatisfy { k, v in s.labels[k] == v } }?.value
    }

    /// Checks that every histogram's buckets are cumulative and end at `_count`.
    func checkHistograms() throws {
        for (family, type) in types where type == "histogram" {
            let buckets = samples.filter { $0.name == family + "_bucket" }
            let bounds = try buckets.map { b -> Double in
                guard let le = b.labels["le"] else { throw Failure("\(family) bucket without le") }
                return le == "+Inf" ? .infinity : Double(le) ?? .nan
            }
            let ordered = zip(bounds, buckets.map(\.value)).sorted { $0.0 < $1.0 }
            guard ordered.last?.0 == .infinity else { throw Failure("\(family) has no +Inf bucket") }
            for (a, b) in zip(ordered, ordered.dropFirst()) where a.1 > b.1 {
                throw Failure("\(family) buckets not cumulative")
            }
            guard ordered.last?.1 == value(family + "_count") else { throw Failure("\(family) +Inf != _count") }
        }
    }
}

final class MetricsTests: XCTestCase {
    func testExpositionParsesAndCountsRequests() async throws {
        let backend = FakeBackend()
        let running = try await RunningServer.start(KVStashServer(
            configuration: ServerConfiguration(port: 0), backend: backend))
        defer { Task { await running.stop() } }
        var promptTokens = 0
        for prompt in ["Hello there", "The sky is"] {
            let (status, json) = try await running.post("/v1/completions", ["prompt": prompt, "max_tokens": 3,
                                                                            "temperature": 0])
            XCTAssertEqual(status, 200)
            promptTokens += json["usage", "prompt_tokens"] as? Int ?? 0
        }
        _ = try await running.post("/v1/completions", ["prompt": "x", "n": 2])

        let (status, data) = try await running.send("GET", "/metrics")
        XCTAssertEqual(status, 200)
        let exposition = try Exposition(String(decoding: data, as: UTF8.self))
        try exposition.checkHistograms()
        XCTAssertEqual(exposition.types["kvstash_requests_total"], "counter")
        XCTAssertEqual(exposition.value("kvstash_requests_total", ["endpoint": "completions", "outcome": "ok"]), 2)
        XCTAssertEqual(exposition.value("kvstash_requests_total",
                                        ["endpoint": "completions", "outcome": "client_error"]), 1)
        XCTAssertEqual(exposition.value("kvstash_prompt_tokens_total"), Double(promptTokens))
        XCTAssertEqual(exposition.value("kvstash_cached_tokens_total", ["tier": "ram"]), 0)
        XCTAssertEqual(exposition.value("kvstash_time_to_first_token_seconds_count"), 2)
        XCTAssertEqual(exposition.types["kvstash_inter_token_latency_seconds"], "histogram")
        XCTAssertEqual(exposition.value("kvstash_active_requests"), 0)
    }
}
