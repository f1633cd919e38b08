#ifndef KVSTASH_KVCODEC_H
#define KVSTASH_KVCODEC_H
#include <stddef.h>
#include <stdint.h>

/* Kernels of the KV block codec (KVStashCodec). fp16 values travel as their IEEE
   binary16 bit patterns in uint16_t. Quantization is asymmetric with `levels` =
   2^bits - 1 steps: for a group with minimum mn and maximum mx,
     scale = fp16((mx - mn) / levels), zero = fp16(mn),
     code  = clamp(rint((x - zero) / scale), 0, levels)   (0 when scale == 0),
     x'    = code * scale + zero.
   int4 rows of d channels take (d + 1) / 2 bytes: byte i holds channel i in its low
   nibble and channel i + (d + 1) / 2 in its high nibble (0 when past d).
   The quantizers return 0, or -1 when an input is not finite or a parameter
   overflows fp16; outputs are then unspecified. */

/* XXH64 of `len` bytes (the reference xxHash algorithm, little-endian reads). */
uint64_t kv_xxh64(const void *data, size_t len, uint64_t seed);

/* Round-to-nearest-even conversions between f32 and IEEE binary16. The decoders read
   their fp16 input at any alignment (it may lie in a stored block, read in place). */
void kv_f32_to_f16(uint16_t *dst, const float *src, size_t n);
void kv_f16_to_f32(float *dst, const void *src, size_t n);
/* The same for `rows` rows of `cols` values, rows ld_dst / ld_src elements apart (a KV
   head's slice of an f16 cache widened for BLAS, or written into one). */
void kv_f16_to_f32_rows(float *dst, size_t ld_dst, const uint16_t *src, size_t ld_src, size_t rows, size_t cols);
void kv_f32_to_f16_rows(uint16_t *dst, size_t ld_dst, const float *src, size_t ld_src, size_t rows, size_t cols);
/* kv_f32_to_f16 into memory that will not be read again soon (a spliced KV cache): with
   non-temporal stores, which do not read the lines they write, when dst is 64-byte
   aligned; ends with a store fence. */
void kv_f32_to_f16_stream(uint16_t *dst, const float *src, size_t n);
/* Row-major f32 rows (d floats each) narrowed to f16 into the addressing of
   kv_dequant_rows_f16_stream's dst (channel c of row r at r * ld_dst + (c / head_dim) *
   head_stride + c % head_dim), with non-temporal stores when dst is 32-byte aligned and
   ld_dst, head_stride and head_dim are multiples of 16, then a store fence. Rounds to nearest
   even, as kv_f32_to_f16. */
void kv_f32_to_f16_heads_stream(uint16_t *dst, size_t ld_dst, size_t head_stride, size_t head_dim,
                                const float *src, size_t rows, size_t d);
/* 1 when every src[i] is finite and |src[i]| <= 65504 (fits binary16), else 0. */
int kv_fits_f16(const float *src, size_t n);

/* Per-channel groups (KIVI keys): `rows` rows of `d` channels share, per channel c,
   one scale[c] and zero[c]. codes is rows x row_bytes. bits is 4 or 8. */
int kv_quant_cols(const float *src, size_t rows, size_t d, unsigned bits,
                  uint16_t *scale, uint16_t *zero, uint8_t *codes, float *work /* 3*d */);
void kv_dequant_cols(float *dst, const uint8_t *codes, size_t rows, size_t d, unsigned bits,
                     const float *scale, const float *zero);

/* Per-token groups (KIVI values): each row's channels split into ceil(d / g) groups
   of g; params are [rows][ceil(d / g)]. */
int kv_quant_rows(const float *src, size_t rows, size_t d, size_t g, unsigned bits,
                  uint16_t *scale, uint16_t *zero, uint8_t *codes, float *work /* d */);
void kv_dequant_rows(float *dst, const uint8_t *codes, size_t rows, size_t d, size_t g,
                     unsigned bits, const void *scale /* fp16, any alignment */, const void *zero);
/* kv_dequant_rows narrowed to f16 in the same pass (equal to kv_dequant_rows then
   kv_f32_to_f16, bit for bit), for 8-bit codes: a spliced value row written once. Channel c
   of row r goes to dst[r * ld_dst + (c / head_dim) * head_stride + c % head_dim] (a KVCache's
   heads lie head_stride apart; row-major rows: ld_dst = d, head_stride = head_dim).
   Non-temporal stores when dst is 32-byte aligned and ld_dst, head_stride, head_dim and g
   are multiples of 16, then a store fence. Returns 0, writing nothing, for other bit widths
   or a head_dim that does not divide d. */
int kv_dequant_rows_f16_stream(uint16_t *dst, size_t ld_dst, size_t head_stride, size_t head_dim,
                               const uint8_t *codes, size_t rows, size_t d, size_t g, unsigned bits,
                               const void *scale, const void *zero);
/* Row-major f16 rows (d halves each, any alignment) into the same addressing as
   kv_dequant_rows_f16_stream's dst. */
void kv_rows_to_heads_u16(uint16_t *dst, size_t ld_dst, size_t head_stride, size_t head_dim, const void *src,
                          size_t rows, size_t d);

#endif
