import Foundation
import NIOCore
import XCTest
@testable import KVStash
import KVStashCodec
import KVStashEngine
@testable import KVStashRedis
import KVStashStore

/// The request path over the real Redis Cluster of scripts/redis-test-servers.sh: two
/// frontends with separate local stores share it; a value damaged in Redis, wrong
/// credentials and an unreachable tier leave every answer correct and are counted.
final class SharedRedisTierTests: XCTestCase {
    /// The variable's value. Missing: a failure under CI=true, a skip otherwise.
    func environment(_ name: String) throws -> String {
        let env = ProcessInfo.processInfo.environment
        if let value = env[name], !value.isEmpty { return value }
        if env["CI"] == "true" { XCTFail("\(name) is not set: run through scripts/test.sh") }
        throw XCTSkip("\(name) is not set: run under scripts/redis-test-servers.sh (scripts/test.sh does)")
    }

    /// The test cluster as a shared tier, under a namespace of this test run.
    func clusterTier() throws -> SharedRedisTier {
        let url = try RedisTierURL(parsing: "redis://" + environment("KVSTASH_REDIS_CLUSTER"))
        let client = RedisCluster(seeds: url.nodes)
        let options = RedisChunkTierOptions(name: "shared", namespace: "kvstash:test-\(UUID().uuidString):")
        return SharedRedisTier(RedisChunkTier(client: client, options: options))
    }

    func testTwoFrontendsShareOneCluster() throws {
        let h = try SharedTierHarness()
        let shared = try clusterTier()
        let doc = syntheticDocument(seed: 21, words: 150)
        let (keys, pre) = try h.precomputeOnA(doc, shared: shared)
        let b = try h.frontend(shared: shared)
        defer { try? b.store.close() }
        let cold = try h.ask(b, doc, "What is the document about?")
        XCTAssertEqual(cold.sources.shared, pre.tokens)
        XCTAssertEqual(b.store.probe(keys), keys.map { _ in true }, "copied into B's store")
        XCTAssertEqual(shared.redis.counters.hits, keys.count + 1)
    }

    func testValueDamagedInRedisIsRecomputedAndRemoved() throws {
        let h = try SharedTierHarness()
        let shared = try clusterTier()
        let doc = syntheticDocument(seed: 22, words: 150)
        let (keys, pre) = try h.precomputeOnA(doc, shared: shared)
        // Overwrite chunk 1 in Redis directly (no NX) with a copy that has one byte flipped.
        let redisKey = shared.redis.redisKey(keys[1].bytes)
        var value = try XCTUnwrap(try waitFor { try await shared.redis.get(keys[1].bytes) })
        value[value.count / 2] ^= 0x5A
        let damaged = value
        let set = try waitFor {
            await shared.redis.client.execute(RESPCommand([ByteBuffer(string: "SET"), ByteBuffer(bytes: redisKey),
                                                           ByteBuffer(bytes: damaged)]), key: redisKey)
        }
        guard case .success(.simpleString("OK")) = set else { return XCTFail("SET: \(set)") }
        let b = try h.frontend(shared: shared)
        defer { try? b.store.close() }
        let r = try h.ask(b, doc, "Which town is named first?")
        XCTAssertEqual(r.sources.corruptChunks, 1)
        // The chunks after the damaged one are kept from their one read.
        XCTAssertEqual(r.sources.shared, pre.tokens - h.chunkSize)
        XCTAssertEqual(r.sources.disk, 0)
        let counters = try XCTUnwrap(b.tiers.counters.first { $0.name == "shared" }?.counters)
        XCTAssertEqual(counters.fetches, keys.count + 1, "every chunk and the tail read once")
        XCTAssertEqual(counters.hits, keys.count, "all but the damaged one")
        XCTAssertEqual(shared.probe([keys[1]]), [false] , "the damaged value was unlinked")
        XCTAssertEqual(shared.redis.counters.discards, 1)
    }

    func testPrecomputeWithSharedPublishesChunksAlreadyStoredLocally() throws {
        let h = try SharedTierHarness()
        let doc = syntheticDocument(seed: 24, words: 150)
        let tokens = h.m.documentTokens(doc)
        let path = temporaryDirectory()
        let alone = try h.frontend(shared: nil, storePath: path)
        let first = try alone.cache.precompute(tokens: tokens, id: "doc", name: "doc")
        XCTAssertFalse(first.skipped)
        try alone.store.close()
        let shared = try clusterTier()
        for round in 0..<2 {  // the document is stored locally: skipped, but its chunks published once
            let a = try h.frontend(shared: shared, storePath: path)
            let again = try a.cache.precompute(tokens: tokens, id: "doc", name: "doc")
            a.tiers.flush()
            try a.store.close()
            XCTAssertTrue(again.skipped)
            let p = try XCTUnwrap(a.tiers.publisher?.counters)
            XCTAssertEqual(p.published, round == 0 ? first.chunks + 1 : 0, "every chunk and the tail, once")
            XCTAssertEqual(p.queued, p.published, "a published document costs a probe")
        }
        // Forced: nothing computed, nothing published again.
        let a = try h.frontend(shared: shared, storePath: path)
        let forced = try a.cache.precompute(tokens: tokens, id: "doc", name: "doc", skipExisting: false)
        a.tiers.flush()
        try a.store.close()
        XCTAssertEqual(forced.written.chunks, 0)
        XCTAssertEqual(a.tiers.publisher?.counters.queued, 0)
        let b = try h.frontend(shared: shared)
        defer { try? b.store.close() }
        let cold = try h.ask(b, doc, "Which town is named first?")
        XCTAssertEqual(cold.sources.shared, first.tokens)
    }

    func testWrongCredentialsNameTheTier() throws {
        let node = try environment("KVSTASH_REDIS_NODE")
        let url = try RedisTierURL(parsing: "redis://:not-the-password@\(node)")
        XCTAssertThrowsError(try SharedRedisTier.openWaiting(url)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("tier 'shared'") && text.contains("authentication failed"), text)
            XCTAssertFalse(text.contains("not-the-password"), "the password stays out of the message: \(text)")
        }
    }

    func testUnreachableTierStartsAndReadsAsAbsent() throws {
        let h = try SharedTierHarness()
        // A port nothing listens on: the tier opens (logged), every probe reads absent.
        let shared = try SharedRedisTier.openWaiting(try RedisTierURL(parsing: "redis://127.0.0.1:9"))
        let b = try h.frontend(shared: shared)
        defer { try? b.store.close() }
        let r = try h.ask(b, syntheticDocument(seed: 23, words: 80), "What is it about?", maxTokens: 8)
        XCTAssertEqual(r.sources.shared, 0)
        XCTAssertGreaterThan(shared.redis.counters.errors, 0, "failed probes are counted")
    }

    func testURLParsing() throws {
        let url = try RedisTierURL(parsing: "redis://user:p%40ss@10.0.0.1:7000,10.0.0.2:7001")
        XCTAssertEqual(url.username, "user")
        XCTAssertEqual(url.password, "p@ss")
        XCTAssertEqual(url.nodes.map(\.description), ["10.0.0.1:7000", "10.0.0.2:7001"])
        XCTAssertEqual(url.description, "redis://user:***@10.0.0.1:7000,10.0.0.2:7001")
        XCTAssertNil(try RedisTierURL(parsing: "redis://:secret@h:1").username)
        for bad in ["http://h:1", "redis://", "redis://h", "redis://h:0", "redis://user@h:1"] {
            XCTAssertThrowsError(try RedisTierURL(parsing: bad), bad)
        }
    }

    /// Runs an async operation from this (non-cooperative) test thread.
    func waitFor<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) throws -> T {
        try SharedRedisTier.waitResult(operation).get()
    }
}
