// Shared types live in KVCache.swift.
