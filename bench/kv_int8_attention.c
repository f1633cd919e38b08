/* Attention over int8 KV pages against the f16 KV cache, one thread (bench/kv_int8_attention.sh).

   - f16: Sources/CKernels/attention.c itself (included below), kv_attend_partial with the
     tiles it picks on this CPU (narrow on AVX2).
   - int8: K and V as symmetric int8 codes per (token, KV head) row, one f32 scale per row
     (scales in their own [token][KV head] array), through the same tiles: codes widen to f32
     in registers (vpmovsxbd + vcvtdq2ps where f16 takes vcvtph2ps), a score is
     (q . k codes) * k scale, and each weight is multiplied by its key's V scale once per block
     (after the softmax has summed the weights), so the weighted sum reads codes only.
   - f16 K + int8 V: the same kernel with K in f16.
   - f16 copy: the same kernel with K and V in f16, a control that the harness's kernel is
     as fast as attention.c's, so the int8 figures compare layouts, not code.

   Cases, d = 64 and 3 query heads per KV head (SmolLM2-135M): decode (3 stacked rows) against
   512 and 4,096 keys; a hit's suffix (69 stacked rows: 23 tokens x 3 heads, causal) against
   3,525 keys. Each runs hot (one KV head over and over: cache-resident) and as a sweep over
   30 layers x 3 KV heads, each layer its own [token][192] pages, as one decode step reads them
   (f16 at 4,096 keys is 94 MB, more than L3). Best of N; every case first checks each kernel
   against a double-precision attention over the values it holds.

   Also: memcpy of the bytes an int8 or f16 page set of 3,525 tokens takes (the splice's
   floor if pages were filled by copying codes and scales), and the cost of quantizing f32
   rows into int8 pages (what a splice from the store's blocks would add to decoding them).

   Prints one JSON object. */
#include "../Sources/CKernels/attention.c"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define LAYERS 30
#define KV_HEADS 3
#define HEAD_DIM 64
#define KV_DIM (KV_HEADS * HEAD_DIM)
#define GROUP 3

/* Loads 16 int8 codes and widens them to floats. */
#define load16b(p) ({ v16i8 b_; memcpy(&b_, (p), sizeof b_); __builtin_convertvector(b_, v16f); })

/* The kernel below reads K and V each as either layout, chosen by a constant element size
   `e` (2: IEEE f16, as the cache holds them; 1: int8 codes with one f32 scale per row, the
   scales sld floats apart). Element (i, c) of a page is at byte (i * ld + c) * e. With both
   sizes 2 it is attention.c's kernel again (a control for the copy). */
#define load16x(p, e) ((e) == 1 ? load16b((const int8_t *)(p)) : load16h((const kv_f16 *)(p)))

static inline __attribute__((always_inline)) void prefetch_rows_x(const char *x, int e, size_t ld, size_t d, size_t b0,
                                                                size_t b1) {
    for (size_t i = b0; i < b1; i++)
        for (size_t c = 0; c < d * e; c += 64) __builtin_prefetch(x + i * ld * e + c, 0, 2);
}

static inline __attribute__((always_inline)) void prefetch_tile_x(const char *k, int ek, const char *v, int ev,
                                                                size_t ld, size_t d, size_t i, size_t n, size_t avail) {
    const size_t a0 = i + KV_PREFETCH_AHEAD < avail ? i + KV_PREFETCH_AHEAD : avail;
    prefetch_rows_x(k, ek, ld, d, a0, a0 + n < avail ? a0 + n : avail);
    prefetch_rows_x(v, ev, ld, d, i, i + n);
}

/* scores_tile: KB keys widened to f32 once, RV vectors of 16 stacked rows; on codes each
   score is multiplied by its key's scale as it is stored. */
static inline __attribute__((always_inline)) void scores_tile_x(const float *qt, size_t mp, size_t d, const char *kh,
                                                              int ek, size_t ldh, const float *ks, size_t sld, int KB,
                                                              int RV, float *st) {
    float kf[8 * KV_ATTEND_MAX_DIM];
    for (int i = 0; i < KB; i++)
        for (size_t c = 0; c < d; c += 16) store16(kf + i * d + c, load16x(kh + (i * ldh + c) * ek, ek));
    v16f acc[8][3];
    for (int i = 0; i < KB; i++)
        for (int j = 0; j < RV; j++) acc[i][j] = (v16f){};
    for (size_t c = 0; c < d; c++) {
        v16f q[3];
        for (int j = 0; j < RV; j++) q[j] = load16(qt + c * mp + 16 * j);
        for (int i = 0; i < KB; i++) {
            const float kc = kf[i * d + c];
            for (int j = 0; j < RV; j++) acc[i][j] += kc * q[j];
        }
    }
    for (int i = 0; i < KB; i++)
        for (int j = 0; j < RV; j++) store16(st + i * mp + 16 * j, ek == 1 ? acc[i][j] * ks[i * sld] : acc[i][j]);
}

#define SCORES_X_CASE(KB_, RV_) \
    case (KB_) * 4 + (RV_): scores_tile_x(qtj, mp, d, ki, ek, ld, ksi, sld, KB_, RV_, sti); break;

static inline __attribute__((always_inline)) void scores_block_x(const float *qt, size_t mp, size_t d, const char *k,
                                                               int ek, const float *ks, size_t sld, const char *v, int ev,
                                                               size_t ld, size_t nb, size_t avail, float *st, int wide) {
    const size_t step = wide ? 48 : 16;
    const int full = wide ? 8 : 6;
    for (size_t j = 0; j < mp; j += step) {
        const int RV = wide ? (mp - j >= 48 ? 3 : (int)(mp - j) / 16) : 1;
        for (size_t i = 0; i < nb; ) {
            const int KB = nb - i >= (size_t)full ? full : 1;
            if (j == 0) prefetch_tile_x(k, ek, v, ev, ld, d, i, (size_t)KB, avail);
            const char *ki = k + i * ld * ek;
            const float *ksi = ks + i * sld;
            float *sti = st + i * mp + j;
            const float *qtj = qt + j;
            switch (KB * 4 + RV) {
            SCORES_X_CASE(8, 3) SCORES_X_CASE(8, 2) SCORES_X_CASE(8, 1) SCORES_X_CASE(6, 1)
            SCORES_X_CASE(1, 3) SCORES_X_CASE(1, 2) SCORES_X_CASE(1, 1)
            }
            i += (size_t)KB;
        }
    }
}

/* rows_tile (decode): a vector holds 16 dims of one key; on codes the horizontal sum is
   multiplied by the key's scale. */
static inline __attribute__((always_inline)) void rows_tile_x(const float *qrows, size_t d, const char *k, int ek,
                                                            size_t ld, const float *ks, size_t sld, int M, int KB,
                                                            float *st, size_t mp) {
    v16f acc[4][4];
    for (int i = 0; i < KB; i++)
        for (int t = 0; t < M; t++) acc[i][t] = (v16f){};
    for (size_t c = 0; c < d; c += 16) {
        v16f q[4];
        for (int t = 0; t < M; t++) q[t] = load16(qrows + t * d + c);
        for (int i = 0; i < KB; i++) {
            const v16f kv = load16x(k + (i * ld + c) * ek, ek);
            for (int t = 0; t < M; t++) acc[i][t] += q[t] * kv;
        }
    }
    for (int i = 0; i < KB; i++) {
        store16(st + i * mp, (v16f){});
        for (int t = 0; t < M; t++) st[i * mp + t] = ek == 1 ? vsum16(acc[i][t]) * ks[i * sld] : vsum16(acc[i][t]);
    }
}

#define ROWS_X_CASE(M_, KB_) case (M_) * 8 + (KB_): rows_tile_x(qrows, d, ki, ek, ld, ksi, sld, M_, KB_, sti, mp); break;

static inline __attribute__((always_inline)) void scores_rows_x(const float *qrows, int m, size_t d, const char *k,
                                                              int ek, const float *ks, size_t sld, const char *v, int ev,
                                                              size_t ld, size_t nb, size_t avail, float *st, size_t mp,
                                                              int wide) {
    const int full = wide ? 4 : 2;
    for (size_t i = 0; i < nb; ) {
        const int KB = nb - i >= (size_t)full ? full : 1;
        prefetch_tile_x(k, ek, v, ev, ld, d, i, (size_t)KB, avail);
        const char *ki = k + i * ld * ek;
        const float *ksi = ks + i * sld;
        float *sti = st + i * mp;
        switch (m * 8 + KB) {
        ROWS_X_CASE(4, 4) ROWS_X_CASE(3, 4) ROWS_X_CASE(2, 4) ROWS_X_CASE(1, 4)
        ROWS_X_CASE(4, 2) ROWS_X_CASE(3, 2) ROWS_X_CASE(2, 2) ROWS_X_CASE(1, 2)
        ROWS_X_CASE(4, 1) ROWS_X_CASE(3, 1) ROWS_X_CASE(2, 1) ROWS_X_CASE(1, 1)
        }
        i += (size_t)KB;
    }
}

/* weighted_tile: on codes the weights already carry the V scales. */
static inline __attribute__((always_inline)) void weighted_tile_x(const float *st, size_t mp, const char *v, int ev,
                                                                size_t ld, size_t nb, int T, int NV, float *o, size_t d) {
    v16f acc[6][4];
    for (int t = 0; t < T; t++)
        for (int j = 0; j < NV; j++) acc[t][j] = load16(o + t * d + 16 * j);
    for (size_t i = 0; i < nb; i++) {
        v16f row[4];
        for (int j = 0; j < NV; j++) row[j] = load16x(v + (i * ld + 16 * j) * ev, ev);
        for (int t = 0; t < T; t++) {
            const float w = st[i * mp + t];
            for (int j = 0; j < NV; j++) acc[t][j] += w * row[j];
        }
    }
    for (int t = 0; t < T; t++)
        for (int j = 0; j < NV; j++) store16(o + t * d + 16 * j, acc[t][j]);
}

#define WEIGHTED_X_CASE(T_, NV_) case (T_) * 8 + (NV_): weighted_tile_x(stt, mp, vc, ev, ld, nb, T_, NV_, ot, d); break;
#define WEIGHTED_X_ROWS(NV_) WEIGHTED_X_CASE(6, NV_) WEIGHTED_X_CASE(5, NV_) WEIGHTED_X_CASE(4, NV_) \
                             WEIGHTED_X_CASE(3, NV_) WEIGHTED_X_CASE(2, NV_) WEIGHTED_X_CASE(1, NV_)

static inline __attribute__((always_inline)) void weighted_block_x(const float *st, size_t mp, size_t m, const char *v,
                                                                 int ev, size_t ld, size_t nb, float *o, size_t d,
                                                                 int wide) {
    const size_t cols = wide ? 64 : 16;
    for (size_t c = 0; c < d; c += cols) {
        const int NV = wide ? (d - c >= 64 ? 4 : (int)(d - c) / 16) : 1;
        for (size_t t = 0; t < m; t += 6) {
            const int T = m - t >= 6 ? 6 : (int)(m - t);
            const float *stt = st + t;
            const char *vc = v + c * ev;
            float *ot = o + t * d + c;
            switch (T * 8 + NV) {
            WEIGHTED_X_ROWS(4) WEIGHTED_X_ROWS(3) WEIGHTED_X_ROWS(2) WEIGHTED_X_ROWS(1)
            }
        }
    }
}

/* kv_attend_partial with K and V each f16 (e = 2) or int8 codes (e = 1; ks, vs their row
   scales, sld floats apart). Same contract and tiles otherwise. */
static inline __attribute__((always_inline)) void attend_x(const float *qt, size_t m, size_t mp, size_t d,
                                                         const char *k, int ek, const float *ks, const char *v, int ev,
                                                         const float *vs, size_t ld, size_t sld, size_t p0, size_t p1,
                                                         const int32_t *last, float *scratch, float *o, float *mx,
                                                         float *sum) {
    float rescale[KV_ATTEND_MAX_ROWS];
    float qrows[4 * KV_ATTEND_MAX_DIM];
    const int few = m <= 4, wide = wide_tiles();
    if (few)
        for (size_t t = 0; t < m; t++)
            for (size_t c = 0; c < d; c++) qrows[t * d + c] = qt[c * mp + t];
    for (size_t t = 0; t < m * d; t++) o[t] = 0;
    for (size_t t = 0; t < mp; t++) { mx[t] = -INFINITY; sum[t] = 0; }
    for (size_t b = p0; b < p1; b += KV_ATTEND_BLOCK) {
        const size_t nb = p1 - b < KV_ATTEND_BLOCK ? p1 - b : KV_ATTEND_BLOCK;
        const char *kb = k + b * ld * ek, *vb = v + b * ld * ev;
        if (b == p0) prefetch_rows_x(k, ek, ld, d, b, b + (nb < KV_PREFETCH_AHEAD ? nb : KV_PREFETCH_AHEAD));
        if (few) scores_rows_x(qrows, (int)m, d, kb, ek, ks + b * sld, sld, vb, ev, ld, nb, p1 - b, scratch, mp, wide);
        else scores_block_x(qt, mp, d, kb, ek, ks + b * sld, sld, vb, ev, ld, nb, p1 - b, scratch, wide);
        softmax_block(scratch, mp, nb, b, last, NULL, mx, sum, rescale);
        if (ev == 1) /* the block's weights are summed: fold each key's V scale into its weights */
            for (size_t i = 0; i < nb; i++) {
                const float s = vs[(b + i) * sld];
                for (size_t j = 0; j < mp; j += 16) store16(scratch + i * mp + j, load16(scratch + i * mp + j) * s);
            }
        if (b > p0)
            for (size_t t = 0; t < m; t++)
                for (size_t c = 0; c < d; c++) o[t * d + c] *= rescale[t];
        weighted_block_x(scratch, mp, m, vb, ev, ld, nb, o, d, wide);
    }
}

#define ATTEND_X(name, EK, EV)                                                                                        \
    KV_CLONES void name(const float *qt, size_t m, size_t mp, size_t d, const void *k, const float *ks, const void *v, \
                        const float *vs, size_t ld, size_t sld, size_t p0, size_t p1, const int32_t *last,           \
                        float *scratch, float *o, float *mx, float *sum) {                                           \
        attend_x(qt, m, mp, d, k, EK, ks, v, EV, vs, ld, sld, p0, p1, last, scratch, o, mx, sum);                   \
    }
ATTEND_X(attend_f16_copy, 2, 2)
ATTEND_X(attend_int8, 1, 1)
ATTEND_X(attend_f16k_int8v, 2, 1)

/* Symmetric int8 per (row, head): scale = max|x| / 127, code = rint(x / scale). */
KV_CLONES void quantize_rows_i8(const float *x, size_t rows, int8_t *codes, float *scales) {
    for (size_t r = 0; r < rows; r++)
        for (size_t h = 0; h < KV_HEADS; h++) {
            const float *xh = x + r * KV_DIM + h * HEAD_DIM;
            v16f amax = (v16f){};
            for (size_t c = 0; c < HEAD_DIM; c += 16) {
                const v16f a = load16(xh + c);
                amax = __builtin_elementwise_max(amax, __builtin_elementwise_max(a, -a));
            }
            float top = 0;
            for (int l = 0; l < 16; l++) top = amax[l] > top ? amax[l] : top;
            const float scale = top / 127, inv = top > 0 ? 127 / top : 0;
            scales[r * KV_HEADS + h] = scale;
            for (size_t c = 0; c < HEAD_DIM; c += 16) {
                const v16i q = __builtin_convertvector(__builtin_elementwise_roundeven(load16(xh + c) * inv), v16i);
                const v16i8 b = __builtin_convertvector(q, v16i8);
                memcpy(codes + r * KV_DIM + h * HEAD_DIM + c, &b, sizeof b);
            }
        }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float uniform(void) { /* [-1, 1) */
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1;
}

/* One layer's pages in both layouts, built from the same f32 values. */
typedef struct {
    uint16_t *k16, *v16;
    int8_t *k8, *v8;
    float *ks, *vs;
} layer_pages;

static void *alloc(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    memset(p, 0, bytes);
    return p;
}

static void fill_layer(layer_pages *L, size_t tokens, float *tmp) {
    L->k16 = alloc(tokens * KV_DIM * 2); L->v16 = alloc(tokens * KV_DIM * 2);
    L->k8 = alloc(tokens * KV_DIM); L->v8 = alloc(tokens * KV_DIM);
    L->ks = alloc(tokens * KV_HEADS * 4); L->vs = alloc(tokens * KV_HEADS * 4);
    for (int pass = 0; pass < 2; pass++) {
        /* Channels of different spread, as K after RoPE has. */
        for (size_t i = 0; i < tokens * KV_DIM; i++) tmp[i] = uniform() * (pass == 0 ? 1.0f + (i % 16 == 3) * 4 : 1.0f);
        uint16_t *h = pass == 0 ? L->k16 : L->v16;
        for (size_t i = 0; i < tokens * KV_DIM; i++) {
            const _Float16 f = (_Float16)tmp[i];
            memcpy(h + i, &f, 2);
        }
        quantize_rows_i8(tmp, tokens, pass == 0 ? L->k8 : L->v8, pass == 0 ? L->ks : L->vs);
    }
}

typedef struct {
    const char *name;
    size_t m, n, tokens; /* stacked rows, keys, query tokens (rows = tokens x GROUP) */
} attention_case;

typedef struct {
    float qt[HEAD_DIM * KV_ATTEND_MAX_ROWS];
    int32_t last[KV_ATTEND_MAX_ROWS];
    float scratch[KV_ATTEND_SCRATCH(KV_ATTEND_MAX_ROWS, HEAD_DIM)];
    float o[KV_ATTEND_MAX_ROWS * HEAD_DIM], mx[KV_ATTEND_MAX_ROWS], sum[KV_ATTEND_MAX_ROWS];
    float out[KV_ATTEND_MAX_ROWS * HEAD_DIM];
} buffers;

static size_t padded(size_t m) { return (m + 15) / 16 * 16; }

/* Lane t = j * tokens + r: query head j of the group at position n - tokens + r (Attention.swift). */
static void setup(buffers *B, const attention_case *c) {
    const size_t mp = padded(c->m);
    for (size_t t = 0; t < mp; t++) {
        for (size_t e = 0; e < HEAD_DIM; e++) B->qt[e * mp + t] = t < c->m ? uniform() * 0.5f : 0;
        B->last[t] = (int32_t)(c->n - c->tokens + (t < c->m ? t % c->tokens : c->tokens - 1));
    }
}

/* The kernels measured: kv_attend_partial (attention.c) on f16, the harness's own kernel on
   f16 (control), on int8 K and V, and on f16 K with int8 V. */
enum { F16, F16_COPY, INT8, F16K_INT8V, VARIANTS };
static const char *const variant_names[VARIANTS] = {"f16", "f16Copy", "int8", "f16KInt8V"};
static const double bytes_per_key[VARIANTS] = { /* per KV head: K and V rows, and their scales */
    4.0 * HEAD_DIM, 4.0 * HEAD_DIM, 2.0 * HEAD_DIM + 2 * sizeof(float), 3.0 * HEAD_DIM + sizeof(float)};
static int k_int8(int variant) { return variant == INT8; }
static int v_int8(int variant) { return variant == INT8 || variant == F16K_INT8V; }

static void run(int variant, const buffers *B, buffers *W, const attention_case *c, const layer_pages *L, size_t h) {
    const size_t mp = padded(c->m);
    const uint16_t *k16 = L->k16 + h * HEAD_DIM, *v16 = L->v16 + h * HEAD_DIM;
    const int8_t *k8 = L->k8 + h * HEAD_DIM, *v8 = L->v8 + h * HEAD_DIM;
    const float *ks = L->ks + h, *vs = L->vs + h;
    switch (variant) {
    case F16:
        kv_attend_partial(B->qt, c->m, mp, HEAD_DIM, k16, v16, KV_DIM, 0, c->n, 512, B->last, NULL, W->scratch, W->o,
                          W->mx, W->sum);
        break;
    case F16_COPY:
        attend_f16_copy(B->qt, c->m, mp, HEAD_DIM, k16, ks, v16, vs, KV_DIM, KV_HEADS, 0, c->n, B->last, W->scratch,
                        W->o, W->mx, W->sum);
        break;
    case INT8:
        attend_int8(B->qt, c->m, mp, HEAD_DIM, k8, ks, v8, vs, KV_DIM, KV_HEADS, 0, c->n, B->last, W->scratch, W->o,
                    W->mx, W->sum);
        break;
    default:
        attend_f16k_int8v(B->qt, c->m, mp, HEAD_DIM, k16, ks, v8, vs, KV_DIM, KV_HEADS, 0, c->n, B->last, W->scratch,
                          W->o, W->mx, W->sum);
    }
}

/* Element e of KV head 1's row i as the variant holds it (K or V). */
static double held(const layer_pages *L, int is_v, int int8, size_t i, size_t e) {
    const size_t at = i * KV_DIM + HEAD_DIM + e;
    if (int8) return (double)(is_v ? L->v8 : L->k8)[at] * (is_v ? L->vs : L->ks)[i * KV_HEADS + 1];
    _Float16 f;
    memcpy(&f, (is_v ? L->v16 : L->k16) + at, 2);
    return f;
}

/* Largest |kernel - exact| over the output, relative to the largest |exact|, the exact
   attention computed in double over the values the variant holds. */
static double check(int variant, const buffers *B, buffers *W, const attention_case *c, const layer_pages *L) {
    const size_t mp = padded(c->m);
    run(variant, B, W, c, L, 1);
    kv_attend_merge(1, c->m, mp, HEAD_DIM, W->o, W->mx, W->sum, W->out);
    double worst = 0, top = 0;
    double *p = malloc(c->n * sizeof *p);
    for (size_t t = 0; t < c->m; t++) {
        double best = -INFINITY, total = 0;
        const size_t visible = (size_t)B->last[t] + 1;
        for (size_t i = 0; i < visible; i++) {
            double s = 0;
            for (size_t e = 0; e < HEAD_DIM; e++) s += (double)B->qt[e * mp + t] * held(L, 0, k_int8(variant), i, e);
            p[i] = s;
            best = s > best ? s : best;
        }
        for (size_t i = 0; i < visible; i++) total += (p[i] = exp(p[i] - best));
        for (size_t e = 0; e < HEAD_DIM; e++) {
            double acc = 0;
            for (size_t i = 0; i < visible; i++) acc += p[i] * held(L, 1, v_int8(variant), i, e);
            acc /= total;
            const double err = fabs(acc - W->out[t * HEAD_DIM + e]);
            worst = err > worst ? err : worst;
            top = fabs(acc) > top ? fabs(acc) : top;
        }
    }
    free(p);
    return worst / top;
}

/* Best of `reps`: one KV head again and again (hot), or every head of every layer (sweep,
   reported per head). */
static double best_ms(int variant, const buffers *B, buffers *W, const attention_case *c, const layer_pages *layers,
                      int sweep, int reps) {
    double best = INFINITY;
    const int inner = sweep ? 1 : 5;
    for (int r = 0; r < reps; r++) {
        const double t0 = now();
        for (int i = 0; i < inner; i++) {
            if (sweep)
                for (size_t l = 0; l < LAYERS; l++)
                    for (size_t h = 0; h < KV_HEADS; h++) run(variant, B, W, c, layers + l, h);
            else run(variant, B, W, c, layers, 0);
        }
        const double ms = (now() - t0) * 1e3 / (sweep ? LAYERS * KV_HEADS : inner);
        best = ms < best ? ms : best;
    }
    return best;
}

/* Prints {"f16": x, ...} with one value per variant. */
static void print_variants(const char *key, const double *x, const char *format, const char *after) {
    printf("\"%s\": {", key);
    for (int v = 0; v < VARIANTS; v++) {
        printf("\"%s\": ", variant_names[v]);
        printf(format, x[v]);
        printf(v + 1 < VARIANTS ? ", " : "}");
    }
    printf("%s", after);
}

static double memcpy_ms(size_t bytes, int reps) {
    char *src = alloc(bytes), *dst = alloc(bytes);
    memset(src, 1, bytes);
    double best = INFINITY;
    for (int r = 0; r < reps; r++) {
        const double t0 = now();
        memcpy(dst, src, bytes);
        __asm__ volatile("" : : "r"(dst) : "memory"); /* the copy must happen */
        const double ms = (now() - t0) * 1e3;
        best = ms < best ? ms : best;
    }
    free(src);
    free(dst);
    return best;
}

int main(int argc, char **argv) {
    const int reps = argc > 1 ? atoi(argv[1]) : 30;
    const size_t max_tokens = 4096;
    float *tmp = alloc(max_tokens * KV_DIM * sizeof *tmp);
    layer_pages layers[LAYERS];
    for (int l = 0; l < LAYERS; l++) fill_layer(layers + l, max_tokens, tmp);
    static buffers B, W;
    const attention_case cases[] = {
        {"decode, 3 rows x 512 keys", 3, 512, 1},
        {"decode, 3 rows x 4,096 keys", 3, 4096, 1},
        {"suffix, 69 rows x 3,525 keys", 69, 3525, 23},
    };
    printf("{\n \"threads\": 1, \"headDim\": %d, \"queryHeadsPerKVHead\": %d, \"layers\": %d, \"kvHeads\": %d,\n",
           HEAD_DIM, GROUP, LAYERS, KV_HEADS);
    printf(" \"tiles\": \"%s\", \"reps\": %d,\n ", wide_tiles() ? "wide" : "narrow", reps);
    print_variants("bytesPerKeyPerKVHead", bytes_per_key, "%.0f", ",\n \"cases\": [\n");
    const size_t ncases = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < ncases; i++) {
        const attention_case *c = cases + i;
        setup(&B, c);
        double err[VARIANTS];
        for (int v = 0; v < VARIANTS; v++)
            if ((err[v] = check(v, &B, &W, c, layers)) > 1e-4) {
                fprintf(stderr, "%s: %s differs from the exact attention by %.3g\n", c->name, variant_names[v], err[v]);
                return 1;
            }
        const double flop = 4.0 * c->m * c->n * HEAD_DIM;
        printf("  {\"case\": \"%s\", \"rows\": %zu, \"keys\": %zu, ", c->name, c->m, c->n);
        print_variants("maxRelErr", err, "%.3g", ",\n");
        for (int sweep = 0; sweep < 2; sweep++) {
            double ms[VARIANTS], gflops[VARIANTS], ratio[VARIANTS], mb[VARIANTS];
            for (int v = 0; v < VARIANTS; v++) {
                ms[v] = best_ms(v, &B, &W, c, layers, sweep, sweep ? reps / 3 + 1 : reps);
                gflops[v] = flop / ms[v] * 1e-6;
                mb[v] = (sweep ? LAYERS * KV_HEADS : 1) * c->n * bytes_per_key[v] / 1e6;
            }
            for (int v = 0; v < VARIANTS; v++) ratio[v] = ms[v] / ms[F16];
            printf("   \"%s\": {", sweep ? "sweep30x3PerHead" : "hotOneHead");
            print_variants("ms", ms, "%.4f", ", ");
            print_variants("GFLOPs", gflops, "%.2f", ", ");
            print_variants("overF16", ratio, "%.3f", ", ");
            print_variants("workingSetMB", mb, "%.1f", sweep ? "}\n" : "},\n");
        }
        printf("  }%s\n", i + 1 < ncases ? "," : "");
    }
    printf(" ],\n");
    const double f16_bytes = bytes_per_key[F16], i8_bytes = bytes_per_key[INT8];
    /* Page fill for a 3,525-token hit: copying bytes, and quantizing f32 rows into int8 pages. */
    const size_t hit = 3525;
    const double copy16 = memcpy_ms(hit * (size_t)(f16_bytes * LAYERS * KV_HEADS), 5);
    const double copy8 = memcpy_ms(hit * (size_t)(i8_bytes * LAYERS * KV_HEADS), 5);
    float *rows = alloc(hit * KV_DIM * sizeof *rows);
    for (size_t i = 0; i < hit * KV_DIM; i++) rows[i] = uniform();
    int8_t *codes = alloc(hit * KV_DIM);
    float *scales = alloc(hit * KV_HEADS * sizeof *scales);
    double quant = INFINITY;
    for (int r = 0; r < 10; r++) {
        const double t0 = now();
        for (int s = 0; s < 2 * LAYERS; s++) quantize_rows_i8(rows, hit, codes, scales); /* K and V of every layer */
        const double ms = (now() - t0) * 1e3;
        quant = ms < quant ? ms : quant;
    }
    printf(" \"pageFill3525Tokens\": {\"memcpyF16ms\": %.2f, \"memcpyInt8ms\": %.2f, \"quantizeF32RowsToInt8ms\": %.2f, "
           "\"f16Bytes\": %.0f, \"int8Bytes\": %.0f}\n}\n",
           copy16, copy8, quant, hit * f16_bytes * LAYERS * KV_HEADS, hit * i8_bytes * LAYERS * KV_HEADS);
    return 0;
}
