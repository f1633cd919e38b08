/* Private to CKernels: 16-lane vectors, with the loads and stores and the register-tiled
   dot products that the dequantizers (engine.c) and the small matrix kernels (matvec.c,
   attention.c) share. Everything here is inlined into
   each target clone, so it compiles to zmm code on AVX-512 and splits on narrower targets. */
#ifndef KVSTASH_VEC16_H
#define KVSTASH_VEC16_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* 16 floats as one vector (one zmm on AVX-512, split by the compiler on narrower targets). */
typedef float v16f __attribute__((vector_size(64), aligned(4)));

/* Loads 16 floats (a macro: vector arguments and returns would change the ABI of the
   narrower clones). */
#define load16(p) ({ v16f v_; memcpy(&v_, (p), sizeof v_); v_; })

/* Stores a 16-float vector expression at `dst` (unaligned). */
#define store16(dst, expr) do { const v16f v_ = (expr); memcpy((dst), &v_, sizeof v_); } while (0)

/* IEEE binary16, as the KV cache stores K and V (aliases anything, any alignment). */
typedef _Float16 kv_f16 __attribute__((may_alias, aligned(1)));
typedef _Float16 v16h __attribute__((vector_size(32), aligned(1)));

/* Loads 16 halves and widens them to floats (vcvtph2ps with F16C or AVX-512; the
   compiler's software conversion on baseline x86-64). */
#define load16h(p) ({ v16h h_; memcpy(&h_, (p), sizeof h_); __builtin_convertvector(h_, v16f); })

/* Narrows a 16-float vector expression to halves (round to nearest even) at `dst`. */
#define store16h(dst, expr) do { const v16h h_ = __builtin_convertvector((expr), v16h); memcpy((dst), &h_, sizeof h_); } while (0)

/* Narrows a 16-float vector expression to halves at `dst`; with a non-temporal store when
   `nt` (dst then 32-byte aligned), for memory written once and not read soon (a spliced KV
   cache). A macro, like store16h. */
typedef _Float16 v16h_a32 __attribute__((vector_size(32), aligned(32)));
#define store16h_nt(dst, expr, nt)                                                              \
    do {                                                                                        \
        if (nt) {                                                                               \
            __builtin_nontemporal_store(__builtin_convertvector((expr), v16h_a32), (v16h_a32 *)(dst)); \
        } else {                                                                                \
            store16h((dst), (expr));                                                            \
        }                                                                                       \
    } while (0)

/* 16 bytes, for the codes of a quantized block (nibbles or int8). */
typedef uint8_t v16u8 __attribute__((vector_size(16), aligned(1)));
typedef int8_t v16i8 __attribute__((vector_size(16), aligned(1)));

/* 16 int32 lanes (comparison results and exponent bits). */
typedef int32_t v16i __attribute__((vector_size(64), aligned(4)));

/* Bit casts between the two (macros, like load16: vector arguments would change the ABI
   of the narrower clones). */
#define as_f(x) ((v16f)(x))
#define as_i(x) ((v16i)(x))

/* exp(x) for x <= 0 (softmax arguments), 16 lanes: 2^k * p(r), |r| <= ln2/2, degree-6
   minimax polynomial; relative error about 2e-7. Arguments below -87 give exp(-87), not 0:
   callers mask what must be exactly zero. */
#define exp16_nonpos(arg) ({                                                                  \
    const v16f x_ = __builtin_elementwise_max((arg), (v16f){} - 87.0f);                         \
    const v16f magic_ = (v16f){} + 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */ \
    const v16f k_ = (x_ * 1.44269504088896341f + magic_) - magic_;                               \
    const v16f r_ = (x_ - k_ * 0.693359375f) + k_ * 2.12194440e-4f;                              \
    v16f p_ = (v16f){} + 1.9875691500e-4f;                                                       \
    p_ = p_ * r_ + 1.3981999507e-3f;                                                             \
    p_ = p_ * r_ + 8.3334519073e-3f;                                                             \
    p_ = p_ * r_ + 4.1665795894e-2f;                                                             \
    p_ = p_ * r_ + 1.6666665459e-1f;                                                             \
    p_ = p_ * r_ + 5.0000001201e-1f;                                                             \
    p_ = p_ * r_ * r_ + r_ + 1.0f;                                                               \
    p_ * as_f((__builtin_convertvector(k_, v16i) + 127) << 23);                                  \
})

/* Halves and quarters of a 16-float vector. */
typedef float v8f __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));

/* Sum of the 16 lanes of a float or int32 vector by halving (no trip through memory, so
   accumulators stay in registers; an int32 sum is exact in any order while it fits). */
#define vsum16(v) ({                                                                    \
    const __typeof__(v) s_ = (v);                                                         \
    const __auto_type h_ = __builtin_shufflevector(s_, s_, 0, 1, 2, 3, 4, 5, 6, 7) +      \
                           __builtin_shufflevector(s_, s_, 8, 9, 10, 11, 12, 13, 14, 15); \
    const __auto_type q_ = __builtin_shufflevector(h_, h_, 0, 1, 2, 3) + __builtin_shufflevector(h_, h_, 4, 5, 6, 7); \
    (q_[0] + q_[2]) + (q_[1] + q_[3]);                                                    \
})

/* Largest of the 16 lanes, by halving (for finite lanes the same value in any order). */
#define vmax16(v) ({                                                                    \
    const v16f m_ = (v);                                                                  \
    const __auto_type h_ = __builtin_elementwise_max(__builtin_shufflevector(m_, m_, 0, 1, 2, 3, 4, 5, 6, 7), \
                                                     __builtin_shufflevector(m_, m_, 8, 9, 10, 11, 12, 13, 14, 15)); \
    const __auto_type q_ = __builtin_elementwise_max(__builtin_shufflevector(h_, h_, 0, 1, 2, 3),  \
                                                     __builtin_shufflevector(h_, h_, 4, 5, 6, 7)); \
    const float a_ = q_[0] > q_[2] ? q_[0] : q_[2], b_ = q_[1] > q_[3] ? q_[1] : q_[3];   \
    a_ > b_ ? a_ : b_;                                                                    \
})

/* 16 int16 lanes (also the raw bits of 16 halves, which attention.c's transpose16h moves). */
typedef int16_t v16s __attribute__((vector_size(32), aligned(1)));
/* 16 int32 lanes narrowed to int16 / int8 (values already in range) and stored at `dst`. */
#define store16s(dst, expr) do { const v16s n_ = __builtin_convertvector((expr), v16s); memcpy((dst), &n_, sizeof n_); } while (0)
#define store16b(dst, expr) do { const v16i8 n_ = __builtin_convertvector((expr), v16i8); memcpy((dst), &n_, sizeof n_); } while (0)

/* Quantizes the 32 floats of vectors `lo`, `hi` into the block `out` (its fields d, s, q):
   d = max|x| / top, q = round(x / d) in [-top, top] stored as q + zero by `store` (store16s
   or store16b), s = d * sum(q). */
#define quantize_block(out_, lo_, hi_, top_, store_, zero_) do {                                        \
    const v16f qlo_f_ = (lo_), qhi_f_ = (hi_), magic_ = (v16f){} + 12582912.0f; /* 1.5 * 2^23 */        \
    const float amax_ = vmax16(__builtin_elementwise_max(__builtin_elementwise_abs(qlo_f_),             \
                                                         __builtin_elementwise_abs(qhi_f_)));           \
    const float d_ = amax_ / (top_), id_ = amax_ > 0 ? (top_) / amax_ : 0.0f;                           \
    const v16i qlo_ = __builtin_convertvector((qlo_f_ * id_ + magic_) - magic_, v16i);                   \
    const v16i qhi_ = __builtin_convertvector((qhi_f_ * id_ + magic_) - magic_, v16i);                   \
    store_((out_)->q, qlo_ + (zero_));                                                                   \
    store_((out_)->q + 16, qhi_ + (zero_));                                                              \
    (out_)->d = d_;                                                                                      \
    (out_)->s = d_ * (float)vsum16(qlo_ + qhi_);                                                         \
} while (0)

/* 16-bit codes into a kv_q16_block. kv_quantize_q16 and the kernels that produce their output
   as codes (kv_rmsnorm_q16, kv_gelu_mul_q16) share it, so their codes are the same bits. */
#define quantize_q16_block(out_, lo_, hi_) quantize_block(out_, lo_, hi_, 32767.0f, store16s, 0)

/* 8-bit codes into a kv_q8_block (zero 0: signed bytes) or a kv_u8_block (zero 128:
   kv_quantize_u8's unsigned bytes). */
#define quantize_q8_block(out_, lo_, hi_, zero_) quantize_block(out_, lo_, hi_, 127.0f, store16b, zero_)

typedef double v8d __attribute__((vector_size(64), aligned(8)));

/* Sums of squares in double of `count` (at most 8) vectors of n floats, vector k at
   x + k * stride, into out[k]. Each vector's sum takes 16 lanes of double accumulators joined in
   a fixed order at the end (the same on every target; far below float rounding either way),
   whatever `count`: the vectors are only taken side by side, so that their chains of
   additions overlap. */
static inline __attribute__((always_inline)) void sum_squares_f64_many(const float *x, size_t stride, size_t count,
                                                                     size_t n, double *out) {
    v8d lo[8], hi[8];
    for (size_t k = 0; k < count; k++) lo[k] = hi[k] = (v8d){};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (size_t k = 0; k < count; k++) {
            const v16f v = load16(x + k * stride + i);
            const v8d a = __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7), v8d);
            const v8d b = __builtin_convertvector(__builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15), v8d);
            lo[k] += a * a;
            hi[k] += b * b;
        }
    for (size_t k = 0; k < count; k++) {
        const v8d s = lo[k] + hi[k];
        double total = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
        for (size_t j = i; j < n; j++) total += (double)x[k * stride + j] * x[k * stride + j];
        out[k] = total;
    }
}

/* Two dequantized weight rows against T input rows at once: 2T accumulators stay in
   registers and every x vector loaded feeds two FMAs. out0[t] = w0 . x[t], out1[t] = w1 . x[t]. */
static inline __attribute__((always_inline)) void tile2(const float *w0, const float *w1, const float *x, size_t ldx,
                                                      size_t cols, int T, float *out0, float *out1) {
    v16f a0[8], a1[8];
    for (int t = 0; t < T; t++) a0[t] = a1[t] = (v16f){0};
    for (size_t k = 0; k < cols; k += 16) {
        const v16f u = load16(w0 + k), v = load16(w1 + k);
        for (int t = 0; t < T; t++) {
            const v16f xv = load16(x + t * ldx + k);
            a0[t] += u * xv;
            a1[t] += v * xv;
        }
    }
    for (int t = 0; t < T; t++) {
        out0[t] = vsum16(a0[t]);
        out1[t] = vsum16(a1[t]);
    }
}

/* tile2 with T a compile-time constant (1...8), so each case is fully unrolled. */
static inline __attribute__((always_inline)) void tile2_n(const float *w0, const float *w1, const float *x, size_t ldx, size_t cols, int T,
                    float *out0, float *out1) {
    switch (T) {
    case 8: tile2(w0, w1, x, ldx, cols, 8, out0, out1); break;
    case 7: tile2(w0, w1, x, ldx, cols, 7, out0, out1); break;
    case 6: tile2(w0, w1, x, ldx, cols, 6, out0, out1); break;
    case 5: tile2(w0, w1, x, ldx, cols, 5, out0, out1); break;
    case 4: tile2(w0, w1, x, ldx, cols, 4, out0, out1); break;
    case 3: tile2(w0, w1, x, ldx, cols, 3, out0, out1); break;
    case 2: tile2(w0, w1, x, ldx, cols, 2, out0, out1); break;
    default: tile2(w0, w1, x, ldx, cols, 1, out0, out1); break;
    }
}

#endif
