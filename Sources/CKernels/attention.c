#include <math.h>
#include "engine.h"
#include "vec16.h"

#include "clones.h"

/* Asks for rows [b0, b1) of a K or V head slice (d floats each, ld apart) to be brought
   into L2: the cache was just spliced and is far larger than L2, and the hardware
   prefetcher does not follow head slices that take a third of each row. */
static inline __attribute__((always_inline)) void prefetch_rows(const kv_f16 *x, size_t ld, size_t d, size_t b0, size_t b1) {
    for (size_t i = b0; i < b1; i++)
        for (size_t c = 0; c < d; c += 32) __builtin_prefetch(x + i * ld + c, 0, 2);
}

/* Keys K is prefetched ahead of the tile being scored. */
#define KV_PREFETCH_AHEAD 16

/* The prefetches that go with scoring keys [i, i + n) of a block (k, v at the block's
   first key, `avail` keys left from there): K of the keys KV_PREFETCH_AHEAD further on
   (into the next block at the end of this one), and V of these keys, which the weighted
   sum reads once the block is scored. Spread tile by tile, they never queue up in a burst
   that stalls the core, as a whole block's worth asked at once did. */
static inline __attribute__((always_inline)) void prefetch_tile(const kv_f16 *k, const kv_f16 *v, size_t ld, size_t d,
                                                              size_t i, size_t n, size_t avail) {
    const size_t a0 = i + KV_PREFETCH_AHEAD < avail ? i + KV_PREFETCH_AHEAD : avail;
    prefetch_rows(k, ld, d, a0, a0 + n < avail ? a0 + n : avail);
    prefetch_rows(v, ld, d, i, i + n);
}


/* Attention of a few query rows (decode, or the question after a cache hit) against a
   long f16 cache, without BLAS: BLAS would pack all of K and V for a handful of rows, and its
   worker threads spin afterwards, competing with the request's own workers.

   The query rows of one KV head are stacked and transposed, so a vector holds one score
   for 16 rows: a key's scores come from broadcasting its elements straight from the cache
   (no transpose of K), the softmax runs across rows in lanes, and the weighted sum of V
   broadcasts each row's weight. Keys go in blocks with a running max (flash attention),
   so the scratch stays KV_ATTEND_BLOCK x mp floats for any context length, and a key
   range is a partial state that kv_attend_merge combines with the others. K and V are
   IEEE f16 (the KV cache's layout) and widen to f32 as they are loaded (load16h: one
   vcvtph2ps per 16 elements on F16C/AVX-512, a software conversion on baseline x86-64). */

/* Scores of KB keys (rows ld apart) for RV vectors of 16 stacked rows: st[i][16j + lane]
   = k[i] . qt[.][16j + lane]. The keys are widened to f32 once (kf, KB rows of d), then
   each key element is broadcast once and feeds RV FMAs. */
static inline __attribute__((always_inline)) void scores_tile(const float *qt, size_t mp, size_t d, const kv_f16 *kh,
                                                            size_t ldh, int KB, int RV, float *st) {
    float kf[8 * KV_ATTEND_MAX_DIM];
    for (int i = 0; i < KB; i++)
        for (size_t c = 0; c < d; c += 16) store16(kf + i * d + c, load16h(kh + i * ldh + c));
    const float *k = kf;
    const size_t ld = d;
    v16f acc[8][3];
    for (int i = 0; i < KB; i++)
        for (int j = 0; j < RV; j++) acc[i][j] = (v16f){};
    for (size_t c = 0; c < d; c++) {
        v16f q[3];
        for (int j = 0; j < RV; j++) q[j] = load16(qt + c * mp + 16 * j);
        for (int i = 0; i < KB; i++) {
            const float kc = k[i * ld + c];
            for (int j = 0; j < RV; j++) acc[i][j] += kc * q[j];
        }
    }
    for (int i = 0; i < KB; i++)
        for (int j = 0; j < RV; j++) store16(st + i * mp + 16 * j, acc[i][j]);
}

#define SCORES_CASE(KB_, RV_) case (KB_) * 4 + (RV_): scores_tile(qtj, mp, d, ki, ld, KB_, RV_, sti); break;

/* Register tiles of scores_block, scores_rows and weighted_block. The wide ones keep up to
   24 16-lane accumulators, one zmm each on AVX-512. On AVX2 a 16-lane vector takes two ymm
   registers of 16, so the wide tiles spill; the narrow ones keep 6 (8 keys x 48 rows becomes
   6 keys x 16 rows, 6 rows x 64 columns becomes 6 x 16, 4 decode keys become 2), which
   measured 1.7x faster for 69 stacked rows over 3.5K keys on a Zen 1 core. Both orders of
   summation are the same, so the two give the same bits. */
static int attend_tiles = -1; /* -1: by CPU; 0: narrow; 1: wide (kv_attend_set_tiles) */

void kv_attend_set_tiles(int wide) { __atomic_store_n(&attend_tiles, wide < 0 ? -1 : wide != 0, __ATOMIC_RELAXED); }

static inline int wide_tiles(void) {
    const int forced = __atomic_load_n(&attend_tiles, __ATOMIC_RELAXED);
    return forced >= 0 ? forced : __builtin_cpu_supports("avx512f");
}

static inline __attribute__((always_inline)) void scores_block(const float *qt, size_t mp, size_t d, const kv_f16 *k,
                                                             const kv_f16 *v, size_t ld, size_t nb, size_t avail, float *st,
                                                             int wide) {
    const size_t step = wide ? 48 : 16;
    const int full = wide ? 8 : 6;
    for (size_t j = 0; j < mp; j += step) {
        const int RV = wide ? (mp - j >= 48 ? 3 : (int)(mp - j) / 16) : 1;
        for (size_t i = 0; i < nb; ) {
            const int KB = nb - i >= (size_t)full ? full : 1;
            if (j == 0) prefetch_tile(k, v, ld, d, i, (size_t)KB, avail);
            const kv_f16 *ki = k + i * ld;
            float *sti = st + i * mp + j;
            const float *qtj = qt + j;
            switch (KB * 4 + RV) {
            SCORES_CASE(8, 3) SCORES_CASE(8, 2) SCORES_CASE(8, 1) SCORES_CASE(6, 1)
            SCORES_CASE(1, 3) SCORES_CASE(1, 2) SCORES_CASE(1, 1)
            }
            i += (size_t)KB;
        }
    }
}

/* Scores for at most four stacked rows (decode): a vector holds 16 dims of one key, so
   each key costs d/16 loads and M*d/16 FMAs plus M horizontal sums, where the lanes-as-rows
   tile would use M of 16 lanes. KB keys at once keep KB*M accumulator chains in flight.
   Padding lanes of st get zeros. */
static inline __attribute__((always_inline)) void rows_tile(const float *qrows, size_t d, const kv_f16 *k, size_t ld,
                                                          int M, int KB, float *st, size_t mp) {
    v16f acc[4][4];
    for (int i = 0; i < KB; i++)
        for (int t = 0; t < M; t++) acc[i][t] = (v16f){};
    for (size_t c = 0; c < d; c += 16) {
        v16f q[4];
        for (int t = 0; t < M; t++) q[t] = load16(qrows + t * d + c);
        for (int i = 0; i < KB; i++) {
            const v16f kv = load16h(k + i * ld + c);
            for (int t = 0; t < M; t++) acc[i][t] += q[t] * kv;
        }
    }
    for (int i = 0; i < KB; i++) {
        store16(st + i * mp, (v16f){});
        for (int t = 0; t < M; t++) st[i * mp + t] = vsum16(acc[i][t]);
    }
}

#define ROWS_CASE(M_, KB_) case (M_) * 8 + (KB_): rows_tile(qrows, d, ki, ld, M_, KB_, sti, mp); break;

static inline __attribute__((always_inline)) void scores_rows(const float *qrows, int m, size_t d, const kv_f16 *k,
                                                            const kv_f16 *v, size_t ld, size_t nb, size_t avail,
                                                            float *st, size_t mp, int wide) {
    const int full = wide ? 4 : 2;
    for (size_t i = 0; i < nb; ) {
        const int KB = nb - i >= (size_t)full ? full : 1;
        prefetch_tile(k, v, ld, d, i, (size_t)KB, avail);
        const kv_f16 *ki = k + i * ld;
        float *sti = st + i * mp;
        switch (m * 8 + KB) {
        ROWS_CASE(4, 4) ROWS_CASE(3, 4) ROWS_CASE(2, 4) ROWS_CASE(1, 4)
        ROWS_CASE(4, 2) ROWS_CASE(3, 2) ROWS_CASE(2, 2) ROWS_CASE(1, 2)
        ROWS_CASE(4, 1) ROWS_CASE(3, 1) ROWS_CASE(2, 1) ROWS_CASE(1, 1)
        }
        i += (size_t)KB;
    }
}

/* o[t][c] += sum_i st[i][t] * v[i][c] for T rows and NV vectors of 16 columns: T x NV
   accumulators in registers, every V vector loaded feeds T FMAs. */
static inline __attribute__((always_inline)) void weighted_tile(const float *st, size_t mp, const kv_f16 *v, size_t ld,
                                                              size_t nb, int T, int NV, float *o, size_t d) {
    v16f acc[6][4];
    for (int t = 0; t < T; t++)
        for (int j = 0; j < NV; j++) acc[t][j] = load16(o + t * d + 16 * j);
    for (size_t i = 0; i < nb; i++) {
        v16f row[4];
        for (int j = 0; j < NV; j++) row[j] = load16h(v + i * ld + 16 * j);
        for (int t = 0; t < T; t++) {
            const float w = st[i * mp + t];
            for (int j = 0; j < NV; j++) acc[t][j] += w * row[j];
        }
    }
    for (int t = 0; t < T; t++)
        for (int j = 0; j < NV; j++) store16(o + t * d + 16 * j, acc[t][j]);
}

#define WEIGHTED_CASE(T_, NV_) case (T_) * 8 + (NV_): weighted_tile(stt, mp, vc, ld, nb, T_, NV_, ot, d); break;
#define WEIGHTED_ROWS(NV_) WEIGHTED_CASE(6, NV_) WEIGHTED_CASE(5, NV_) WEIGHTED_CASE(4, NV_) \
                           WEIGHTED_CASE(3, NV_) WEIGHTED_CASE(2, NV_) WEIGHTED_CASE(1, NV_)

static inline __attribute__((always_inline)) void weighted_block(const float *st, size_t mp, size_t m, const kv_f16 *v, size_t ld,
                                                               size_t nb, float *o, size_t d, int wide) {
    const size_t cols = wide ? 64 : 16;
    for (size_t c = 0; c < d; c += cols) {
        const int NV = wide ? (d - c >= 64 ? 4 : (int)(d - c) / 16) : 1;
        for (size_t t = 0; t < m; t += 6) {
            const int T = m - t >= 6 ? 6 : (int)(m - t);
            const float *stt = st + t;
            const kv_f16 *vc = v + c;
            float *ot = o + t * d + c;
            switch (T * 8 + NV) {
            WEIGHTED_ROWS(4) WEIGHTED_ROWS(3) WEIGHTED_ROWS(2) WEIGHTED_ROWS(1)
            }
        }
    }
}

/* Masks the keys a lane may not see (key b + i > last[lane], or b + i < first[lane] when
   `first` is given), takes the block's max, moves the running state to the new max and
   turns scores into weights. */
static inline __attribute__((always_inline)) void softmax_block(float *st, size_t mp, size_t nb, size_t b, const int32_t *last,
                          const int32_t *first, float *mx, float *sum, float *rescale) {
    const v16f neg_inf = (v16f){} - INFINITY;
    for (size_t j = 0; j < mp; j += 16) {
        v16i lim, low = (v16i){} - 1;
        memcpy(&lim, last + j, sizeof lim);
        lim -= (int32_t)b;
        if (first) {
            memcpy(&low, first + j, sizeof low);
            low -= (int32_t)b;
        }
        /* Every lane sees every key of the block (all but the edge blocks of its window):
           nothing to mask, and no weight below needs forcing to zero. */
        const int open = __builtin_reduce_min(lim) >= (int32_t)nb - 1 && __builtin_reduce_max(low) <= 0;
        v16f block_max = neg_inf;
        if (open)
            for (size_t i = 0; i < nb; i++) block_max = __builtin_elementwise_max(block_max, load16(st + i * mp + j));
        else
            for (size_t i = 0; i < nb; i++) {
                const v16i at = (v16i){} + (int32_t)i;
                const v16i hidden = (at > lim) | (at < low);
                const v16f s = as_f((as_i(load16(st + i * mp + j)) & ~hidden) | (as_i(neg_inf) & hidden));
                store16(st + i * mp + j, s);
                block_max = __builtin_elementwise_max(block_max, s);
            }
        const v16f old_max = load16(mx + j);
        const v16f new_max = __builtin_elementwise_max(old_max, block_max);
        const v16i none = new_max == neg_inf; /* nothing visible yet: weights are zero */
        const v16f ref = as_f(as_i(new_max) & ~none);
        const v16i was_empty = old_max == neg_inf;
        const v16f alpha = as_f(as_i(exp16_nonpos(old_max - ref)) & ~was_empty);
        v16f total = (v16f){};
        if (open)
            for (size_t i = 0; i < nb; i++) {
                const v16f e = exp16_nonpos(load16(st + i * mp + j) - ref);
                store16(st + i * mp + j, e);
                total += e;
            }
        else
            for (size_t i = 0; i < nb; i++) {
                const v16f s = load16(st + i * mp + j);
                const v16f e = as_f(as_i(exp16_nonpos(s - ref)) & ~(s == neg_inf));
                store16(st + i * mp + j, e);
                total += e;
            }
        store16(sum + j, load16(sum + j) * alpha + total);
        store16(mx + j, new_max);
        store16(rescale + j, alpha);
    }
}

KV_CLONES void kv_attend_partial(const float *qt, size_t m, size_t mp, size_t d, const uint16_t *k16,
                                 const uint16_t *v16, size_t ld, size_t p0, size_t p1, const int32_t *last,
                                 const int32_t *first, float *scratch, float *o, float *mx, float *sum) {
    const kv_f16 *k = (const kv_f16 *)k16, *v = (const kv_f16 *)v16;
    float rescale[KV_ATTEND_MAX_ROWS];
    /* Decode-sized groups take the key-in-lanes scores, with the rows untransposed. */
    float qrows[4 * KV_ATTEND_MAX_DIM];
    const int few = m <= 4, wide = wide_tiles();
    if (few)
        for (size_t t = 0; t < m; t++)
            for (size_t c = 0; c < d; c++) qrows[t * d + c] = qt[c * mp + t];
    for (size_t t = 0; t < m * d; t++) o[t] = 0;
    for (size_t t = 0; t < mp; t++) { mx[t] = -INFINITY; sum[t] = 0; }
    for (size_t b = p0; b < p1; b += KV_ATTEND_BLOCK) {
        const size_t nb = p1 - b < KV_ATTEND_BLOCK ? p1 - b : KV_ATTEND_BLOCK;
        if (b == p0) prefetch_rows(k, ld, d, b, b + (nb < KV_PREFETCH_AHEAD ? nb : KV_PREFETCH_AHEAD));
        if (few) scores_rows(qrows, (int)m, d, k + b * ld, v + b * ld, ld, nb, p1 - b, scratch, mp, wide);
        else scores_block(qt, mp, d, k + b * ld, v + b * ld, ld, nb, p1 - b, scratch, wide);
        softmax_block(scratch, mp, nb, b, last, first, mx, sum, rescale);
        if (b > p0)
            for (size_t t = 0; t < m; t++)
                for (size_t c = 0; c < d; c++) o[t * d + c] *= rescale[t];
        weighted_block(scratch, mp, m, v + b * ld, ld, nb, o, d, wide);
    }
}

void kv_attend_merge(size_t parts, size_t m, size_t mp, size_t d, const float *o, const float *mx, const float *sum,
                     float *out) {
    for (size_t t = 0; t < m; t++) {
        float top = -INFINITY;
        for (size_t i = 0; i < parts; i++) top = mx[i * mp + t] > top ? mx[i * mp + t] : top;
        float *row = out + t * d;
        for (size_t c = 0; c < d; c++) row[c] = 0;
        if (top == -INFINITY) continue;
        float total = 0;
        for (size_t i = 0; i < parts; i++) {
            if (mx[i * mp + t] == -INFINITY) continue;
            const float w = expf(mx[i * mp + t] - top);
            total += w * sum[i * mp + t];
            const float *part = o + i * m * d + t * d;
            for (size_t c = 0; c < d; c++) row[c] += w * part[c];
        }
        const float inv = 1.0f / total;
        for (size_t c = 0; c < d; c++) row[c] *= inv;
    }
}
