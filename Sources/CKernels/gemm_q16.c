#include <stdint.h>
#include <string.h>
#include "gemm_q16.h"
#include "gemm_tile.h"
#include "clones.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* ---- Many input rows on 16-bit codes against packed integer weight codes (prefill) ----

   A weight tensor is packed once (kv_gemm_q16_pack, qrows.c) into int8 codes c, and per
   block of `bk` weights of a row a float scale and, for the types with a minimum, a float
   offset: w[k] = scale * c[k] + offset. Every input row is quantized per block of 32 by
   kv_quantize_q16 (x[k] = d_x q[k], s_x = d_x sum(q)). Per weight block b:
       sum_k w[k] x[k] = (scale * d_x) * sum_k c[k] q[k] + offset * s_x.
   The integer sum is exact in an int32 lane (|c| <= 128, |q| <= 32767, 32 terms: 1.3e8);
   per output, the floats take, block by block in order,
       acc = fma((float) isum, scale * d_x, acc);  acc = fma(offset, s_x, acc)  (offset only).
   The AVX-512 VNNI path (`vpdpwssd`: 32 products of int16 pairs per instruction, twice the
   multiply-adds of an f32 FMA), the AVX2 path (`vpmaddwd` + `vpaddd`) and the plain C path
   take exactly these steps, so they agree bit for bit.

   Layout, group g of 16 weight rows, block b (nblk = cols / bk blocks per row), pair p of
   codes (bk / 2 pairs per block):
     codes   int8 at ((g * nblk + b) * (bk / 2) + p) * 32 + 2 lane + {0, 1}: the codes 2p and
             2p + 1 of block b of row 16 g + lane (one byte per weight; widened to int16 as
             they are loaded, 32 bytes become the 16 int32 lanes of code pairs `vpdpwssd` takes);
     scales  float at (g * nblk + b) * 16 + lane, offsets likewise.
   bk is 32, or 16 for Q6_K (its scale per 16 codes stays out of the codes). */

static inline size_t pairs_of(int bk) { return (size_t)bk / 2; }

/* One output of the plain C path: row t of x against weight row r of the group layout. */
static float dot_portable(const int8_t *codes, const float *scales, const float *offsets, int bk,
                          const kv_q16_block *x, size_t nblk, size_t r) {
    const size_t g = r / 16, lane = r % 16, pairs = pairs_of(bk);
    float acc = 0;
    for (size_t b = 0; b < nblk; b++) {
        const kv_q16_block *xb = x + b * (size_t)bk / 32;
        const int16_t *q = xb->q + (bk == 16 ? 16 * (b & 1) : 0);
        const int8_t *c = codes + (g * nblk + b) * pairs * 32 + 2 * lane;
        int32_t isum = 0;
        for (size_t p = 0; p < pairs; p++) isum += (int32_t)c[p * 32] * q[2 * p] + (int32_t)c[p * 32 + 1] * q[2 * p + 1];
        const size_t at = (g * nblk + b) * 16 + lane;
        acc = __builtin_fmaf((float)isum, scales[at] * xb->d, acc);
        if (offsets) acc = __builtin_fmaf(offsets[at], xb->s, acc);
    }
    return acc;
}

static void gemm_portable(const int8_t *codes, const float *scales, const float *offsets, int bk,
                          const kv_q16_block *x, size_t m, float *y, size_t ldy, size_t n, size_t cols, int accumulate) {
    const size_t nblk = cols / (size_t)bk, xblocks = cols / 32;
    for (size_t t = 0; t < m; t++)
        for (size_t r = 0; r < n; r++) {
            const float v = dot_portable(codes, scales, offsets, bk, x + t * xblocks, nblk, r);
            y[t * ldy + r] = accumulate ? y[t * ldy + r] + v : v;
        }
}

#if defined(__x86_64__)

/* One weight block's integer sums for T input rows against the 32 weight rows of groups g and
   g + 1 (codes c0 and c1): s[t][j] = the block's codes of group g + j times row t's codes, one
   `vpdpwssd` per code pair and row, pairs in order. Not unrolled: clang -O3 unrolls the 8
   pairs of a 16-code block fully, then spills the tile's accumulators (Q6_K's product ran at
   60 % of Q4_K's). */
VNNI_TARGET static inline __attribute__((always_inline)) void block_sums_vnni(
    const int8_t *c0, const int8_t *c1, size_t pairs, const kv_q16_block *x, size_t xblocks, size_t xb, int qoff,
    const int T, __m512i s[][2]) {
    for (int t = 0; t < T; t++) s[t][0] = s[t][1] = _mm512_setzero_si512();
#pragma clang loop unroll(disable)
    for (size_t p = 0; p < pairs; p++) {
        const __m512i w0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(c0 + p * 32)));
        const __m512i w1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(c1 + p * 32)));
        for (int t = 0; t < T; t++) {
            int32_t pair;
            memcpy(&pair, x[t * xblocks + xb].q + qoff + 2 * p, 4);
            const __m512i a = _mm512_set1_epi32(pair);
            s[t][0] = _mm512_dpwssd_epi32(s[t][0], w0, a);
            s[t][1] = _mm512_dpwssd_epi32(s[t][1], w1, a);
        }
    }
}

/* T input rows (T <= 6) against the 32 weight rows of groups g and g + 1 (two vectors of 16
   outputs): 2T int32 accumulators per block, 2T float accumulators across blocks. BK and
   OFFSETS are constants in every instance. */
VNNI_TARGET static inline __attribute__((always_inline)) void tile_vnni(
    const int8_t *codes, const float *scales, const float *offsets, const int BK, const int OFFSETS,
    const kv_q16_block *x, size_t xblocks, const int T, size_t nblk, float *y, size_t ldy, int accumulate,
    int next) {
    const size_t pairs = (size_t)BK / 2, gstride = nblk * pairs * 32, sstride = nblk * 16;
    __m512 f[6][2];
    for (int t = 0; t < T; t++) f[t][0] = f[t][1] = _mm512_setzero_ps();
    for (size_t b = 0; b < nblk; b++) {
        const size_t xb = BK == 32 ? b : b / 2;
        const int qoff = BK == 32 ? 0 : 16 * (int)(b & 1);
        const int8_t *c0 = codes + b * pairs * 32, *c1 = c0 + gstride;
        __m512i s[6][2];
        if (next)
            tile_prefetch_next(c0, pairs * 32, gstride, scales + b * 16, OFFSETS ? offsets + b * 16 : NULL, NULL,
                               sstride, 2);
        block_sums_vnni(c0, c1, pairs, x, xblocks, xb, qoff, T, s);
        float d[6], sx[6];
        for (int t = 0; t < T; t++) { d[t] = x[t * xblocks + xb].d; sx[t] = x[t * xblocks + xb].s; }
        tile_block_update(f, s, T, scales + b * 16, OFFSETS ? offsets + b * 16 : NULL, sstride, OFFSETS, d, sx);
    }
    tile_store(f, T, y, ldy, accumulate);
}

/* 7 to 12 input rows (a cache hit's question) in one pass over each tile of 32 weight rows,
   where six at a time would read the tile from memory in the first pass and multiply it again
   from L1 in the second: the integer sums of all T rows stay in registers (2T of them) while
   the float accumulators, updated once per weight block, wait in L1. Each row takes the same
   integer sums and float steps, in the same order, as in tile_vnni, so the same bits. */
#define MANY_ROWS 12
VNNI_TARGET static inline __attribute__((always_inline)) void tile_vnni_many(
    const int8_t *codes, const float *scales, const float *offsets, const int BK, const int OFFSETS,
    const kv_q16_block *x, size_t xblocks, const int T, size_t nblk, float *y, size_t ldy, int accumulate,
    int next) {
    const size_t pairs = (size_t)BK / 2, gstride = nblk * pairs * 32, sstride = nblk * 16;
    __m512 f[MANY_ROWS][2];
    for (int t = 0; t < T; t++) f[t][0] = f[t][1] = _mm512_setzero_ps();
    for (size_t b = 0; b < nblk; b++) {
        const size_t xb = BK == 32 ? b : b / 2;
        const int qoff = BK == 32 ? 0 : 16 * (int)(b & 1);
        const int8_t *c0 = codes + b * pairs * 32, *c1 = c0 + gstride;
        __m512i s[MANY_ROWS][2];
        if (next)
            tile_prefetch_next(c0, pairs * 32, gstride, scales + b * 16, OFFSETS ? offsets + b * 16 : NULL, NULL,
                               sstride, 2);
        block_sums_vnni(c0, c1, pairs, x, xblocks, xb, qoff, T, s);
        float d[MANY_ROWS], sx[MANY_ROWS];
        for (int t = 0; t < T; t++) { d[t] = x[t * xblocks + xb].d; sx[t] = x[t * xblocks + xb].s; }
        tile_block_update(f, s, T, scales + b * 16, OFFSETS ? offsets + b * 16 : NULL, sstride, OFFSETS, d, sx);
    }
    tile_store(f, T, y, ldy, accumulate);
}

#define TILE_CASE(T_) case T_: tile_vnni(codes, scales, offsets, BK, OFFSETS, xt, xblocks, T_, nblk, yt, ldy, accumulate, next); break;
#define MANY_CASE(T_) case T_: tile_vnni_many(codes, scales, offsets, BK, OFFSETS, x, xblocks, T_, nblk, y + r, ldy, accumulate, r + 32 < n); break;
#define NEXT_TILE_VNNI (codes += 2 * gsize, scales += 2 * nblk * 16, offsets = offsets ? offsets + 2 * nblk * 16 : NULL)

#define GEMM_VNNI(name, BK_, OFFSETS_)                                                                             \
    VNNI_TARGET static void name(const int8_t *codes, const float *scales, const float *offsets,                   \
                                 const kv_q16_block *x, size_t m, float *y, size_t ldy, size_t n, size_t cols,     \
                                 int accumulate) {                                                                 \
        const int BK = BK_, OFFSETS = OFFSETS_;                                                                    \
        const size_t nblk = cols / (size_t)BK, xblocks = cols / 32, gsize = nblk * pairs_of(BK) * 32;            \
        if (m > 6 && m <= MANY_ROWS) {                                                                             \
            for (size_t r = 0; r < n; r += 32) {                                                                   \
                switch ((int)m) { MANY_CASE(7) MANY_CASE(8) MANY_CASE(9) MANY_CASE(10) MANY_CASE(11) MANY_CASE(12) } \
                NEXT_TILE_VNNI;                                                                                    \
            }                                                                                                      \
            return;                                                                                                \
        }                                                                                                          \
        GEMM_TILES(m, n, x, xblocks, y, ldy, TILE_CASE, NEXT_TILE_VNNI)                                            \
    }
GEMM_VNNI(gemm_vnni_32, 32, 0)
GEMM_VNNI(gemm_vnni_32_offsets, 32, 1)
GEMM_VNNI(gemm_vnni_16, 16, 0)

/* The AVX2 path: `vpmaddwd` (16 products of int16 pairs into 8 int32 lanes) and `vpaddd`
   take the integer sums VNNI's `vpdpwssd` fuses, so they are the same exact sums; the float
   steps per block are the same instructions on 8 lanes. T input rows (T <= 6) against the 16
   weight rows of one group: 2T int32 accumulators in ymm registers per block, 2T float ones
   across blocks (spilled where they do not fit; they change once per block). Six rows measured
   faster than four (Q6_K most), one thread on an AMD Zen 4 core. */
#define AVX2_GEMM_TARGET __attribute__((target("avx2,fma")))

AVX2_GEMM_TARGET static inline __attribute__((always_inline)) void tile_avx2(
    const int8_t *codes, const float *scales, const float *offsets, const int BK, const int OFFSETS,
    const kv_q16_block *x, size_t xblocks, const int T, size_t nblk, float *y, size_t ldy, int accumulate,
    int next) {
    const size_t pairs = (size_t)BK / 2, gstride = nblk * pairs * 32;
    __m256 f[6][2];
    for (int t = 0; t < T; t++) f[t][0] = f[t][1] = _mm256_setzero_ps();
    for (size_t b = 0; b < nblk; b++) {
        const size_t xb = BK == 32 ? b : b / 2;
        const int qoff = BK == 32 ? 0 : 16 * (int)(b & 1);
        const int8_t *c = codes + b * pairs * 32;
        __m256i s[6][2];
        for (int t = 0; t < T; t++) s[t][0] = s[t][1] = _mm256_setzero_si256();
        if (next)
            tile_prefetch_next(c, pairs * 32, gstride, scales + b * 16, OFFSETS ? offsets + b * 16 : NULL, NULL,
                               nblk * 16, 1);
        for (size_t p = 0; p < pairs; p++) {
            const __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(c + p * 32)));
            const __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(c + p * 32 + 16)));
            for (int t = 0; t < T; t++) {
                int32_t pair;
                memcpy(&pair, x[t * xblocks + xb].q + qoff + 2 * p, 4);
                const __m256i a = _mm256_set1_epi32(pair);
                s[t][0] = _mm256_add_epi32(s[t][0], _mm256_madd_epi16(w0, a));
                s[t][1] = _mm256_add_epi32(s[t][1], _mm256_madd_epi16(w1, a));
            }
        }
        const float *sc = scales + b * 16, *of = OFFSETS ? offsets + b * 16 : NULL;
        const __m256 sc0 = _mm256_loadu_ps(sc), sc1 = _mm256_loadu_ps(sc + 8);
        for (int t = 0; t < T; t++) {
            const kv_q16_block *xt = x + t * xblocks + xb;
            const __m256 dx = _mm256_set1_ps(xt->d);
            f[t][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[t][0]), _mm256_mul_ps(sc0, dx), f[t][0]);
            f[t][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[t][1]), _mm256_mul_ps(sc1, dx), f[t][1]);
            if (OFFSETS) {
                const __m256 sx = _mm256_set1_ps(xt->s);
                f[t][0] = _mm256_fmadd_ps(_mm256_loadu_ps(of), sx, f[t][0]);
                f[t][1] = _mm256_fmadd_ps(_mm256_loadu_ps(of + 8), sx, f[t][1]);
            }
        }
    }
    for (int t = 0; t < T; t++) {
        float *yt = y + t * ldy;
        if (accumulate) {
            f[t][0] = _mm256_add_ps(_mm256_loadu_ps(yt), f[t][0]);
            f[t][1] = _mm256_add_ps(_mm256_loadu_ps(yt + 8), f[t][1]);
        }
        _mm256_storeu_ps(yt, f[t][0]);
        _mm256_storeu_ps(yt + 8, f[t][1]);
    }
}

#define AVX2_TILE_CASE(T_) \
    case T_: tile_avx2(codes, scales, offsets, BK, OFFSETS, xt, xblocks, T_, nblk, yt, ldy, accumulate, next); break;

/* Every group of 16 weight rows against all m input rows, six at a time (a group's codes stay
   in L1 while the input rows stream past; the first pass asks for the next group's,
   tile_prefetch_next). */
#define GEMM_AVX2(name, BK_, OFFSETS_)                                                                             \
    AVX2_GEMM_TARGET static void name(const int8_t *codes, const float *scales, const float *offsets,              \
                                      const kv_q16_block *x, size_t m, float *y, size_t ldy, size_t n,             \
                                      size_t cols, int accumulate) {                                               \
        const int BK = BK_, OFFSETS = OFFSETS_;                                                                    \
        const size_t nblk = cols / (size_t)BK, xblocks = cols / 32, gsize = nblk * pairs_of(BK) * 32;            \
        for (size_t r = 0; r < n; r += 16) {                                                                       \
            for (size_t t0 = 0; t0 < m; t0 += 6) {                                                                 \
                const kv_q16_block *xt = x + t0 * xblocks;                                                         \
                float *yt = y + t0 * ldy + r;                                                                      \
                const int next = t0 == 0 && r + 16 < n;                                                            \
                switch (m - t0 >= 6 ? 6 : (int)(m - t0)) { AVX2_TILE_CASE(6) AVX2_TILE_CASE(5) AVX2_TILE_CASE(4) AVX2_TILE_CASE(3) AVX2_TILE_CASE(2)  \
                                                           AVX2_TILE_CASE(1) }                                     \
            }                                                                                                      \
            codes += gsize, scales += nblk * 16, offsets = offsets ? offsets + nblk * 16 : NULL;                  \
        }                                                                                                          \
    }
GEMM_AVX2(gemm_avx2_32, 32, 0)
GEMM_AVX2(gemm_avx2_32_offsets, 32, 1)
GEMM_AVX2(gemm_avx2_16, 16, 0)
#endif

/* The path kv_gemm_q16 takes: forced by kv_gemm_q16_set_path (tests and benchmarks), else
   the best the CPU runs. */
static int forced_path = -1;

void kv_gemm_q16_set_path(int path) { __atomic_store_n(&forced_path, path, __ATOMIC_RELAXED); }

int kv_gemm_q8_available(void) {
#if defined(__x86_64__)
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = kv_cpu_has_avx512() && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vnni");
    }
    return cached;
#else
    return 0;
#endif
}

static int best_path(void) {
    if (kv_gemm_q8_available()) return KV_GEMM_Q16_VNNI;
#if defined(__x86_64__)
    if (kv_has_avx2_fma_f16c()) return KV_GEMM_Q16_AVX2;
#endif
    return KV_GEMM_Q16_PORTABLE;
}

int kv_gemm_q16_path(void) {
    static int best = -1;
    if (best < 0) best = best_path();
    const int forced = __atomic_load_n(&forced_path, __ATOMIC_RELAXED);
    return forced >= 0 && forced <= best ? forced : best;
}

int kv_gemm_q16_available(void) { return kv_gemm_q16_path() != KV_GEMM_Q16_PORTABLE; }

static int shape_ok(int bk, size_t n, size_t cols) {
    return (bk == 32 || bk == 16) && n % 32 == 0 && cols % 32 == 0;
}

int kv_gemm_q16(const int8_t *codes, const float *scales, const float *offsets, int bk, const kv_q16_block *x,
                size_t m, float *y, size_t ldy, size_t n, size_t cols, int accumulate) {
    if (!shape_ok(bk, n, cols) || (bk == 16 && offsets)) return -1;
#if defined(__x86_64__)
    switch (kv_gemm_q16_path()) {
    case KV_GEMM_Q16_VNNI:
        if (bk == 16) gemm_vnni_16(codes, scales, NULL, x, m, y, ldy, n, cols, accumulate);
        else if (offsets) gemm_vnni_32_offsets(codes, scales, offsets, x, m, y, ldy, n, cols, accumulate);
        else gemm_vnni_32(codes, scales, NULL, x, m, y, ldy, n, cols, accumulate);
        return 0;
    case KV_GEMM_Q16_AVX2:
        if (bk == 16) gemm_avx2_16(codes, scales, NULL, x, m, y, ldy, n, cols, accumulate);
        else if (offsets) gemm_avx2_32_offsets(codes, scales, offsets, x, m, y, ldy, n, cols, accumulate);
        else gemm_avx2_32(codes, scales, NULL, x, m, y, ldy, n, cols, accumulate);
        return 0;
    }
#endif
    gemm_portable(codes, scales, offsets, bk, x, m, y, ldy, n, cols, accumulate);
    return 0;
}

int kv_gemm_q16_portable(const int8_t *codes, const float *scales, const float *offsets, int bk,
                         const kv_q16_block *x, size_t m, float *y, size_t ldy, size_t n, size_t cols, int accumulate) {
    if (!shape_ok(bk, n, cols) || (bk == 16 && offsets)) return -1;
    gemm_portable(codes, scales, offsets, bk, x, m, y, ldy, n, cols, accumulate);
    return 0;
}
