/* Private to CKernels: what the two packed prefill products (gemm_q16.c on 16-bit input
   codes, gemm_q8.c on 8-bit ones) share around their integer sums: the float update of a
   register tile per weight block, its store, and the loop over tiles. */
#ifndef KVSTASH_GEMM_TILE_H
#define KVSTASH_GEMM_TILE_H
#if defined(__x86_64__)
#include <immintrin.h>
#include <stddef.h>

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))

/* One weight block's float update of a tile of T input rows x 32 weight rows (groups g and
   g + 1): f[t][j] = fma((float) sum[t][j], scale_j * d[t], f[t][j]), then, with OFFSETS,
   f[t][j] = fma(offset_j, s[t], f[t][j]). `scales` / `offsets` point at group g's 16 values
   of the block, group g + 1's are `stride` further; d[t], s[t] are input row t's block scale
   and scaled code sum. */
VNNI_TARGET static inline __attribute__((always_inline)) void tile_block_update(
    __m512 f[][2], __m512i sum[][2], const int T, const float *scales, const float *offsets, size_t stride,
    const int OFFSETS, const float *d, const float *s) {
    const __m512 sc0 = _mm512_loadu_ps(scales), sc1 = _mm512_loadu_ps(scales + stride);
    for (int t = 0; t < T; t++) {
        const __m512 dx = _mm512_set1_ps(d[t]);
        f[t][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[t][0]), _mm512_mul_ps(sc0, dx), f[t][0]);
        f[t][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[t][1]), _mm512_mul_ps(sc1, dx), f[t][1]);
        if (OFFSETS) {
            const __m512 sx = _mm512_set1_ps(s[t]);
            f[t][0] = _mm512_fmadd_ps(_mm512_loadu_ps(offsets), sx, f[t][0]);
            f[t][1] = _mm512_fmadd_ps(_mm512_loadu_ps(offsets + stride), sx, f[t][1]);
        }
    }
}

/* Brings block b of the next tile's weights (the `groups` groups of 16 rows after this tile's:
   `gstride` code bytes and `sstride` floats per group further on) into L1 while this tile's
   block b is multiplied: the 16 x BK code bytes of each group, its 16 scales, and the offsets
   and integer bias where the kernel has them (NULL otherwise). With a few input rows (the
   question after a cache hit) a tile's products take about as long as its bytes take to
   arrive from memory, and the hardware prefetcher does not cross into the next tile's groups;
   asked for one tile ahead, the bytes arrive while the products run (decision 114). */
static inline __attribute__((always_inline)) void tile_prefetch_next(
    const int8_t *c0, size_t block_bytes, size_t gstride, const float *scales, const float *offsets,
    const int32_t *bias, size_t sstride, int groups) {
    for (int g = groups; g < 2 * groups; g++) {
        const int8_t *c = c0 + (size_t)g * gstride;
        for (size_t at = 0; at < block_bytes; at += 64) __builtin_prefetch(c + at);
        __builtin_prefetch(scales + (size_t)g * sstride);
        if (offsets) __builtin_prefetch(offsets + (size_t)g * sstride);
        if (bias) __builtin_prefetch(bias + (size_t)g * sstride);
    }
}

/* The tile's T x 32 outputs into y (rows ldy apart), added to what is there when accumulate. */
VNNI_TARGET static inline __attribute__((always_inline)) void tile_store(__m512 f[][2], const int T, float *y,
                                                                        size_t ldy, int accumulate) {
    for (int t = 0; t < T; t++) {
        float *yt = y + t * ldy;
        if (accumulate) {
            f[t][0] = _mm512_add_ps(_mm512_loadu_ps(yt), f[t][0]);
            f[t][1] = _mm512_add_ps(_mm512_loadu_ps(yt + 16), f[t][1]);
        }
        _mm512_storeu_ps(yt, f[t][0]);
        _mm512_storeu_ps(yt + 16, f[t][1]);
    }
}

/* Every tile of 32 weight rows against all m input rows, six at a time: a tile's codes stay
   in L2 while the input rows stream past. TILE(T) runs the kernel's tile of T rows on `xt`
   (x + t0 * xblocks) into `yt` (y + t0 * ldy + r), with `next` set on the first rows' pass
   when another tile follows (tile_prefetch_next); NEXT_TILE moves its weight pointers on by
   32 rows. */
#define GEMM_TILES(m, n, x, xblocks, y, ldy, TILE, NEXT_TILE)                                        \
    for (size_t r = 0; r < (n); r += 32) {                                                           \
        for (size_t t0 = 0; t0 < (m); t0 += 6) {                                                     \
            const __typeof__(x) xt = (x) + t0 * (xblocks);                                           \
            float *yt = (y) + t0 * (ldy) + r;                                                        \
            const int next = t0 == 0 && r + 32 < (n);                                                \
            switch ((m) - t0 >= 6 ? 6 : (int)((m) - t0)) {                                           \
            TILE(6) TILE(5) TILE(4) TILE(3) TILE(2) TILE(1)                                          \
            }                                                                                        \
        }                                                                                            \
        NEXT_TILE;                                                                                   \
    }
#endif
#endif
