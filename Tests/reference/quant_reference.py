#!/usr/bin/env python3
"""Independent numpy reference of the KV block codec's lossy codecs.

Reads f32 KV laid out as, for each layer, K rows [tokens][dim] then V rows
[tokens][dim], quantizes and dequantizes every section the way docs/formats.md
specifies, and writes the dequantized f32 KV in the same layout.

    quant_reference.py CODEC GROUP KEY_GROUPING LAYERS TOKENS DIM IN.f32 OUT.f32

CODEC is f16, int8 or int4; KEY_GROUPING is perChannel (KIVI) or perToken.
Also: `quant_reference.py xxh64 FILE...` prints XXH64 (seed 0) of each FILE using the
system libxxhash (an implementation independent of ours).

`quant_reference.py gguf MODEL.gguf OUT.f32 [ROWS]` dequantizes the tensors of a GGUF file
with the PyPI `gguf` package (`gguf.quants.dequantize`; Q8_K, which it does not decode, as
d * q in numpy): every row, or with ROWS only up to ROWS rows per tensor spread evenly from
the first to the last. It writes the values as f32 in tensor order (rows ascending) to
OUT.f32 and prints JSON: [{"name", "type", "rows": [row indices]}].
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


def dequantize_rows(data, qtype):
    """f32 values of encoded rows (uint8 [rows][bytes] for block types)."""
    import gguf
    if qtype == gguf.GGMLQuantizationType.Q8_K:
        blocks = np.ascontiguousarray(data).reshape(-1, 292)
        d = blocks[:, :4].copy().view(np.float32)
        return (d * blocks[:, 4:260].view(np.int8).astype(np.float32)).reshape(data.shape[0], -1)
    return gguf.quants.dequantize(np.ascontiguousarray(data), qtype).reshape(data.shape[0], -1)


def gguf_tensors(argv):
    import json
    import gguf
    reader = gguf.GGUFReader(argv[0])
    limit = int(argv[2]) if len(argv) > 2 else None
    listing = []
    with open(argv[1], "wb") as out:
        for t in reader.tensors:
            data = t.data.reshape(-1, t.data.shape[-1]) if t.data.ndim > 1 else t.data.reshape(1, -1)
            n = data.shape[0]
            rows = list(range(n)) if limit is None or n <= limit else \
                sorted({i * (n - 1) // (limit - 1) for i in range(limit)})
            dequantize_rows(data[rows], t.tensor_type).astype("<f4").tofile(out)
            listing.append({"name": t.name, "type": t.tensor_type.name, "rows": rows})
    print(json.dumps(listing))


def main(argv):
    if argv[1] == "xxh64":
        return xxh64(argv[2:])
    if argv[1] == "gguf":
        return gguf_tensors(argv[2:])
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
