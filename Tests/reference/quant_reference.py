#!/usr/bin/env python3
"""Independent numpy reference of the KV block codec's lossy codecs.

Reads f32 KV laid out as, for each layer, K rows [tokens][dim] then V rows
[tokens][dim], quantizes and dequantizes every section the way docs/formats.md
specifies, and writes the dequantized f32 KV in the same layout.

    quant_reference.py CODEC GROUP KEY_GROUPING LAYERS TOKENS DIM IN.f32 OUT.f32

CODEC is f16, int8 or int4; KEY_GROUPING is perChannel (KIVI) or perToken.
Also: `quant_reference.py xxh64 FILE...` prints XXH64 (seed 0) of each FILE using the
system libxxhash (an implementation independent of ours).
"""
import ctypes
import ctypes.util
import sys

import numpy as np


def quant_groups(x, levels):
    """Asymmetric quantization of groups along the last axis; returns dequantized f32."""
    x = x.astype(np.float32)
    mn = x.min(axis=-1, keepdims=True)
    mx = x.max(axis=-1, keepdims=True)
    s = ((mx - mn) / np.float32(levels)).astype(np.float16).astype(np.float32)
    z = mn.astype(np.float16).astype(np.float32)
    div = np.where(s == 0, np.float32(np.inf), s).astype(np.float32)
    q = np.clip(np.rint((x - z) / div), 0, levels).astype(np.float32)
    return (q * s + z).astype(np.float32)


def per_channel(x, g, levels):
    """KIVI keys: each channel over groups of g consecutive tokens (last group partial)."""
    out = np.empty_like(x)
    for t0 in range(0, x.shape[0], g):
        block = x[t0:t0 + g]
        out[t0:t0 + g] = quant_groups(block.T, levels).T
    return out


def per_token(x, g, levels):
    """KIVI values: each token's channels in groups of g (last group partial)."""
    out = np.empty_like(x)
    for c0 in range(0, x.shape[1], g):
        out[:, c0:c0 + g] = quant_groups(x[:, c0:c0 + g], levels)
    return out


def section(x, codec, g, key_grouping, is_key):
    if codec == "f16":
        return x.astype(np.float16).astype(np.float32)
    levels = {"int8": 255, "int4": 15}[codec]
    if is_key and key_grouping == "perChannel":
        return per_channel(x, g, levels)
    return per_token(x, g, levels)


def xxh64(paths):
    lib = ctypes.CDLL(ctypes.util.find_library("xxhash") or "libxxhash.so.0")
    lib.XXH64.restype = ctypes.c_uint64
    lib.XXH64.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
    for path in paths:
        data = open(path, "rb").read()
        print(lib.XXH64(data, len(data), 0))


def main(argv):
    if argv[1] == "xxh64":
        return xxh64(argv[2:])
    codec, g, key_grouping = argv[1], int(argv[2]), argv[3]
    layers, tokens, dim = (int(a) for a in argv[4:7])
    kv = np.fromfile(argv[7], dtype="<f4").reshape(layers, 2, tokens, dim)
    out = np.empty_like(kv)
    for layer in range(layers):
        for kind in range(2):
            out[layer, kind] = section(kv[layer, kind], codec, g, key_grouping, kind == 0)
    out.astype("<f4").tofile(argv[8])


if __name__ == "__main__":
    main(sys.argv)
