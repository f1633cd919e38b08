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
   so the scratch stays about KV_ATTEND_BLOCK x mp floats for any context length. K and V
   are IEEE f16 (the KV cache's layout) and widen to f32 as they are loaded (load16h: one
   vcvtph2ps per 16 elements on F16C/AVX-512, a software conversion on baseline x86-64).

   A row's result does not depend on the other rows, on how many rows are stacked or on the
   range a call covers: each lane's scores are sums over the head dimension in order, masked
   keys add exact zeros, key blocks start at multiples of KV_ATTEND_BLOCK and segments at
   multiples of the caller's segment size counted from key 0, each segment's running state starts
   empty, and segments fold in order (attend_fold). So a prompt's rows come out the same bits
   whether a prefill computes them all at once, a cache hit computes only the last few, or
   decode computes them one by one: the exactness of cached answers rests on this. */

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

/* Register tiles of scores_block and weighted_block. The wide ones keep up to
   24 16-lane accumulators, one zmm each on AVX-512. On AVX2 a 16-lane vector takes two ymm
   registers of 16, so the wide tiles spill; the narrow ones keep 6 (8 keys x 48 rows becomes
   6 keys x 16 rows, 6 rows x 64 columns becomes 6 x 16), which
   measured 1.7x faster for 69 stacked rows over 3.5K keys on a Zen 1 core. Both orders of
   summation are the same, so the two give the same bits. */
static int attend_tiles = -1; /* -1: by CPU; 0: narrow; 1: wide (kv_attend_set_tiles) */

void kv_attend_set_tiles(int wide) { __atomic_store_n(&attend_tiles, wide < 0 ? -1 : wide != 0, __ATOMIC_RELAXED); }

static inline int wide_tiles(void) {
    const int forced = __atomic_load_n(&attend_tiles, __ATOMIC_RELAXED);
    return forced >= 0 ? forced : kv_cpu_has_avx512();
}

/* The keys [*lo, *hi) of a block (its first key at b, nb keys) that any of the lanes
   [t0, t1) sees: the rest have zero weight in every one of these lanes. */
static inline __attribute__((always_inline)) void lanes_keys(const int32_t *last, const int32_t *first, size_t t0,
                                                           size_t t1, size_t b, size_t nb, size_t *lo, size_t *hi) {
    int64_t top = -1, bottom = INT64_MAX;
    for (size_t t = t0; t < t1; t++) {
        if (last[t] > top) top = last[t];
        if (first && first[t] < bottom) bottom = first[t];
    }
    const int64_t h = top - (int64_t)b + 1, l = first ? bottom - (int64_t)b : 0;
    *hi = h <= 0 ? 0 : (size_t)h < nb ? (size_t)h : nb;
    *lo = l <= 0 ? 0 : (size_t)l < *hi ? (size_t)l : *hi;
}

/* Scores of the block's keys for every lane vector group, each over the keys some lane of the
   group sees (lanes_keys); the scores of other keys are left unwritten, and softmax_block masks
   them. The first group's pass walks every key some lane sees, to prefetch them. */
static inline __attribute__((always_inline)) void scores_block(const float *qt, size_t mp, size_t d, const kv_f16 *k,
                                                             const kv_f16 *v, size_t ld, size_t nb, size_t b,
                                                             size_t avail, const int32_t *last, const int32_t *first,
                                                             float *st, int wide) {
    const size_t step = wide ? 48 : 16;
    const int full = wide ? 8 : 6;
    size_t seen_lo, seen_hi;
    lanes_keys(last, first, 0, mp, b, nb, &seen_lo, &seen_hi);
    for (size_t j = 0; j < mp; j += step) {
        const int RV = wide ? (mp - j >= 48 ? 3 : (int)(mp - j) / 16) : 1;
        size_t lo, hi;
        lanes_keys(last, first, j, j + 16 * (size_t)RV, b, nb, &lo, &hi);
        const size_t from = j == 0 ? seen_lo : lo, to = j == 0 ? seen_hi : hi;
        for (size_t i = from; i < to; ) {
            const int KB = to - i >= (size_t)full ? full : 1;
            if (j == 0) prefetch_tile(k, v, ld, d, i, (size_t)KB, avail);
            if (i + (size_t)KB > lo && i < hi) {
                const kv_f16 *ki = k + i * ld;
                float *sti = st + i * mp + j;
                const float *qtj = qt + j;
                switch (KB * 4 + RV) {
                SCORES_CASE(8, 3) SCORES_CASE(8, 2) SCORES_CASE(8, 1) SCORES_CASE(6, 1)
                SCORES_CASE(1, 3) SCORES_CASE(1, 2) SCORES_CASE(1, 1)
                }
            }
            i += (size_t)KB;
        }
    }
}

/* The 16 x 16 floats r[i][j] transposed in registers: col[j][i] = r[i][j] (interleaves of 32
   and 64 bits within 128-bit lanes, then two exchanges of 128-bit lanes). */
#define EVEN_LANES 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27
#define ODD_LANES 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31
static inline __attribute__((always_inline)) void transpose16(const v16f r[16], v16f col[16]) {
    v16f a[16], b[16];
    for (int i = 0; i < 8; i++) {
        a[2 * i] = __builtin_shufflevector(r[2 * i], r[2 * i + 1], 0, 16, 1, 17, 4, 20, 5, 21, 8, 24, 9, 25, 12, 28, 13, 29);
        a[2 * i + 1] =
            __builtin_shufflevector(r[2 * i], r[2 * i + 1], 2, 18, 3, 19, 6, 22, 7, 23, 10, 26, 11, 27, 14, 30, 15, 31);
    }
    /* b[4g + k], 128-bit lane l: rows 4g ... 4g + 3 of column 4l + k. */
    for (int g = 0; g < 4; g++) {
        const v16f *x = a + 4 * g;
        b[4 * g] = __builtin_shufflevector(x[0], x[2], 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
        b[4 * g + 1] = __builtin_shufflevector(x[0], x[2], 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
        b[4 * g + 2] = __builtin_shufflevector(x[1], x[3], 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
        b[4 * g + 3] = __builtin_shufflevector(x[1], x[3], 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
    }
    for (int k = 0; k < 4; k++) {
        const v16f p0 = __builtin_shufflevector(b[k], b[4 + k], EVEN_LANES);
        const v16f p1 = __builtin_shufflevector(b[k], b[4 + k], ODD_LANES);
        const v16f p2 = __builtin_shufflevector(b[8 + k], b[12 + k], EVEN_LANES);
        const v16f p3 = __builtin_shufflevector(b[8 + k], b[12 + k], ODD_LANES);
        col[k] = __builtin_shufflevector(p0, p2, EVEN_LANES);
        col[4 + k] = __builtin_shufflevector(p1, p3, EVEN_LANES);
        col[8 + k] = __builtin_shufflevector(p0, p2, ODD_LANES);
        col[12 + k] = __builtin_shufflevector(p1, p3, ODD_LANES);
    }
}

/* The 16 x 16 halves r[i][j], raw bits in int16 lanes, transposed in registers: col[j][i] =
   r[i][j]. The interleaves of 16, 32 and 64 bits within 128-bit lanes and one exchange of
   128-bit lanes are 64 shuffles of 256 bits, against about 100 for the 16 x 16 floats the same
   keys widen to (transpose16), so decode's keys-in-lanes scores transpose K before widening it. */
static inline __attribute__((always_inline)) void transpose16h(const v16s r[16], v16s col[16]) {
    v16s a[16], b[16], c[16];
    for (int i = 0; i < 8; i++) { /* a[2i + e], lane L: rows 2i, 2i + 1 of columns 8L + 4e ... 8L + 4e + 3 */
        a[2 * i] = __builtin_shufflevector(r[2 * i], r[2 * i + 1], 0, 16, 1, 17, 2, 18, 3, 19, 8, 24, 9, 25, 10, 26, 11, 27);
        a[2 * i + 1] =
            __builtin_shufflevector(r[2 * i], r[2 * i + 1], 4, 20, 5, 21, 6, 22, 7, 23, 12, 28, 13, 29, 14, 30, 15, 31);
    }
    for (int g = 0; g < 4; g++) { /* b[4g + k], lane L: rows 4g ... 4g + 3 of columns 8L + 2k, 8L + 2k + 1 */
        const v16s *x = a + 4 * g;
        b[4 * g] = __builtin_shufflevector(x[0], x[2], 0, 1, 16, 17, 2, 3, 18, 19, 8, 9, 24, 25, 10, 11, 26, 27);
        b[4 * g + 1] = __builtin_shufflevector(x[0], x[2], 4, 5, 20, 21, 6, 7, 22, 23, 12, 13, 28, 29, 14, 15, 30, 31);
        b[4 * g + 2] = __builtin_shufflevector(x[1], x[3], 0, 1, 16, 17, 2, 3, 18, 19, 8, 9, 24, 25, 10, 11, 26, 27);
        b[4 * g + 3] = __builtin_shufflevector(x[1], x[3], 4, 5, 20, 21, 6, 7, 22, 23, 12, 13, 28, 29, 14, 15, 30, 31);
    }
    for (int h = 0; h < 2; h++) /* c[8h + j], lane L: rows 8h ... 8h + 7 of column 8L + j */
        for (int k = 0; k < 4; k++) {
            const v16s lo = b[8 * h + k], hi = b[8 * h + 4 + k];
            c[8 * h + 2 * k] = __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
            c[8 * h + 2 * k + 1] =
                __builtin_shufflevector(lo, hi, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
        }
    for (int j = 0; j < 8; j++) {
        col[j] = __builtin_shufflevector(c[j], c[8 + j], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
        col[8 + j] = __builtin_shufflevector(c[j], c[8 + j], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    }
}

/* Scores of up to 16 keys (n of them, rows ld apart) for M <= 4 rows (decode), keys in the
   lanes: each 16 x 16 piece of K is transposed so a vector holds one element of 16 keys,
   and a row's score for a key adds q[c] k[c] for c in order, one multiply-add at a time:
   the very sums scores_tile takes with rows in the lanes, at a quarter of its lanes' work for
   a decode step's 3 or 4 rows. st[i][t] gets key i's score of row t; lanes t >= M get 0. */
static inline __attribute__((always_inline)) void scores_keys_tile(const float *qrows, int M, size_t d, const kv_f16 *k,
                                                                 size_t ld, size_t n, float *st, size_t mp) {
    v16f acc[4];
    for (int t = 0; t < M; t++) acc[t] = (v16f){};
    for (size_t c0 = 0; c0 < d; c0 += 16) {
        v16s r[16], col[16];
        for (size_t i = 0; i < 16; i++)
            if (i < n) memcpy(&r[i], k + i * ld + c0, sizeof r[i]);
            else r[i] = (v16s){};
        transpose16h(r, col);
        for (int j = 0; j < 16; j++) {
            const v16f kj = __builtin_convertvector((v16h)col[j], v16f);
            for (int t = 0; t < M; t++) acc[t] += qrows[t * d + c0 + (size_t)j] * kj;
        }
    }
    float out[4][16];
    for (int t = 0; t < M; t++) store16(out[t], acc[t]);
    for (size_t i = 0; i < n; i++) { /* mp is 16 for M <= 4 rows */
        v16f row = (v16f){};
        for (int t = 0; t < M; t++) row[t] = out[t][i];
        store16(st + i * mp, row);
    }
}

#define KEYS_CASE(M_) case M_: scores_keys_tile(qrows, M_, d, k + i * ld, ld, n, st + i * mp, mp); break;

static inline __attribute__((always_inline)) void scores_keys(const float *qrows, int m, size_t d, const kv_f16 *k,
                                                            const kv_f16 *v, size_t ld, size_t nb, size_t avail,
                                                            float *st, size_t mp) {
    for (size_t i = 0; i < nb; i += 16) {
        const size_t n = nb - i < 16 ? nb - i : 16;
        prefetch_tile(k, v, ld, d, i, n, avail);
        switch (m) { KEYS_CASE(1) KEYS_CASE(2) KEYS_CASE(3) KEYS_CASE(4) }
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

#define WEIGHTED_CASE(T_, NV_) case (T_) * 8 + (NV_): weighted_tile(stt, mp, vc, ld, hi - lo, T_, NV_, ot, d); break;
#define WEIGHTED_ROWS(NV_) WEIGHTED_CASE(6, NV_) WEIGHTED_CASE(5, NV_) WEIGHTED_CASE(4, NV_) \
                           WEIGHTED_CASE(3, NV_) WEIGHTED_CASE(2, NV_) WEIGHTED_CASE(1, NV_)

/* o += weights . V over the block's keys, each tile of rows over the keys one of its rows sees
   (the others weigh exactly zero in every row of the tile). */
static inline __attribute__((always_inline)) void weighted_block(const float *st, size_t mp, size_t m, const kv_f16 *v, size_t ld,
                                                               size_t nb, size_t b, const int32_t *last,
                                                               const int32_t *first, float *o, size_t d, int wide) {
    const size_t cols = wide ? 64 : 16;
    for (size_t c = 0; c < d; c += cols) {
        const int NV = wide ? (d - c >= 64 ? 4 : (int)(d - c) / 16) : 1;
        for (size_t t = 0; t < m; t += 6) {
            const int T = m - t >= 6 ? 6 : (int)(m - t);
            size_t lo, hi;
            lanes_keys(last, first, t, t + (size_t)T, b, nb, &lo, &hi);
            if (lo == hi) continue;
            const float *stt = st + lo * mp + t;
            const kv_f16 *vc = v + lo * ld + c;
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

/* Folds a partial state (po, pmx, psum: keys of one segment) into an accumulated one (ao, amx,
   asum: the segments before it), lane by lane: both move to the larger max and add. One
   function, compiled once for every CPU and with no contraction into fused multiply-adds,
   takes every fold, so a row's result depends only on the keys it sees and the fixed
   segments they fall in, never on which call or task computed a segment. */
static __attribute__((noinline)) void attend_fold(size_t m, size_t d, float *ao, float *amx, float *asum, const float *po,
                                                  const float *pmx, const float *psum) {
#pragma clang fp contract(off)
    for (size_t t = 0; t < m; t++) {
        const float pm = pmx[t], am = amx[t];
        if (pm == -INFINITY) continue;
        if (am == -INFINITY) {
            amx[t] = pm;
            asum[t] = psum[t];
            memcpy(ao + t * d, po + t * d, d * sizeof(float));
            continue;
        }
        const float top = am > pm ? am : pm, wa = expf(am - top), wp = expf(pm - top);
        asum[t] = asum[t] * wa + psum[t] * wp;
        float *a = ao + t * d;
        const float *p = po + t * d;
        for (size_t c = 0; c < d; c++) a[c] = a[c] * wa + p[c] * wp;
        amx[t] = top;
    }
}

static void empty_state(size_t m, size_t mp, size_t d, float *o, float *mx, float *sum) {
    for (size_t t = 0; t < m * d; t++) o[t] = 0;
    for (size_t t = 0; t < mp; t++) { mx[t] = -INFINITY; sum[t] = 0; }
}

KV_CLONES void kv_attend_partial(const float *qt, size_t m, size_t mp, size_t d, const uint16_t *k16,
                                 const uint16_t *v16, size_t ld, size_t p0, size_t p1, size_t segment, const int32_t *last,
                                 const int32_t *first, float *scratch, float *o, float *mx, float *sum) {
    const kv_f16 *k = (const kv_f16 *)k16, *v = (const kv_f16 *)v16;
    float rescale[KV_ATTEND_MAX_ROWS];
    const int wide = wide_tiles(), few = m <= 4;
    /* Decode-sized groups take the keys-in-lanes scores, with the rows untransposed. */
    float qrows[4 * KV_ATTEND_MAX_DIM];
    if (few)
        for (size_t t = 0; t < m; t++)
            for (size_t c = 0; c < d; c++) qrows[t * d + c] = qt[c * mp + t];
    /* The running state of the current segment, folded into (o, mx, sum) where it ends. */
    float *so = scratch + KV_ATTEND_BLOCK * mp, *smx = so + mp * d, *ssum = smx + mp;
    empty_state(m, mp, d, o, mx, sum);
    empty_state(m, mp, d, so, smx, ssum);
    for (size_t b = p0; b < p1;) {
        /* Blocks and segments start at multiples of their sizes, counted from key 0. */
        const size_t block_end = (b / KV_ATTEND_BLOCK + 1) * KV_ATTEND_BLOCK;
        const size_t nb = (p1 < block_end ? p1 : block_end) - b;
        const int opens_segment = b == p0 || b % segment == 0;
        if (b > p0 && opens_segment) {
            attend_fold(m, d, o, mx, sum, so, smx, ssum);
            empty_state(m, mp, d, so, smx, ssum);
        }
        if (b == p0) prefetch_rows(k, ld, d, b, b + (nb < KV_PREFETCH_AHEAD ? nb : KV_PREFETCH_AHEAD));
        if (few) scores_keys(qrows, (int)m, d, k + b * ld, v + b * ld, ld, nb, p1 - b, scratch, mp);
        else scores_block(qt, mp, d, k + b * ld, v + b * ld, ld, nb, b, p1 - b, last, first, scratch, wide);
        softmax_block(scratch, mp, nb, b, last, first, smx, ssum, rescale);
        if (!opens_segment)
            for (size_t t = 0; t < m; t++)
                for (size_t c = 0; c < d; c++) so[t * d + c] *= rescale[t];
        weighted_block(scratch, mp, m, v + b * ld, ld, nb, b, last, first, so, d, wide);
        b += nb;
    }
    attend_fold(m, d, o, mx, sum, so, smx, ssum);
}

/* 16 lanes x 16 channels at a time: each lane's 16 channels loaded and scaled, transposed in
   registers (transpose16), stored as 16 channels' rows of 16 lanes. */
KV_CLONES void kv_attend_stack(const float *q, size_t ldq, size_t n, size_t group, size_t d, float scale, float *qt,
                               size_t mp) {
    const size_t m = n * group;
    for (size_t t0 = 0; t0 < mp; t0 += 16)
        for (size_t c0 = 0; c0 < d; c0 += 16) {
            v16f lanes[16], channels[16];
            for (size_t i = 0; i < 16; i++) {
                const size_t t = t0 + i;
                lanes[i] = t < m ? load16(q + (t / group) * ldq + (t % group) * d + c0) * scale : (v16f){};
            }
            transpose16(lanes, channels);
            for (size_t c = 0; c < 16; c++) store16(qt + (c0 + c) * mp + t0, channels[c]);
        }
}

void kv_attend_merge(size_t parts, size_t m, size_t mp, size_t d, const float *o, const float *mx, const float *sum,
                     float *out) {
    float top[KV_ATTEND_MAX_ROWS], total[KV_ATTEND_MAX_ROWS];
    empty_state(m, m, d, out, top, total);
    for (size_t i = 0; i < parts; i++) attend_fold(m, d, out, top, total, o + i * m * d, mx + i * mp, sum + i * mp);
    for (size_t t = 0; t < m; t++) {
        if (top[t] == -INFINITY) continue;
        const float inv = 1.0f / total[t];
        for (size_t c = 0; c < d; c++) out[t * d + c] *= inv;
    }
}
