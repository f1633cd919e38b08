#include <math.h>
#include <string.h>
#include "engine.h"
#include "vec16.h"

#include "clones.h"

static inline float f32_from_bits(uint32_t w) { float f; memcpy(&f, &w, 4); return f; }

float kv_half_to_float(uint16_t h) { return kv_h2f_inline(h); }

static inline uint16_t load_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

KV_CLONES void kv_dequant_f16(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = kv_h2f_inline(src[i]);
}

KV_CLONES void kv_dequant_bf16(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = f32_from_bits((uint32_t)src[i] << 16);
}

/* Q8_0 block: f16 scale d, 32 x int8. x = d * q. */
KV_CLONES void kv_dequant_q8_0(const void *src, float *dst, size_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (size_t blk = 0; blk < n / 32; blk++, b += 34, dst += 32) {
        const float d = kv_h2f_inline(load_u16(b));
        v16i8 q0, q1;
        memcpy(&q0, b + 2, 16);
        memcpy(&q1, b + 18, 16);
        store16(dst, __builtin_convertvector(q0, v16f) * d);
        store16(dst + 16, __builtin_convertvector(q1, v16f) * d);
    }
}

/* Q4_0 block: f16 scale d, 16 bytes; low nibbles are elements 0..15, high 16..31. x = d * (q - 8). */
KV_CLONES void kv_dequant_q4_0(const void *src, float *dst, size_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (size_t blk = 0; blk < n / 32; blk++, b += 18, dst += 32) {
        const float d = kv_h2f_inline(load_u16(b));
        v16u8 q;
        memcpy(&q, b + 2, 16);
        const v16i8 lo = (v16i8)(q & 0x0F) - 8, hi = (v16i8)(q >> 4) - 8;
        store16(dst, __builtin_convertvector(lo, v16f) * d);
        store16(dst + 16, __builtin_convertvector(hi, v16f) * d);
    }
}

/* Q4_1 block: f16 scale d, f16 min m, 16 bytes of nibbles as Q4_0. x = d * q + m. */
KV_CLONES void kv_dequant_q4_1(const void *src, float *dst, size_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (size_t blk = 0; blk < n / 32; blk++, b += 20, dst += 32) {
        const float d = kv_h2f_inline(load_u16(b));
        const float m = kv_h2f_inline(load_u16(b + 2));
        v16u8 q;
        memcpy(&q, b + 4, 16);
        store16(dst, __builtin_convertvector(q & 0x0F, v16f) * d + m);
        store16(dst + 16, __builtin_convertvector(q >> 4, v16f) * d + m);
    }
}

/* RMSNorm's factor 1 / sqrt(mean(x^2) + eps) of `count` (at most 8) vectors of n floats, vector k
   at x + k * stride, their sums of squares taken side by side (sum_squares_f64_many). */
static inline __attribute__((always_inline)) void rms_scales(const float *x, size_t stride, size_t count, size_t n,
                                                           float eps, float *scale) {
    double ss[8];
    sum_squares_f64_many(x, stride, count, n, ss);
    for (size_t k = 0; k < count; k++) scale[k] = (float)(1.0 / sqrt(ss[k] / (double)n + (double)eps));
}

/* The factor of one vector. */
static inline __attribute__((always_inline)) float rms_scale(const float *x, size_t n, float eps) {
    float scale;
    rms_scales(x, 0, 1, n, eps, &scale);
    return scale;
}

KV_CLONES void kv_rmsnorm(float *out, const float *x, const float *w, size_t rows, size_t n, float eps) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *o = out + r * n;
        const float scale = rms_scale(xr, n, eps);
        for (size_t i = 0; i < n; i++) o[i] = xr[i] * scale * w[i];
    }
}

KV_CLONES void kv_add_rmsnorm(float *x, const float *y, const float *w, size_t rows, size_t n, float eps) {
#pragma clang fp contract(off)
    for (size_t r = 0; r < rows; r++) {
        const float *yr = y + r * n;
        float *xr = x + r * n;
        const float scale = rms_scale(yr, n, eps);
        for (size_t i = 0; i < n; i++) {
            const float normed = yr[i] * scale * w[i];
            xr[i] = xr[i] + normed;
        }
    }
}

KV_CLONES void kv_rmsnorm_q16(const float *x, const float *w, kv_q16_block *out, size_t rows, size_t n, float eps) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        const float scale = rms_scale(xr, n, eps);
        for (size_t b = 0; b < n / 32; b++) {
            const float *xb = xr + 32 * b, *wb = w + 32 * b;
            const v16f lo = load16(xb) * scale * load16(wb);
            const v16f hi = load16(xb + 16) * scale * load16(wb + 16);
            quantize_q16_block(out + r * (n / 32) + b, lo, hi);
        }
    }
}

KV_CLONES void kv_rmsnorm_heads(float *x, size_t ld, size_t rows, size_t heads, size_t head_dim, const float *w,
                                float eps) {
    for (size_t r = 0; r < rows; r++)
        for (size_t h0 = 0; h0 < heads; h0 += 8) {  /* a row's heads side by side */
            const size_t count = heads - h0 < 8 ? heads - h0 : 8;
            float *xh = x + r * ld + h0 * head_dim, scales[8];
            rms_scales(xh, head_dim, count, head_dim, eps, scales);
            for (size_t k = 0; k < count; k++)
                for (size_t i = 0; i < head_dim; i++) xh[k * head_dim + i] = xh[k * head_dim + i] * scales[k] * w[i];
        }
}

/* sigmoid(x), 16 lanes, from e = exp(-|x|) <= 1 (exp16_nonpos), so no argument can
   overflow: 1 / (1 + e) for x >= 0 and e / (1 + e) below. */
#define sigmoid16(x_) ({                                                         \
    const v16f sx_ = (x_);                                                       \
    const v16f e_ = exp16_nonpos(as_f(as_i(sx_) | (int32_t)0x80000000));         \
    const v16i nonneg_ = sx_ >= 0;                                               \
    const v16f num_ = as_f((as_i((v16f){} + 1.0f) & nonneg_) | (as_i(e_) & ~nonneg_)); \
    num_ / (1.0f + e_);                                                          \
})

/* SiLU(x) = x sigmoid(x). */
#define silu16(x_) ({ const v16f xs_ = (x_); xs_ * sigmoid16(xs_); })

/* GELU with the tanh approximation, as ggml's gelu: 0.5 x (1 + tanh(u)) with
   u = sqrt(2/pi) x (1 + 0.044715 x^2), which is x sigmoid(2u). */
#define gelu16(x_) ({                                                            \
    const v16f xg_ = (x_);                                                       \
    const v16f u_ = 0.7978845608028654f * xg_ * (1.0f + 0.044715f * xg_ * xg_);  \
    xg_ * sigmoid16(u_ + u_);                                                    \
})

/* gate = act(gate) * up, row by row (act: GELU when `gelu`, else SiLU); a row's partial last
   vector goes through a padded copy. */
static inline __attribute__((always_inline)) void gated_mul(float *gate, const float *up, size_t rows, size_t n,
                                                          size_t ld, int gelu) {
    for (size_t r = 0; r < rows; r++) {
        float *g = gate + r * ld;
        const float *u = up + r * ld;
        size_t i = 0;
        for (; i + 16 <= n; i += 16) {
            const v16f x = load16(g + i);
            store16(g + i, (gelu ? gelu16(x) : silu16(x)) * load16(u + i));
        }
        if (i < n) {
            float gp[16] = {0}, up16[16] = {0};
            memcpy(gp, g + i, (n - i) * sizeof(float));
            memcpy(up16, u + i, (n - i) * sizeof(float));
            const v16f x = load16(gp);
            store16(gp, (gelu ? gelu16(x) : silu16(x)) * load16(up16));
            memcpy(g + i, gp, (n - i) * sizeof(float));
        }
    }
}

KV_CLONES void kv_silu_mul(float *gate, const float *up, size_t rows, size_t n, size_t ld) {
    gated_mul(gate, up, rows, n, ld, 0);
}

KV_CLONES void kv_gelu_mul(float *gate, const float *up, size_t rows, size_t n, size_t ld) {
    gated_mul(gate, up, rows, n, ld, 1);
}

/* The gated rows as 16-bit codes: act(gate) * up of row r, block by block, into the n / 32
   blocks from out + r * ldo (n a multiple of 32; gate and up are not written). */
static inline __attribute__((always_inline)) void gated_mul_q16(const float *gate, const float *up, size_t rows,
                                                              size_t n, size_t ld, kv_q16_block *out, size_t ldo,
                                                              int gelu) {
    for (size_t r = 0; r < rows; r++)
        for (size_t b = 0; b < n / 32; b++) {
            const float *g = gate + r * ld + 32 * b, *u = up + r * ld + 32 * b;
            const v16f x0 = load16(g), x1 = load16(g + 16);
            const v16f lo = (gelu ? gelu16(x0) : silu16(x0)) * load16(u);
            const v16f hi = (gelu ? gelu16(x1) : silu16(x1)) * load16(u + 16);
            quantize_q16_block(out + r * ldo + b, lo, hi);
        }
}

KV_CLONES void kv_silu_mul_q16(const float *gate, const float *up, size_t rows, size_t n, size_t ld, kv_q16_block *out,
                               size_t ldo) {
    gated_mul_q16(gate, up, rows, n, ld, out, ldo, 0);
}

KV_CLONES void kv_gelu_mul_q16(const float *gate, const float *up, size_t rows, size_t n, size_t ld, kv_q16_block *out,
                               size_t ldo) {
    gated_mul_q16(gate, up, rows, n, ld, out, ldo, 1);
}

/* Puts one rotated vector: 16 floats at y + i, or (yh non-null) narrowed to halves at yh + i
   (store16h_nt). */
static inline __attribute__((always_inline)) void put16(float *y, uint16_t *yh, int nt, size_t i, v16f v) {
    if (yh) {
        store16h_nt(yh + i, v, nt);
    } else {
        store16(y + i, v);
    }
}

/* One head of RoPE, 16 lanes at a time, into f32 `y` or f16 `yh` (put16). Adjacent pairs
   (x[2i], x[2i+1]): eight angles per vector, each cos/sin duplicated over its pair and the
   pair swapped for the sin term. Halves (x[i], x[i+half]): sixteen angles per vector. Every
   vector is loaded before its store, so y may be x. Both outputs take the same expressions,
   so an f16 row equals the f32 row narrowed. */
static inline __attribute__((always_inline)) void rope_head(float *y, uint16_t *yh, int nt, const float *x,
                                                          const float *c, const float *s, size_t half, int neox) {
    if (neox) {
        for (size_t i = 0; i < half; i += 16) {
            const v16f a = load16(x + i), b = load16(x + i + half), cv = load16(c + i), sv = load16(s + i);
            put16(y, yh, nt, i, a * cv - b * sv);
            put16(y, yh, nt, i + half, a * sv + b * cv);
        }
        return;
    }
    for (size_t i = 0; i < half; i += 8) {
        v8f c8, s8;
        memcpy(&c8, c + i, sizeof c8);
        memcpy(&s8, s + i, sizeof s8);
        const v16f cd = __builtin_shufflevector(c8, c8, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        const v16f sd = __builtin_shufflevector(s8, s8, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7) *
                        (v16f){-1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1};
        const v16f v = load16(x + 2 * i);
        const v16f swapped = __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
        put16(y, yh, nt, 2 * i, v * cd + swapped * sd);
    }
}

/* One head of RoPE in plain C (n_rot/2 not a multiple of the vector's angles), into f32 `y`
   or f16 `yh`: the same expressions either way. */
static inline __attribute__((always_inline)) void rope_head_scalar(float *y, uint16_t *yh, const float *x,
                                                                 const float *c, const float *s, size_t half, int neox) {
    kv_f16 *h = (kv_f16 *)yh;
    for (size_t i = 0; i < half; i++) {
        const size_t i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
        const float a = x[i0], b = x[i1];
        const float r0 = a * c[i] - b * s[i], r1 = a * s[i] + b * c[i];
        if (yh) { h[i0] = (kv_f16)r0; h[i1] = (kv_f16)r1; } else { y[i0] = r0; y[i1] = r1; }
    }
}

/* kv_rope into f32 rows (dst) or, with dst_h, f16 rows: the rows of a splice narrowed as
   they are rotated. Head h of row r goes to r * ld_dst + h * head_stride. */
static inline __attribute__((always_inline)) void rope_rows(float *dst, uint16_t *dst_h, size_t ld_dst, size_t head_stride,
                                                          const float *src, size_t ld_src, size_t rows, size_t heads,
                                                          size_t head_dim, size_t n_rot, const float *cos_t,
                                                          const float *sin_t, int neox) {
    const size_t half = n_rot / 2;
    const int vector = neox ? half % 16 == 0 : half % 8 == 0;
    const int nt = dst_h && ((uintptr_t)dst_h & 31) == 0 && ld_dst % 16 == 0 && head_stride % 16 == 0 &&
                   head_dim % 16 == 0;
    for (size_t r = 0; r < rows; r++) {
        const float *c = cos_t + r * half, *s = sin_t + r * half;
        for (size_t h = 0; h < heads; h++) {
            const float *x = src + r * ld_src + h * head_dim;
            float *y = dst_h ? NULL : dst + r * ld_dst + h * head_stride;
            uint16_t *yh = dst_h ? dst_h + r * ld_dst + h * head_stride : NULL;
            if (vector) {
                rope_head(y, yh, nt, x, c, s, half, neox);
            } else {
                rope_head_scalar(y, yh, x, c, s, half, neox);
            }
            if (yh) {
                for (size_t i = n_rot; i < head_dim; i++) ((kv_f16 *)yh)[i] = (kv_f16)x[i];
            } else if (y != x) {
                for (size_t i = n_rot; i < head_dim; i++) y[i] = x[i];
            }
        }
    }
#if defined(__x86_64__)
    if (nt) __builtin_ia32_sfence();
#endif
}

KV_CLONES void kv_rope(float *dst, size_t ld_dst, const float *src, size_t ld_src, size_t rows,
                       size_t heads, size_t head_dim, size_t n_rot,
                       const float *cos_t, const float *sin_t, int neox) {
    rope_rows(dst, NULL, ld_dst, head_dim, src, ld_src, rows, heads, head_dim, n_rot, cos_t, sin_t, neox);
}

KV_CLONES void kv_rope_f16_stream(uint16_t *dst, size_t ld_dst, size_t head_stride, const float *src, size_t ld_src,
                                  size_t rows, size_t heads, size_t head_dim, size_t n_rot,
                                  const float *cos_t, const float *sin_t, int neox) {
    rope_rows(NULL, dst, ld_dst, head_stride, src, ld_src, rows, heads, head_dim, n_rot, cos_t, sin_t, neox);
}

/* Softmax of row[lo, hi) with 16 independent lanes (exp16_nonpos); the partial last vector
   goes through a padded copy. Entries outside [lo, hi) up to `cols` become 0. */
static inline __attribute__((always_inline)) void softmax_span(float *row, size_t lo, size_t hi, size_t cols) {
    for (size_t i = 0; i < lo && i < cols; i++) row[i] = 0;
    if (hi <= lo) {
        for (size_t i = lo; i < cols; i++) row[i] = 0;
        return;
    }
    float *x = row + lo;
    const size_t valid = hi - lo;
    const size_t body = valid & ~(size_t)15, tail = valid - body;
    v16f lanes = (v16f){} - INFINITY;
    for (size_t i = 0; i < body; i += 16) lanes = __builtin_elementwise_max(lanes, load16(x + i));
    float lane[16];
    memcpy(lane, &lanes, sizeof lane);
    float mx = -INFINITY;
    for (int j = 0; j < 16; j++) mx = lane[j] > mx ? lane[j] : mx;
    for (size_t i = body; i < valid; i++) mx = x[i] > mx ? x[i] : mx;
    v16f total = (v16f){};
    for (size_t i = 0; i < body; i += 16) {
        const v16f e = exp16_nonpos(load16(x + i) - mx);
        store16(x + i, e);
        total += e;
    }
    memcpy(lane, &total, sizeof lane);
    float sum = 0;
    for (int j = 0; j < 16; j++) sum += lane[j];
    if (tail) {
        float last[16];
        for (size_t j = 0; j < 16; j++) last[j] = j < tail ? x[body + j] : mx;
        store16(last, exp16_nonpos(load16(last) - mx));
        for (size_t j = 0; j < tail; j++) {
            x[body + j] = last[j];
            sum += last[j];
        }
    }
    const float inv = 1.0f / sum;
    for (size_t i = 0; i < valid; i++) x[i] *= inv;
    for (size_t i = hi; i < cols; i++) row[i] = 0;
}

KV_CLONES void kv_softmax_band(float *s, size_t rows, size_t cols, size_t ld, size_t valid0, ptrdiff_t first0) {
    for (size_t r = 0; r < rows; r++) {
        size_t hi = valid0 + r;
        if (hi > cols) hi = cols;
        const ptrdiff_t first = first0 + (ptrdiff_t)r;
        const size_t lo = first < 0 ? 0 : (size_t)first;
        softmax_span(s + r * ld, lo, hi, cols);
    }
}

void kv_softmax_causal(float *s, size_t rows, size_t cols, size_t ld, size_t valid0) {
    kv_softmax_band(s, rows, cols, ld, valid0, -(ptrdiff_t)rows);
}

KV_CLONES void kv_add(float *out, const float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = x[i] + y[i];
}
