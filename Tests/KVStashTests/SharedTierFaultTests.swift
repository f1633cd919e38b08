import Foundation
import Glibc
import Synchronization
import XCTest
@testable import KVStash
import KVStashCodec
import KVStashEngine
@testable import KVStashRedis
import KVStashStore
import KVStashTestSupport

/// A 3-node Redis Cluster of one test (faults would disturb the shared test servers): nodes
/// started from configs in a temporary directory, stopped by the PIDs in their pid files.
final class DedicatedRedisCluster: Sendable {
    let dir: String
    let ports: [Int]

    init() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/redis-server") else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("redis-server is not installed") }
            throw XCTSkip("redis-server is not installed (scripts/redis-test-servers.sh installs it)")
        }
        dir = temporaryDirectory()
        var ports: [Int] = []
        for _ in 0..<3 { ports.append(try Self.freePort(avoiding: ports)) }
        self.ports = ports
        do {
            for port in ports { try startNode(port: port) }
            _ = try Self.run("/usr/bin/redis-cli", ["--cluster", "create"] + ports.map { "127.0.0.1:\($0)" }
                             + ["--cluster-replicas", "0", "--cluster-yes"])
            for port in ports { try waitUntil("cluster state ok on \(port)") { cli(port, "CLUSTER", "INFO").contains("cluster_state:ok") } }
        } catch {
            stop()
            throw error
        }
    }

    deinit { stop() }

    var seeds: [RedisAddress] { ports.map { RedisAddress(host: "127.0.0.1", port: $0) } }

    /// The node's PID (from its pid file), if it runs.
    func pid(_ port: Int) -> Int32? {
        (try? String(contentsOfFile: "\(dir)/node-\(port)/redis.pid", encoding: .utf8))
            .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// SIGKILLs the node (no shutdown, no goodbye to its clients).
    func kill(_ port: Int) {
        guard let pid = pid(port) else { return }
        Glibc.kill(pid, SIGKILL)
        try? FileManager.default.removeItem(atPath: "\(dir)/node-\(port)/redis.pid")
    }

    /// `redis-cli -p port ARGS...`'s output (errors included).
    @discardableResult
    func cli(_ port: Int, _ arguments: String...) -> String { cli(port, arguments) }

    @discardableResult
    func cli(_ port: Int, _ arguments: [String]) -> String {
        (try? Self.run("/usr/bin/redis-cli", ["-p", "\(port)"] + arguments)) ?? ""
    }

    /// The node holding `redisKey`.
    func owner(of redisKey: [UInt8]) -> Int? {
        let key = String(decoding: redisKey, as: UTF8.self)
        return ports.first { cli($0, "EXISTS", key).trimmingCharacters(in: .whitespacesAndNewlines) == "1" }
    }

    func stop() {
        for port in ports { kill(port) }
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func startNode(port: Int) throws {
        let nodeDir = "\(dir)/node-\(port)"
        try FileManager.default.createDirectory(atPath: nodeDir, withIntermediateDirectories: true)
        let config = ["port \(port)", "bind 127.0.0.1", "daemonize no", "pidfile \(nodeDir)/redis.pid",
                      "logfile \(nodeDir)/redis.log", "dir \(nodeDir)", "save \"\"", "appendonly no",
                      "cluster-enabled yes", "cluster-config-file nodes.conf", "cluster-node-timeout 3000",
                      "cluster-require-full-coverage no"]
        try config.joined(separator: "\n").write(toFile: "\(nodeDir)/redis.conf", atomically: true, encoding: .utf8)
        // A child of this process (not daemonized: Foundation does not reap a daemon's parent).
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        server.arguments = ["\(nodeDir)/redis.conf"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        try waitUntil("node \(port)") { cli(port, "PING").contains("PONG") }
    }

    private func waitUntil(_ what: String, _ condition: () -> Bool) throws {
        for _ in 0..<100 {
            if condition() { return }
            usleep(100_000)
        }
        throw ChunkTierError(tier: "test cluster", "timed out waiting for \(what)")
    }

    static func run(_ tool: String, _ arguments: [String]) throws -> String {
        try ChildProcess.run(tool, arguments, mergeStandardError: true).text
    }

    /// A loopback port nothing listens on, with its cluster bus port (+10000) free too.
    static func freePort(avoiding taken: [Int]) throws -> Int {
        for _ in 0..<200 {
            let port = Int.random(in: 20000..<55000)
            if !taken.contains(port) && canBind(port) && canBind(port + 10000) { return port }
        }
        throw ChunkTierError(tier: "test cluster", "no free port")
    }

    private static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

/// A shared tier that runs `hook` the first time chunk `trigger` is read, before reading it: a
/// fault injected in the middle of a request's fetch, everything else the real tier.
final class HookedTier: SharedChunkTier {
    let inner: SharedRedisTier
    let trigger: ChunkKey
    let hook: @Sendable () -> Void
    private let fired = Mutex(false)

    init(_ inner: SharedRedisTier, on trigger: ChunkKey, _ hook: @escaping @Sendable () -> Void) {
        self.inner = inner
        self.trigger = trigger
        self.hook = hook
    }

    var tierName: String { inner.tierName }
    func probe(_ keys: [ChunkKey]) -> [Bool] { inner.probe(keys) }
    func withBlock<R>(_ key: ChunkKey, deadline: ContinuousClock.Instant?, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        if key == trigger && fired.withLock({ was in defer { was = true }; return !was }) { hook() }
        return try inner.withBlock(key, deadline: deadline, body)
    }
    func putOnce(_ key: ChunkKey, value: [UInt8], meta: ChunkMeta) throws -> Bool { try inner.putOnce(key, value: value, meta: meta) }
    func reject(_ key: ChunkKey, _ problem: BlockProblem) { inner.reject(key, problem) }
    func putRecord(_ name: String, value: [UInt8]) throws { try inner.putRecord(name, value: value) }
    func record(_ name: String) throws -> [UInt8]? { try inner.record(name) }
}

/// Faults of the shared tier during requests, on a cluster of each test's own: a node killed
/// in the middle of a fetch, a node paused past the fetch deadline, a slot migrated while
/// reading (ASK, then MOVED), keys evicted (deleted between probe and read; `allkeys-lru`
/// under a small `maxmemory`). In each the answer equals the uncached one (f32, greedy), the
/// case is counted, the frontend keeps answering, and its local store loses nothing.
/// (A value damaged in Redis and wrong credentials: `SharedRedisTierTests`.)
final class SharedTierFaultTests: XCTestCase {
    struct Scenario {
        let h: SharedTierHarness
        let cluster: DedicatedRedisCluster
        let shared: SharedRedisTier
        let doc: String
        let keys: [ChunkKey]
        let pre: PrecomputeResult
        /// A document B precomputes into its own store before the fault.
        let localDoc: String
    }

    /// A dedicated cluster with `doc` precomputed on frontend A.
    func scenario(seed: UInt64) throws -> Scenario {
        let h = try SharedTierHarness()
        let cluster = try DedicatedRedisCluster()
        let shared = SharedRedisTier(RedisChunkTier(client: RedisCluster(seeds: cluster.seeds),
                                                    options: RedisChunkTierOptions(name: "shared")))
        let doc = syntheticDocument(seed: seed, words: 150)
        let (keys, pre) = try h.precomputeOnA(doc, shared: shared)
        XCTAssertGreaterThanOrEqual(keys.count, 4)
        let localDoc = syntheticDocument(seed: seed + 1000, words: 90)
        return Scenario(h: h, cluster: cluster, shared: shared, doc: doc, keys: keys, pre: pre, localDoc: localDoc)
    }

    /// Frontend B over `tier` with a document of its own in its local store (its chunk keys returned).
    func frontendB(_ s: Scenario, tier: any SharedChunkTier, fetchBudget: Duration = .milliseconds(200))
        throws -> (SharedTierHarness.Frontend, [ChunkKey]) {
        let b = try s.h.frontend(shared: tier, options: SharedTierOptions(minimumFetchBudget: fetchBudget))
        let tokens = s.h.m.documentTokens(s.localDoc)
        _ = try b.cache.precompute(tokens: tokens, id: "local", name: "local")
        b.tiers.flush()
        let keys = b.cache.keyer.chain(tokens)
        XCTAssertEqual(b.store.probe(keys), keys.map { _ in true })
        return (b, keys)
    }

    /// After the fault: B answers again (correctly: `ask` checks), and its own document is
    /// still whole in its store and read from there.
    func checkKeepsServing(_ s: Scenario, _ b: SharedTierHarness.Frontend, localKeys: [ChunkKey],
                           file: StaticString = #filePath, line: UInt = #line) throws {
        _ = try s.h.ask(b, s.doc, "What is the last word?")
        XCTAssertEqual(b.store.probe(localKeys), localKeys.map { _ in true }, "B's store lost nothing", file: file, line: line)
        let own = try s.h.ask(b, s.localDoc, "What is it about?")
        XCTAssertGreaterThanOrEqual(own.sources.disk, localKeys.count * s.h.chunkSize, file: file, line: line)
    }

    func sharedCounters(_ b: SharedTierHarness.Frontend) throws -> TierCounters {
        try XCTUnwrap(b.tiers.counters.first { $0.name == "shared" }?.counters)
    }

    func testNodeKilledDuringAFetch() throws {
        let s = try scenario(seed: 31)
        let victim = try XCTUnwrap(s.cluster.owner(of: s.shared.redis.redisKey(s.keys[1].bytes)))
        let cluster = s.cluster
        // When chunk 1 is read: its node stops answering, then is SIGKILLed 100 ms later, while
        // the reads sent to it wait (the fetch budget is long, so the kill and not the
        // deadline ends them).
        let tier = HookedTier(s.shared, on: s.keys[1]) {
            cluster.cli(victim, "CLIENT", "PAUSE", "5000", "ALL")
            Thread.detachNewThread {
                usleep(100_000)
                cluster.kill(victim)
            }
        }
        let (b, localKeys) = try frontendB(s, tier: tier, fetchBudget: .seconds(30))
        defer { try? b.store.close() }
        let r = try s.h.ask(b, s.doc, "Which town is named first?")
        let c = try sharedCounters(b)
        XCTAssertGreaterThanOrEqual(c.errors, 1, "the reads from the killed node failed, counted")
        XCTAssertEqual(c.deadlines, 0)
        XCTAssertLessThan(r.sources.shared, s.pre.tokens)
        XCTAssertNil(cluster.pid(victim))
        try checkKeepsServing(s, b, localKeys: localKeys)
    }

    func testNodePausedPastTheDeadline() throws {
        let s = try scenario(seed: 32)
        let victim = try XCTUnwrap(s.cluster.owner(of: s.shared.redis.redisKey(s.keys[1].bytes)))
        let cluster = s.cluster
        let tier = HookedTier(s.shared, on: s.keys[1]) { cluster.cli(victim, "CLIENT", "PAUSE", "1500", "ALL") }
        let (b, localKeys) = try frontendB(s, tier: tier)
        defer { try? b.store.close() }
        let r = try s.h.ask(b, s.doc, "Which town is named first?")
        let c = try sharedCounters(b)
        XCTAssertGreaterThanOrEqual(c.deadlines, 1, "the paused node's reads passed the fetch deadline")
        XCTAssertGreaterThanOrEqual(c.errors, c.deadlines)
        XCTAssertLessThan(r.sources.shared, s.pre.tokens)
        usleep(1_600_000)  // the pause ends: a new frontend takes everything from the cluster
        let fresh = try s.h.frontend(shared: s.shared)
        defer { try? fresh.store.close() }
        XCTAssertEqual(try s.h.ask(fresh, s.doc, "Which town is named first?").sources.shared, s.pre.tokens)
        try checkKeepsServing(s, b, localKeys: localKeys)
    }

    func testSlotMigratedWhileReading() throws {
        let s = try scenario(seed: 33)
        let redisKey = s.shared.redis.redisKey(s.keys[1].bytes)
        let slot = HashSlot.of(redisKey)
        let source = try XCTUnwrap(s.cluster.owner(of: redisKey))
        let target = try XCTUnwrap(s.cluster.ports.first { $0 != source })
        let id = { (port: Int) in s.cluster.cli(port, "CLUSTER", "MYID").trimmingCharacters(in: .whitespacesAndNewlines) }
        let (sourceID, targetID) = (id(source), id(target))
        // Half-way: the slot's keys moved, the slot still migrating, so the source answers ASK.
        XCTAssertTrue(s.cluster.cli(target, "CLUSTER", "SETSLOT", "\(slot)", "IMPORTING", sourceID).contains("OK"))
        XCTAssertTrue(s.cluster.cli(source, "CLUSTER", "SETSLOT", "\(slot)", "MIGRATING", targetID).contains("OK"))
        let moving = s.cluster.cli(source, "CLUSTER", "GETKEYSINSLOT", "\(slot)", "100").split(whereSeparator: \.isNewline).map(String.init)
        XCTAssertTrue(moving.contains(String(decoding: redisKey, as: UTF8.self)))
        XCTAssertTrue(s.cluster.cli(source, ["MIGRATE", "127.0.0.1", "\(target)", "", "0", "5000", "KEYS"] + moving).contains("OK"))
        let client = try XCTUnwrap(s.shared.redis.client as? RedisCluster)
        let (b, localKeys) = try frontendB(s, tier: s.shared)
        defer { try? b.store.close() }
        let asked = try s.h.ask(b, s.doc, "Which town is named first?")
        XCTAssertEqual(asked.sources.shared, s.pre.tokens, "every chunk read, chunk 1 through ASK")
        let afterAsk = try SharedRedisTier.waitResult { await client.stats }.get()
        XCTAssertGreaterThanOrEqual(afterAsk.askRedirects, 1)
        // Done: the slot belongs to the target everywhere, so the source answers MOVED.
        for port in s.cluster.ports {
            XCTAssertTrue(s.cluster.cli(port, "CLUSTER", "SETSLOT", "\(slot)", "NODE", targetID).contains("OK"))
        }
        let c = try s.h.frontend(shared: s.shared)
        defer { try? c.store.close() }
        XCTAssertEqual(try s.h.ask(c, s.doc, "Which town is named first?").sources.shared, s.pre.tokens)
        let afterMove = try SharedRedisTier.waitResult { await client.stats }.get()
        XCTAssertGreaterThanOrEqual(afterMove.movedRedirects, 1)
        XCTAssertEqual(try sharedCounters(c).errors, 0)
        try checkKeepsServing(s, b, localKeys: localKeys)
    }

    func testKeysEvictedBetweenProbeAndRead() throws {
        let s = try scenario(seed: 34)
        let shared = s.shared, gone = s.keys[2]
        let tier = HookedTier(shared, on: gone) { _ = try? SharedRedisTier.waitResult { try await shared.redis.discard(gone.bytes) }.get() }
        let (b, localKeys) = try frontendB(s, tier: tier)
        defer { try? b.store.close() }
        let r = try s.h.ask(b, s.doc, "Which town is named first?")
        let c = try sharedCounters(b)
        XCTAssertEqual(c.misses, 1, "probed present, gone when read")
        XCTAssertEqual(r.sources.shared, s.pre.tokens - s.h.chunkSize)
        try checkKeepsServing(s, b, localKeys: localKeys)
    }

    func testKeysEvictedByAllKeysLRU() throws {
        let s = try scenario(seed: 35)
        // Each node's limit just under what it uses: its next command evicts.
        for port in s.cluster.ports {
            let used = RedisChunkTier.infoFields(s.cluster.cli(port, "INFO", "memory"))["used_memory"].flatMap { Int($0) } ?? 0
            XCTAssertGreaterThan(used, 0)
            s.cluster.cli(port, "CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
            s.cluster.cli(port, "CONFIG", "SET", "maxmemory", "\(used - 1)")
        }
        let (b, localKeys) = try frontendB(s, tier: s.shared)
        defer { try? b.store.close() }
        let r = try s.h.ask(b, s.doc, "Which town is named first?")
        let stats = s.shared.stats()
        XCTAssertGreaterThanOrEqual(stats.nodes.compactMap(\.evictedKeys).reduce(0, +), 1, "evictions counted by the nodes")
        XCTAssertTrue(stats.nodes.allSatisfy { $0.maxMemoryPolicy == "allkeys-lru" })
        XCTAssertLessThan(r.sources.shared, s.pre.tokens, "evicted chunks recomputed")
        try checkKeepsServing(s, b, localKeys: localKeys)
    }
}
