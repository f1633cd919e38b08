#include <stdlib.h>
#include <string.h>
#include "qrows.h"
#include "kquants.h"
#include "gemm_q16.h"

#include "clones.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* ---- One input row on 16-bit codes against row-major GGUF blocks (decode) -------------

   Every type is read as blocks of 32 weights that share one float scale and one float
   offset: w[k] = scale * c[k] + min, with integer codes c. Per block b of the input
   (kv_q16_block: x[k] = d_x * q[k], s_x = d_x * sum(q)):
       sum_k w[k] x[k] = (scale * d_x) * sum_k c[k] q[k] + min * s_x.
   The integer sum is taken in 8 int32 lanes, lane l holding k = 2l, 2l+1, 16+2l, 17+2l
   (what `pmaddwd` on codes 0-15 plus `pmaddwd` on codes 16-31 gives), and the row keeps
   8 float lanes acc[l] += (scale * d_x) * lane[l] (one fused multiply-add), a float
   min_acc += min * s_x, and ends with
       ((acc0 + acc4) + (acc2 + acc6)) + ((acc1 + acc5) + (acc3 + acc7)) + min_acc.
   The plain C path follows the same order, so the two paths agree bit for bit.

   Codes per type (layouts as kquants.c describes them):
     Q4_0  c = q - 8,  scale d                Q4_1  c = q, scale d, min m
     Q5_0  c = q - 16, scale d                Q5_1  c = q, scale d, min m
     Q8_0  c = q,      scale d
     Q4_K, Q5_K  sub-block j of a super-block: c = q, scale d * sc_j, min -(dmin * mn_j)
     Q6_K  c = sc * (q - 32) with the int8 scale of each 16 codes, scale d.
   Largest lane: |c| <= 32 * 128 (Q6_K) times |q| <= 32767, four terms: 5.4e8 < 2^31. */

static inline __attribute__((always_inline)) float h2f(const uint8_t *p) {
    return kv_h2f_inline((uint16_t)(p[0] | (p[1] << 8)));
}

/* Elements and bytes of one block of the types taken here, or 0. */
static int layout(int type, size_t *elements, size_t *bytes) {
    switch (type) {
    case KV_GGML_Q4_0: *elements = 32; *bytes = 18; return 1;
    case KV_GGML_Q4_1: *elements = 32; *bytes = 20; return 1;
    case KV_GGML_Q5_0: *elements = 32; *bytes = 22; return 1;
    case KV_GGML_Q5_1: *elements = 32; *bytes = 24; return 1;
    case KV_GGML_Q8_0: *elements = 32; *bytes = 34; return 1;
    case KV_GGML_Q4_K: *elements = 256; *bytes = 144; return 1;
    case KV_GGML_Q5_K: *elements = 256; *bytes = 176; return 1;
    case KV_GGML_Q6_K: *elements = 256; *bytes = 210; return 1;
    default: return 0;
    }
}

int kv_q16rows_supports(int type) {
    size_t e, b;
    return layout(type, &e, &b);
}

/* The 6-bit scale and min of sub-block j of a Q4_K/Q5_K block's 12 scale bytes. */
static inline __attribute__((always_inline)) void scale_min(int j, const uint8_t *s, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Where block b (of 32 weights) of a row sits: the type's block, and for the K-quants the
   sub-block j (0..7) within it. Sets *scale and *min (the float parts of the block). */
static inline __attribute__((always_inline)) const uint8_t *locate(int type, const uint8_t *row, size_t b, int *j,
                                                                   float *scale, float *min) {
    size_t elements, bytes;
    layout(type, &elements, &bytes);
    const size_t per = elements / 32;
    const uint8_t *blk = row + (b / per) * bytes;
    *j = (int)(b % per);
    *min = 0;
    switch (type) {
    case KV_GGML_Q4_1: case KV_GGML_Q5_1: *scale = h2f(blk); *min = h2f(blk + 2); break;
    case KV_GGML_Q4_K: case KV_GGML_Q5_K: {
        int sc, mn;
        scale_min(*j, blk + 4, &sc, &mn);
        *scale = h2f(blk) * (float)sc;
        *min = -(h2f(blk + 2) * (float)mn);
        break;
    }
    case KV_GGML_Q6_K: *scale = h2f(blk + 208); break;
    default: *scale = h2f(blk); break;
    }
    return blk;
}

/* The codes q - 32 of block j (of 32) of a Q6_K super-block `blk`; returns its two int8
   scales (one per 16 codes). */
static inline __attribute__((always_inline)) const int8_t *q6_codes(const uint8_t *blk, int j, int32_t c[32]) {
    const int half = j / 4, k4 = j % 4;
    const uint8_t *ql = blk + 64 * half + 32 * (k4 & 1), *qhb = blk + 128 + 32 * half;
    for (int k = 0; k < 32; k++)
        c[k] = (((ql[k] >> (4 * (k4 >> 1))) & 15) | (((qhb[k] >> (2 * k4)) & 3) << 4)) - 32;
    return (const int8_t *)(blk + 192 + 8 * half + 2 * k4);
}

/* The 32 integer codes of block j of `blk` (see the table above), plain C. */
static inline __attribute__((always_inline)) void codes_c(int type, const uint8_t *blk, int j, int32_t c[32]) {
    uint32_t qh = 0;
    switch (type) {
    case KV_GGML_Q4_0: case KV_GGML_Q4_1: {
        const uint8_t *qs = blk + (type == KV_GGML_Q4_0 ? 2 : 4);
        const int off = type == KV_GGML_Q4_0 ? 8 : 0;
        for (int k = 0; k < 16; k++) c[k] = (qs[k] & 15) - off, c[k + 16] = (qs[k] >> 4) - off;
        break;
    }
    case KV_GGML_Q5_0: case KV_GGML_Q5_1: {
        const int q50 = type == KV_GGML_Q5_0;
        memcpy(&qh, blk + (q50 ? 2 : 4), 4);
        const uint8_t *qs = blk + (q50 ? 6 : 8);
        for (int k = 0; k < 16; k++) {
            c[k] = ((qs[k] & 15) | (int)(((qh >> k) & 1) << 4)) - (q50 ? 16 : 0);
            c[k + 16] = ((qs[k] >> 4) | (int)(((qh >> (k + 16)) & 1) << 4)) - (q50 ? 16 : 0);
        }
        break;
    }
    case KV_GGML_Q8_0:
        for (int k = 0; k < 32; k++) c[k] = (int8_t)blk[2 + k];
        break;
    case KV_GGML_Q4_K: case KV_GGML_Q5_K: {
        const int five = type == KV_GGML_Q5_K;
        const uint8_t *qs = blk + (five ? 48 : 16) + 32 * (j / 2), *hb = blk + 16;
        for (int k = 0; k < 32; k++)
            c[k] = ((qs[k] >> (4 * (j & 1))) & 15) | (five ? ((hb[k] >> j) & 1) << 4 : 0);
        break;
    }
    default: { /* Q6_K */
        const int8_t *sc = q6_codes(blk, j, c);
        for (int k = 0; k < 32; k++) c[k] *= sc[k / 16];
        break;
    }
    }
}

/* The fixed final sum of the 8 lanes (the AVX2 path's order). */
static inline __attribute__((always_inline)) float lanes_sum(const float a[8]) {
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

/* Types whose blocks have a minimum (an offset besides the codes). */
static inline __attribute__((always_inline)) int has_min(int type) {
    return type == KV_GGML_Q4_1 || type == KV_GGML_Q5_1 || type == KV_GGML_Q4_K || type == KV_GGML_Q5_K;
}

static float row_c(int type, const uint8_t *row, const kv_q16_block *x, size_t nb) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, macc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t b = 0; b < nb; b++) {
        int j;
        float scale, min;
        const uint8_t *blk = locate(type, row, b, &j, &scale, &min);
        int32_t c[32];
        codes_c(type, blk, j, c);
        const int16_t *q = x[b].q;
        const float f = scale * x[b].d;
        for (int l = 0; l < 8; l++) {
            const int32_t lane = c[2 * l] * q[2 * l] + c[2 * l + 1] * q[2 * l + 1] + c[16 + 2 * l] * q[16 + 2 * l] +
                                 c[17 + 2 * l] * q[17 + 2 * l];
            acc[l] = __builtin_fmaf(f, (float)lane, acc[l]);
        }
        if (has_min(type)) macc[b % 8] = __builtin_fmaf(min, x[b].s, macc[b % 8]);
    }
    return has_min(type) ? lanes_sum(acc) + lanes_sum(macc) : lanes_sum(acc);
}

#if defined(__x86_64__)
#define AVX2_TARGET __attribute__((target("avx2,fma,f16c")))

/* 16 nibbles (low or high of 16 bytes) widened to int16. */
#define nibbles16(v, shift) _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16((v), (shift)), _mm_set1_epi8(0x0F)))

/* The 16 bits of `bits` as 16 int16 lanes of 16 (bit set) or 0. */
AVX2_TARGET static inline __attribute__((always_inline)) __m256i bits16(uint32_t bits) {
    const __m256i lane = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384,
                                           (short)0x8000);
    const __m256i m = _mm256_and_si256(_mm256_set1_epi16((short)bits), lane);
    return _mm256_and_si256(_mm256_cmpeq_epi16(m, lane), _mm256_set1_epi16(16));
}

/* The codes of block j of `blk` as int16: elements 0-15 in *lo, 16-31 in *hi. */
AVX2_TARGET static inline __attribute__((always_inline)) void codes_avx2(int type, const uint8_t *blk, int j,
                                                                         __m256i *lo, __m256i *hi) {
    switch (type) {
    case KV_GGML_Q4_0: case KV_GGML_Q4_1: {
        const __m128i v = _mm_loadu_si128((const __m128i *)(blk + (type == KV_GGML_Q4_0 ? 2 : 4)));
        const __m256i off = _mm256_set1_epi16(type == KV_GGML_Q4_0 ? 8 : 0);
        *lo = _mm256_sub_epi16(nibbles16(v, 0), off);
        *hi = _mm256_sub_epi16(nibbles16(v, 4), off);
        break;
    }
    case KV_GGML_Q5_0: case KV_GGML_Q5_1: {
        const int q50 = type == KV_GGML_Q5_0;
        uint32_t qh;
        memcpy(&qh, blk + (q50 ? 2 : 4), 4);
        const __m128i v = _mm_loadu_si128((const __m128i *)(blk + (q50 ? 6 : 8)));
        const __m256i off = _mm256_set1_epi16(q50 ? 16 : 0);
        *lo = _mm256_sub_epi16(_mm256_or_si256(nibbles16(v, 0), bits16(qh)), off);
        *hi = _mm256_sub_epi16(_mm256_or_si256(nibbles16(v, 4), bits16(qh >> 16)), off);
        break;
    }
    case KV_GGML_Q8_0:
        *lo = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk + 2)));
        *hi = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk + 18)));
        break;
    case KV_GGML_Q4_K: case KV_GGML_Q5_K: {
        const int five = type == KV_GGML_Q5_K;
        const __m256i q = _mm256_loadu_si256((const __m256i *)(blk + (five ? 48 : 16) + 32 * (j / 2)));
        __m256i v = _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(4 * (j & 1))), _mm256_set1_epi8(0x0F));
        if (five) {
            const __m256i h = _mm256_loadu_si256((const __m256i *)(blk + 16));
            const __m256i bit = _mm256_and_si256(_mm256_srl_epi16(h, _mm_cvtsi32_si128(j)), _mm256_set1_epi8(1));
            v = _mm256_or_si256(v, _mm256_slli_epi16(bit, 4));
        }
        *lo = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(v));
        *hi = _mm256_cvtepu8_epi16(_mm256_extracti128_si256(v, 1));
        break;
    }
    default: { /* Q6_K */
        const int half = j / 4, k4 = j % 4;
        const __m256i l = _mm256_loadu_si256((const __m256i *)(blk + 64 * half + 32 * (k4 & 1)));
        const __m256i h = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * half));
        const __m256i low = _mm256_and_si256(_mm256_srl_epi16(l, _mm_cvtsi32_si128(4 * (k4 >> 1))), _mm256_set1_epi8(0x0F));
        const __m256i high = _mm256_and_si256(_mm256_srl_epi16(h, _mm_cvtsi32_si128(2 * k4)), _mm256_set1_epi8(3));
        const __m256i q = _mm256_sub_epi8(_mm256_or_si256(low, _mm256_slli_epi16(high, 4)), _mm256_set1_epi8(32));
        const int8_t *sc = (const int8_t *)(blk + 192 + 8 * half + 2 * k4);
        *lo = _mm256_mullo_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(q)), _mm256_set1_epi16(sc[0]));
        *hi = _mm256_mullo_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(q, 1)), _mm256_set1_epi16(sc[1]));
        break;
    }
    }
}

/* The final sums of the 8 float lanes, in lanes_sum's order. */
AVX2_TARGET static inline __attribute__((always_inline)) float hsum8(__m256 a) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1)); /* a_i + a_{i+4} */
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));                                  /* s0 + s2, s1 + s3 */
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

AVX2_TARGET static inline __attribute__((always_inline)) __m256i lane_sums(__m256i lo, __m256i hi, const kv_q16_block *xb) {
    const __m256i xl = _mm256_loadu_si256((const __m256i *)xb->q);
    const __m256i xh = _mm256_loadu_si256((const __m256i *)(xb->q + 16));
    return _mm256_add_epi32(_mm256_madd_epi16(lo, xl), _mm256_madd_epi16(hi, xh));
}

/* A row of blocks of 32 (Q4_0 ... Q8_0). */
AVX2_TARGET static inline __attribute__((always_inline)) float row32_avx2(int type, const uint8_t *row,
                                                                          const kv_q16_block *x, size_t nb) {
    __m256 acc = _mm256_setzero_ps();
    float macc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t b = 0; b < nb; b++) {
        int j;
        float scale, min;
        const uint8_t *blk = locate(type, row, b, &j, &scale, &min);
        __m256i lo, hi;
        codes_avx2(type, blk, j, &lo, &hi);
        const __m256i lane = lane_sums(lo, hi, x + b);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(scale * x[b].d), _mm256_cvtepi32_ps(lane), acc);
        if (has_min(type)) macc[b % 8] = __builtin_fmaf(min, x[b].s, macc[b % 8]);
    }
    return has_min(type) ? hsum8(acc) + lanes_sum(macc) : hsum8(acc);
}

/* A row of K-quant super-blocks. dx and sx hold every input block's d and s. The eight
   sub-blocks' scales d * sc_j (Q6_K: d) times d_x, and the minimum terms, are taken eight
   lanes at once per super-block. */
AVX2_TARGET static inline __attribute__((always_inline)) float rowk_avx2(int type, const uint8_t *row,
                                                                         const kv_q16_block *x, const float *dx,
                                                                         const float *sx, size_t nb) {
    size_t elements, bytes;
    layout(type, &elements, &bytes);
    __m256 acc = _mm256_setzero_ps(), macc = _mm256_setzero_ps();
    for (size_t sb = 0; sb < nb / 8; sb++) {
        const uint8_t *blk = row + sb * bytes;
        __m256 f;
        if (type == KV_GGML_Q6_K) {
            f = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(*(const uint16_t *)(blk + 208))), _mm256_loadu_ps(dx + 8 * sb));
        } else {
            int32_t sc[8], mn[8];
            for (int j = 0; j < 8; j++) scale_min(j, blk + 4, &sc[j], &mn[j]);
            const __m256 d = _mm256_set1_ps(_cvtsh_ss(*(const uint16_t *)blk));
            const __m256 dmin = _mm256_set1_ps(_cvtsh_ss(*(const uint16_t *)(blk + 2)));
            const __m256 scf = _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)sc));
            const __m256 mnf = _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)mn));
            f = _mm256_mul_ps(_mm256_mul_ps(d, scf), _mm256_loadu_ps(dx + 8 * sb));
            macc = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, mnf), _mm256_loadu_ps(sx + 8 * sb), macc);
        }
        float fs[8];
        _mm256_storeu_ps(fs, f);
        for (int j = 0; j < 8; j++) {
            __m256i lo, hi;
            codes_avx2(type, blk, j, &lo, &hi);
            const __m256i lane = lane_sums(lo, hi, x + 8 * sb + (size_t)j);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(fs[j]), _mm256_cvtepi32_ps(lane), acc);
        }
    }
    return type == KV_GGML_Q6_K ? hsum8(acc) : hsum8(acc) + hsum8(macc);
}

/* The rows of one type, the type a constant in each instance. */
#define ROWS_AVX2(name, type_, elements_)                                                                       \
    AVX2_TARGET static void name(const uint8_t *w, size_t row_bytes, const kv_q16_block *x, const float *dx,     \
                                 const float *sx, float *y, size_t rows, size_t nb, int accumulate) {            \
        for (size_t r = 0; r < rows; r++) {                                                                     \
            const float v = elements_ == 32 ? row32_avx2(type_, w + r * row_bytes, x, nb)                      \
                                            : rowk_avx2(type_, w + r * row_bytes, x, dx, sx, nb);              \
            y[r] = accumulate ? y[r] + v : v;                                                                   \
        }                                                                                                       \
    }
ROWS_AVX2(rows_q4_0, KV_GGML_Q4_0, 32)
ROWS_AVX2(rows_q4_1, KV_GGML_Q4_1, 32)
ROWS_AVX2(rows_q5_0, KV_GGML_Q5_0, 32)
ROWS_AVX2(rows_q5_1, KV_GGML_Q5_1, 32)
ROWS_AVX2(rows_q8_0, KV_GGML_Q8_0, 32)
ROWS_AVX2(rows_q4_K, KV_GGML_Q4_K, 256)
ROWS_AVX2(rows_q5_K, KV_GGML_Q5_K, 256)
ROWS_AVX2(rows_q6_K, KV_GGML_Q6_K, 256)

#endif

static int matvec_rows(int type, const void *w, const kv_q16_block *x, float *y, size_t rows, size_t cols,
                       int accumulate, int portable) {
    size_t elements, bytes;
    if (!layout(type, &elements, &bytes) || cols % elements) return -1;
    const uint8_t *base = (const uint8_t *)w;
    const size_t row_bytes = cols / elements * bytes, nb = cols / 32;
#if defined(__x86_64__)
    if (!portable && kv_has_avx2_fma_f16c()) {
        /* every input block's d and s, read eight at a time by the K-quant rows */
        float stack[2 * 256], *dx = nb <= 256 ? stack : malloc(2 * nb * sizeof(float));
        if (!dx) return -2;
        float *sx = dx + nb;
        for (size_t b = 0; b < nb; b++) dx[b] = x[b].d, sx[b] = x[b].s;
        switch (type) {
        case KV_GGML_Q4_0: rows_q4_0(base, row_bytes, x, dx, sx, y, rows, nb, accumulate); break;
        case KV_GGML_Q4_1: rows_q4_1(base, row_bytes, x, dx, sx, y, rows, nb, accumulate); break;
        case KV_GGML_Q5_0: rows_q5_0(base, row_bytes, x, dx, sx, y, rows, nb, accumulate); break;
        case KV_GGML_Q5_1: rows_q5_1(base, row_bytes, x, dx, sx, y, rows, nb, accumulate); break;
        case KV_GGML_Q8_0: rows_q8_0(base, row_bytes, x, dx, sx, y, rows, nb, accumulate); break;
        case KV_GGML_Q4_K: rows_q4_K(base, row_bytes, x, dx, sx, y, rows, nb, accumulate); break;
        case KV_GGML_Q5_K: rows_q5_K(base, row_bytes, x, dx, sx, y, rows, nb, accumulate); break;
        default: rows_q6_K(base, row_bytes, x, dx, sx, y, rows, nb, accumulate); break;
        }
        if (dx != stack) free(dx);
        return 0;
    }
#endif
    (void)portable;
    for (size_t r = 0; r < rows; r++) {
        const float v = row_c(type, base + r * row_bytes, x, nb);
        y[r] = accumulate ? y[r] + v : v;
    }
    return 0;
}

int kv_matvec_q16rows(int type, const void *w, const kv_q16_block *x, float *y, size_t rows, size_t cols,
                      int accumulate) {
    return matvec_rows(type, w, x, y, rows, cols, accumulate, 0);
}

int kv_matvec_q16rows_portable(int type, const void *w, const kv_q16_block *x, float *y, size_t rows, size_t cols,
                               int accumulate) {
    return matvec_rows(type, w, x, y, rows, cols, accumulate, 1);
}

/* Q5_0 rows as Q8_0 (the same f16 scale, codes q - 16 in int8: exactly the same weights),
   32 rows at a time, then laid out by kv_qdot_interleave. */
int kv_qdot_interleave_q5_0(const void *src, void *dst, size_t rows, size_t cols) {
    if (rows % 32 || cols % 32) return -1;
    const size_t nb = cols / 32;
    uint8_t *tmp = malloc(32 * nb * 34);
    if (!tmp) return -2;
    const uint8_t *s = (const uint8_t *)src;
    for (size_t g = 0; g < rows / 32; g++) {
        for (size_t i = 0; i < 32 * nb; i++) {
            const uint8_t *b = s + (g * 32 * nb + i) * 22;
            uint8_t *o = tmp + i * 34;
            int32_t c[32];
            codes_c(KV_GGML_Q5_0, b, 0, c);
            memcpy(o, b, 2);
            for (int k = 0; k < 32; k++) o[2 + k] = (uint8_t)(int8_t)c[k];
        }
        kv_qdot_interleave(KV_GGML_Q8_0, tmp, (uint8_t *)dst + g * 32 * nb * 34, 32, cols);
    }
    free(tmp);
    return 0;
}

/* ---- Packing for kv_gemm_q16 (gemm_q16.c describes the layout) ------------------------ */

int kv_gemm_q16_layout(int type, int *bk, int *offsets) {
    size_t e, b;
    if (!layout(type, &e, &b)) return 0;
    *bk = type == KV_GGML_Q6_K ? 16 : 32;
    *offsets = has_min(type);
    return 1;
}

int kv_gemm_q16_pack(int type, const void *src, size_t rows, size_t cols, int8_t *codes, float *scales,
                     float *offsets) {
    size_t elements, bytes;
    int bk, with_offsets;
    if (!kv_gemm_q16_layout(type, &bk, &with_offsets) || rows % 16 || cols % 32) return -1;
    layout(type, &elements, &bytes);
    if (cols % elements || (with_offsets && !offsets)) return -1;
    const size_t row_bytes = cols / elements * bytes, nb = cols / 32, nblk = cols / (size_t)bk;
    const size_t pairs = (size_t)bk / 2;
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *row = (const uint8_t *)src + r * row_bytes;
        const size_t g = r / 16, lane = r % 16;
        for (size_t b = 0; b < nb; b++) {
            int j;
            float scale, min;
            const uint8_t *blk = locate(type, row, b, &j, &scale, &min);
            int32_t c[32];
            float sc[2] = {scale, scale};
            if (type == KV_GGML_Q6_K) {
                const int8_t *s6 = q6_codes(blk, j, c);
                sc[0] = scale * (float)s6[0];
                sc[1] = scale * (float)s6[1];
            } else {
                codes_c(type, blk, j, c);
            }
            for (size_t h = 0; h < 32 / (size_t)bk; h++) {
                const size_t wb = b * 32 / (size_t)bk + h; /* the weight block */
                for (size_t p = 0; p < pairs; p++) {
                    int8_t *at = codes + ((g * nblk + wb) * pairs + p) * 32 + 2 * lane;
                    at[0] = (int8_t)c[h * (size_t)bk + 2 * p];
                    at[1] = (int8_t)c[h * (size_t)bk + 2 * p + 1];
                }
                scales[(g * nblk + wb) * 16 + lane] = sc[h];
                if (with_offsets) offsets[(g * nblk + wb) * 16 + lane] = min;
            }
        }
    }
    return bk;
}
