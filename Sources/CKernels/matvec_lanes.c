#include <stdlib.h>
#include <string.h>
#include "engine.h"
#include "vec16.h"

#include "clones.h"

/* ---- One input row against interleaved tensors, output rows in lanes (decode) ----------

   kv_matvec reads a row-major tensor one weight row at a time: each block of 32 weights
   costs its own scale conversion, widening and a horizontal sum at the end of the row.
   With 32 rows of a group side by side (kv_q4_1_interleave, kv_q8_0_interleave), one
   16-byte load holds one column of 16 rows, so every code converted feeds one FMA with a
   broadcast input element, the 32 rows' scales convert in vectors, and there are no
   horizontal sums: about half the instructions per weight, which is what bounds a decode
   step on AVX2.

   kv_q8_0_interleave: for group g of 32 rows and block b, 1088 bytes hold the 32 rows'
   f16 scales (64 bytes), then for each column k < 32 the 32 rows' int8 codes (32 bytes).
   Same size as the original. */

enum { LANE_GROUP = 32, Q41_GROUP_BYTES = 640, Q80_GROUP_BYTES = 1088 };

void kv_q8_0_interleave(const void *src, void *dst, size_t rows, size_t cols) {
    const size_t nb = cols / 32, row_bytes = nb * 34;
    const uint8_t *s = (const uint8_t *)src;
    uint8_t *d = (uint8_t *)dst;
    for (size_t g = 0; g < rows / LANE_GROUP; g++)
        for (size_t b = 0; b < nb; b++) {
            uint8_t *o = d + (g * nb + b) * Q80_GROUP_BYTES;
            for (size_t i = 0; i < LANE_GROUP; i++) {
                const uint8_t *blk = s + (g * LANE_GROUP + i) * row_bytes + b * 34;
                memcpy(o + 2 * i, blk, 2);
                for (size_t k = 0; k < 32; k++) o[64 + k * LANE_GROUP + i] = blk[2 + k];
            }
        }
}

/* 32 f16 values (little-endian) to floats, in vectors. */
static inline __attribute__((always_inline)) void halves32(const uint8_t *p, float *out) {
    uint16_t h[32];
    memcpy(h, p, 64);
    for (int i = 0; i < 32; i++) out[i] = kv_h2f_inline(h[i]);
}

/* Q4_1, one group of 32 rows: y[r] = sum_b d[r] (q[r] . x_b) + m[r] sum(x_b). The four
   accumulators (low and high nibbles of 2 x 16 rows) are independent FMA chains. */
static inline __attribute__((always_inline)) void group_q4_1(const uint8_t *o, const float *x, const float *xsum,
                                                           size_t nb, v16f *y0, v16f *y1) {
    for (size_t b = 0; b < nb; b++, o += Q41_GROUP_BYTES) {
        float d[32], m[32];
        halves32(o, d);
        halves32(o + 64, m);
        v16f a0 = {}, a1 = {}, c0 = {}, c1 = {};
        const float *xb = x + b * 32;
        for (int j = 0; j < 16; j++) {
            v16u8 q0, q1;
            memcpy(&q0, o + 128 + j * 32, 16);
            memcpy(&q1, o + 128 + j * 32 + 16, 16);
            const float lo = xb[j], hi = xb[j + 16];
            a0 += __builtin_convertvector(q0 & 15, v16f) * lo;
            a1 += __builtin_convertvector(q1 & 15, v16f) * lo;
            c0 += __builtin_convertvector(q0 >> 4, v16f) * hi;
            c1 += __builtin_convertvector(q1 >> 4, v16f) * hi;
        }
        *y0 += load16(d) * (a0 + c0) + load16(m) * xsum[b];
        *y1 += load16(d + 16) * (a1 + c1) + load16(m + 16) * xsum[b];
    }
}

/* Q8_0, one group of 32 rows: y[r] = sum_b d[r] (q[r] . x_b), two columns per step. */
static inline __attribute__((always_inline)) void group_q8_0(const uint8_t *o, const float *x, size_t nb,
                                                           v16f *y0, v16f *y1) {
    for (size_t b = 0; b < nb; b++, o += Q80_GROUP_BYTES) {
        float d[32];
        halves32(o, d);
        v16f a0 = {}, a1 = {}, c0 = {}, c1 = {};
        const float *xb = x + b * 32;
        for (int k = 0; k < 32; k += 2) {
            const uint8_t *col = o + 64 + k * LANE_GROUP;
            v16i8 q0, q1, q2, q3;
            memcpy(&q0, col, 16);
            memcpy(&q1, col + 16, 16);
            memcpy(&q2, col + 32, 16);
            memcpy(&q3, col + 48, 16);
            a0 += __builtin_convertvector(q0, v16f) * xb[k];
            a1 += __builtin_convertvector(q1, v16f) * xb[k];
            c0 += __builtin_convertvector(q2, v16f) * xb[k + 1];
            c1 += __builtin_convertvector(q3, v16f) * xb[k + 1];
        }
        *y0 += load16(d) * (a0 + c0);
        *y1 += load16(d + 16) * (a1 + c1);
    }
}

KV_CLONES int kv_matvec_interleaved(int type, const void *w, const float *x, float *y, size_t rows, size_t cols,
                                    int accumulate) {
    if (cols % 32 || rows % LANE_GROUP || (type != 3 && type != 8)) return -1;
    const size_t nb = cols / 32;
    float xsum_stack[512];
    float *xsum = xsum_stack;
    if (type == 3) {
        if (nb > 512 && !(xsum = (float *)malloc(nb * sizeof(float)))) return -1;
        for (size_t b = 0; b < nb; b++) {
            float s = 0;
            for (int j = 0; j < 32; j++) s += x[b * 32 + j];
            xsum[b] = s;
        }
    }
    const size_t group_bytes = nb * (type == 3 ? Q41_GROUP_BYTES : Q80_GROUP_BYTES);
    for (size_t g = 0; g < rows / LANE_GROUP; g++) {
        const uint8_t *o = (const uint8_t *)w + g * group_bytes;
        v16f y0 = {}, y1 = {};
        if (type == 3) group_q4_1(o, x, xsum, nb, &y0, &y1);
        else group_q8_0(o, x, nb, &y0, &y1);
        float *out = y + g * LANE_GROUP;
        store16(out, accumulate ? load16(out) + y0 : y0);
        store16(out + 16, accumulate ? load16(out + 16) + y1 : y1);
    }
    if (xsum != xsum_stack) free(xsum);
    return 0;
}
