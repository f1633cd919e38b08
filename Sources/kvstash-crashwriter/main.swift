// Test helper for StoreTests.CrashTests: writes small self-checking chunks to a store
// forever and prints "ACK <key>" after each synced put returns. The test SIGKILLs it at
// random moments and checks that the store reopens with every acked key present and no
// half-written entry. With a COUNT argument it writes COUNT chunks, closes the store and
// exits (the admin CLI tests use it to fill a store).
import Foundation
import KVStashDigest
import KVStashStore

let args = CommandLine.arguments
guard args.count >= 3, let run = Int(args[2]) else {
    FileHandle.standardError.write(Data("usage: kvstash-crashwriter STORE RUN [COUNT]\n".utf8))
    exit(2)
}
let store: ChunkStore
do {
    store = try ChunkStore(path: args[1], options: StoreOptions(chunkSize: 4, flushInterval: 0.2, flushEvery: 16))
} catch {
    FileHandle.standardError.write(Data("open failed: \(error)\n".utf8))
    exit(1)
}
let limit = args.count >= 4 ? Int(args[3]) : nil
let keyer = ChunkKeyer(modelFingerprint: [0xC7], chunkSize: 4)
var parent = ChunkKey.root
var i = 0
while limit.map({ i < $0 }) ?? true {
    let tokens = [run, i, i &* 31, 7]
    let key = keyer.key(parent: parent, tokens: tokens[...])
    var body = [UInt8](repeating: 0, count: 200 + (i * 97) % 3000)
    for j in body.indices { body[j] = UInt8(truncatingIfNeeded: j &* 131 &+ i &+ run) }
    let value = body + Array(SHA256.hash(data: body))
    let meta = ChunkMeta(parent: parent, chainIndex: i, tokens: tokens, codec: "raw", modelFingerprint: [0xC7])
    let synced = i % 3 != 2   // every third put is not synced and never acknowledged
    do {
        try store.put(key, value: value, meta: meta, sync: synced)
        if synced { FileHandle.standardOutput.write(Data("ACK \(key.hex)\n".utf8)) }
        if i % 5 == 4 { _ = try store.get(parent) }   // exercise coalesced hit flushes
        if i % 40 == 39 { try store.flush() }         // exercise SST creation
    } catch {
        FileHandle.standardError.write(Data("write failed: \(error)\n".utf8))
        exit(1)
    }
    parent = i % 8 == 7 ? .root : key
    i += 1
}
try store.close()
