/* Quantization and fp16 kernels of the KV block codec. See include/kvcodec.h for the
   exact arithmetic, which Tests/reference/quant_reference.py mirrors in numpy. */
#include "kvcodec.h"
#include <math.h>
#include <string.h>

#include "clones.h"
#include "vec16.h"

typedef _Float16 kv_half __attribute__((may_alias));
/* The same at any address (inputs read in place from a stored block). */
typedef _Float16 kv_half_unaligned __attribute__((may_alias, aligned(1)));
static const float kHalfMax = 65504.0f;

static inline float h2f(uint16_t h) { kv_half x; memcpy(&x, &h, 2); return (float)x; }
static inline uint16_t f2h(float f) { kv_half x = (kv_half)f; uint16_t h; memcpy(&h, &x, 2); return h; }
static inline size_t half_of(size_t d) { return (d + 1) / 2; }

KV_CLONES void kv_f32_to_f16(uint16_t *dst, const float *src, size_t n) {
    kv_half *d = (kv_half *)dst;
    for (size_t i = 0; i < n; i++) d[i] = (kv_half)src[i];
}

KV_CLONES void kv_f16_to_f32(float *restrict dst, const void *restrict src, size_t n) {
    const kv_half_unaligned *s = (const kv_half_unaligned *)src;
    for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
}

KV_CLONES void kv_f16_to_f32_rows(float *dst, size_t ld_dst, const uint16_t *src, size_t ld_src, size_t rows,
                                  size_t cols) {
    for (size_t r = 0; r < rows; r++) {
        const kv_half *s = (const kv_half *)(src + r * ld_src);
        float *d = dst + r * ld_dst;
        for (size_t i = 0; i < cols; i++) d[i] = (float)s[i];
    }
}

KV_CLONES void kv_f32_to_f16_rows(uint16_t *dst, size_t ld_dst, const float *src, size_t ld_src, size_t rows,
                                  size_t cols) {
    for (size_t r = 0; r < rows; r++) {
        kv_half *d = (kv_half *)(dst + r * ld_dst);
        const float *s = src + r * ld_src;
        for (size_t i = 0; i < cols; i++) d[i] = (kv_half)s[i];
    }
}

typedef float v32f __attribute__((vector_size(128), aligned(4)));
typedef _Float16 v32h_aligned __attribute__((vector_size(64), aligned(64)));

KV_CLONES void kv_f32_to_f16_stream(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    kv_half *d = (kv_half *)dst;
    if (((uintptr_t)dst & 63) == 0) {
        for (; i + 32 <= n; i += 32) {
            v32f x;
            memcpy(&x, src + i, sizeof x);
            __builtin_nontemporal_store(__builtin_convertvector(x, v32h_aligned), (v32h_aligned *)(d + i));
        }
#if defined(__x86_64__)
        __builtin_ia32_sfence();
#endif
    }
    for (; i < n; i++) d[i] = (kv_half)src[i];
}

KV_CLONES void kv_f32_to_f16_heads_stream(uint16_t *dst, size_t ld_dst, size_t head_stride, size_t head_dim,
                                          const float *src, size_t rows, size_t d) {
    const int vector = head_dim % 16 == 0;
    const int nt = vector && ((uintptr_t)dst & 31) == 0 && ld_dst % 16 == 0 && head_stride % 16 == 0;
    kv_half *out = (kv_half *)dst;
    for (size_t r = 0; r < rows; r++)
        for (size_t h = 0; h * head_dim < d; h++) {
            const float *x = src + r * d + h * head_dim;
            kv_half *o = out + r * ld_dst + h * head_stride;
            size_t i = 0;
            if (vector)
                for (; i < head_dim; i += 16) store16h_nt(o + i, load16(x + i), nt);
            for (; i < head_dim; i++) o[i] = (kv_half)x[i];
        }
#if defined(__x86_64__)
    if (nt) __builtin_ia32_sfence();
#endif
}

KV_CLONES int kv_fits_f16(const float *src, size_t n) {
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= (fabsf(src[i]) <= kHalfMax);
    return ok;
}

/* Scale and zero of one group from its min and max; -1 when they do not fit fp16.
   *div is what codes divide by: the fp16 scale, or +inf when it is 0 (all codes 0). */
static inline int group_params(float mn, float mx, float levels,
                               uint16_t *s16, uint16_t *z16, float *sf, float *zf, float *div) {
    if (!(fabsf(mn) <= kHalfMax) || !(mx - mn <= kHalfMax * levels)) return -1;
    *s16 = f2h((mx - mn) / levels);
    *z16 = f2h(mn);
    *sf = h2f(*s16);
    *zf = h2f(*z16);
    *div = *sf == 0.0f ? INFINITY : *sf;
    return 0;
}

static inline float quant1(float x, float zf, float div, float levels) {
    return fminf(fmaxf(rintf((x - zf) / div), 0.0f), levels);
}

/* Packs float codes q[0..d) of one row into bytes. */
static inline void pack_row(uint8_t *out, const float *q, size_t d, unsigned bits) {
    if (bits == 8) {
        for (size_t i = 0; i < d; i++) out[i] = (uint8_t)q[i];
        return;
    }
    size_t h = half_of(d), n2 = d - h;
    for (size_t i = 0; i < n2; i++) out[i] = (uint8_t)((uint8_t)q[i] | ((uint8_t)q[h + i] << 4));
    if (n2 < h) out[h - 1] = (uint8_t)q[h - 1];
}

KV_CLONES int kv_quant_cols(const float *src, size_t rows, size_t d, unsigned bits,
                            uint16_t *scale, uint16_t *zero, uint8_t *codes, float *work) {
    const float levels = (float)((1u << bits) - 1);
    const size_t rb = bits == 8 ? d : half_of(d);
    float *lo = work, *hi = work + d, *q = work + 2 * d;  /* min/max, then zero/divisor */
    int nan = 0;
    for (size_t c = 0; c < d; c++) { lo[c] = src[c]; hi[c] = src[c]; }
    for (size_t r = 0; r < rows; r++) {
        const float *x = src + r * d;
        for (size_t c = 0; c < d; c++) {
            nan |= x[c] != x[c];
            lo[c] = fminf(lo[c], x[c]);
            hi[c] = fmaxf(hi[c], x[c]);
        }
    }
    if (nan) return -1;
    for (size_t c = 0; c < d; c++) {
        float sf, zf, div;
        if (group_params(lo[c], hi[c], levels, &scale[c], &zero[c], &sf, &zf, &div)) return -1;
        lo[c] = zf;
        hi[c] = div;
    }
    for (size_t r = 0; r < rows; r++) {
        const float *x = src + r * d;
        for (size_t c = 0; c < d; c++) q[c] = quant1(x[c], lo[c], hi[c], levels);
        pack_row(codes + r * rb, q, d, bits);
    }
    return 0;
}

KV_CLONES void kv_dequant_cols(float *restrict dst, const uint8_t *restrict codes, size_t rows, size_t d,
                               unsigned bits, const float *restrict scale, const float *restrict zero) {
    const size_t h = half_of(d), n2 = d - h;
    for (size_t r = 0; r < rows; r++) {
        float *o = dst + r * d;
        if (bits == 8) {
            const uint8_t *c = codes + r * d;
            for (size_t i = 0; i < d; i++) o[i] = (float)c[i] * scale[i] + zero[i];
            continue;
        }
        const uint8_t *c = codes + r * h;
        for (size_t i = 0; i < n2; i++) {
            o[i] = (float)(c[i] & 15) * scale[i] + zero[i];
            o[h + i] = (float)(c[i] >> 4) * scale[h + i] + zero[h + i];
        }
        if (n2 < h) o[h - 1] = (float)(c[h - 1] & 15) * scale[h - 1] + zero[h - 1];
    }
}

KV_CLONES int kv_quant_rows(const float *src, size_t rows, size_t d, size_t g, unsigned bits,
                            uint16_t *scale, uint16_t *zero, uint8_t *codes, float *q) {
    const float levels = (float)((1u << bits) - 1);
    const size_t rb = bits == 8 ? d : half_of(d), ng = (d + g - 1) / g;
    for (size_t r = 0; r < rows; r++) {
        const float *x = src + r * d;
        for (size_t j = 0; j < ng; j++) {
            size_t c0 = j * g, c1 = c0 + g < d ? c0 + g : d;
            float mn = x[c0], mx = x[c0], sf, zf, div;
            int nan = 0;
            for (size_t c = c0; c < c1; c++) {
                nan |= x[c] != x[c];
                mn = fminf(mn, x[c]);
                mx = fmaxf(mx, x[c]);
            }
            if (nan || group_params(mn, mx, levels, &scale[r * ng + j], &zero[r * ng + j], &sf, &zf, &div))
                return -1;
            for (size_t c = c0; c < c1; c++) q[c] = quant1(x[c], zf, div, levels);
        }
        pack_row(codes + r * rb, q, d, bits);
    }
    return 0;
}

/* o[c] = code * s + z for channels [c0, c1) of one int4 row (low nibbles below h). */
static inline void dequant4_span(float *restrict o, const uint8_t *restrict c, size_t h, size_t c0, size_t c1,
                                 float s, float z) {
    size_t mid = c1 < h ? c1 : h;
    for (size_t i = c0; i < mid; i++) o[i] = (float)(c[i] & 15) * s + z;
    for (size_t i = c0 > h ? c0 : h; i < c1; i++) o[i] = (float)(c[i - h] >> 4) * s + z;
}

KV_CLONES void kv_dequant_rows(float *restrict dst, const uint8_t *restrict codes, size_t rows, size_t d,
                               size_t g, unsigned bits, const void *restrict scale,
                               const void *restrict zero) {
    const kv_half_unaligned *sh = (const kv_half_unaligned *)scale, *zh = (const kv_half_unaligned *)zero;
    const size_t h = half_of(d), rb = bits == 8 ? d : h, ng = (d + g - 1) / g;
    for (size_t r = 0; r < rows; r++) {
        float *o = dst + r * d;
        const uint8_t *c = codes + r * rb;
        for (size_t j = 0; j < ng; j++) {
            size_t c0 = j * g, c1 = c0 + g < d ? c0 + g : d;
            float s = (float)sh[r * ng + j], z = (float)zh[r * ng + j];
            if (bits == 8) {
                for (size_t i = c0; i < c1; i++) o[i] = (float)c[i] * s + z;
            } else {
                dequant4_span(o, c, h, c0, c1, s, z);
            }
        }
    }
}


KV_CLONES int kv_dequant_rows_f16_stream(uint16_t *restrict dst, size_t ld_dst, size_t head_stride, size_t head_dim,
                                         const uint8_t *restrict codes, size_t rows, size_t d, size_t g, unsigned bits,
                                         const void *restrict scale, const void *restrict zero) {
    if (bits != 8 || head_dim == 0 || d % head_dim) return 0;
    const kv_half_unaligned *sh = (const kv_half_unaligned *)scale, *zh = (const kv_half_unaligned *)zero;
    const size_t ng = (d + g - 1) / g;
    const int nt = ((uintptr_t)dst & 31) == 0 && ld_dst % 16 == 0 && head_stride % 16 == 0 && head_dim % 16 == 0 &&
                   g % 16 == 0;
    /* 16 channels at a time land in one head: heads of whole vectors. */
    const int whole = g % 16 == 0 && head_dim % 16 == 0;
    kv_half *out = (kv_half *)dst;
    for (size_t r = 0; r < rows; r++) {
        kv_half *o = out + r * ld_dst;
        const uint8_t *c = codes + r * d;
        size_t head = 0, at = 0; /* channel i lands at o[head * head_stride + at] */
        for (size_t j = 0; j < ng; j++) {
            size_t c0 = j * g, c1 = c0 + g < d ? c0 + g : d, i = c0;
            const float s = (float)sh[r * ng + j], z = (float)zh[r * ng + j];
            if (whole)
                for (; i + 16 <= c1; i += 16) {
                    v16u8 q;
                    memcpy(&q, c + i, sizeof q);
                    const v16f v = __builtin_convertvector(q, v16f) * s + z;
                    store16h_nt(o + head * head_stride + at, v, nt);
                    if ((at += 16) == head_dim) head++, at = 0;
                }
            for (; i < c1; i++) {
                o[head * head_stride + at] = (kv_half)((float)c[i] * s + z);
                if (++at == head_dim) head++, at = 0;
            }
        }
    }
#if defined(__x86_64__)
    if (nt) __builtin_ia32_sfence();
#endif
    return 1;
}

void kv_rows_to_heads_u16(uint16_t *dst, size_t ld_dst, size_t head_stride, size_t head_dim, const void *src,
                          size_t rows, size_t d) {
    const uint8_t *s = (const uint8_t *)src;
    if (ld_dst == d && (head_dim == d || head_stride == head_dim)) { /* the rows lie as in src */
        memcpy(dst, s, 2 * rows * d);
        return;
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t h = 0; h * head_dim < d; h++)
            memcpy(dst + r * ld_dst + h * head_stride, s + 2 * (r * d + h * head_dim), 2 * head_dim);
}
