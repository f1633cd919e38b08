#ifndef KVSTASH_GEMM_Q8_H
#define KVSTASH_GEMM_Q8_H
#include <stddef.h>
#include <stdint.h>

/* The prefill product on 8-bit input codes (`vpdpbusd`, AVX-512 VNNI): four multiply-adds
   per int32 lane and instruction where kv_gemm_q16 takes two, at the input precision of
   llama.cpp's products (an opt-in mode; kv_gemm_q16 is the default).

   kv_quantize_u8: per block of 32 inputs, d = max|x| / 127, q = round(x / d) in [-127, 127]
   stored as q + 128 (an unsigned byte, the operand `vpdpbusd` takes unsigned), s = d * sum(q).

   kv_gemm_q8_relayout: codes packed by kv_gemm_q16_pack (two codes of a row per 16-bit lane)
   rewritten in place with four consecutive codes of a row per 32-bit lane, and for every
   weight block the correction of the stored inputs' +128: bias[(g * nblk + b) * 16 + lane]
   = -128 * (sum of the block's codes), so that an integer sum started at the bias is
   sum(c * (q + 128)) - 128 sum(c) = sum(c * q), exact. Returns 0, or -1 for a bk other than
   32 or 16, rows not a multiple of 16 or cols not of 32.

   kv_gemm_q8: kv_gemm_q16's contract (scales, offsets, y, accumulate; one float update per
   weight block) on those codes and inputs. The AVX-512 VNNI path and the plain C path
   (kv_gemm_q8_portable, any CPU) take the same steps and agree bit for bit. Returns -1 for
   a shape kv_gemm_q16 refuses. */
typedef struct { float d, s; uint8_t q[32]; } kv_u8_block;
void kv_quantize_u8(const float *x, kv_u8_block *out, size_t cols);
int kv_gemm_q8_relayout(int8_t *codes, int32_t *bias, int bk, size_t rows, size_t cols);
int kv_gemm_q8(const int8_t *codes, const int32_t *bias, const float *scales, const float *offsets, int bk,
               const kv_u8_block *x, size_t m, float *y, size_t ldy, size_t n, size_t cols, int accumulate);
int kv_gemm_q8_portable(const int8_t *codes, const int32_t *bias, const float *scales, const float *offsets, int bk,
                        const kv_u8_block *x, size_t m, float *y, size_t ldy, size_t n, size_t cols, int accumulate);

#endif
