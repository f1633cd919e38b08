#include <stdint.h>
#include <string.h>
#include "gemm_q16.h"
#include "kvkernels.h"
#include "clones.h"
#include "ggml_types.h"
#include "gemm_tile.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* ---- Packed codes at 4 or 5 bits per weight ------------------------------------------------

   The 8-bit layout of kv_gemm_q16_pack (gemm_q16.c) is a sequence of units, one per group g of
   16 weight rows and block b of 32 weights, unit (g, b) at (g * nblk + b) * 512 bytes: 16 rows
   of 32 bytes, row p holding the code pair p of each of the 16 weight rows. A type whose codes
   take 4 bits (Q4_0, Q4_1, Q4_K) or 5 (Q5_0, Q5_1, Q5_K) keeps the same units at 64 * bits
   bytes each, unit (g, b) at (g * nblk + b) * 64 * bits, holding v = code - bias (0 <= v <
   2^bits; bias is -8 for Q4_0, -16 for Q5_0, 0 otherwise):
     bytes [32 q + j], q < 8, j < 32:  low nibble: bits 0-3 of v at row q, byte j;
                                       high nibble: bits 0-3 of v at row q + 8, byte j;
     5 bits only, bytes [256 + 4 p], p < 16: a little-endian 32-bit word whose bit j is bit 4
                                       of v at row p, byte j (a mask register's worth).
   So row r0 (a multiple of 16) of a tensor starts at r0 * cols * bits / 8 bytes, and its
   scales and offsets are those of the 8-bit layout.

   Up to KV_GEMM_Q16_NARROW_ROWS (10) input rows on AVX-512 VNNI widen the codes in registers
   as tile_vnni_many does the 8-bit ones (gemm_q16.c), asking for the next tile's bytes block by
   block. Other products widen each tile of 32 weight rows into the 8-bit layout in the calling
   thread's scratch (kv_thread_scratch, 32 * cols bytes) and run kv_gemm_q16 on it. Either way
   the codes are the same integers, summed exactly, with the same float steps per block, so
   every output has the bits of the 8-bit layout's product. The model reads them for decode's
   one row and a cache hit's few question rows, which wait on the weights' bytes: this layout
   cuts them by a third (Q5_0) to two fifths (Q4_K, whose offsets stay floats) (decisions 119,
   120). */

enum { UNIT_ROWS = 16, NIBBLE_ROWS = 8 };

static size_t unit_bytes(int bits) { return (size_t)bits * 64; }

int kv_gemm_q16_narrow_width(int type, int *bits, int *bias) {
    switch (type) {
    case KV_GGML_Q4_0: *bits = 4; *bias = -8; return 1;
    case KV_GGML_Q4_1: case KV_GGML_Q4_K: *bits = 4; *bias = 0; return 1;
    case KV_GGML_Q5_0: *bits = 5; *bias = -16; return 1;
    case KV_GGML_Q5_1: case KV_GGML_Q5_K: *bits = 5; *bias = 0; return 1;
    default: return 0;
    }
}

/* One unit of 8-bit codes (16 rows of 32 bytes) at `bits`; 0, or -1 when a code is outside
   [bias, bias + 2^bits). */
static int narrow_unit(const int8_t *codes, int bits, int bias, uint8_t *out) {
    memset(out, 0, unit_bytes(bits));
    for (size_t q = 0; q < NIBBLE_ROWS; q++)
        for (size_t j = 0; j < 32; j++) {
            const int lo = codes[q * 32 + j] - bias, hi = codes[(q + NIBBLE_ROWS) * 32 + j] - bias;
            if (lo < 0 || hi < 0 || lo >> bits || hi >> bits) return -1;
            out[q * 32 + j] = (uint8_t)((lo & 15) | (hi & 15) << 4);
            if (bits == 5) {
                out[256 + 4 * q + j / 8] |= (uint8_t)(((lo >> 4) & 1) << (j % 8));
                out[256 + 4 * (q + NIBBLE_ROWS) + j / 8] |= (uint8_t)(((hi >> 4) & 1) << (j % 8));
            }
        }
    return 0;
}

int kv_gemm_q16_narrow(const int8_t *codes, size_t rows, size_t cols, int bits, int bias, uint8_t *out) {
    if ((bits != 4 && bits != 5) || rows % UNIT_ROWS || cols % 32) return -1;
    const size_t units = rows / UNIT_ROWS * (cols / 32);
    for (size_t u = 0; u < units; u++)
        if (narrow_unit(codes + u * 512, bits, bias, out + u * unit_bytes(bits))) return -1;
    return 0;
}

/* The inverse of narrow_unit. */
static void widen_unit(const uint8_t *in, int bits, int bias, int8_t *codes) {
    for (size_t q = 0; q < NIBBLE_ROWS; q++)
        for (size_t j = 0; j < 32; j++) {
            int lo = in[q * 32 + j] & 15, hi = in[q * 32 + j] >> 4;
            if (bits == 5) {
                lo |= ((in[256 + 4 * q + j / 8] >> (j % 8)) & 1) << 4;
                hi |= ((in[256 + 4 * (q + NIBBLE_ROWS) + j / 8] >> (j % 8)) & 1) << 4;
            }
            codes[q * 32 + j] = (int8_t)(lo + bias);
            codes[(q + NIBBLE_ROWS) * 32 + j] = (int8_t)(hi + bias);
        }
}

#if defined(__x86_64__)
/* acc + the products of a and b's int16 pairs (`vpdpwssd`), kept as that one instruction:
   clang otherwise turns two of them in a row on one accumulator into `vpdpwssd` plus
   `vpmaddwd` and `vpaddd`, half again the vector instructions of the loop. */
VNNI_TARGET static inline __attribute__((always_inline)) __m512i dpwssd(__m512i acc, __m512i a, __m512i b) {
    __asm__("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}

/* One weight block's integer sums for T input rows against the narrow units u0 and u1 of
   groups g and g + 1: the same sums as block_sums_vnni (gemm_q16.c) on their 8-bit codes, the
   code pairs q and q + 8 taken from one load of nibbles. Fifth bits add 16 under a mask. */
VNNI_TARGET static inline __attribute__((always_inline)) void block_sums_narrow(
    const uint8_t *u0, const uint8_t *u1, const int BITS, __m512i bias, const kv_q16_block *x, size_t xblocks,
    size_t b, const int T, __m512i s[][2]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m512i sixteen = _mm512_set1_epi16(16);
    for (int t = 0; t < T; t++) s[t][0] = s[t][1] = _mm512_setzero_si512();
#pragma clang loop unroll(disable)
    for (size_t q = 0; q < NIBBLE_ROWS; q++) {
        const __m256i n0 = _mm256_loadu_si256((const __m256i *)(u0 + 32 * q));
        const __m256i n1 = _mm256_loadu_si256((const __m256i *)(u1 + 32 * q));
        __m512i w[4] = {_mm512_cvtepu8_epi16(_mm256_and_si256(n0, low4)),
                        _mm512_cvtepu8_epi16(_mm256_and_si256(_mm256_srli_epi16(n0, 4), low4)),
                        _mm512_cvtepu8_epi16(_mm256_and_si256(n1, low4)),
                        _mm512_cvtepu8_epi16(_mm256_and_si256(_mm256_srli_epi16(n1, 4), low4))};
        for (int i = 0; i < 4; i++) w[i] = _mm512_add_epi16(w[i], bias);
        if (BITS == 5) {
            const uint8_t *fifth[4] = {u0 + 256 + 4 * q, u0 + 256 + 4 * (q + NIBBLE_ROWS), u1 + 256 + 4 * q,
                                       u1 + 256 + 4 * (q + NIBBLE_ROWS)};
            for (int i = 0; i < 4; i++) {
                uint32_t m;
                memcpy(&m, fifth[i], 4);
                w[i] = _mm512_mask_add_epi16(w[i], (__mmask32)m, w[i], sixteen);
            }
        }
        for (int t = 0; t < T; t++) {
            int32_t lo, hi;
            memcpy(&lo, x[t * xblocks + b].q + 2 * q, 4);
            memcpy(&hi, x[t * xblocks + b].q + 2 * (q + NIBBLE_ROWS), 4);
            const __m512i a = _mm512_set1_epi32(lo), c = _mm512_set1_epi32(hi);
            s[t][0] = dpwssd(dpwssd(s[t][0], w[0], a), w[1], c);
            s[t][1] = dpwssd(dpwssd(s[t][1], w[2], a), w[3], c);
        }
    }
}

/* T <= NARROW_ROWS input rows against one tile of 32 weight rows in one pass, as
   tile_vnni_many: the integer sums in registers, the float accumulators updated once per
   block; block b of the next tile asked for while this one's is multiplied
   (tile_prefetch_next). 2T sums, four widened code vectors, two input pairs and three
   constants fill the 32 vector registers at T = 10; at 11 and 12 they spilled and the product
   took twice the 8-bit codes' time (bench/narrow_rows.sh). */
#define NARROW_ROWS KV_GEMM_Q16_NARROW_ROWS
VNNI_TARGET static inline __attribute__((always_inline)) void tile_narrow(
    const uint8_t *codes, const float *scales, const float *offsets, const int BITS, const int OFFSETS, __m512i bias,
    const kv_q16_block *x, size_t xblocks, const int T, size_t nblk, float *y, size_t ldy, int accumulate, int next) {
    const size_t unit = unit_bytes(BITS), gstride = nblk * unit, sstride = nblk * 16;
    __m512 f[NARROW_ROWS][2];
    for (int t = 0; t < T; t++) f[t][0] = f[t][1] = _mm512_setzero_ps();
    for (size_t b = 0; b < nblk; b++) {
        const uint8_t *u0 = codes + b * unit;
        __m512i s[NARROW_ROWS][2];
        if (next)
            tile_prefetch_next((const int8_t *)u0, unit, gstride, scales + b * 16, OFFSETS ? offsets + b * 16 : NULL,
                               NULL, sstride, 2);
        block_sums_narrow(u0, u0 + gstride, BITS, bias, x, xblocks, b, T, s);
        float d[NARROW_ROWS], sx[NARROW_ROWS];
        for (int t = 0; t < T; t++) { d[t] = x[t * xblocks + b].d; sx[t] = x[t * xblocks + b].s; }
        tile_block_update(f, s, T, scales + b * 16, OFFSETS ? offsets + b * 16 : NULL, sstride, OFFSETS, d, sx);
    }
    tile_store(f, T, y, ldy, accumulate);
}

#define NARROW_CASE(T_) \
    case T_: tile_narrow(codes, scales, offsets, BITS, OFFSETS, b16, x, nblk, T_, nblk, y + r, ldy, accumulate, r + 32 < n); break;
#define GEMM_NARROW(name, BITS_, OFFSETS_)                                                                         \
    VNNI_TARGET static void name(const uint8_t *codes, int bias, const float *scales, const float *offsets,         \
                                 const kv_q16_block *x, size_t m, float *y, size_t ldy, size_t n, size_t cols,     \
                                 int accumulate) {                                                                 \
        const int BITS = BITS_, OFFSETS = OFFSETS_;                                                                \
        const size_t nblk = cols / 32;                                                                             \
        const __m512i b16 = _mm512_set1_epi16((short)bias);                                                        \
        for (size_t r = 0; r < n; r += 32) {                                                                       \
            switch ((int)m) {                                                                                      \
            NARROW_CASE(1) NARROW_CASE(2) NARROW_CASE(3) NARROW_CASE(4) NARROW_CASE(5) NARROW_CASE(6)              \
            NARROW_CASE(7) NARROW_CASE(8) NARROW_CASE(9) NARROW_CASE(10)                                           \
            }                                                                                                      \
            codes += 2 * nblk * unit_bytes(BITS), scales += 2 * nblk * 16, offsets = OFFSETS ? offsets + 2 * nblk * 16 : NULL; \
        }                                                                                                          \
    }
GEMM_NARROW(gemm_narrow_4, 4, 0)
GEMM_NARROW(gemm_narrow_4_offsets, 4, 1)
GEMM_NARROW(gemm_narrow_5, 5, 0)
GEMM_NARROW(gemm_narrow_5_offsets, 5, 1)
#endif

/* Up to NARROW_ROWS rows on VNNI in registers; otherwise tile by tile, widened into scratch,
   then the 8-bit product of its 32 rows. Narrow codes are made only where one row takes the
   VNNI path (PackedMatrix.narrow) and read only for up to NARROW_ROWS rows, so the widening runs
   for tests and other callers, and stays plain C. */
static int narrow_product(int portable, const uint8_t *codes, int bits, int bias, const float *scales,
                          const float *offsets, const kv_q16_block *x, size_t m, float *y, size_t ldy, size_t n,
                          size_t cols, int accumulate) {
    if ((bits != 4 && bits != 5) || n % 32 || cols % 32 || cols == 0) return -1;
    const int path = portable ? KV_GEMM_Q16_PORTABLE : kv_gemm_q16_path();
#if defined(__x86_64__)
    if (path == KV_GEMM_Q16_VNNI && m >= 1 && m <= NARROW_ROWS) {
        if (bits == 4) (offsets ? gemm_narrow_4_offsets : gemm_narrow_4)(codes, bias, scales, offsets, x, m, y, ldy, n, cols, accumulate);
        else (offsets ? gemm_narrow_5_offsets : gemm_narrow_5)(codes, bias, scales, offsets, x, m, y, ldy, n, cols, accumulate);
        return 0;
    }
#endif
    const size_t nblk = cols / 32, units = 2 * nblk, tile_bytes = units * unit_bytes(bits);
    int8_t *tile = (int8_t *)kv_thread_scratch(32 * cols / sizeof(float));
    if (!tile) return -1;
    for (size_t r = 0; r < n; r += 32) {
        const uint8_t *in = codes + r / 32 * tile_bytes;
        for (size_t u = 0; u < units; u++) widen_unit(in + u * unit_bytes(bits), bits, bias, tile + u * 512);
        const float *s = scales + r * nblk, *o = offsets ? offsets + r * nblk : NULL;
        const int status = portable ? kv_gemm_q16_portable(tile, s, o, 32, x, m, y + r, ldy, 32, cols, accumulate)
                                    : kv_gemm_q16(tile, s, o, 32, x, m, y + r, ldy, 32, cols, accumulate);
        if (status) return status;
    }
    return 0;
}

int kv_gemm_q16_narrow_product(const uint8_t *codes, int bits, int bias, const float *scales, const float *offsets,
                               const kv_q16_block *x, size_t m, float *y, size_t ldy, size_t n, size_t cols,
                               int accumulate) {
    return narrow_product(0, codes, bits, bias, scales, offsets, x, m, y, ldy, n, cols, accumulate);
}

int kv_gemm_q16_narrow_product_portable(const uint8_t *codes, int bits, int bias, const float *scales,
                                        const float *offsets, const kv_q16_block *x, size_t m, float *y, size_t ldy,
                                        size_t n, size_t cols, int accumulate) {
    return narrow_product(1, codes, bits, bias, scales, offsets, x, m, y, ldy, n, cols, accumulate);
}
