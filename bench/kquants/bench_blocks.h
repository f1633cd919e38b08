/* Shared by the kquants benchmarks: a clock, a fixed pseudo-random stream and random encoded
   blocks (random code bytes, every scale field a small positive half, or f32 for Q8_K). */
#ifndef KVSTASH_BENCH_BLOCKS_H
#define KVSTASH_BENCH_BLOCKS_H
#include <string.h>
#include <time.h>
#include "ggml_types.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static unsigned long long state = 1;
static unsigned rnd(void) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(state >> 33);
}

static void fill(unsigned char *b, int type, size_t blocks, size_t bytes) {
    const unsigned short h = 0x2000;
    const float f = 0.001f;
    for (size_t i = 0; i < blocks * bytes; i++) b[i] = (unsigned char)(rnd() & 0xFF);
    for (size_t i = 0; i < blocks; i++) {
        unsigned char *p = b + i * bytes;
        if (type == KV_GGML_Q6_K) memcpy(p + 208, &h, 2);
        else if (type == KV_GGML_Q8_K) memcpy(p, &f, 4);
        else {
            memcpy(p, &h, 2);
            if (type == KV_GGML_Q4_1 || type == KV_GGML_Q5_1 || type == KV_GGML_Q4_K || type == KV_GGML_Q5_K) memcpy(p + 2, &h, 2);
        }
    }
}

#endif
