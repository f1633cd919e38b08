/* Private to CKernels: reading row-major GGUF blocks as blocks of 32 integer codes with a
   float scale and offset, shared by the decode row kernels (qrows.c, qrows_ordered.c) and the
   packing of kv_gemm_q16. The table of codes per type is in qrows.c. */
#ifndef KVSTASH_QROWS_BLOCKS_H
#define KVSTASH_QROWS_BLOCKS_H
#include <stdint.h>
#include <string.h>
#include "kquants.h"
#include "qrows.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static inline __attribute__((always_inline)) float h2f(const uint8_t *p) {
    return kv_h2f_inline((uint16_t)(p[0] | (p[1] << 8)));
}

/* Elements and bytes of one block of the types taken here, or 0. */
static inline int layout(int type, size_t *elements, size_t *bytes) {
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

/* The codes q - 32 of block j (of 32) of a Q6_K super-block `blk` in c, and the float scale of
   each 16 of them in sc: `scale` (the super-block's d, from locate) times its int8 scale. The
   packed product's scales are these (kv_gemm_q16_pack), so the ordered rows take them too. */
static inline __attribute__((always_inline)) void q6_block(const uint8_t *blk, int j, float scale, int32_t c[32],
                                                           float sc[2]) {
    const int8_t *s6 = q6_codes(blk, j, c);
    sc[0] = scale * (float)s6[0];
    sc[1] = scale * (float)s6[1];
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

/* Types whose blocks have a minimum (an offset besides the codes). */
static inline __attribute__((always_inline)) int has_min(int type) {
    return type == KV_GGML_Q4_1 || type == KV_GGML_Q5_1 || type == KV_GGML_Q4_K || type == KV_GGML_Q5_K;
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

/* The codes of block j of `blk` as int16: elements 0-15 in *lo, 16-31 in *hi. Q6_K's codes
   are q - 32, times the int8 scale of their 16 when q6_scaled. */
AVX2_TARGET static inline __attribute__((always_inline)) void codes_avx2(int type, const uint8_t *blk, int j,
                                                                         int q6_scaled, __m256i *lo, __m256i *hi) {
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
        *lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(q));
        *hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(q, 1));
        if (q6_scaled) {
            const int8_t *sc = (const int8_t *)(blk + 192 + 8 * half + 2 * k4);
            *lo = _mm256_mullo_epi16(*lo, _mm256_set1_epi16(sc[0]));
            *hi = _mm256_mullo_epi16(*hi, _mm256_set1_epi16(sc[1]));
        }
        break;
    }
    }
}

/* The codes of block b (of 32 weights) of `row`, as codes_avx2 gives them, and its float scale
   and minimum (locate). */
AVX2_TARGET static inline __attribute__((always_inline)) void block_avx2(int type, const uint8_t *row, size_t b,
                                                                         int q6_scaled, __m256i *lo, __m256i *hi,
                                                                         float *scale, float *min) {
    int j;
    const uint8_t *blk = locate(type, row, b, &j, scale, min);
    codes_avx2(type, blk, j, q6_scaled, lo, hi);
}

/* The eight sub-blocks' scales d * sc_j and minimum factors dmin * mn_j of a Q4_K or Q5_K
   super-block, in lane j. */
AVX2_TARGET static inline __attribute__((always_inline)) void kscales_avx2(const uint8_t *blk, __m256 *scale,
                                                                           __m256 *minimum) {
    int32_t sc[8], mn[8];
    for (int j = 0; j < 8; j++) scale_min(j, blk + 4, &sc[j], &mn[j]);
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(*(const uint16_t *)blk));
    const __m256 dmin = _mm256_set1_ps(_cvtsh_ss(*(const uint16_t *)(blk + 2)));
    *scale = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)sc)));
    *minimum = _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)mn)));
}

#endif

#if defined(__x86_64__)
/* The row kernels of one order, instanced per type by ROWS(name, type, elements) as P_q4_0 ...
   P_q6_K (the type a constant in each), and NAME (STORAGE: static, or empty), which calls the
   instance of `type`. */
#define QROWS_AVX2_KERNELS(ROWS, P, STORAGE, NAME)                                                                      \
    ROWS(P##_q4_0, KV_GGML_Q4_0, 32) ROWS(P##_q4_1, KV_GGML_Q4_1, 32) ROWS(P##_q5_0, KV_GGML_Q5_0, 32)          \
    ROWS(P##_q5_1, KV_GGML_Q5_1, 32) ROWS(P##_q8_0, KV_GGML_Q8_0, 32) ROWS(P##_q4_K, KV_GGML_Q4_K, 256)         \
    ROWS(P##_q5_K, KV_GGML_Q5_K, 256) ROWS(P##_q6_K, KV_GGML_Q6_K, 256)                                         \
    STORAGE AVX2_TARGET void NAME(int type, const uint8_t *w, size_t row_bytes, const kv_q16_block *x, const float *dx,  \
                          const float *sx, float *y, size_t rows, size_t nb, int accumulate) {                  \
        switch (type) {                                                                                         \
        case KV_GGML_Q4_0: P##_q4_0(w, row_bytes, x, dx, sx, y, rows, nb, accumulate); break;                    \
        case KV_GGML_Q4_1: P##_q4_1(w, row_bytes, x, dx, sx, y, rows, nb, accumulate); break;                    \
        case KV_GGML_Q5_0: P##_q5_0(w, row_bytes, x, dx, sx, y, rows, nb, accumulate); break;                    \
        case KV_GGML_Q5_1: P##_q5_1(w, row_bytes, x, dx, sx, y, rows, nb, accumulate); break;                    \
        case KV_GGML_Q8_0: P##_q8_0(w, row_bytes, x, dx, sx, y, rows, nb, accumulate); break;                    \
        case KV_GGML_Q4_K: P##_q4_K(w, row_bytes, x, dx, sx, y, rows, nb, accumulate); break;                    \
        case KV_GGML_Q5_K: P##_q5_K(w, row_bytes, x, dx, sx, y, rows, nb, accumulate); break;                    \
        default: P##_q6_K(w, row_bytes, x, dx, sx, y, rows, nb, accumulate); break;                              \
        }                                                                                                       \
    }
#endif

/* The rows in kv_gemm_q16's float order (qrows_ordered.c): one row, plain C; and `rows`
   rows on the AVX2 path, dx and sx holding every input block's d and s. */
float kv_row_ordered_c(int type, const uint8_t *row, const kv_q16_block *x, size_t nb);
#if defined(__x86_64__)
void kv_rows_ordered_avx2(int type, const uint8_t *w, size_t row_bytes, const kv_q16_block *x, const float *dx,
                          const float *sx, float *y, size_t rows, size_t nb, int accumulate);
#endif

#endif
