/* A decode step's attention over the f16 KV cache in its two layouts, one thread
   (bench/kv_head_layout.sh).

   SmolLM2-135M's shape: 30 layers, 3 KV heads of 64, 3 query rows per KV head, one query
   position after N cached ones, each layer its own K and V, the keys cut into 512-key
   segments as the engine cuts them (`CausalAttention.segmentKeys`). The attention kernel is
   Sources/CKernels/attention.c's `kv_attend_partial`; only where each head's rows lie differs:
   - rows: [position][3 x 64], each head's pass reading 128 of every 384 bytes of K and V;
   - heads: [head][position][64], each head's K and V one sequential run (KVCache's layout).
   Both take the same sums in the same order, so their outputs must be equal bit for bit; the
   harness checks it. It also reads the same buffers without attention: 128 of every 384 bytes
   against every byte, the memory's rate for each access pattern.

   Prints one JSON object. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include "engine.h"

enum { D = 64, HEADS = 3, LAYERS = 30, GROUP = 3, SEGMENT = 512 };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t state = 88172645463325252ull;
static float uniform(void) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return (float)((state >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1;
}

static uint16_t half(float f) {
    _Float16 h = (_Float16)f;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}

/* 2 MiB aligned, transparent huge pages asked for, as the engine's KV arenas. */
static void *big(size_t bytes) {
    const size_t huge = (size_t)2 << 20, rounded = (bytes + huge - 1) / huge * huge;
    void *p = aligned_alloc(huge, rounded);
    if (!p) abort();
    madvise(p, rounded, MADV_HUGEPAGE);
    return p;
}

typedef struct { uint16_t *k[LAYERS], *v[LAYERS]; } cache;

/* Both layouts of the same values: element (p, g, c) at rows[p*192 + g*64 + c] and at
   heads[g*n*64 + p*64 + c]. */
static void fill(cache *rows, cache *heads, size_t n) {
    for (int l = 0; l < LAYERS; l++) {
        uint16_t **pairs[2][2] = {{&rows->k[l], &heads->k[l]}, {&rows->v[l], &heads->v[l]}};
        for (int kind = 0; kind < 2; kind++) {
            uint16_t *r = *pairs[kind][0] = big(n * HEADS * D * 2), *h = *pairs[kind][1] = big(n * HEADS * D * 2);
            for (size_t p = 0; p < n; p++)
                for (size_t g = 0; g < HEADS; g++)
                    for (size_t c = 0; c < D; c++) r[p * HEADS * D + g * D + c] = h[g * n * D + p * D + c] = half(uniform());
        }
    }
}

/* One decode step's attention: every layer, head and segment, into out (m x D per task). */
static void step(const cache *kv, int head_major, size_t n, const float *qt, size_t mp, const int32_t *last,
                 float *scratch, float *out, float *mx, float *sum) {
    const size_t segments = (n + SEGMENT - 1) / SEGMENT, m = GROUP;
    for (int l = 0; l < LAYERS; l++)
        for (size_t g = 0; g < HEADS; g++)
            for (size_t s = 0; s < segments; s++) {
                const size_t t = (l * HEADS + g) * segments + s, p0 = s * SEGMENT, p1 = p0 + SEGMENT < n ? p0 + SEGMENT : n;
                const size_t off = head_major ? g * n * D : g * D, ld = head_major ? D : HEADS * D;
                kv_attend_partial(qt + g * D * mp, m, mp, D, kv->k[l] + off, kv->v[l] + off, ld, p0, p1, SEGMENT, last,
                                  NULL, scratch, out + t * m * D, mx + t * mp, sum + t * mp);
            }
}

/* Sums 128 of every `stride` bytes (or all of them) of every layer's K and V. */
static uint64_t read_pattern(const cache *kv, size_t n, size_t stride, size_t use) {
    uint64_t acc = 0;
    for (int l = 0; l < LAYERS; l++)
        for (int kind = 0; kind < 2; kind++) {
            const uint8_t *b = (const uint8_t *)(kind ? kv->v[l] : kv->k[l]);
            for (size_t off = 0; off + stride <= n * HEADS * D * 2; off += stride)
                for (size_t c = 0; c < use; c += 8) {
                    uint64_t x;
                    memcpy(&x, b + off + c, 8);
                    acc += x;
                }
        }
    return acc;
}

int main(int argc, char **argv) {
    const int reps = argc > 1 ? atoi(argv[1]) : 10;
    const size_t lengths[] = {512, 4096};
    printf("{\n \"threads\": 1, \"layers\": %d, \"kvHeads\": %d, \"headDim\": %d, \"rowsPerKVHead\": %d, \"reps\": %d,\n"
           " \"cases\": [\n", LAYERS, HEADS, D, GROUP, reps);
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        const size_t n = lengths[i], m = GROUP, mp = 16, segments = (n + SEGMENT - 1) / SEGMENT;
        static cache rows, heads;
        fill(&rows, &heads, n);
        float q[HEADS * GROUP * D], *qt = big(HEADS * mp * D * 4);
        for (size_t j = 0; j < HEADS * GROUP * D; j++) q[j] = uniform();
        for (size_t g = 0; g < HEADS; g++) kv_attend_stack(q + g * m * D, m * D, 1, m, D, 0.125f, qt + g * mp * D, mp);
        int32_t last[16];
        for (size_t t = 0; t < mp; t++) last[t] = (int32_t)(n - 1);
        float *scratch = big(KV_ATTEND_SCRATCH(mp, D) * 4);
        const size_t tasks = LAYERS * HEADS * segments;
        float *out[2], *mx[2], *sum[2];
        for (int layout = 0; layout < 2; layout++) {
            out[layout] = big(tasks * m * D * 4), mx[layout] = big(tasks * mp * 4), sum[layout] = big(tasks * mp * 4);
        }
        double best[2] = {1e9, 1e9}, read_best[2] = {1e9, 1e9};
        uint64_t sink = 0;
        for (int r = 0; r < reps; r++)
            for (int layout = 0; layout < 2; layout++) {
                double t0 = now();
                step(layout ? &heads : &rows, layout, n, qt, mp, last, scratch, out[layout], mx[layout], sum[layout]);
                const double ms = (now() - t0) * 1e3;
                best[layout] = ms < best[layout] ? ms : best[layout];
                t0 = now();
                sink += layout ? read_pattern(&rows, n, 128, 128) : read_pattern(&rows, n, HEADS * D * 2, 128);
                const double rms = (now() - t0) * 1e3;
                read_best[layout] = rms < read_best[layout] ? rms : read_best[layout];
            }
        if (memcmp(out[0], out[1], tasks * m * D * 4) || memcmp(mx[0], mx[1], tasks * mp * 4) ||
            memcmp(sum[0], sum[1], tasks * mp * 4)) {
            fprintf(stderr, "%zu keys: the two layouts' results differ\n", n);
            return 1;
        }
        /* K and V of every head and layer: what one step's attention reads, and all of the
           buffers read_pattern sums, of which 128 of every 384 bytes are a third. */
        const double head_mb = LAYERS * HEADS * n * D * 2 * 2 / 1e6;
        printf("  {\"keys\": %zu, \"bytesPerStepMB\": %.1f, \"rowsLayoutMs\": %.3f, \"headMajorMs\": %.3f, "
               "\"headMajorSpeedup\": %.3f, \"rowsGBps\": %.2f, \"headMajorGBps\": %.2f,\n"
               "   \"read128of384GBps\": %.2f, \"readAllGBps\": %.2f, \"checksum\": %llu}%s\n",
               n, head_mb, best[0], best[1], best[0] / best[1], head_mb / best[0], head_mb / best[1],
               head_mb / 3 / read_best[0], head_mb / read_best[1], (unsigned long long)(sink & 0xffff),
               i + 1 < sizeof lengths / sizeof *lengths ? "," : "");
        for (int l = 0; l < LAYERS; l++) {
            free(rows.k[l]), free(rows.v[l]), free(heads.k[l]), free(heads.v[l]);
        }
        free(qt), free(scratch);
        for (int layout = 0; layout < 2; layout++) free(out[layout]), free(mx[layout]), free(sum[layout]);
    }
    printf(" ]\n}\n");
    return 0;
}
