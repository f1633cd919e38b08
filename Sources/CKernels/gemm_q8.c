#include <stdint.h>
#include <string.h>
#include "gemm_q8.h"
#include "gemm_q16.h"
#include "gemm_tile.h"
#include "vec16.h"

#include "clones.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* ---- Many input rows on 8-bit input codes against packed integer weight codes ----------

   The weights are kv_gemm_q16_pack's (w[k] = scale * c[k] + offset per block of bk), in
   quads: group g of 16 weight rows, block b, quad p (bk / 4 per block):
     codes  int8 at ((g * nblk + b) * (bk / 4) + p) * 64 + 4 lane + {0, 1, 2, 3}: the codes
            4p ... 4p + 3 of block b of row 16 g + lane (64 bytes: the 16 int32 lanes of code
            quads `vpdpbusd` takes as its signed operand);
     bias   int32 at (g * nblk + b) * 16 + lane: -128 * the sum of those codes;
     scales, offsets as kv_gemm_q16's.
   Per weight block, isum = bias + sum_k c[k] * u[k] with u = q + 128 the stored input bytes,
   which is sum_k c[k] q[k] exactly (|isum| <= 32 * 128 * 255 at any step), then
       acc = fma((float) isum, scale * d_x, acc);  acc = fma(offset, s_x, acc)  (offset only),
   the float steps of kv_gemm_q16. */

KV_CLONES void kv_quantize_u8(const float *x, kv_u8_block *out, size_t cols) {
    for (size_t b = 0; b < cols / 32; b++) quantize_q8_block(out + b, load16(x + 32 * b), load16(x + 32 * b + 16), 128);
}

int kv_gemm_q8_relayout(int8_t *codes, int32_t *bias, int bk, size_t rows, size_t cols) {
    if ((bk != 32 && bk != 16) || rows % 16 || cols % 32) return -1;
    const size_t nblk = cols / (size_t)bk, span = 16 * (size_t)bk; /* bytes of one group's block */
    int8_t pairs[16 * 32];
    for (size_t gb = 0; gb < rows / 16 * nblk; gb++) {
        int8_t *at = codes + gb * span;
        memcpy(pairs, at, span);
        for (size_t lane = 0; lane < 16; lane++) {
            int32_t sum = 0;
            for (size_t k = 0; k < (size_t)bk; k++) {
                const int8_t c = pairs[k / 2 * 32 + 2 * lane + k % 2];
                at[k / 4 * 64 + 4 * lane + k % 4] = c;
                sum += c;
            }
            bias[gb * 16 + lane] = -128 * sum;
        }
    }
    return 0;
}

/* One output of the plain C path: row t of x against weight row r of the quad layout. */
static float dot_portable(const int8_t *codes, const int32_t *bias, const float *scales, const float *offsets, int bk,
                          const kv_u8_block *x, size_t nblk, size_t r) {
    const size_t g = r / 16, lane = r % 16, quads = (size_t)bk / 4;
    float acc = 0;
    for (size_t b = 0; b < nblk; b++) {
        const kv_u8_block *xb = x + b * (size_t)bk / 32;
        const uint8_t *u = xb->q + (bk == 16 ? 16 * (b & 1) : 0);
        const int8_t *c = codes + (g * nblk + b) * quads * 64 + 4 * lane;
        const size_t at = (g * nblk + b) * 16 + lane;
        int32_t isum = bias[at];
        for (size_t p = 0; p < quads; p++)
            for (size_t e = 0; e < 4; e++) isum += (int32_t)c[p * 64 + e] * u[4 * p + e];
        acc = __builtin_fmaf((float)isum, scales[at] * xb->d, acc);
        if (offsets) acc = __builtin_fmaf(offsets[at], xb->s, acc);
    }
    return acc;
}

static void gemm_portable(const int8_t *codes, const int32_t *bias, const float *scales, const float *offsets, int bk,
                          const kv_u8_block *x, size_t m, float *y, size_t ldy, size_t n, size_t cols, int accumulate) {
    const size_t nblk = cols / (size_t)bk, xblocks = cols / 32;
    for (size_t t = 0; t < m; t++)
        for (size_t r = 0; r < n; r++) {
            const float v = dot_portable(codes, bias, scales, offsets, bk, x + t * xblocks, nblk, r);
            y[t * ldy + r] = accumulate ? y[t * ldy + r] + v : v;
        }
}

#if defined(__x86_64__)

/* T input rows (T <= 6) against the 32 weight rows of groups g and g + 1, kv_gemm_q16's
   tile with four codes per lane: per quad two 64-byte code loads, T broadcasts, 2T
   `vpdpbusd`. BK and OFFSETS are constants in every instance. */
VNNI_TARGET static inline __attribute__((always_inline)) void tile_vnni(
    const int8_t *codes, const int32_t *bias, const float *scales, const float *offsets, const int BK,
    const int OFFSETS, const kv_u8_block *x, size_t xblocks, const int T, size_t nblk, float *y, size_t ldy,
    int accumulate, int next) {
    const size_t quads = (size_t)BK / 4, gstride = nblk * quads * 64, sstride = nblk * 16;
    __m512 f[6][2];
    for (int t = 0; t < T; t++) f[t][0] = f[t][1] = _mm512_setzero_ps();
    for (size_t b = 0; b < nblk; b++) {
        const size_t xb = BK == 32 ? b : b / 2;
        const int qoff = BK == 32 ? 0 : 16 * (int)(b & 1);
        const int8_t *c0 = codes + b * quads * 64, *c1 = c0 + gstride;
        const __m512i b0 = _mm512_loadu_si512(bias + b * 16), b1 = _mm512_loadu_si512(bias + sstride + b * 16);
        __m512i s[6][2];
        for (int t = 0; t < T; t++) { s[t][0] = b0; s[t][1] = b1; }
        if (next)
            tile_prefetch_next(c0, quads * 64, gstride, scales + b * 16, OFFSETS ? offsets + b * 16 : NULL,
                               bias + b * 16, sstride, 2);
        for (size_t p = 0; p < quads; p++) {
            const __m512i w0 = _mm512_loadu_si512(c0 + p * 64), w1 = _mm512_loadu_si512(c1 + p * 64);
            for (int t = 0; t < T; t++) {
                int32_t quad;
                memcpy(&quad, x[t * xblocks + xb].q + qoff + 4 * p, 4);
                const __m512i a = _mm512_set1_epi32(quad);
                s[t][0] = _mm512_dpbusd_epi32(s[t][0], a, w0);
                s[t][1] = _mm512_dpbusd_epi32(s[t][1], a, w1);
            }
        }
        float d[6], sx[6];
        for (int t = 0; t < T; t++) { d[t] = x[t * xblocks + xb].d; sx[t] = x[t * xblocks + xb].s; }
        tile_block_update(f, s, T, scales + b * 16, OFFSETS ? offsets + b * 16 : NULL, sstride, OFFSETS, d, sx);
    }
    tile_store(f, T, y, ldy, accumulate);
}

#define TILE_CASE(T_) case T_: tile_vnni(codes, bias, scales, offsets, BK, OFFSETS, xt, xblocks, T_, nblk, yt, ldy, accumulate, next); break;

#define GEMM_VNNI(name, BK_, OFFSETS_)                                                                             \
    VNNI_TARGET static void name(const int8_t *codes, const int32_t *bias, const float *scales,                    \
                                 const float *offsets, const kv_u8_block *x, size_t m, float *y, size_t ldy,       \
                                 size_t n, size_t cols, int accumulate) {                                          \
        const int BK = BK_, OFFSETS = OFFSETS_;                                                                    \
        const size_t nblk = cols / (size_t)BK, xblocks = cols / 32, gsize = nblk * (size_t)BK * 16;              \
        GEMM_TILES(m, n, x, xblocks, y, ldy, TILE_CASE,                                                            \
                   (codes += 2 * gsize, bias += 2 * nblk * 16, scales += 2 * nblk * 16,                           \
                    offsets = offsets ? offsets + 2 * nblk * 16 : NULL))                                           \
    }
GEMM_VNNI(gemm_vnni_32, 32, 0)
GEMM_VNNI(gemm_vnni_32_offsets, 32, 1)
GEMM_VNNI(gemm_vnni_16, 16, 0)
#endif

static int shape_ok(int bk, const float *offsets, size_t n, size_t cols) {
    return (bk == 32 || (bk == 16 && !offsets)) && n % 32 == 0 && cols % 32 == 0;
}

int kv_gemm_q8(const int8_t *codes, const int32_t *bias, const float *scales, const float *offsets, int bk,
               const kv_u8_block *x, size_t m, float *y, size_t ldy, size_t n, size_t cols, int accumulate) {
    if (!shape_ok(bk, offsets, n, cols)) return -1;
#if defined(__x86_64__)
    if (kv_gemm_q8_available()) {
        if (bk == 16) gemm_vnni_16(codes, bias, scales, NULL, x, m, y, ldy, n, cols, accumulate);
        else if (offsets) gemm_vnni_32_offsets(codes, bias, scales, offsets, x, m, y, ldy, n, cols, accumulate);
        else gemm_vnni_32(codes, bias, scales, NULL, x, m, y, ldy, n, cols, accumulate);
        return 0;
    }
#endif
    gemm_portable(codes, bias, scales, offsets, bk, x, m, y, ldy, n, cols, accumulate);
    return 0;
}

int kv_gemm_q8_portable(const int8_t *codes, const int32_t *bias, const float *scales, const float *offsets, int bk,
                        const kv_u8_block *x, size_t m, float *y, size_t ldy, size_t n, size_t cols, int accumulate) {
    if (!shape_ok(bk, offsets, n, cols)) return -1;
    gemm_portable(codes, bias, scales, offsets, bk, x, m, y, ldy, n, cols, accumulate);
    return 0;
}
