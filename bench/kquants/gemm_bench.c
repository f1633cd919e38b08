/* Prefill products of Gemma 3 270M's tensor shapes and types, one thread, in one run: BLAS
   sgemm on the dequantized f32 weights (what the miss path ran before kv_gemm_q16), the
   encoded small-row product (kv_matmul_rows), and 16-bit input codes against the packed
   integer codes (kv_quantize_q16 per row + kv_gemm_q16, VNNI where the CPU has it, and its
   plain C path once for the agreement check), and 8-bit input codes against the same codes
   relaid (kv_quantize_u8 + kv_gemm_q8, likewise checked against its plain C path), and the
   16-bit product's AVX2 path forced (kv_gemm_q16_set_path; equal bit for bit too). Weights are random codes with small positive
   scales; best of 5 runs of `reps` products. Prints JSON. Built and run by
   bench/prefill_products.sh. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "engine.h"
#include "kquants.h"
#include "gemm_q16.h"
#include "gemm_q8.h"
#include "kvkernels.h"
#include "bench_blocks.h"

static void dequant(int type, const void *w, float *out, size_t n) {
    if (type == KV_GGML_Q8_0) kv_dequant_q8_0(w, out, n);
    else if (type == KV_GGML_Q4_1) kv_dequant_q4_1(w, out, n);
    else kv_kquant_dequant(type, w, out, n);
}

int main(int argc, char **argv) {
    const int reps = argc > 1 ? atoi(argv[1]) : 3;
    const size_t ms[] = {30, 512};
    const struct { int type; const char *name, *tensor; size_t elements, bytes, rows, cols; } cases[] = {
        {KV_GGML_Q5_0, "Q5_0", "attn_q+k+v", 32, 22, 1536, 640},
        {KV_GGML_Q5_0, "Q5_0", "ffn_gate+up", 32, 22, 4096, 640},
        {KV_GGML_Q4_K, "Q4_K", "ffn_down", 256, 144, 640, 2048},
        {KV_GGML_Q6_K, "Q6_K", "ffn_down", 256, 210, 640, 2048},
        {KV_GGML_Q8_0, "Q8_0", "attn_v", 32, 34, 256, 640},
        {KV_GGML_Q4_1, "Q4_1", "SmolLM2 ffn_gate+up", 32, 20, 3072, 576},
    };
    const size_t n = sizeof cases / sizeof cases[0];
    printf("{\"reps\": %d, \"threads\": 1, \"vnni\": %d, \"cases\": [\n", reps, kv_gemm_q16_available());
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        const size_t rows = cases[i].rows, cols = cases[i].cols;
        const int type = cases[i].type;
        int bk, with_offsets;
        kv_gemm_q16_layout(type, &bk, &with_offsets);
        unsigned char *w = malloc(rows * cols / cases[i].elements * cases[i].bytes);
        float *dense = malloc(rows * cols * sizeof(float));
        int8_t *codes = malloc(rows * cols);
        float *scales = malloc(rows * cols / (size_t)bk * sizeof(float));
        float *offsets = with_offsets ? malloc(rows * cols / 32 * sizeof(float)) : NULL;
        fill(w, type, rows * cols / cases[i].elements, cases[i].bytes);
        dequant(type, w, dense, rows * cols);
        if (kv_gemm_q16_pack(type, w, rows, cols, codes, scales, offsets) != bk) return 1;
        int8_t *relaid = malloc(rows * cols);
        int32_t *bias = malloc(rows * cols / (size_t)bk * sizeof(int32_t));
        memcpy(relaid, codes, rows * cols);
        if (kv_gemm_q8_relayout(relaid, bias, bk, rows, cols) != 0) return 1;
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
            const size_t m = ms[mi];
            float *x = malloc(m * cols * sizeof(float)), *y = malloc(m * rows * sizeof(float));
            float *yp = malloc(m * rows * sizeof(float)), *yf = malloc(m * rows * sizeof(float));
            kv_q16_block *q = malloc(m * cols / 32 * sizeof *q);
            kv_u8_block *q8 = malloc(m * cols / 32 * sizeof *q8);
            float *y8 = malloc(m * rows * sizeof(float)), *y8p = malloc(m * rows * sizeof(float));
            for (size_t k = 0; k < m * cols; k++) x[k] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
            double best[5] = {1e30, 1e30, 1e30, 1e30, 1e30};
            float *ya = malloc(m * rows * sizeof(float));
            for (int run = 0; run < 5; run++)
                for (int how = 0; how < 5; how++) {
                    const double t0 = now();
                    for (int r = 0; r < reps; r++) {
                        if (how == 0)
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)rows, (int)cols, 1, x,
                                        (int)cols, dense, (int)cols, 0, yf, (int)rows);
                        else if (how == 1) kv_matmul_rows(type, w, x, cols, yf, rows, m, rows, cols, 0);
                        else if (how == 2) {
                            for (size_t t = 0; t < m; t++) kv_quantize_q16(x + t * cols, q + t * cols / 32, cols);
                            kv_gemm_q16(codes, scales, offsets, bk, q, m, y, rows, rows, cols, 0);
                        } else if (how == 3) {
                            for (size_t t = 0; t < m; t++) kv_quantize_u8(x + t * cols, q8 + t * cols / 32, cols);
                            kv_gemm_q8(relaid, bias, scales, offsets, bk, q8, m, y8, rows, rows, cols, 0);
                        } else {
                            kv_gemm_q16_set_path(KV_GEMM_Q16_AVX2);
                            for (size_t t = 0; t < m; t++) kv_quantize_q16(x + t * cols, q + t * cols / 32, cols);
                            kv_gemm_q16(codes, scales, offsets, bk, q, m, ya, rows, rows, cols, 0);
                            kv_gemm_q16_set_path(-1);
                        }
                    }
                    const double t = (now() - t0) / reps;
                    if (t < best[how]) best[how] = t;
                }
            kv_gemm_q16_portable(codes, scales, offsets, bk, q, m, yp, rows, rows, cols, 0);
            kv_gemm_q8_portable(relaid, bias, scales, offsets, bk, q8, m, y8p, rows, rows, cols, 0);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)rows, (int)cols, 1, x, (int)cols,
                        dense, (int)cols, 0, yf, (int)rows);
            /* the largest difference to sgemm's f32 product, relative to the outputs' RMS */
            double worst = 0, worst8 = 0, square = 0;
            int same = 1;
            for (size_t k = 0; k < m * rows; k++) {
                same &= y[k] == yp[k] && ya[k] == yp[k] && y8[k] == y8p[k];
                square += (double)yf[k] * yf[k];
                if (fabs((double)y[k] - yf[k]) > worst) worst = fabs((double)y[k] - yf[k]);
                if (fabs((double)y8[k] - yf[k]) > worst8) worst8 = fabs((double)y8[k] - yf[k]);
            }
            worst /= sqrt(square / (double)(m * rows));
            worst8 /= sqrt(square / (double)(m * rows));
            const double flop = 2.0 * m * rows * cols;
            printf("%s{\"type\": \"%s\", \"tensor\": \"%s\", \"rows\": %zu, \"cols\": %zu, \"m\": %zu, "
                   "\"sgemm_gflops\": %.1f, \"matmul_rows_gflops\": %.1f, \"gemm_q16_gflops\": %.1f, "
                   "\"gemm_q8_gflops\": %.1f, \"gemm_q16_avx2_gflops\": %.1f, \"portable_equal\": %s, \"max_diff_vs_sgemm_over_rms\": %.2e, "
                   "\"q8_max_diff_vs_sgemm_over_rms\": %.2e}",
                   first ? "" : ",\n", cases[i].name, cases[i].tensor, rows, cols, m, flop / best[0] / 1e9,
                   flop / best[1] / 1e9, flop / best[2] / 1e9, flop / best[3] / 1e9, flop / best[4] / 1e9, same ? "true" : "false", worst,
                   worst8);
            first = 0;
            free(x); free(y); free(ya); free(yp); free(yf); free(q); free(q8); free(y8); free(y8p);
        }
        free(w); free(dense); free(codes); free(scales); free(offsets); free(relaid); free(bias);
    }
    printf("\n]}\n");
    return 0;
}
