#ifndef KVSTASH_GEMM_Q16_H
#define KVSTASH_GEMM_Q16_H
#include <stddef.h>
#include <stdint.h>
#include "engine.h"

/* Prefill products on 16-bit input codes against integer weight codes packed once at load
   (gemm_q16.c has the layout and the order of operations).

   kv_gemm_q16_layout: 1 when `type` packs (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K),
   with *bk the weights per scale (32, Q6_K 16) and *offsets 1 when blocks carry an offset.
   kv_gemm_q16_pack: a `rows` x `cols` tensor of `type` (rows a multiple of 16, cols of the
   type's block) into rows * cols int8 codes (every type's codes fit: Q6_K's scales stay out
   of them) and rows * cols / bk scales (and offsets, NULL for types without). Returns bk, or
   -1 for another type or shape.

   kv_gemm_q16: y[t][r] = W[r] . x[t] (+ y[t][r] when accumulate) for t < m input rows, each
   cols / 32 kv_q16_block (kv_quantize_q16) after the other, y rows ldy apart, r < n weight
   rows (a multiple of 32; codes, scales and offsets may start at any multiple of 32 rows of
   a packed tensor: row r0 starts at codes + r0 * cols and scales + r0 * cols / bk).
   Exactly the dequantized weights against the dequantized input codes up to float rounding.
   It takes kv_gemm_q16_path(): AVX-512 VNNI, else AVX2 with FMA and F16C, else plain C (all three
   equal bit for bit); kv_gemm_q16_available() says whether that is one of the vector paths.
   kv_gemm_q16_set_path forces a path the CPU runs (tests, benchmarks; -1: the best again).
   _portable is the plain C path, callable on any CPU. Returns 0, or -1 for a bad shape.

   kv_gemm_q8_available(): whether the 8-bit-input product (gemm_q8.h) runs, AVX-512 VNNI. */
#define KV_GEMM_Q16_PORTABLE 0
#define KV_GEMM_Q16_AVX2 1
#define KV_GEMM_Q16_VNNI 2
int kv_gemm_q16_layout(int type, int *bk, int *offsets);
int kv_gemm_q16_pack(int type, const void *src, size_t rows, size_t cols, int8_t *codes, float *scales,
                     float *offsets);
int kv_gemm_q16_available(void);
int kv_gemm_q16_path(void);
void kv_gemm_q16_set_path(int path);
int kv_gemm_q8_available(void);
int kv_gemm_q16(const int8_t *codes, const float *scales, const float *offsets, int bk, const kv_q16_block *x,
                size_t m, float *y, size_t ldy, size_t n, size_t cols, int accumulate);
int kv_gemm_q16_portable(const int8_t *codes, const float *scales, const float *offsets, int bk,
                         const kv_q16_block *x, size_t m, float *y, size_t ldy, size_t n, size_t cols, int accumulate);

/* Narrow codes (gemm_q16_narrow.c has the layout): the packed codes of a type whose codes take
   4 bits (Q4_0, Q4_1, Q4_K) or 5 (Q5_0, Q5_1, Q5_K) at that many bits per weight.

   kv_gemm_q16_narrow_width: 1 when `type` has narrow codes, with *bits (4 or 5) and *bias (the
   code of an all-zero field: -8 for Q4_0, -16 for Q5_0, else 0).
   kv_gemm_q16_narrow: the rows x cols 8-bit codes of kv_gemm_q16_pack (bk 32) into
   rows * cols * bits / 8 bytes; 0, or -1 for a bad shape or a code that does not fit.
   kv_gemm_q16_narrow_product: kv_gemm_q16 on narrow codes, with the same scales and offsets
   and the same bits of output (row r0 of the codes starts at r0 * cols * bits / 8). Up to
   KV_GEMM_Q16_NARROW_ROWS input rows on AVX-512 VNNI widen the codes in registers; otherwise
   the calling thread's scratch (kv_thread_scratch) holds one tile of 32 rows widened. _portable
   takes the plain C paths. Returns 0, or -1 for a bad shape or no memory for the tile. */
#define KV_GEMM_Q16_NARROW_ROWS 10
int kv_gemm_q16_narrow_width(int type, int *bits, int *bias);
int kv_gemm_q16_narrow(const int8_t *codes, size_t rows, size_t cols, int bits, int bias, uint8_t *out);
int kv_gemm_q16_narrow_product(const uint8_t *codes, int bits, int bias, const float *scales, const float *offsets,
                               const kv_q16_block *x, size_t m, float *y, size_t ldy, size_t n, size_t cols,
                               int accumulate);
int kv_gemm_q16_narrow_product_portable(const uint8_t *codes, int bits, int bias, const float *scales,
                                        const float *offsets, const kv_q16_block *x, size_t m, float *y, size_t ldy,
                                        size_t n, size_t cols, int accumulate);

#endif
