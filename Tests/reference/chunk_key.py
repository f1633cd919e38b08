#!/usr/bin/env python3
"""Independent reference for KVStash chunk keys (docs/formats.md "Chunk key").

key = SHA-256( u32 version=1 | u32 len(fp) | fp | u32 len(salt) | salt | u32 chunk_size
               | parent[32] | u32 n | n x u32 token ids ), all integers little-endian.
Prints the worked example that Tests/StoreTests/ChunkKeyTests.swift pins.
"""
import hashlib
import struct


def chunk_key(fingerprint: bytes, salt: bytes, chunk_size: int, parent: bytes, tokens) -> bytes:
    assert len(parent) == 32
    data = struct.pack("<I", 1)
    data += struct.pack("<I", len(fingerprint)) + fingerprint
    data += struct.pack("<I", len(salt)) + salt
    data += struct.pack("<I", chunk_size)
    data += parent
    data += struct.pack("<I", len(tokens)) + b"".join(struct.pack("<I", t) for t in tokens)
    return hashlib.sha256(data).digest()


def main():
    fingerprint = hashlib.sha256(b"example model").digest()
    root = bytes(32)
    tokens = list(range(1, 9))             # 8 tokens, chunk size 4: two full chunks
    k0 = chunk_key(fingerprint, b"", 4, root, tokens[0:4])
    k1 = chunk_key(fingerprint, b"", 4, k0, tokens[4:8])
    s0 = chunk_key(fingerprint, b"tenant-a", 4, root, tokens[0:4])
    big = chunk_key(fingerprint, b"", 256, root, [49151 - i for i in range(256)])
    print("fingerprint", fingerprint.hex())
    print("chunk0", k0.hex())
    print("chunk1", k1.hex())
    print("chunk0_salt_tenant-a", s0.hex())
    print("chunk0_256_desc_from_49151", big.hex())
    # The fingerprint of the same model run with 8-bit prefill inputs (ModelFingerprint.variant).
    variant = hashlib.sha256(b"kvstash.model-numerics.v1\0" + fingerprint + b"prefill-inputs-8").digest()
    print("fingerprint_prefill-inputs-8", variant.hex())


if __name__ == "__main__":
    main()
