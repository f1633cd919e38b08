#include <stdlib.h>
#include <string.h>
#include "engine.h"

#if defined(__x86_64__) && defined(__clang__)
#define KV_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#else
#define KV_CLONES
#endif

/* Each dot product keeps 16 independent partial sums so the compiler vectorizes it
   without reassociating a scalar reduction. */

static inline __attribute__((always_inline)) float hsum16(const float *a) {
    float s = 0;
    for (int j = 0; j < 16; j++) s += a[j];
    return s;
}

static inline __attribute__((always_inline)) float h2f(const uint8_t *p) { return kv_h2f_inline((uint16_t)(p[0] | (p[1] << 8))); }

/* xsum[i] is the sum of block i of x (the min term of Q4_1 multiplies it). */
static inline __attribute__((always_inline)) float dot_q4_1(const uint8_t *b, const float *x, const float *xsum, size_t nb) {
    float acc[16] = {0}, macc = 0;
    for (size_t i = 0; i < nb; i++, b += 20, x += 32) {
        const float d = h2f(b), m = h2f(b + 2);
        const uint8_t *q = b + 4;
        for (int j = 0; j < 16; j++)
            acc[j] += d * ((float)(q[j] & 15) * x[j] + (float)(q[j] >> 4) * x[j + 16]);
        macc += m * xsum[i];
    }
    return hsum16(acc) + macc;
}

static inline __attribute__((always_inline)) float dot_q4_0(const uint8_t *b, const float *x, size_t nb) {
    float acc[16] = {0};
    for (size_t i = 0; i < nb; i++, b += 18, x += 32) {
        const float d = h2f(b);
        const uint8_t *q = b + 2;
        for (int j = 0; j < 16; j++)
            acc[j] += d * ((float)((int)(q[j] & 15) - 8) * x[j] + (float)((int)(q[j] >> 4) - 8) * x[j + 16]);
    }
    return hsum16(acc);
}

static inline __attribute__((always_inline)) float dot_q8_0(const uint8_t *b, const float *x, size_t nb) {
    float acc[16] = {0};
    for (size_t i = 0; i < nb; i++, b += 34, x += 32) {
        const float d = h2f(b);
        const int8_t *q = (const int8_t *)(b + 2);
        for (int j = 0; j < 16; j++) acc[j] += d * ((float)q[j] * x[j] + (float)q[j + 16] * x[j + 16]);
    }
    return hsum16(acc);
}

static inline __attribute__((always_inline)) float dot_f32(const float *w, const float *x, size_t n) {
    float acc[16] = {0};
    for (size_t i = 0; i < n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += w[i + j] * x[i + j];
    return hsum16(acc);
}

static inline __attribute__((always_inline)) float dot_f16(const uint16_t *w, const float *x, size_t n) {
    float acc[16] = {0};
    for (size_t i = 0; i < n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += kv_h2f_inline(w[i + j]) * x[i + j];
    return hsum16(acc);
}

static inline __attribute__((always_inline)) float dot_bf16(const uint16_t *w, const float *x, size_t n) {
    float acc[16] = {0};
    for (size_t i = 0; i < n; i += 16)
        for (int j = 0; j < 16; j++) {
            const uint32_t bits = (uint32_t)w[i + j] << 16;
            float f;
            memcpy(&f, &bits, 4);
            acc[j] += f * x[i + j];
        }
    return hsum16(acc);
}

KV_CLONES int kv_matvec(int type, const void *w, const float *x, float *y, size_t rows, size_t cols, int accumulate) {
    const uint8_t *base = (const uint8_t *)w;
    const size_t nb = cols / 32;
    float xsum_stack[512];
    float *xsum = nb <= 512 ? xsum_stack : (float *)malloc(nb * sizeof(float));
    if (!xsum) return -1;
    for (size_t i = 0; i < nb; i++) {
        float s = 0;
        for (int j = 0; j < 32; j++) s += x[i * 32 + j];
        xsum[i] = s;
    }
    int status = 0;
    for (size_t r = 0; r < rows && status == 0; r++) {
        float v;
        switch (type) {
        case 0: v = dot_f32((const float *)base + r * cols, x, cols); break;
        case 1: v = dot_f16((const uint16_t *)base + r * cols, x, cols); break;
        case 30: v = dot_bf16((const uint16_t *)base + r * cols, x, cols); break;
        case 2: v = dot_q4_0(base + r * nb * 18, x, nb); break;
        case 3: v = dot_q4_1(base + r * nb * 20, x, xsum, nb); break;
        case 8: v = dot_q8_0(base + r * nb * 34, x, nb); break;
        default: v = 0; status = -1; break;
        }
        y[r] = accumulate ? y[r] + v : v;
    }
    if (xsum != xsum_stack) free(xsum);
    return status;
}
