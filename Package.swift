// swift-tools-version: 6.1
import PackageDescription

/// Release builds of the numeric modules are what the tests and benchmarks run.
/// Hot loops live in `CKernels` (C, compiled with per-function CPU dispatch via
/// `target_clones`), so a generic x86-64 build stays correct and still uses AVX2/AVX-512.
let package = Package(
    name: "KVStash",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "kvstash", targets: ["kvstash"]),
        .library(name: "KVStash", targets: ["KVStash"]),
        .executable(name: "kvstash-fuzz", targets: ["kvstash-fuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
    ],
    targets: [
        // System libraries (Debian: librocksdb-dev, liblz4-dev, libzstd-dev, libopenblas-dev, libssl-dev).
        .systemLibrary(name: "CRocksDB", pkgConfig: "rocksdb", providers: [.apt(["librocksdb-dev"])]),
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CBLAS", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // SIMD kernels with runtime CPU dispatch.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),
        // The SIGBUS handler that reads unreadable pages of mapped store files as zeros.
        .target(name: "CMappedReads"),

        // SHA-256 on OpenSSL's libcrypto.
        .target(name: "KVStashDigest", dependencies: ["COpenSSL"]),
        // Shared value types: model shape, KV cache layout, errors.
        .target(name: "KVStashCore", dependencies: ["CKernels"]),
        // GGUF, tokenizer, Llama forward pass, sampling.
        .target(name: "KVStashEngine", dependencies: ["KVStashCore", "CBLAS", "CKernels"]),
        // KV block codec: header, f32/f16/int8/int4, LZ4 frame.
        .target(name: "KVStashCodec", dependencies: ["KVStashCore", "CLZ4", "CZstd", "CKernels"]),
        // Chunk keys, chunk metadata, admission and the `ChunkTier` protocol (no RocksDB).
        .target(name: "KVStashChunks", dependencies: ["KVStashDigest"]),
        // Content-hashed chunk store on RocksDB.
        .target(name: "KVStashStore", dependencies: [
            "KVStashCore", "KVStashChunks", "CRocksDB", "CMappedReads",
            "KVStashDigest",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Radix tree, two-tier lookup, splice, precompute: the request path.
        .target(name: "KVStash", dependencies: [
            "KVStashCore", "KVStashEngine", "KVStashCodec", "KVStashChunks", "KVStashStore",
            .product(name: "Logging", package: "swift-log"),
            "KVStashDigest",
        ]),
        // OpenAI-compatible HTTP server, admin API, Prometheus metrics.
        .target(name: "KVStashServer", dependencies: [
            "KVStash", "KVStashEngine", "KVStashStore",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "NIOCore", package: "swift-nio"),
            "KVStashDigest",
        ]),
        .executableTarget(name: "kvstash", dependencies: [
            "KVStash", "KVStashStore", "KVStashCodec", "KVStashCore", "KVStashEngine", "KVStashServer", "KVStashRedis",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Codec size, speed and quality benchmarks (bench/codec, docs/benchmarks.md).
        .executableTarget(name: "codec-bench", dependencies: ["KVStashCodec", "KVStashEngine", "CKernels"],
                          path: "bench/codec"),

        // What the test targets share: running other programs (Python references, the CLI).
        .target(name: "KVStashTestSupport", path: "Tests/Support"),
        .testTarget(name: "EngineTests", dependencies: ["KVStashEngine", "CKernels", "KVStashTestSupport"],
                    exclude: ["Resources"]),
        .testTarget(name: "CodecTests", dependencies: ["KVStashCodec", "KVStashEngine", "KVStashTestSupport"]),
        // Child process of the store's crash test (SIGKILLed while writing).
        .executableTarget(name: "kvstash-crashwriter", dependencies: [
            "KVStashStore", "KVStashDigest",
        ]),
        // Store put/get/probe benchmark (bench/results/store.json).
        .executableTarget(name: "kvstash-storebench", dependencies: ["KVStashStore"], path: "bench/StoreBench"),
        // Engine prefill/decode benchmark (bench/results/engine.json).
        .executableTarget(name: "kvstash-enginebench", dependencies: ["KVStashCore", "KVStashEngine"], path: "bench/EngineBench"),

        .testTarget(name: "StoreTests", dependencies: [
            "KVStashStore", "KVStashDigest", "KVStashTestSupport",
        ]),
        .testTarget(name: "KVStashTests", dependencies: [
            "KVStash", "KVStashRedis", "KVStashTestSupport", .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // TTFT hit vs miss, precompute RSS, codec agreement (bench/results/request-*.json).
        .executableTarget(name: "kvstash-requestbench", dependencies: ["KVStash"], path: "bench/RequestBench"),
        .testTarget(name: "ServerTests", dependencies: [
            "KVStashServer", .product(name: "Hummingbird", package: "hummingbird"),
        ]),

        // RESP / Redis Cluster client on SwiftNIO and the shared chunk tier on it.
        .target(name: "KVStashRedis", dependencies: [
            "KVStashChunks",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // GET MB/s of KVStashRedis against redis-benchmark (bench/results/redis.json).
        .executableTarget(name: "kvstash-redisbench", dependencies: [
            "KVStashRedis", .product(name: "NIOCore", package: "swift-nio"),
        ], path: "bench/RedisBench"),
        // One-input harnesses over what KVStash reads from outside (KV blocks, RESP, GGUF,
        // a client's text and request bodies);
        // `kvstash-fuzz` replays a corpus, or with -DKVSTASH_LIBFUZZER is a libFuzzer
        // target (scripts/fuzz.sh).
        .target(name: "KVStashFuzzing", dependencies: [
            "KVStashCodec", "KVStashCore", "KVStashEngine", "KVStashRedis", "KVStashServer", "CKernels",
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .executableTarget(name: "kvstash-fuzz", dependencies: ["KVStashFuzzing"], path: "fuzz/Driver"),
        .testTarget(name: "FuzzingTests", dependencies: ["KVStashFuzzing", "KVStashServer"]),
        // Needs the Redis servers of scripts/redis-test-servers.sh (skipped without them).
        .testTarget(name: "RedisTests", dependencies: [
            "KVStashRedis", .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
    ]
)
