#ifndef KVSTASH_KQUANTS_H
#define KVSTASH_KQUANTS_H
#include <stddef.h>
#include <stdint.h>
#include "ggml_types.h"

/* Q5_0, Q5_1 (blocks of 32) and the K-quants Q4_K, Q5_K, Q6_K, Q8_K (super-blocks of
   256): kquants.c. `n` and `cols` count elements, a multiple of the type's block. */
void kv_dequant_q5_0(const void *src, float *dst, size_t n);
void kv_dequant_q5_1(const void *src, float *dst, size_t n);
void kv_dequant_q4_K(const void *src, float *dst, size_t n);
void kv_dequant_q5_K(const void *src, float *dst, size_t n);
void kv_dequant_q6_K(const void *src, float *dst, size_t n);
void kv_dequant_q8_K(const void *src, float *dst, size_t n);

/* Bytes of one row of `cols` elements of one of these types; 0 for another type or
   when cols is not a multiple of its block. */
size_t kv_kquant_row_bytes(int type, size_t cols);

/* kv_dequant_* of `type`; -1 for a type not listed above. */
int kv_kquant_dequant(int type, const void *src, float *dst, size_t n);

/* *out = dot(row, x) for one encoded row of `cols` elements, block by block from the
   encoding (the dequantizer's values); -1 for another type or a bad `cols`. */
int kv_kquant_dot(int type, const void *row, const float *x, size_t cols, float *out);

#endif
