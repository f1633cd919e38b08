/* Decode products of Gemma 3 270M's tensor shapes and types, one thread, three ways in one
   run: the f32 input on the row-major blocks (kv_matvec), 16-bit input codes on the row-major
   blocks (kv_quantize_q16 + kv_matvec_q16rows; and kv_matvec_q16rows_ordered, the packed
   product's float order), and, for Q8_0, Q4_1 and Q5_0, 16-bit codes on
   the interleaved copy (kv_qdot_interleave / kv_qdot_interleave_q5_0 + kv_matvec_q16dot).
   Weights are random codes with small positive scales; best of 5 runs of `reps` products
   (a fifth for the output head). Prints JSON. Built and run by bench/kquants_q16.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "engine.h"
#include "qrows.h"
#include "kvkernels.h"
#include "bench_blocks.h"

enum { F32, ROWS, ORDERED, LAID };

static double run(int how, int type, const void *w, const void *laid, const float *x, kv_q16_block *q, float *y,
                  size_t rows, size_t cols, int reps) {
    double best = 1e30;
    for (int k = 0; k < 5; k++) {
        const double t0 = now();
        for (int r = 0; r < reps; r++) {
            if (how == F32) kv_matvec(type, w, x, y, rows, cols, 0);
            else {
                kv_quantize_q16(x, q, cols);
                if (how == ROWS) kv_matvec_q16rows(type, w, q, y, rows, cols, 0);
                else if (how == ORDERED) kv_matvec_q16rows_ordered(type, w, q, y, rows, cols, 0);
                else kv_matvec_q16dot(type == KV_GGML_Q5_0 ? KV_GGML_Q8_0 : type, laid, q, y, rows, cols, 0);
            }
        }
        const double t = (now() - t0) / reps;
        if (t < best) best = t;
    }
    return best;
}

int main(int argc, char **argv) {
    const int reps = argc > 1 ? atoi(argv[1]) : 200;
    const struct { int type; const char *name, *tensor; size_t elements, bytes, rows, cols; } cases[] = {
        {KV_GGML_Q5_0, "Q5_0", "attn_q+k+v", 32, 22, 1536, 640},
        {KV_GGML_Q5_0, "Q5_0", "ffn_gate+up", 32, 22, 4096, 640},
        {KV_GGML_Q4_K, "Q4_K", "attn_output", 256, 144, 640, 1024},
        {KV_GGML_Q4_K, "Q4_K", "ffn_down", 256, 144, 640, 2048},
        {KV_GGML_Q6_K, "Q6_K", "ffn_down", 256, 210, 640, 2048},
        {KV_GGML_Q8_0, "Q8_0", "attn_v", 32, 34, 256, 640},
        {KV_GGML_Q8_0, "Q8_0", "output (token_embd)", 32, 34, 262144, 640},
    };
    const size_t n = sizeof cases / sizeof cases[0];
    printf("{\"reps\": %d, \"threads\": 1, \"isa\": \"%s\", \"cases\": [\n", reps, kv_kernels_isa());
    for (size_t i = 0; i < n; i++) {
        const size_t rows = cases[i].rows, cols = cases[i].cols;
        const size_t bytes = rows * cols / cases[i].elements * cases[i].bytes;
        const int type = cases[i].type, laidable = type == KV_GGML_Q8_0 || type == KV_GGML_Q5_0;
        const size_t laid_bytes = laidable ? rows * cols / 32 * 34 : 0;
        unsigned char *w = malloc(bytes), *laid = laidable ? malloc(laid_bytes) : NULL;
        float *x = malloc(cols * sizeof(float)), *y = malloc(rows * sizeof(float));
        kv_q16_block *q = malloc(cols / 32 * sizeof *q);
        if (!w || !x || !y || !q || (laidable && !laid)) return 1;
        fill(w, type, rows * cols / cases[i].elements, cases[i].bytes);
        for (size_t k = 0; k < cols; k++) x[k] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
        if (type == KV_GGML_Q8_0) kv_qdot_interleave(type, w, laid, rows, cols);
        if (type == KV_GGML_Q5_0) kv_qdot_interleave_q5_0(w, laid, rows, cols);
        const int r = rows > 100000 ? reps / 40 + 1 : reps;
        const double f = run(F32, type, w, laid, x, q, y, rows, cols, r);
        const double ro = run(ROWS, type, w, laid, x, q, y, rows, cols, r);
        const double od = run(ORDERED, type, w, laid, x, q, y, rows, cols, r);
        const double la = laidable ? run(LAID, type, w, laid, x, q, y, rows, cols, r) : 0;
        char laid_ms[32] = "null";
        if (laidable) snprintf(laid_ms, sizeof laid_ms, "%.4f", la * 1e3);
        printf(" {\"type\": \"%s\", \"tensor\": \"%s\", \"rows\": %zu, \"cols\": %zu, \"bytes\": %zu, \"f32_ms\": %.4f, "
               "\"q16rows_ms\": %.4f, \"q16rows_ordered_ms\": %.4f, \"interleaved_ms\": %s, \"interleaved_bytes\": %zu}%s\n",
               cases[i].name, cases[i].tensor, rows, cols, bytes, f * 1e3, ro * 1e3, od * 1e3,
               laid_ms, laid_bytes, i + 1 < n ? "," : "");
        fprintf(stderr, "%s %s: f32 %.3f ms, q16rows %.3f ms, ordered %.3f ms, interleaved %.3f ms\n", cases[i].name,
                cases[i].tensor, f * 1e3, ro * 1e3, od * 1e3, la * 1e3);
        free(w); free(laid); free(x); free(y); free(q);
    }
    printf("]}\n");
    return 0;
}
