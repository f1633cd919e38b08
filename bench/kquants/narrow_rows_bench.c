/* Few-row products on packed codes, one thread: the 8-bit layout (kv_gemm_q16) against the
   5-bit one (kv_gemm_q16_narrow_product, Q5_0's width) for 1, 4, 9 and 10 input rows (10: the
   most that read narrow codes), on a weight tensor too large for the caches (streamed from
   memory, as a model's products are)
   and on one that stays in L2 (the kernels' own rate), alternated in one run. Weights are
   random codes in Q5_0's range with small scales; ms per 100M weights, best of `reps` rounds.
   Prints JSON. Built and run by bench/narrow_rows.sh. */
#include <stdio.h>
#include <stdlib.h>
#include "gemm_q16.h"
#include "kvkernels.h"
#include "bench_blocks.h"

enum { COLS = 640, BIG_ROWS = 1 << 17, SMALL_ROWS = 1024, SMALL_REPS = 128 };

/* ms per 100M weights of one product of `rows` weight rows, run `times` times. */
static double timed(int narrow, const int8_t *codes, const uint8_t *nar, const float *scales, const kv_q16_block *x,
                    size_t m, float *y, size_t rows, int times) {
    const double t0 = now();
    for (int k = 0; k < times; k++) {
        if (narrow) kv_gemm_q16_narrow_product(nar, 5, -16, scales, NULL, x, m, y, rows, rows, COLS, 0);
        else kv_gemm_q16(codes, scales, NULL, 32, x, m, y, rows, rows, COLS, 0);
    }
    return (now() - t0) / times / ((double)rows * COLS) * 1e8 * 1e3;
}

int main(int argc, char **argv) {
    const int reps = argc > 1 ? atoi(argv[1]) : 5;
    int8_t *codes = malloc((size_t)BIG_ROWS * COLS);
    uint8_t *nar = malloc((size_t)BIG_ROWS * COLS * 5 / 8);
    float *scales = malloc((size_t)BIG_ROWS * COLS / 32 * sizeof(float));
    for (size_t i = 0; i < (size_t)BIG_ROWS * COLS; i++) codes[i] = (int8_t)((int)(rnd() % 32) - 16);
    for (size_t i = 0; i < (size_t)BIG_ROWS * COLS / 32; i++) scales[i] = 0.001f * (float)(1 + rnd() % 16);
    if (kv_gemm_q16_narrow(codes, BIG_ROWS, COLS, 5, -16, nar) != 0) { fprintf(stderr, "narrowing failed\n"); return 1; }
    const size_t ms[] = {1, 4, 9, 10};
    float *xf = malloc(12 * COLS * sizeof(float));
    for (size_t i = 0; i < 12 * COLS; i++) xf[i] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
    kv_q16_block *x = malloc(12 * COLS / 32 * sizeof(kv_q16_block));
    for (size_t t = 0; t < 12; t++) kv_quantize_q16(xf + t * COLS, x + t * COLS / 32, COLS);
    float *y = malloc(12 * (size_t)BIG_ROWS * sizeof(float));
    printf("{\"isa\": \"%s\", \"cols\": %d, \"big_rows\": %d, \"small_rows\": %d, \"reps\": %d, \"cases\": [", kv_kernels_isa(),
           COLS, BIG_ROWS, SMALL_ROWS, reps);
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        double best[2][2] = {{1e30, 1e30}, {1e30, 1e30}};  /* [narrow][small] */
        for (int r = 0; r < reps; r++)
            for (int narrow = 0; narrow < 2; narrow++) {
                const double big = timed(narrow, codes, nar, scales, x, ms[i], y, BIG_ROWS, 1);
                const double small = timed(narrow, codes, nar, scales, x, ms[i], y, SMALL_ROWS, SMALL_REPS);
                if (big < best[narrow][0]) best[narrow][0] = big;
                if (small < best[narrow][1]) best[narrow][1] = small;
            }
        printf("%s\n {\"m\": %zu, \"eight_bit_stream_ms\": %.3f, \"narrow_stream_ms\": %.3f, \"eight_bit_l2_ms\": %.3f, "
               "\"narrow_l2_ms\": %.3f}", i ? "," : "", ms[i], best[0][0], best[1][0], best[0][1], best[1][1]);
    }
    printf("\n]}\n");
    return 0;
}
