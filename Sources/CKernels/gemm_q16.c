#include <stdint.h>
#include <string.h>
#include "gemm_q16.h"
#include "gemm_tile.h"

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
   multiply-adds of an f32 FMA) and the plain C path take exactly these steps, so they agree
   bit for bit.

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

/* T input rows (T <= 6) against the 32 weight rows of groups g and g + 1 (two vectors of 16
   outputs): 2T int32 accumulators per block, 2T float accumulators across blocks. BK and
   OFFSETS are constants in every instance. */
VNNI_TARGET static inline __attribute__((always_inline)) void tile_vnni(
    const int8_t *codes, const float *scales, const float *offsets, const int BK, const int OFFSETS,
    const kv_q16_block *x, size_t xblocks, const int T, size_t nblk, float *y, size_t ldy, int accumulate) {
    const size_t pairs = (size_t)BK / 2, gstride = nblk * pairs * 32, sstride = nblk * 16;
    __m512 f[6][2];
    for (int t = 0; t < T; t++) f[t][0] = f[t][1] = _mm512_setzero_ps();
    for (size_t b = 0; b < nblk; b++) {
        const size_t xb = BK == 32 ? b : b / 2;
        const int qoff = BK == 32 ? 0 : 16 * (int)(b & 1);
        const int8_t *c0 = codes + b * pairs * 32, *c1 = c0 + gstride;
        __m512i s[6][2];
        for (int t = 0; t < T; t++) s[t][0] = s[t][1] = _mm512_setzero_si512();
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
        float d[6], sx[6];
        for (int t = 0; t < T; t++) { d[t] = x[t * xblocks + xb].d; sx[t] = x[t * xblocks + xb].s; }
        tile_block_update(f, s, T, scales + b * 16, OFFSETS ? offsets + b * 16 : NULL, sstride, OFFSETS, d, sx);
    }
    tile_store(f, T, y, ldy, accumulate);
}

#define TILE_CASE(T_) case T_: tile_vnni(codes, scales, offsets, BK, OFFSETS, xt, xblocks, T_, nblk, yt, ldy, accumulate); break;

#define GEMM_VNNI(name, BK_, OFFSETS_)                                                                             \
    VNNI_TARGET static void name(const int8_t *codes, const float *scales, const float *offsets,                   \
                                 const kv_q16_block *x, size_t m, float *y, size_t ldy, size_t n, size_t cols,     \
                                 int accumulate) {                                                                 \
        const int BK = BK_, OFFSETS = OFFSETS_;                                                                    \
        const size_t nblk = cols / (size_t)BK, xblocks = cols / 32, gsize = nblk * pairs_of(BK) * 32;            \
        GEMM_TILES(m, n, x, xblocks, y, ldy, TILE_CASE,                                                            \
                   (codes += 2 * gsize, scales += 2 * nblk * 16, offsets = offsets ? offsets + 2 * nblk * 16 : NULL)) \
    }
GEMM_VNNI(gemm_vnni_32, 32, 0)
GEMM_VNNI(gemm_vnni_32_offsets, 32, 1)
GEMM_VNNI(gemm_vnni_16, 16, 0)
#endif

int kv_gemm_q16_available(void) {
#if defined(__x86_64__)
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vnni");
    }
    return cached;
#else
    return 0;
#endif
}

static int shape_ok(int bk, size_t n, size_t cols) {
    return (bk == 32 || bk == 16) && n % 32 == 0 && cols % 32 == 0;
}

int kv_gemm_q16(const int8_t *codes, const float *scales, const float *offsets, int bk, const kv_q16_block *x,
                size_t m, float *y, size_t ldy, size_t n, size_t cols, int accumulate) {
    if (!shape_ok(bk, n, cols) || (bk == 16 && offsets)) return -1;
#if defined(__x86_64__)
    if (kv_gemm_q16_available()) {
        if (bk == 16) gemm_vnni_16(codes, scales, NULL, x, m, y, ldy, n, cols, accumulate);
        else if (offsets) gemm_vnni_32_offsets(codes, scales, offsets, x, m, y, ldy, n, cols, accumulate);
        else gemm_vnni_32(codes, scales, NULL, x, m, y, ldy, n, cols, accumulate);
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
