/* Small-prefill products (8...32 input rows, one thread) on Gemma 3 270M's and SmolLM2-135M's
   tensor shapes, in one run: kv_matmul_rows with its wide register tiles (16-lane, sized for
   AVX-512) and its narrow ones (8-lane, sized for AVX2's 16 registers), and, for Q4_1, Q8_0 and
   Q5_0, kv_matmul_interleaved on the interleaved copy (Q5_0 rewritten exactly as Q8_0).
   Weights are random codes with small positive scales; best of 5 runs of `reps` products.
   Prints JSON with GFLOP/s. Built and run by bench/small_prefill_tiles.sh. */
#include <stdio.h>
#include <stdlib.h>
#include "engine.h"
#include "qrows.h"
#include "kvkernels.h"
#include "bench_blocks.h"

enum { WIDE, NARROW, LAID };

static double run(int how, int type, const void *w, const void *laid, const float *x, float *y, size_t m,
                  size_t rows, size_t cols, int reps) {
    if (how != LAID) kv_matmul_set_tiles(how == WIDE);
    double best = 1e30;
    for (int k = 0; k < 5; k++) {
        const double t0 = now();
        for (int r = 0; r < reps; r++) {
            if (how == LAID) kv_matmul_interleaved(type == KV_GGML_Q5_0 ? KV_GGML_Q8_0 : type, laid, x, cols, y, rows, m, rows, cols, 0);
            else kv_matmul_rows(type, w, x, cols, y, rows, m, rows, cols, 0);
        }
        const double t = (now() - t0) / reps;
        if (t < best) best = t;
    }
    kv_matmul_set_tiles(-1);
    return 2.0 * (double)m * (double)rows * (double)cols / best * 1e-9;
}

int main(int argc, char **argv) {
    const int reps = argc > 1 ? atoi(argv[1]) : 20;
    const struct { int type; const char *name, *model, *tensor; size_t elements, bytes, rows, cols; } cases[] = {
        {KV_GGML_Q5_0, "Q5_0", "gemma3-270m", "ffn_gate+up", 32, 22, 4096, 640},
        {KV_GGML_Q4_K, "Q4_K", "gemma3-270m", "ffn_down", 256, 144, 640, 2048},
        {KV_GGML_Q6_K, "Q6_K", "gemma3-270m", "ffn_down", 256, 210, 640, 2048},
        {KV_GGML_Q8_0, "Q8_0", "gemma3-270m", "attn_v", 32, 34, 256, 640},
        {KV_GGML_Q4_1, "Q4_1", "smollm2-135m", "ffn_gate+up", 32, 20, 3072, 576},
    };
    const size_t ms[] = {8, 12, 16, 20, 24, 32};
    const size_t n = sizeof cases / sizeof cases[0], nm = sizeof ms / sizeof ms[0];
    printf("{\"reps\": %d, \"threads\": 1, \"isa\": \"%s\", \"cases\": [\n", reps, kv_kernels_isa());
    for (size_t i = 0; i < n; i++) {
        const size_t rows = cases[i].rows, cols = cases[i].cols;
        const size_t bytes = rows * cols / cases[i].elements * cases[i].bytes;
        const int type = cases[i].type;
        const int laidable = type == KV_GGML_Q8_0 || type == KV_GGML_Q5_0 || type == KV_GGML_Q4_1;
        const size_t laid_bytes = laidable ? rows * cols / 32 * (type == KV_GGML_Q4_1 ? 20 : 34) : 0;
        unsigned char *w = malloc(bytes), *laid = laidable ? malloc(laid_bytes) : NULL;
        float *x = malloc(32 * cols * sizeof(float)), *y = malloc(32 * rows * sizeof(float));
        if (!w || !x || !y || (laidable && !laid)) return 1;
        fill(w, type, rows * cols / cases[i].elements, cases[i].bytes);
        for (size_t k = 0; k < 32 * cols; k++) x[k] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
        if (type == KV_GGML_Q5_0) kv_qdot_interleave_q5_0(w, laid, rows, cols);
        else if (laidable) kv_qdot_interleave(type, w, laid, rows, cols);
        for (size_t j = 0; j < nm; j++) {
            const size_t m = ms[j];
            const double wide = run(WIDE, type, w, laid, x, y, m, rows, cols, reps);
            const double narrow = run(NARROW, type, w, laid, x, y, m, rows, cols, reps);
            char la[32] = "null";
            if (laidable) snprintf(la, sizeof la, "%.2f", run(LAID, type, w, laid, x, y, m, rows, cols, reps));
            printf(" {\"type\": \"%s\", \"model\": \"%s\", \"tensor\": \"%s\", \"rows\": %zu, \"cols\": %zu, \"m\": %zu, "
                   "\"wide_gflops\": %.2f, \"narrow_gflops\": %.2f, \"interleaved_gflops\": %s}%s\n",
                   cases[i].name, cases[i].model, cases[i].tensor, rows, cols, m, wide, narrow, la,
                   i + 1 < n || j + 1 < nm ? "," : "");
            fprintf(stderr, "%s %s m=%zu: wide %.1f narrow %.1f interleaved %s GFLOP/s\n", cases[i].name, cases[i].tensor,
                    m, wide, narrow, la);
        }
        free(w); free(laid); free(x); free(y);
    }
    printf("]}\n");
    return 0;
}
