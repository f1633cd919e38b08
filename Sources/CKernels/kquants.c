#include <string.h>
#include "kquants.h"
#include "engine.h"
#include "vec16.h"

#include "clones.h"

/* Q5_0, Q5_1 and the K-quants (Q4_K, Q5_K, Q6_K, Q8_K): dequantization to f32 (the
   miss path's f32 copy at load) and the dot product of one encoded row with an f32
   vector (the decode path's matrix-vector product). Block layouts follow ggml-common.h;
   each is described where it is decoded. Blocks decode sixteen elements per vector
   operation (codes widened from 16-byte vectors, the high bits shifted in lane by lane).
   A dot product decodes one block into an L1 buffer and multiplies it there with sixteen
   independent partial sums, so its values are exactly the dequantizer's. */

static inline __attribute__((always_inline)) float h2f(const uint8_t *p) {
    return kv_h2f_inline((uint16_t)(p[0] | (p[1] << 8)));
}

typedef uint32_t v16u32 __attribute__((vector_size(64), aligned(4)));

/* The 32 five-bit codes of a Q5_0/Q5_1 block as floats into y: low nibbles from the 16
   bytes at qs (element j low, j + 16 high), bit j of qh (u32 LE) on top of element j. */
static inline __attribute__((always_inline)) void five_bit_codes(const uint8_t *b_qh, const uint8_t *qs, v16f *lo,
                                                               v16f *hi) {
    const v16u32 lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    uint32_t qh;
    memcpy(&qh, b_qh, 4);
    v16u8 q;
    memcpy(&q, qs, 16);
    const v16u32 wide = __builtin_convertvector(q, v16u32), bits = (v16u32){} + qh;
    *lo = __builtin_convertvector((wide & 0x0F) | (((bits >> lane) & 1) << 4), v16f);
    *hi = __builtin_convertvector((wide >> 4) | (((bits >> (lane + 16)) & 1) << 4), v16f);
}

/* Q5_0 block (22 bytes): f16 d, 32 high bits (u32 LE; bit j belongs to element j),
   16 bytes of low nibbles (elements j and j + 16). x = d * (q - 16). */
static inline __attribute__((always_inline)) void block_q5_0(const uint8_t *b, float *y) {
    const float d = h2f(b);
    v16f lo, hi;
    five_bit_codes(b + 2, b + 6, &lo, &hi);
    store16(y, (lo - 16.0f) * d);
    store16(y + 16, (hi - 16.0f) * d);
}

/* Q5_1 block (24 bytes): f16 d, f16 m, then as Q5_0 without the offset. x = d * q + m. */
static inline __attribute__((always_inline)) void block_q5_1(const uint8_t *b, float *y) {
    const float d = h2f(b), m = h2f(b + 2);
    v16f lo, hi;
    five_bit_codes(b + 4, b + 8, &lo, &hi);
    store16(y, lo * d + m);
    store16(y + 16, hi * d + m);
}

/* The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block's 12 scale bytes:
   j < 4: low 6 bits of bytes j and j + 4; j >= 4: low nibble (scale) or high nibble
   (min) of byte j + 4, with the top two bits from bytes j - 4 and j. */
static inline __attribute__((always_inline)) void scale_min_k4(int j, const uint8_t *s, float *sc, float *mn) {
    if (j < 4) {
        *sc = (float)(s[j] & 63);
        *mn = (float)(s[j + 4] & 63);
    } else {
        *sc = (float)((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4));
        *mn = (float)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* 16 codes as floats: (nibble `shift` of bytes lo) | (bits `hshift`..+hbits-1 of bytes hb) << 4. */
#define codes16(lo_, shift_, hb_, hshift_, hmask_) ({                                   \
    v16u8 l_, h_;                                                                      \
    memcpy(&l_, (lo_), 16);                                                            \
    memcpy(&h_, (hb_), 16);                                                            \
    __builtin_convertvector(((l_ >> (shift_)) & 0x0F) | (((h_ >> (hshift_)) & (uint8_t)(hmask_)) << 4), v16f); \
})

/* Q4_K block (144 bytes, 256 elements): f16 d, f16 dmin, 12 scale bytes, 128 bytes of
   nibbles. Sub-block j (32 elements) has 6-bit scale sc and min mn; 64 elements share 32
   bytes (low nibbles: the first 32, high: the next). x = (d * sc) * q - (dmin * mn).
   Q5_K block (176 bytes): the same with 32 bytes of high bits between the scales and the
   nibbles (bit j of byte l on top of element 32j + l). */
static inline __attribute__((always_inline)) void block_k(const uint8_t *b, float *y, int five) {
    const float d = h2f(b), dmin = h2f(b + 2);
    const uint8_t *s = b + 4, *qh = b + 16, *q = b + (five ? 48 : 16);
    for (int j = 0; j < 8; j++, y += 32) {
        float sc, mn;
        scale_min_k4(j, s, &sc, &mn);
        const float dj = d * sc, nj = dmin * mn;
        const uint8_t *qs = q + 32 * (j / 2);
        const int shift = 4 * (j & 1), hmask = five ? 1 : 0;
        for (int g = 0; g < 32; g += 16) store16(y + g, dj * codes16(qs + g, shift, qh + g, j, hmask) - nj);
    }
}

static inline __attribute__((always_inline)) void block_q4_K(const uint8_t *b, float *y) { block_k(b, y, 0); }
static inline __attribute__((always_inline)) void block_q5_K(const uint8_t *b, float *y) { block_k(b, y, 1); }

/* Q6_K block (210 bytes): 128 bytes of low nibbles, 64 bytes of high bit pairs, 16 int8
   scales, f16 d. Each half of 128 elements uses 64 low bytes and 32 high bytes: element
   32k + l (k < 4) takes nibble k / 2 of low byte l + 32 (k % 2) and bits 2k..2k+1 of high
   byte l; scale of 16 elements each. x = (d * scale) * (q - 32). */
static inline __attribute__((always_inline)) void block_q6_K(const uint8_t *b, float *y) {
    const float d = h2f(b + 208);
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    for (int half = 0; half < 2; half++, ql += 64, qh += 32, sc += 8, y += 128)
        for (int k = 0; k < 4; k++)
            for (int g = 0; g < 2; g++) {
                const float ds = d * (float)sc[2 * k + g];
                const v16f q = codes16(ql + 32 * (k & 1) + 16 * g, 4 * (k >> 1), qh + 16 * g, 2 * k, 3);
                store16(y + 32 * k + 16 * g, ds * (q - 32.0f));
            }
}

/* Q8_K block (292 bytes): f32 d, 256 int8, 16 int16 sums of 16 (not needed here). x = d * q. */
static inline __attribute__((always_inline)) void block_q8_K(const uint8_t *b, float *y) {
    float d;
    memcpy(&d, b, 4);
    const int8_t *q = (const int8_t *)(b + 4);
    for (int l = 0; l < 256; l++) y[l] = d * (float)q[l];
}

#define KQ_DEQUANT(name, elements, bytes)                                          \
    KV_CLONES void kv_dequant_##name(const void *src, float *dst, size_t n) {      \
        const uint8_t *b = (const uint8_t *)src;                                  \
        for (size_t i = 0; i < n / (elements); i++) block_##name(b + i * (bytes), dst + i * (elements)); \
    }

/* Every type of this file: name, elements and bytes per block. */
#define KQ_TYPES(X) X(q5_0, 32, 22) X(q5_1, 32, 24) X(q4_K, 256, 144) X(q5_K, 256, 176) X(q6_K, 256, 210) X(q8_K, 256, 292)

KQ_TYPES(KQ_DEQUANT)

/* Elements and bytes of one block of the types in this file, or 0 for other types. */
static int kq_layout(int type, size_t *elements, size_t *bytes) {
    switch (type) {
    case KV_GGML_Q5_0: *elements = 32; *bytes = 22; return 1;
    case KV_GGML_Q5_1: *elements = 32; *bytes = 24; return 1;
    case KV_GGML_Q4_K: *elements = 256; *bytes = 144; return 1;
    case KV_GGML_Q5_K: *elements = 256; *bytes = 176; return 1;
    case KV_GGML_Q6_K: *elements = 256; *bytes = 210; return 1;
    case KV_GGML_Q8_K: *elements = 256; *bytes = 292; return 1;
    default: return 0;
    }
}

size_t kv_kquant_row_bytes(int type, size_t cols) {
    size_t elements, bytes;
    if (!kq_layout(type, &elements, &bytes) || cols % elements) return 0;
    return cols / elements * bytes;
}

int kv_kquant_dequant(int type, const void *src, float *dst, size_t n) {
    switch (type) {
    case KV_GGML_Q5_0: kv_dequant_q5_0(src, dst, n); return 0;
    case KV_GGML_Q5_1: kv_dequant_q5_1(src, dst, n); return 0;
    case KV_GGML_Q4_K: kv_dequant_q4_K(src, dst, n); return 0;
    case KV_GGML_Q5_K: kv_dequant_q5_K(src, dst, n); return 0;
    case KV_GGML_Q6_K: kv_dequant_q6_K(src, dst, n); return 0;
    case KV_GGML_Q8_K: kv_dequant_q8_K(src, dst, n); return 0;
    default: return -1;
    }
}

/* acc[j] += w[i + j] * x[i + j] over one decoded block of `n` (a multiple of 16). */
static inline __attribute__((always_inline)) void acc_block(float acc[16], const float *w, const float *x, size_t n) {
    for (size_t i = 0; i < n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += w[i + j] * x[i + j];
}

#define KQ_DOT(name, elements, bytes)                                                      \
    static inline __attribute__((always_inline)) float dot_##name(const uint8_t *b, const float *x, size_t nb) { \
        float acc[16] = {0}, w[elements];                                                  \
        for (size_t i = 0; i < nb; i++) {                                                  \
            block_##name(b + i * (bytes), w);                                              \
            acc_block(acc, w, x + i * (elements), (elements));                             \
        }                                                                                  \
        float s = 0;                                                                       \
        for (int j = 0; j < 16; j++) s += acc[j];                                          \
        return s;                                                                          \
    }

KQ_TYPES(KQ_DOT)

KV_CLONES int kv_kquant_dot(int type, const void *row, const float *x, size_t cols, float *out) {
    size_t elements, bytes;
    if (!kq_layout(type, &elements, &bytes) || cols % elements) return -1;
    const uint8_t *b = (const uint8_t *)row;
    const size_t nb = cols / elements;
    switch (type) {
    case KV_GGML_Q5_0: *out = dot_q5_0(b, x, nb); break;
    case KV_GGML_Q5_1: *out = dot_q5_1(b, x, nb); break;
    case KV_GGML_Q4_K: *out = dot_q4_K(b, x, nb); break;
    case KV_GGML_Q5_K: *out = dot_q5_K(b, x, nb); break;
    case KV_GGML_Q6_K: *out = dot_q6_K(b, x, nb); break;
    default: *out = dot_q8_K(b, x, nb); break;
    }
    return 0;
}
