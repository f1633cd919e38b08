import NIOCore
import XCTest
@testable import KVStashRedis

/// The cluster client and the tier against the 3-node cluster of scripts/redis-test-servers.sh.
final class RedisClusterTests: XCTestCase {
    private func cluster() throws -> RedisCluster {
        RedisCluster(seeds: try RedisTestEnvironment.clusterSeeds(),
                     options: RedisConnectionOptions(commandTimeout: .seconds(5)),
                     backoff: ReconnectBackoff(initial: .milliseconds(20), maximum: .milliseconds(200)))
    }

    func testSlotsAndDiscoveryAgreeWithTheServer() async throws {
        let seeds = try RedisTestEnvironment.clusterSeeds()
        let admin = try await AdminNode.open(seeds[0])
        // Our CRC16 slot equals the server's CLUSTER KEYSLOT, hash tags included.
        let keys = ["", "a", "kvstash:chunk:00ff", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap",
                    "foo{bar}{zap}", "{}", "}{x}"] + (0..<50).map { "key-\($0)-\($0 * 7919)" }
        for key in keys {
            let slot = try await admin.run("CLUSTER", "KEYSLOT", key)
            XCTAssertEqual(Int64(HashSlot.of(key)), slot.int, key)
        }
        // CLUSTER SHARDS and CLUSTER SLOTS describe the same map, covering every slot.
        let shardsReply = try await admin.run("CLUSTER", "SHARDS")
        let slotsReply = try await admin.run("CLUSTER", "SLOTS")
        let shards = try XCTUnwrap(ClusterTopology.fromShards(shardsReply, connectedTo: seeds[0]))
        let slots = try XCTUnwrap(ClusterTopology.fromSlots(slotsReply, connectedTo: seeds[0]))
        XCTAssertEqual(shards, slots)
        XCTAssertEqual(shards.nodes, Set(seeds))
        XCTAssertFalse(shards.owners.contains(nil))
        // Keys written and read through the client land on their owners: no redirect needed.
        let client = try cluster()
        let batch = (0..<200).map { i in
            KeyedCommand(key: Array("kvstash:route:\(i)".utf8), command: RESPCommand("SET", "kvstash:route:\(i)", "\(i)"))
        }
        for reply in await client.executeMany(batch) { XCTAssertEqual(try reply.get(), .simpleString("OK")) }
        let read = await client.execute(RESPCommand("GET", "kvstash:route:7"), key: Array("kvstash:route:7".utf8))
        XCTAssertEqual(try read.get().string, "7")
        let stats = await client.stats
        XCTAssertEqual(stats.movedRedirects, 0)
        XCTAssertEqual(stats.askRedirects, 0)
        XCTAssertEqual(stats.failedCommands, 0)
    }

    func testMultiMegabyteRoundTripsAcrossNodes() async throws {
        let client = try cluster()
        let tier = RedisChunkTier(client: client, options: RedisChunkTierOptions(name: "fleet", namespace: "kvstash:rt:"))
        let keys = (0..<8).map { testBytes(seed: 1000 + UInt64($0), count: 32) }
        let values = (0..<8).map { testBytes(seed: 2000 + UInt64($0), count: $0 % 2 == 0 ? 6 << 20 : 1_600_000) }
        for key in keys { try await tier.discard(key) }
        let topology = try await client.currentTopology()
        let owners = Set(keys.map { topology.owners[HashSlot.of(tier.redisKey($0))] })
        XCTAssertGreaterThan(owners.count, 1, "the keys should spread over more than one node")
        for (key, value) in zip(keys, values) {
            let stored = try await tier.put(key, value: value)
            XCTAssertTrue(stored)
        }
        let read = await tier.getMany(keys + [testBytes(seed: 3000, count: 32)])
        for (index, value) in values.enumerated() { XCTAssertEqual(try read[index].get(), value, "value \(index)") }
        XCTAssertNil(try read[8].get())
        let probed = await tier.probe([keys[0], testBytes(seed: 3000, count: 32), keys[7]])
        XCTAssertEqual(probed, [true, false, true])
        XCTAssertEqual(tier.counters.bytesRead, values.reduce(0) { $0 + $1.count })
        XCTAssertEqual(tier.counters.errors, 0)
    }

    func testSlotMigratedWhileReadingAsksThenMoves() async throws {
        let seeds = try RedisTestEnvironment.clusterSeeds()
        let client = try cluster()
        let tier = RedisChunkTier(client: client, options: RedisChunkTierOptions(name: "fleet", namespace: "kvstash:mig:"))
        let key = testBytes(seed: UInt64.random(in: 1...UInt64.max), count: 32)
        let value = testBytes(seed: 77, count: 1 << 20)
        try await tier.put(key, value: value)
        let redisKey = String(decoding: tier.redisKey(key), as: UTF8.self)
        let slot = HashSlot.of(redisKey)
        let before = try await client.currentTopology()
        let source = try XCTUnwrap(before.owners[slot])
        let target = try XCTUnwrap(seeds.first { $0 != source })
        let admins = try await withThrowingTaskGroup(of: (RedisAddress, AdminNode).self) { group in
            for seed in seeds { group.addTask { (seed, try await AdminNode.open(seed)) } }
            return try await group.reduce(into: [RedisAddress: AdminNode]()) { $0[$1.0] = $1.1 }
        }
        let sourceReply = try await admins[source]!.run("CLUSTER", "MYID")
        let sourceID = try XCTUnwrap(sourceReply.string)
        let targetReply = try await admins[target]!.run("CLUSTER", "MYID")
        let targetID = try XCTUnwrap(targetReply.string)

        // Mid-migration: the key already lives on the target, the slot still on the source.
        try await admins[target]!.run("CLUSTER", "SETSLOT", "\(slot)", "IMPORTING", sourceID)
        try await admins[source]!.run("CLUSTER", "SETSLOT", "\(slot)", "MIGRATING", targetID)
        try await admins[source]!.run("MIGRATE", target.host, "\(target.port)", redisKey, "0", "5000")
        let duringMigration = try await tier.get(key)
        XCTAssertEqual(duringMigration, value)
        var stats = await client.stats
        XCTAssertEqual(stats.askRedirects, 1)
        XCTAssertEqual(stats.movedRedirects, 0)
        let ownerDuring = try await client.currentTopology().owners[slot]
        XCTAssertEqual(ownerDuring, source, "ASK must not change the slot map")

        // Migration done: every node learns the new owner; the source now answers MOVED.
        for address in [target, source] + seeds.filter({ $0 != source && $0 != target }) {
            try await admins[address]!.run("CLUSTER", "SETSLOT", "\(slot)", "NODE", targetID)
        }
        let afterMigration = try await tier.get(key)
        XCTAssertEqual(afterMigration, value)
        stats = await client.stats
        XCTAssertEqual(stats.movedRedirects, 1)
        let ownerAfter = try await client.currentTopology().owners[slot]
        XCTAssertEqual(ownerAfter, target)
        let again = try await tier.get(key)
        XCTAssertEqual(again, value)
        let final = await client.stats
        XCTAssertEqual(final.movedRedirects, 1, "the slot map now routes the key straight to its owner")
        XCTAssertEqual(tier.counters.errors, 0)
    }

    func testNodeKilledMidBatchFailsOnlyItsKeysAndTheClientRecovers() async throws {
        let client = try cluster()
        let tier = RedisChunkTier(client: client, options: RedisChunkTierOptions(name: "fleet", namespace: "kvstash:kill:"))
        let keys = (0..<48).map { testBytes(seed: 5000 + UInt64($0), count: 32) }
        let values = (0..<48).map { testBytes(seed: 6000 + UInt64($0), count: 256 << 10) }
        for (key, value) in zip(keys, values) { try await tier.discard(key); try await tier.put(key, value: value) }
        let topology = try await client.currentTopology()
        let owners = keys.map { topology.owners[HashSlot.of(tier.redisKey($0))]! }
        let victim = owners[0]
        let onVictim = Set(owners.indices.filter { owners[$0] == victim })
        XCTAssertTrue(onVictim.count < keys.count, "some keys must live on other nodes")

        // Batches in flight while the node is killed: every answer is the right value or an error.
        let admin = try await AdminNode.open(victim)
        let reader = Task {
            var outcomes: [[Result<[UInt8]?, RedisTierError>]] = []
            for _ in 0..<6 { outcomes.append(await tier.getMany(keys)) }
            return outcomes
        }
        try await Task.sleep(for: .milliseconds(30))
        let config = try await admin.kill()
        for outcome in await reader.value {
            for (index, result) in outcome.enumerated() {
                if case .success(let read) = result { XCTAssertEqual(read, values[index], "key \(index)") }
            }
        }

        // With the node down: its keys fail naming the tier and the node, the others answer.
        let down = await tier.getMany(keys)
        for (index, result) in down.enumerated() {
            switch result {
            case .success(let read):
                XCTAssertFalse(onVictim.contains(index), "key \(index) read from a dead node")
                XCTAssertEqual(read, values[index])
            case .failure(let error):
                XCTAssertTrue(onVictim.contains(index), "key \(index) failed: \(error)")
                XCTAssertEqual(error.underlying.node, victim)
                XCTAssertTrue(error.description.hasPrefix("tier 'fleet' get: node \(victim)"), error.description)
            }
        }
        let probed = await tier.probe(keys)
        XCTAssertEqual(probed, keys.indices.map { !onVictim.contains($0) })

        // Back up (empty: the test servers keep no data): the client reconnects by itself.
        _ = try await AdminNode.restart(victim, config: config)
        var recovered: [Result<[UInt8]?, RedisTierError>] = []
        for _ in 0..<50 {
            recovered = await tier.getMany(keys)
            if recovered.allSatisfy({ if case .success = $0 { true } else { false } }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        for (index, result) in recovered.enumerated() {
            XCTAssertEqual(try result.get(), onVictim.contains(index) ? nil : values[index], "key \(index)")
        }
        let rewritten = try await tier.put(keys[0], value: values[0])
        XCTAssertTrue(rewritten)
        let readBack = try await tier.get(keys[0])
        XCTAssertEqual(readBack, values[0])
        let stats = await client.stats
        XCTAssertGreaterThan(stats.failedCommands, 0)
    }
}
