#ifndef KVSTASH_QROWS_H
#define KVSTASH_QROWS_H
#include <stddef.h>
#include <stdint.h>
#include "engine.h"

/* Decode products on 16-bit input codes straight from row-major GGUF blocks (qrows.c):
   y[r] = W[r] . x (+ y[r] when accumulate) for `rows` rows of `cols` elements, where x is
   one input row quantized by kv_quantize_q16 (engine.h) and W is the tensor as the GGUF
   stores it, no copy. Types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (cols a multiple of 32) and
   Q4_K, Q5_K, Q6_K (cols a multiple of 256). Per block of 32 the integer sum of weight codes
   times input codes is exact; the result is the dequantized weights against the dequantized
   input up to float rounding. The AVX2 path is chosen at run time; _portable is the plain C
   path (any CPU), equal bit for bit. Returns 0, or -1 for another type or a bad `cols`. */
int kv_matvec_q16rows(int type, const void *w, const kv_q16_block *x, float *y, size_t rows, size_t cols,
                      int accumulate);
int kv_matvec_q16rows_portable(int type, const void *w, const kv_q16_block *x, float *y, size_t rows, size_t cols,
                               int accumulate);

/* The same products with each output in kv_gemm_q16's float steps (one multiply-add per
   weight block, in block order, with its scale and minimum computed as kv_gemm_q16_pack
   computes them): equal bit for bit to the same row of kv_gemm_q16 on the tensor packed by
   kv_gemm_q16_pack, so a decoded row equals a prefill's (decision 099). Slower than the
   lanes order of kv_matvec_q16rows. Same types, shapes, paths and returns. */
int kv_matvec_q16rows_ordered(int type, const void *w, const kv_q16_block *x, float *y, size_t rows, size_t cols,
                              int accumulate);
int kv_matvec_q16rows_ordered_portable(int type, const void *w, const kv_q16_block *x, float *y, size_t rows,
                                       size_t cols, int accumulate);

/* A Q5_0 tensor of `rows` x `cols` (both multiples of 32) rewritten as Q8_0 (same f16 scales,
   codes q - 16: the same weights) in kv_qdot_interleave's layout, for kv_matvec_q16dot and
   kv_matvec_qdot with type Q8_0. dst holds rows * cols / 32 * 34 bytes. Returns 0, -1 for a
   bad shape, -2 when out of memory. */
int kv_qdot_interleave_q5_0(const void *src, void *dst, size_t rows, size_t cols);

/* 1 when kv_matvec_q16rows takes `type`. */
int kv_q16rows_supports(int type);

#endif
