#include <stdlib.h>
#include "qrows_blocks.h"

/* ---- One input row against row-major GGUF blocks, in the packed product's float order ----

   The same products as kv_matvec_q16rows (qrows.c), but each output takes exactly
   kv_gemm_q16's float steps (gemm_q16.c): per weight block of bk codes (32; Q6_K 16), in
   block order,
       acc = fma((float) isum, scale * d_x, acc);  acc = fma(min, s_x, acc)  (minimum only),
   with the integer sum isum exact, the scale d * sc_j of a K-quant sub-block (Q6_K: d times
   the int8 scale of its 16 codes) and the minimum -(dmin * mn_j) computed as kv_gemm_q16_pack
   computes them. So a decoded row equals the same row of any prefill bit for bit where the
   prefill takes the packed product and one row cannot (decision 099): on AVX2 without VNNI
   this kernel reads the GGUF's own blocks (Q4_K 0.56 bytes per weight against the packed
   codes' 1.25). One float chain per row is a long dependency, so the AVX2 path runs eight
   rows in the vector lanes (their eight integer sums per block in one horizontal-add tree)
   or four rows' chains interleaved. The plain C path takes the same steps. */

float kv_row_ordered_c(int type, const uint8_t *row, const kv_q16_block *x, size_t nb) {
    float acc = 0;
    for (size_t b = 0; b < nb; b++) {
        int j;
        float scale, min;
        const uint8_t *blk = locate(type, row, b, &j, &scale, &min);
        int32_t c[32];
        const int16_t *q = x[b].q;
        if (type == KV_GGML_Q6_K) {
            float sc[2];
            q6_block(blk, j, scale, c, sc);
            for (int h = 0; h < 2; h++) {
                int32_t isum = 0;
                for (int k = 16 * h; k < 16 * h + 16; k++) isum += c[k] * q[k];
                acc = __builtin_fmaf((float)isum, sc[h] * x[b].d, acc);
            }
            continue;
        }
        codes_c(type, blk, j, c);
        int32_t isum = 0;
        for (int k = 0; k < 32; k++) isum += c[k] * q[k];
        acc = __builtin_fmaf((float)isum, scale * x[b].d, acc);
        if (has_min(type)) acc = __builtin_fmaf(min, x[b].s, acc);
    }
    return acc;
}

#if defined(__x86_64__)

/* The exact sum of 8 int32 lanes. */
AVX2_TARGET static inline __attribute__((always_inline)) int32_t hsum8i(__m256i a) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* The exact sums of eight vectors of 8 int32 lanes, as floats: out[i] = sum of v[i]'s lanes
   (exact in int32; each at most 1.3e8, so exact as a float too up to its rounding, the same
   conversion the packed product takes). Three rounds of horizontal adds instead of eight
   horizontal sums. */
AVX2_TARGET static inline __attribute__((always_inline)) void hsum8x8(const __m256i v[8], float out[8]) {
    const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    /* a's low half: the low four lanes of v[0..3] summed, its high half the high four */
    const __m128i sa = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    const __m128i sb = _mm_add_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    _mm256_storeu_ps(out, _mm256_cvtepi32_ps(_mm256_setr_m128i(sa, sb)));
}

/* sum_k c[k] q[k] over the 16 codes of `codes` and the input codes at q (exact). */
AVX2_TARGET static inline __attribute__((always_inline)) __m256i dot16(__m256i codes, const int16_t *q) {
    return _mm256_madd_epi16(codes, _mm256_loadu_si256((const __m256i *)q));
}

/* A row of blocks of 32 (Q4_0 ... Q8_0). */
AVX2_TARGET static inline __attribute__((always_inline)) float row32_avx2(int type, const uint8_t *row,
                                                                          const kv_q16_block *x, size_t nb) {
    float acc = 0;
    for (size_t b = 0; b < nb; b++) {
        float scale, min;
        __m256i lo, hi;
        block_avx2(type, row, b, 0, &lo, &hi, &scale, &min);
        const int32_t isum = hsum8i(_mm256_add_epi32(dot16(lo, x[b].q), dot16(hi, x[b].q + 16)));
        acc = __builtin_fmaf((float)isum, scale * x[b].d, acc);
        if (has_min(type)) acc = __builtin_fmaf(min, x[b].s, acc);
    }
    return acc;
}

/* The terms of one K-quant super-block `blk` of a row against its 8 input blocks xs (their d
   and s in dx, sx): is[i] the integer sums as floats and fs[i] their scales times d_x, i in
   block order (Q6_K: 16 of them, one per 16 codes, scale d * sc; Q4_K, Q5_K: 8, scale
   d * sc_j) and, but for Q6_K, ms[j] = -(dmin * mn_j), the minimum's factor of s_x. Returns
   the number of terms. The scales are taken eight lanes at once. */
AVX2_TARGET static inline __attribute__((always_inline)) int kterms(int type, const uint8_t *blk, const kv_q16_block *xs,
                                                                   const float *dx, float is[16], float fs[16],
                                                                   float ms[8]) {
    if (type == KV_GGML_Q6_K) {
        /* scale of 16 codes (2j + h): (d * sc) * d_x of their input block j */
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(*(const uint16_t *)(blk + 208)));
        const __m128i s6 = _mm_loadu_si128((const __m128i *)(blk + 192));
        const __m256 lo = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(s6)));
        const __m256 hi = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(s6, 8))));
        const __m256 dlo = _mm256_setr_ps(dx[0], dx[0], dx[1], dx[1], dx[2], dx[2], dx[3], dx[3]);
        const __m256 dhi = _mm256_setr_ps(dx[4], dx[4], dx[5], dx[5], dx[6], dx[6], dx[7], dx[7]);
        _mm256_storeu_ps(fs, _mm256_mul_ps(lo, dlo));
        _mm256_storeu_ps(fs + 8, _mm256_mul_ps(hi, dhi));
        __m256i v[16];
        for (int j = 0; j < 8; j++) {
            __m256i clo, chi;
            codes_avx2(type, blk, j, 0, &clo, &chi);
            v[2 * j] = dot16(clo, xs[j].q);
            v[2 * j + 1] = dot16(chi, xs[j].q + 16);
        }
        hsum8x8(v, is);
        hsum8x8(v + 8, is + 8);
        return 16;
    }
    __m256 scale, minimum;
    kscales_avx2(blk, &scale, &minimum);
    _mm256_storeu_ps(fs, _mm256_mul_ps(scale, _mm256_loadu_ps(dx)));
    _mm256_storeu_ps(ms, _mm256_xor_ps(minimum, _mm256_set1_ps(-0.0f)));
    __m256i v[8];
    for (int j = 0; j < 8; j++) {
        __m256i lo, hi;
        codes_avx2(type, blk, j, 0, &lo, &hi);
        v[j] = _mm256_add_epi32(dot16(lo, xs[j].q), dot16(hi, xs[j].q + 16));
    }
    hsum8x8(v, is);
    return 8;
}

/* R rows of K-quant super-blocks (rows row_bytes apart) into out[0 ..< R]: each row's one
   float chain in block order; the R chains interleave, so the multiply-add latency of one
   row's chain hides behind the others'. */
AVX2_TARGET static inline __attribute__((always_inline)) void rowsk_avx2(int type, const uint8_t *w, size_t row_bytes,
                                                                         int R, const kv_q16_block *x, const float *dx,
                                                                         const float *sx, size_t nb, float *out) {
    size_t elements, bytes;
    layout(type, &elements, &bytes);
    float acc[4] = {0, 0, 0, 0};
    for (size_t sb = 0; sb < nb / 8; sb++) {
        float is[4][16], fs[4][16], ms[4][8];
        int n = 0;
        for (int t = 0; t < R; t++)
            n = kterms(type, w + t * row_bytes + sb * bytes, x + 8 * sb, dx + 8 * sb, is[t], fs[t], ms[t]);
        for (int i = 0; i < n; i++)
            for (int t = 0; t < R; t++) {
                acc[t] = __builtin_fmaf(is[t][i], fs[t][i], acc[t]);
                if (type != KV_GGML_Q6_K) acc[t] = __builtin_fmaf(ms[t][i], sx[8 * sb + (size_t)i], acc[t]);
            }
    }
    for (int t = 0; t < R; t++) out[t] = acc[t];
}

/* Eight rows of K-quant super-blocks (rows row_bytes apart) into out[0 ..< 8], the rows in
   the vector lanes: per block, the eight rows' integer sums in one horizontal-add tree, then
   one multiply-add per block (and one for the minimum) on all eight chains at once. Each
   lane takes exactly its row's steps (the same products of scales, the same fused
   multiply-adds in block order), so it equals rowsk_avx2 and kv_gemm_q16 bit for bit. */
AVX2_TARGET static inline __attribute__((always_inline)) void rowsk8_avx2(int type, const uint8_t *w, size_t row_bytes,
                                                                          const kv_q16_block *x, const float *dx,
                                                                          const float *sx, size_t nb, float *out) {
    size_t elements, bytes;
    layout(type, &elements, &bytes);
    /* The next eight rows, a super-block's share of their bytes per super-block: eight rows read
       side by side are eight strided streams, which the hardware prefetcher follows less well
       than one row after another. */
    const size_t nsb = nb / 8, share = (8 * row_bytes + nsb - 1) / nsb;
    const uint8_t *next = w + 8 * row_bytes;
    __m256 acc = _mm256_setzero_ps();
    for (size_t sb = 0; sb < nsb; sb++) {
        for (size_t o = sb * share; o < (sb + 1) * share && o < 8 * row_bytes; o += 64) __builtin_prefetch(next + o, 0, 3);
        const uint8_t *blk[8];
        for (int t = 0; t < 8; t++) blk[t] = w + (size_t)t * row_bytes + sb * bytes;
        const kv_q16_block *xs = x + 8 * sb;
        float is[8];
        __m256i v[8];
        if (type == KV_GGML_Q6_K) {
            float dv[8];
            for (int t = 0; t < 8; t++) dv[t] = _cvtsh_ss(*(const uint16_t *)(blk[t] + 208));
            const __m256 d = _mm256_loadu_ps(dv);
            for (int j = 0; j < 8; j++) {
                const __m256 dxj = _mm256_set1_ps(dx[8 * sb + (size_t)j]);
                __m256i hi[8];
                for (int t = 0; t < 8; t++) {
                    __m256i clo, chi;
                    codes_avx2(type, blk[t], j, 0, &clo, &chi);
                    v[t] = dot16(clo, xs[j].q);
                    hi[t] = dot16(chi, xs[j].q + 16);
                }
                for (int h = 0; h < 2; h++) {
                    float s6[8];
                    for (int t = 0; t < 8; t++) s6[t] = (float)(int8_t)blk[t][192 + 2 * j + h];
                    const __m256 f = _mm256_mul_ps(_mm256_mul_ps(d, _mm256_loadu_ps(s6)), dxj);
                    hsum8x8(h == 0 ? v : hi, is);
                    acc = _mm256_fmadd_ps(_mm256_loadu_ps(is), f, acc);
                }
            }
            continue;
        }
        int32_t sc[8][8], mn[8][8];
        float dv[8], dminv[8];
        for (int t = 0; t < 8; t++) {
            dv[t] = _cvtsh_ss(*(const uint16_t *)blk[t]);
            dminv[t] = _cvtsh_ss(*(const uint16_t *)(blk[t] + 2));
            for (int j = 0; j < 8; j++) scale_min(j, blk[t] + 4, &sc[j][t], &mn[j][t]);
        }
        const __m256 d = _mm256_loadu_ps(dv), dmin = _mm256_loadu_ps(dminv);
        for (int j = 0; j < 8; j++) {
            for (int t = 0; t < 8; t++) {
                __m256i lo, hi;
                codes_avx2(type, blk[t], j, 0, &lo, &hi);
                v[t] = _mm256_add_epi32(dot16(lo, xs[j].q), dot16(hi, xs[j].q + 16));
            }
            hsum8x8(v, is);
            const __m256 f = _mm256_mul_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)sc[j]))),
                                           _mm256_set1_ps(dx[8 * sb + (size_t)j]));
            const __m256 m = _mm256_xor_ps(_mm256_mul_ps(dmin, _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)mn[j]))),
                                           _mm256_set1_ps(-0.0f));
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(is), f, acc);
            acc = _mm256_fmadd_ps(m, _mm256_set1_ps(sx[8 * sb + (size_t)j]), acc);
        }
    }
    _mm256_storeu_ps(out, acc);
}

/* The rows of one type, the type a constant in each instance. */
#define ROWS_AVX2(name, type_, elements_)                                                                       \
    AVX2_TARGET static void name(const uint8_t *w, size_t row_bytes, const kv_q16_block *x, const float *dx,     \
                                 const float *sx, float *y, size_t rows, size_t nb, int accumulate) {            \
        for (size_t r = 0; r < rows;) {                                                                         \
            float v[8];                                                                                         \
            int R = 1;                                                                                          \
            if (elements_ == 32) {                                                                              \
                v[0] = row32_avx2(type_, w + r * row_bytes, x, nb);                                              \
            } else if (rows - r >= 8) {                                                                         \
                R = 8;                                                                                          \
                rowsk8_avx2(type_, w + r * row_bytes, row_bytes, x, dx, sx, nb, v);                             \
            } else if (rows - r >= 4) {                                                                         \
                R = 4;                                                                                          \
                rowsk_avx2(type_, w + r * row_bytes, row_bytes, 4, x, dx, sx, nb, v);                           \
            } else {                                                                                            \
                rowsk_avx2(type_, w + r * row_bytes, row_bytes, 1, x, dx, sx, nb, v);                           \
            }                                                                                                   \
            for (int t = 0; t < R; t++, r++) y[r] = accumulate ? y[r] + v[t] : v[t];                            \
        }                                                                                                       \
    }
QROWS_AVX2_KERNELS(ROWS_AVX2, ordered, , kv_rows_ordered_avx2)

#endif
