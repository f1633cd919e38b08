import Logging

/// Where the store logs what it recovers from (a corrupt entry turned into a miss, a
/// failed access flush), with the cause. Configure it through `LoggingSystem.bootstrap`.
let storeLogger = Logger(label: "kvstash.store")
