#include "engine.h"
#include "vec16.h"

#include "clones.h"

/* The two products of attention for a few query rows against a long cache, without BLAS:
   BLAS would pack all of K and V for a handful of rows, and its worker threads spin
   afterwards, competing with the request's own workers on a small machine. */

/* Scores of T query rows (T <= 8) against 16 keys whose K block is transposed in kt
   ([d][16]): one accumulator per row holds the row's 16 scores, so no horizontal sums. */
static inline __attribute__((always_inline)) void scores_tile(const float *q, size_t ldq, int T, const float *kt,
                                                            size_t d, float alpha, float *s, size_t lds, int keys) {
    v16f acc[8];
    for (int t = 0; t < T; t++) acc[t] = (v16f){0};
    for (size_t c = 0; c < d; c++) {
        const v16f kc = load16(kt + c * 16);
        for (int t = 0; t < T; t++) acc[t] += q[t * ldq + c] * kc;
    }
    for (int t = 0; t < T; t++) {
        float row[16];
        const v16f scaled = alpha * acc[t];
        memcpy(row, &scaled, sizeof row);
        memcpy(s + t * lds, row, (size_t)keys * sizeof(float));
    }
}

#define SCORES_CASE(T_) case T_: scores_tile(q, ldq, T_, kt, d, alpha, s, lds, keys); break;

static inline __attribute__((always_inline)) void scores_tile_n(const float *q, size_t ldq, int T, const float *kt,
                                                              size_t d, float alpha, float *s, size_t lds, int keys) {
    switch (T) {
    SCORES_CASE(8) SCORES_CASE(7) SCORES_CASE(6) SCORES_CASE(5)
    SCORES_CASE(4) SCORES_CASE(3) SCORES_CASE(2) SCORES_CASE(1)
    }
}

KV_CLONES void kv_scores(const float *q, size_t ldq, size_t m, const float *k, size_t ldk, size_t n, size_t d,
                         float alpha, float *s, size_t lds) {
    float kt[256 * 16];  /* d <= 256 */
    for (size_t p = 0; p < n; p += 16) {
        const int keys = n - p < 16 ? (int)(n - p) : 16;
        for (int i = 0; i < keys; i++)
            for (size_t c = 0; c < d; c++) kt[c * 16 + i] = k[(p + i) * ldk + c];
        for (int i = keys; i < 16; i++)
            for (size_t c = 0; c < d; c++) kt[c * 16 + i] = 0;
        for (size_t r = 0; r < m; r += 8) {
            const int T = m - r < 8 ? (int)(m - r) : 8;
            scores_tile_n(q + r * ldq, ldq, T, kt, d, alpha, s + r * lds + p, lds, keys);
        }
    }
}

/* T query rows by V columns [c, c + 16 * NV): T x NV accumulators in registers; every
   V vector loaded feeds T FMAs. */
static inline __attribute__((always_inline)) void weighted_tile(const float *s, size_t lds, int T, const float *v,
                                                              size_t ldv, size_t n, int NV, float *o, size_t ldo) {
    v16f acc[8][4];
    for (int t = 0; t < T; t++)
        for (int j = 0; j < NV; j++) acc[t][j] = (v16f){0};
    for (size_t p = 0; p < n; p++) {
        v16f row[4];
        for (int j = 0; j < NV; j++) row[j] = load16(v + p * ldv + 16 * j);
        for (int t = 0; t < T; t++) {
            const float w = s[t * lds + p];
            for (int j = 0; j < NV; j++) acc[t][j] += w * row[j];
        }
    }
    for (int t = 0; t < T; t++)
        for (int j = 0; j < NV; j++) memcpy(o + t * ldo + 16 * j, &acc[t][j], sizeof(v16f));
}

#define WEIGHTED_CASE(T_, NV_) \
    case (T_) * 8 + (NV_): weighted_tile(s, lds, T_, v, ldv, n, NV_, o, ldo); break;

/* weighted_tile with T (1...8) rows and NV = 2 vectors (32 columns), or one for the rest. */
static inline __attribute__((always_inline)) void weighted_tile_n(const float *s, size_t lds, int T, const float *v,
                                                                size_t ldv, size_t n, int NV, float *o, size_t ldo) {
    switch (T * 8 + NV) {
    WEIGHTED_CASE(8, 2) WEIGHTED_CASE(7, 2) WEIGHTED_CASE(6, 2) WEIGHTED_CASE(5, 2)
    WEIGHTED_CASE(4, 2) WEIGHTED_CASE(3, 2) WEIGHTED_CASE(2, 2) WEIGHTED_CASE(1, 2)
    WEIGHTED_CASE(8, 1) WEIGHTED_CASE(7, 1) WEIGHTED_CASE(6, 1) WEIGHTED_CASE(5, 1)
    WEIGHTED_CASE(4, 1) WEIGHTED_CASE(3, 1) WEIGHTED_CASE(2, 1) WEIGHTED_CASE(1, 1)
    }
}

KV_CLONES void kv_weighted_sum(const float *s, size_t lds, size_t m, const float *v, size_t ldv, size_t n, size_t d,
                               float *o, size_t ldo) {
    for (size_t c = 0; c < d; c += 32) {
        const int NV = d - c < 32 ? 1 : 2;
        for (size_t r = 0; r < m; r += 8) {
            const int T = m - r < 8 ? (int)(m - r) : 8;
            weighted_tile_n(s + r * lds, lds, T, v + c, ldv, n, NV, o + r * ldo + c, ldo);
        }
    }
}
