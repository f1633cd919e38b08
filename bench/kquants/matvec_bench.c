/* Decode-path matrix-vector product (kv_matvec) on every block type, single thread, as a
   ratio to the same product on f32 weights measured in the same run. Weights are random
   codes with small positive scales; 2048 x 2048, best of 5 runs of `reps` products.
   Prints JSON. Built and run by bench/kquants.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "engine.h"
#include "kquants.h"
#include "bench_blocks.h"

static double best_time(int type, const void *w, const float *x, float *y, size_t rows, size_t cols, int reps) {
    double best = 1e30;
    for (int k = 0; k < 5; k++) {
        const double t0 = now();
        for (int r = 0; r < reps; r++) kv_matvec(type, w, x, y, rows, cols, 0);
        const double t = (now() - t0) / reps;
        if (t < best) best = t;
    }
    return best;
}

int main(int argc, char **argv) {
    const int reps = argc > 1 ? atoi(argv[1]) : 100;
    const struct { int type; const char *name; size_t elements, bytes; } types[] = {
        {KV_GGML_Q4_0, "Q4_0", 32, 18}, {KV_GGML_Q4_1, "Q4_1", 32, 20}, {KV_GGML_Q8_0, "Q8_0", 32, 34},
        {KV_GGML_Q5_0, "Q5_0", 32, 22}, {KV_GGML_Q5_1, "Q5_1", 32, 24}, {KV_GGML_Q4_K, "Q4_K", 256, 144},
        {KV_GGML_Q5_K, "Q5_K", 256, 176}, {KV_GGML_Q6_K, "Q6_K", 256, 210}, {KV_GGML_Q8_K, "Q8_K", 256, 292}};
    const size_t rows = 2048, cols = 2048;
    float *x = malloc(cols * sizeof(float)), *y = malloc(rows * sizeof(float)), *dense = malloc(rows * cols * sizeof(float));
    unsigned char *w = malloc(rows * cols * 2);
    if (!x || !y || !dense || !w) return 1;
    for (size_t i = 0; i < cols; i++) x[i] = (float)(rnd() % 1000) / 1000.0f - 0.5f;
    for (size_t i = 0; i < rows * cols; i++) dense[i] = (float)(rnd() % 1000) / 1000.0f;
    const double f32 = best_time(KV_GGML_F32, dense, x, y, rows, cols, reps);
    printf("{\"rows\": %zu, \"cols\": %zu, \"reps\": %d, \"f32_ms\": %.4f, \"types\": [", rows, cols, reps, f32 * 1e3);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const size_t blocks = rows * cols / types[i].elements;
        fill(w, types[i].type, blocks, types[i].bytes);
        const double t = best_time(types[i].type, w, x, y, rows, cols, reps);
        printf("%s{\"type\": \"%s\", \"ms\": %.4f, \"ratio_to_f32\": %.3f, \"encoded_GBps\": %.2f}", i ? ", " : "",
               types[i].name, t * 1e3, t / f32, (double)(blocks * types[i].bytes) / t / 1e9);
    }
    printf("]}\n");
    return 0;
}
