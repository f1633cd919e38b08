// GET throughput of multi-megabyte values through KVStashRedis against `redis-benchmark` (the
// C client shipped with Redis) on the same node, value size and machine, in one run.
// Run under scripts/redis-test-servers.sh (it exports KVSTASH_REDIS_NODE and
// KVSTASH_REDIS_PASSWORD); writes bench/results/redis.json (or the path in argv[1]).
import Foundation
import KVStashRedis
import NIOCore

struct Row: Codable {
    var valueBytes: Int
    var gets: Int
    var redisBenchmarkMBps: Double
    var clientSequentialMBps: Double
    var clientPipelined8MBps: Double
    var tierGetMBps: Double
    var sequentialRatio: Double
    var pipelinedRatio: Double
}

struct Report: Codable {
    var machine: String
    var redisVersion: String
    var date: String
    var note: String
    var rows: [Row]
}

func environment(_ name: String) -> String {
    guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
        FileHandle.standardError.write(Data("\(name) is not set: run under scripts/redis-test-servers.sh\n".utf8))
        exit(2)
    }
    return value
}

func machine() -> String {
    let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
        .map { String($0.split(separator: ":", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces) } ?? "unknown"
    return "\(model), \(ProcessInfo.processInfo.activeProcessorCount) cores"
}

/// Requests per second of GET from `redis-benchmark -t set,get` (one connection, no pipelining).
func redisBenchmarkGetsPerSecond(node: RedisAddress, password: String, size: Int, gets: Int) throws -> Double {
    let process = Process()
    let output = Pipe()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-benchmark")
    process.arguments = ["-h", node.host, "-p", "\(node.port)", "-a", password, "-t", "set,get", "-n", "\(gets)",
                         "-d", "\(size)", "-c", "1", "-P", "1", "--csv"]
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    for line in text.split(separator: "\n") where line.hasPrefix("\"GET\"") {
        let fields = line.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
        if fields.count > 1, let rps = Double(fields[1]) { return rps }
    }
    throw RedisError.unexpectedReply(node, command: "redis-benchmark", text)
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func measure(node address: RedisAddress, password: String, size: Int, gets: Int) async throws -> Row {
    let options = RedisConnectionOptions(password: password, commandTimeout: .seconds(30),
                                         limits: RESPLimits(maxBulkLength: 64 << 20))
    let node = RedisNode(address: address, options: options)
    let value = (0..<size).map { UInt8(truncatingIfNeeded: ($0 &* 2654435761) >> 7) }
    let key = "kvstash:bench:\(size)"
    _ = try await node.send(RESPCommand([ByteBuffer(string: "SET"), ByteBuffer(string: key), ByteBuffer(bytes: value)]))
    let get = RESPCommand("GET", key)
    for _ in 0..<5 { _ = try await node.send(get) }

    let clock = ContinuousClock()
    let sequential = try await clock.measure {
        for _ in 0..<gets {
            guard case .bulkString(let buffer) = try await node.send(get), buffer.readableBytes == size else {
                throw RedisError.unexpectedReply(address, command: "GET", "wrong value")
            }
        }
    }
    let pipelined = try await clock.measure {
        for _ in 0..<(gets / 8) {
            for reply in await node.pipeline(Array(repeating: get, count: 8)) {
                guard case .bulkString(let buffer) = try reply.get(), buffer.readableBytes == size else {
                    throw RedisError.unexpectedReply(address, command: "GET", "wrong value")
                }
            }
        }
    }
    let tier = RedisChunkTier(client: node, options: RedisChunkTierOptions(namespace: "kvstash:bench:tier:"))
    let chunkKey = Array("\(size)".utf8)
    try await tier.put(chunkKey, value: value)
    let tiered = try await clock.measure {
        for _ in 0..<gets {
            guard try await tier.get(chunkKey)?.count == size else {
                throw RedisError.unexpectedReply(address, command: "GET", "wrong value")
            }
        }
    }
    try await tier.discard(chunkKey)
    let baseline = try redisBenchmarkGetsPerSecond(node: address, password: password, size: size, gets: gets) * Double(size) / 1e6
    let mb = Double(size) * Double(gets) / 1e6
    let pipelinedMB = Double(size) * Double(gets / 8 * 8) / 1e6
    return Row(valueBytes: size, gets: gets, redisBenchmarkMBps: baseline,
               clientSequentialMBps: mb / seconds(sequential), clientPipelined8MBps: pipelinedMB / seconds(pipelined),
               tierGetMBps: mb / seconds(tiered), sequentialRatio: mb / seconds(sequential) / baseline,
               pipelinedRatio: pipelinedMB / seconds(pipelined) / baseline)
}

let address = RedisAddress(environment("KVSTASH_REDIS_NODE"))!
let password = environment("KVSTASH_REDIS_PASSWORD")
let output = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "bench/results/redis.json"
// Value sizes of one 256-token SmolLM2-135M chunk: int4 G=64 and f16 (docs/benchmarks.md "Store").
var rows: [Row] = []
for (size, gets) in [(1_658_880, 400), (5_898_240, 160)] {
    let row = try await measure(node: address, password: password, size: size, gets: gets)
    print(String(format: "%9d B  redis-benchmark %7.0f MB/s  client %7.0f MB/s (x%.2f)  pipelined-8 %7.0f MB/s (x%.2f)  tier %7.0f MB/s",
                 row.valueBytes, row.redisBenchmarkMBps, row.clientSequentialMBps, row.sequentialRatio,
                 row.clientPipelined8MBps, row.pipelinedRatio, row.tierGetMBps))
    rows.append(row)
}
let info = try await RedisNode(address: address, options: RedisConnectionOptions(password: password))
    .send(RESPCommand("INFO", "server")).string ?? ""
let version = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("redis_version:") }.map { String($0.dropFirst(14)) } ?? "?"
let report = Report(machine: machine(), redisVersion: version, date: ISO8601DateFormatter().string(from: Date()),
                    note: "one connection each, loopback, server and client on the same 2 cores; MB = 1e6 bytes",
                    rows: rows)
let encoder = JSONEncoder()
encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
try encoder.encode(report).write(to: URL(fileURLWithPath: output))
print("wrote \(output)")
