#include <stdlib.h>
#include "gemm_q16.h"
#include "qrows_blocks.h"

#include "clones.h"

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
   Largest lane: |c| <= 32 * 128 (Q6_K) times |q| <= 32767, four terms: 5.4e8 < 2^31.

   kv_matvec_q16rows_ordered takes the same products in kv_gemm_q16's float order instead
   (qrows_ordered.c), where a decoded row must equal a prefill's. */

int kv_q16rows_supports(int type) {
    size_t e, b;
    return layout(type, &e, &b);
}

/* The fixed final sum of the 8 lanes (the AVX2 path's order). */
static inline __attribute__((always_inline)) float lanes_sum(const float a[8]) {
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
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
        float scale, min;
        __m256i lo, hi;
        block_avx2(type, row, b, 1, &lo, &hi, &scale, &min);
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
            __m256 scale, minimum;
            kscales_avx2(blk, &scale, &minimum);
            f = _mm256_mul_ps(scale, _mm256_loadu_ps(dx + 8 * sb));
            macc = _mm256_fnmadd_ps(minimum, _mm256_loadu_ps(sx + 8 * sb), macc);
        }
        float fs[8];
        _mm256_storeu_ps(fs, f);
        for (int j = 0; j < 8; j++) {
            __m256i lo, hi;
            codes_avx2(type, blk, j, 1, &lo, &hi);
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
QROWS_AVX2_KERNELS(ROWS_AVX2, rows, static, rows_lanes_avx2)

#endif

/* Both orders on either path: `ordered` picks the packed product's float order. */
static int matvec_rows(int type, const void *w, const kv_q16_block *x, float *y, size_t rows, size_t cols,
                       int accumulate, int portable, int ordered) {
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
        (ordered ? kv_rows_ordered_avx2 : rows_lanes_avx2)(type, base, row_bytes, x, dx, sx, y, rows, nb, accumulate);
        if (dx != stack) free(dx);
        return 0;
    }
#endif
    (void)portable;
    for (size_t r = 0; r < rows; r++) {
        const float v = (ordered ? kv_row_ordered_c : row_c)(type, base + r * row_bytes, x, nb);
        y[r] = accumulate ? y[r] + v : v;
    }
    return 0;
}

int kv_matvec_q16rows(int type, const void *w, const kv_q16_block *x, float *y, size_t rows, size_t cols,
                      int accumulate) {
    return matvec_rows(type, w, x, y, rows, cols, accumulate, 0, 0);
}

int kv_matvec_q16rows_portable(int type, const void *w, const kv_q16_block *x, float *y, size_t rows, size_t cols,
                               int accumulate) {
    return matvec_rows(type, w, x, y, rows, cols, accumulate, 1, 0);
}

int kv_matvec_q16rows_ordered(int type, const void *w, const kv_q16_block *x, float *y, size_t rows, size_t cols,
                              int accumulate) {
    return matvec_rows(type, w, x, y, rows, cols, accumulate, 0, 1);
}

int kv_matvec_q16rows_ordered_portable(int type, const void *w, const kv_q16_block *x, float *y, size_t rows,
                                       size_t cols, int accumulate) {
    return matvec_rows(type, w, x, y, rows, cols, accumulate, 1, 1);
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
                q6_block(blk, j, scale, c, sc);
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
