#include <string.h>
#include "engine.h"
#include "gemm_q16.h"
#include "vec16.h"

#include "clones.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* ---- One input row on 8-bit activations, integer dot products (decode) ---------------

   The input row is quantized once per product (kv_quantize_q8): per block of 32, a scale
   d = max|x| / 127, codes q = round(x / d) in [-127, 127] and s = d * sum(q). The Q4_1 and
   Q8_0 weights of a group of 32 output rows are laid out (kv_qdot_interleave) so that one
   32-byte load holds 4 consecutive codes of 8 rows: `pmaddubsw` against the 4 input codes
   broadcast to every row, then `pmaddwd` by ones, sums 4 products per row into an int32
   lane, with no shuffle and no horizontal sum. Per block and row the result is
   d_w d_x (q_w . q_x) (+ m_w s for Q4_1), exactly the product of the dequantized weights
   and the quantized input: integer sums are exact, the rest is one multiply-add per block.

   Layout, group g of 32 rows, block b, at (g * nb + b) * group bytes:
   Q4_1 (640 bytes): the 32 rows' f16 scales (64 bytes), f16 minimums (64 bytes), then for
     c < 4 and s < 4 the 32 bytes of chunk (c, s): rows 8s ... 8s+7, each its bytes
     4c ... 4c+3 (low nibbles: columns 4c..4c+3, high nibbles: 16+4c..16+4c+3).
   Q8_0 (1088 bytes): the 32 rows' f16 scales (64 bytes), then for c < 8 and s < 4 chunk
     (c, s): rows 8s ... 8s+7, each its codes 4c ... 4c+3.
   Both are the size of the row-major tensor. */

enum { GROUP = 32, Q41_BYTES = 640, Q80_BYTES = 1088 };

/* How far ahead of the block it reads each group kernel asks for the weights, into L2
   (decision 117): groups follow one another in memory, and the hardware prefetcher alone
   leaves a read of a large tensor (Gemma 3's 178 MB output head, two cores) at about 80 % of
   the rate it reaches with these hints. A prefetch is only a hint: results are unchanged. */
enum { MATVEC_AHEAD = 8192 };

static inline __attribute__((always_inline)) void prefetch_ahead(const uint8_t *block, size_t bytes) {
    for (size_t line = 0; line < bytes; line += 64)
        __builtin_prefetch((const void *)((uintptr_t)block + MATVEC_AHEAD + line), 0, 2);
}

void kv_qdot_interleave(int type, const void *src, void *dst, size_t rows, size_t cols) {
    const int q41 = type == KV_GGML_Q4_1;
    const size_t nb = cols / 32, block = q41 ? 20 : 34, group_bytes = q41 ? Q41_BYTES : Q80_BYTES;
    const size_t head = q41 ? 4 : 2, code_bytes = q41 ? 16 : 32;
    const uint8_t *s = (const uint8_t *)src;
    uint8_t *d = (uint8_t *)dst;
    for (size_t g = 0; g < rows / GROUP; g++)
        for (size_t b = 0; b < nb; b++) {
            uint8_t *o = d + (g * nb + b) * group_bytes;
            for (size_t i = 0; i < GROUP; i++) {
                const uint8_t *blk = s + (g * GROUP + i) * nb * block + b * block;
                memcpy(o + 2 * i, blk, 2);
                if (q41) memcpy(o + 64 + 2 * i, blk + 2, 2);
                for (size_t c = 0; c < code_bytes / 4; c++)
                    memcpy(o + 2 * head * GROUP / 2 + (c * 4 + i / 8) * 32 + (i % 8) * 4, blk + head + 4 * c, 4);
            }
        }
}

void kv_qdot_interleaved_row(int type, const void *src, void *dst, size_t row, size_t cols) {
    const int q41 = type == KV_GGML_Q4_1;
    const size_t nb = cols / 32, block = q41 ? 20 : 34, group_bytes = q41 ? Q41_BYTES : Q80_BYTES;
    const size_t head = q41 ? 4 : 2, code_bytes = q41 ? 16 : 32, g = row / GROUP, i = row % GROUP;
    const uint8_t *s = (const uint8_t *)src;
    uint8_t *d = (uint8_t *)dst;
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *o = s + (g * nb + b) * group_bytes;
        uint8_t *blk = d + b * block;
        memcpy(blk, o + 2 * i, 2);
        if (q41) memcpy(blk + 2, o + 64 + 2 * i, 2);
        for (size_t c = 0; c < code_bytes / 4; c++)
            memcpy(blk + head + 4 * c, o + 2 * head * GROUP / 2 + (c * 4 + i / 8) * 32 + (i % 8) * 4, 4);
    }
}

KV_CLONES void kv_quantize_q8(const float *x, kv_q8_block *out, size_t cols) {
    for (size_t b = 0; b < cols / 32; b++) quantize_q8_block(out + b, load16(x + 32 * b), load16(x + 32 * b + 16), 0);
}

KV_CLONES void kv_quantize_q16(const float *x, kv_q16_block *out, size_t cols) {
    for (size_t b = 0; b < cols / 32; b++) quantize_q16_block(out + b, load16(x + 32 * b), load16(x + 32 * b + 16));
}

static inline float h2f(const uint8_t *p) { return kv_h2f_inline((uint16_t)(p[0] | (p[1] << 8))); }

static inline int32_t load_i32(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

#if defined(__x86_64__)
#define AVX2_TARGET __attribute__((target("avx2,fma,f16c")))

/* 8 f16 values to floats. */
#define halves8(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))

/* One Q4_1 group (nb blocks) into acc[s] (rows 8s ... 8s+7). Per block, the int16 sums of
   a row take 8 pmaddubsw results of at most 2 * 15 * 127 each: 30480, no overflow. */
AVX2_TARGET static void q4_1_group_avx2(const uint8_t *o, const kv_q8_block *x, size_t nb, __m256 acc[4]) {
    const __m256i low = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    for (size_t b = 0; b < nb; b++, o += Q41_BYTES) {
        prefetch_ahead(o, Q41_BYTES);
        const kv_q8_block *xb = x + b;
        __m256i sum[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
        for (int c = 0; c < 4; c++) {
            const __m256i xl = _mm256_set1_epi32(load_i32(xb->q + 4 * c));
            const __m256i xh = _mm256_set1_epi32(load_i32(xb->q + 16 + 4 * c));
            for (int s = 0; s < 4; s++) {
                const __m256i w = _mm256_loadu_si256((const __m256i *)(o + 128 + (c * 4 + s) * 32));
                sum[s] = _mm256_add_epi16(sum[s], _mm256_maddubs_epi16(_mm256_and_si256(w, low), xl));
                sum[s] = _mm256_add_epi16(sum[s], _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(w, 4), low), xh));
            }
        }
        const __m256 dx = _mm256_set1_ps(xb->d), sx = _mm256_set1_ps(xb->s);
        for (int s = 0; s < 4; s++) {
            const __m256 dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(sum[s], ones));
            acc[s] = _mm256_fmadd_ps(_mm256_mul_ps(halves8(o + 16 * s), dx), dot, acc[s]);
            acc[s] = _mm256_fmadd_ps(halves8(o + 64 + 16 * s), sx, acc[s]);
        }
    }
}

/* One Q8_0 group into acc[s]. pmaddubsw needs an unsigned operand: it takes |w| (at most
   128) and the input codes with w's sign, so a pair sums to at most 2 * 128 * 127. */
AVX2_TARGET static void q8_0_group_avx2(const uint8_t *o, const kv_q8_block *x, size_t nb, __m256 acc[4]) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (size_t b = 0; b < nb; b++, o += Q80_BYTES) {
        prefetch_ahead(o, Q80_BYTES);
        const kv_q8_block *xb = x + b;
        __m256i sum[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
        for (int c = 0; c < 8; c++) {
            const __m256i xc = _mm256_set1_epi32(load_i32(xb->q + 4 * c));
            for (int s = 0; s < 4; s++) {
                const __m256i w = _mm256_loadu_si256((const __m256i *)(o + 64 + (c * 4 + s) * 32));
                const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(xc, w));
                sum[s] = _mm256_add_epi32(sum[s], _mm256_madd_epi16(p, ones));
            }
        }
        const __m256 dx = _mm256_set1_ps(xb->d);
        for (int s = 0; s < 4; s++)
            acc[s] = _mm256_fmadd_ps(_mm256_mul_ps(halves8(o + 16 * s), dx), _mm256_cvtepi32_ps(sum[s]), acc[s]);
    }
}

/* Q8_0 against 16-bit input codes: pmaddwd on the codes widened to int16, a row's 4 codes
   giving two int32 lanes (at most 2 * 128 * 32767 each per chunk, 8 chunks a block), which
   one phaddd per block joins. */
AVX2_TARGET static void q8_0_q16_group_avx2(const uint8_t *o, const kv_q16_block *x, size_t nb, __m256 acc[4]) {
    for (size_t b = 0; b < nb; b++, o += Q80_BYTES) {
        prefetch_ahead(o, Q80_BYTES);
        const kv_q16_block *xb = x + b;
        const __m256 dx = _mm256_set1_ps(xb->d);
        for (int s = 0; s < 4; s++) {
            __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
            for (int c = 0; c < 8; c++) {
                int64_t xc4;
                memcpy(&xc4, xb->q + 4 * c, 8);
                const __m256i xc = _mm256_set1_epi64x(xc4);
                const __m256i w = _mm256_loadu_si256((const __m256i *)(o + 64 + (c * 4 + s) * 32));
                lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(w)), xc));
                hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(w, 1)), xc));
            }
            /* hadd: rows 0 1 4 5 | 2 3 6 7; the permute puts them in order */
            const __m256i rows = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo, hi), 0xD8);
            acc[s] = _mm256_fmadd_ps(_mm256_mul_ps(halves8(o + 16 * s), dx), _mm256_cvtepi32_ps(rows), acc[s]);
        }
    }
}

/* Q4_1 against 16-bit input codes: the nibbles widened to int16 (rows 0-3 and 4-7 of a
   chunk apart), pmaddwd with the low and the high columns' input codes; a row's two int32
   lanes (at most 8 * 2 * 15 * 32767 per block) joined as for Q8_0. The minimum term is
   m_w * d_x * sum(q_x). */
AVX2_TARGET static void q4_1_q16_group_avx2(const uint8_t *o, const kv_q16_block *x, size_t nb, __m256 acc[4]) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    for (size_t b = 0; b < nb; b++, o += Q41_BYTES) {
        prefetch_ahead(o, Q41_BYTES);
        const kv_q16_block *xb = x + b;
        const __m256 dx = _mm256_set1_ps(xb->d), sx = _mm256_set1_ps(xb->s);
        for (int s = 0; s < 4; s++) {
            __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
            for (int c = 0; c < 4; c++) {
                int64_t xl4, xh4;
                memcpy(&xl4, xb->q + 4 * c, 8);
                memcpy(&xh4, xb->q + 16 + 4 * c, 8);
                const __m256i xl = _mm256_set1_epi64x(xl4), xh = _mm256_set1_epi64x(xh4);
                const __m256i w = _mm256_loadu_si256((const __m256i *)(o + 128 + (c * 4 + s) * 32));
                const __m256i wl = _mm256_and_si256(w, low), wh = _mm256_and_si256(_mm256_srli_epi16(w, 4), low);
                lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(wl)), xl));
                lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(wh)), xh));
                hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm256_extracti128_si256(wl, 1)), xl));
                hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm256_extracti128_si256(wh, 1)), xh));
            }
            const __m256i rows = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo, hi), 0xD8);
            acc[s] = _mm256_fmadd_ps(_mm256_mul_ps(halves8(o + 16 * s), dx), _mm256_cvtepi32_ps(rows), acc[s]);
            acc[s] = _mm256_fmadd_ps(halves8(o + 64 + 16 * s), sx, acc[s]);
        }
    }
}

/* The groups of `rows` rows, on 8-bit (x8) or 16-bit (x16) input codes. */
AVX2_TARGET static void matvec_avx2(int type, const uint8_t *w, const kv_q8_block *x8, const kv_q16_block *x16,
                                    float *y, size_t rows, size_t nb, int accumulate) {
    const size_t group_bytes = nb * (type == KV_GGML_Q4_1 ? Q41_BYTES : Q80_BYTES);
    for (size_t g = 0; g < rows / GROUP; g++) {
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        const uint8_t *o = w + g * group_bytes;
        if (type == KV_GGML_Q4_1) {
            if (x16) q4_1_q16_group_avx2(o, x16, nb, acc);
            else q4_1_group_avx2(o, x8, nb, acc);
        } else {
            if (x16) q8_0_q16_group_avx2(o, x16, nb, acc);
            else q8_0_group_avx2(o, x8, nb, acc);
        }
        float *out = y + g * GROUP;
        for (int s = 0; s < 4; s++) {
            const __m256 v = accumulate ? _mm256_add_ps(_mm256_loadu_ps(out + 8 * s), acc[s]) : acc[s];
            _mm256_storeu_ps(out + 8 * s, v);
        }
    }
}

/* ---- AVX-512 VNNI on 16-bit input codes: the same integer sums without widening ----------

   The AVX2 kernels widen every weight code to int16 for pmaddwd: shuffle work per byte that
   bounds them below the memory's rate on CPUs with one shuffle port. Here each input code is
   split once per product into two bytes, q = 256 (h - 128) + l with l = q & 255 and
   h = (q >> 8) + 128 both unsigned, and vpdpbusd multiplies them by the weight codes as they
   lie (signed bytes: Q8_0 codes, Q4_1 nibbles): per row and block
       q_w . q_x = 256 (q_w . h) - 32768 sum(q_w) + q_w . l,
   with sum(q_w) from a third vpdpbusd against ones. Every term is exact in int32 (|256 q_w . h|
   <= 256 * 32 * 128 * 255), so the sum is the AVX2 kernels' integer, and the float steps per
   block are theirs (one multiply of scale by d_x, one fused multiply-add, + m_w s_x for
   Q4_1), in block order: the same bits, 16 rows (two 8-row chunks, adjacent in the layout)
   per vector. */

#define MATVEC_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))

/* The input's bytes per block: l for columns 0...31, then h for the same columns. */
typedef struct { uint8_t l[32], h[32]; } q16_split;

static void split_q16(const kv_q16_block *x, q16_split *out, size_t nb) {
    for (size_t b = 0; b < nb; b++)
        for (int k = 0; k < 32; k++) {
            out[b].l[k] = (uint8_t)(x[b].q[k] & 0xFF);
            out[b].h[k] = (uint8_t)((x[b].q[k] >> 8) + 128);
        }
}

/* The exact int32 sum of one block for 16 rows from the three partial sums. */
MATVEC_VNNI_TARGET static inline __attribute__((always_inline)) __m512i join_split(__m512i l, __m512i h, __m512i w) {
    return _mm512_add_epi32(_mm512_sub_epi32(_mm512_slli_epi32(h, 8), _mm512_slli_epi32(w, 15)), l);
}

MATVEC_VNNI_TARGET static inline __attribute__((always_inline)) __m512i bcast4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* One Q8_0 group: rows 16 half ... 16 half + 15 of each block into acc[half]. */
MATVEC_VNNI_TARGET static void q8_0_q16_group_vnni(const uint8_t *o, const kv_q16_block *x, const q16_split *xs,
                                                   size_t nb, __m512 acc[2]) {
    const __m512i ones = _mm512_set1_epi8(1);
    for (size_t b = 0; b < nb; b++, o += Q80_BYTES) {
        prefetch_ahead(o, Q80_BYTES);
        const __m512 dx = _mm512_set1_ps(x[b].d);
        for (int half = 0; half < 2; half++) {
            __m512i l = _mm512_setzero_si512(), h = _mm512_setzero_si512(), w = _mm512_setzero_si512();
            for (int c = 0; c < 8; c++) {
                const __m512i codes = _mm512_loadu_si512((const void *)(o + 64 + (c * 4 + 2 * half) * 32));
                l = _mm512_dpbusd_epi32(l, bcast4(xs[b].l + 4 * c), codes);
                h = _mm512_dpbusd_epi32(h, bcast4(xs[b].h + 4 * c), codes);
                w = _mm512_dpbusd_epi32(w, ones, codes);
            }
            const __m512 scale = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(o + 32 * half)));
            acc[half] = _mm512_fmadd_ps(_mm512_mul_ps(scale, dx), _mm512_cvtepi32_ps(join_split(l, h, w)), acc[half]);
        }
    }
}

/* One Q4_1 group: the low nibbles hold columns 4c...4c+3, the high ones 16+4c...16+4c+3. */
MATVEC_VNNI_TARGET static void q4_1_q16_group_vnni(const uint8_t *o, const kv_q16_block *x, const q16_split *xs,
                                                   size_t nb, __m512 acc[2]) {
    const __m512i ones = _mm512_set1_epi8(1), low = _mm512_set1_epi8(0x0F);
    for (size_t b = 0; b < nb; b++, o += Q41_BYTES) {
        prefetch_ahead(o, Q41_BYTES);
        const __m512 dx = _mm512_set1_ps(x[b].d), sx = _mm512_set1_ps(x[b].s);
        for (int half = 0; half < 2; half++) {
            __m512i l = _mm512_setzero_si512(), h = _mm512_setzero_si512(), w = _mm512_setzero_si512();
            for (int c = 0; c < 4; c++) {
                const __m512i codes = _mm512_loadu_si512((const void *)(o + 128 + (c * 4 + 2 * half) * 32));
                const __m512i lo = _mm512_and_si512(codes, low), hi = _mm512_and_si512(_mm512_srli_epi16(codes, 4), low);
                l = _mm512_dpbusd_epi32(l, bcast4(xs[b].l + 4 * c), lo);
                l = _mm512_dpbusd_epi32(l, bcast4(xs[b].l + 16 + 4 * c), hi);
                h = _mm512_dpbusd_epi32(h, bcast4(xs[b].h + 4 * c), lo);
                h = _mm512_dpbusd_epi32(h, bcast4(xs[b].h + 16 + 4 * c), hi);
                w = _mm512_dpbusd_epi32(w, ones, _mm512_add_epi8(lo, hi));
            }
            const __m512 scale = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(o + 32 * half)));
            const __m512 min = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(o + 64 + 32 * half)));
            acc[half] = _mm512_fmadd_ps(_mm512_mul_ps(scale, dx), _mm512_cvtepi32_ps(join_split(l, h, w)), acc[half]);
            acc[half] = _mm512_fmadd_ps(min, sx, acc[half]);
        }
    }
}

/* The groups of `rows` rows on 16-bit input codes, split once into `xs`. */
MATVEC_VNNI_TARGET static void matvec_vnni(int type, const uint8_t *w, const kv_q16_block *x, const q16_split *xs,
                                           float *y, size_t rows, size_t nb, int accumulate) {
    const size_t group_bytes = nb * (type == KV_GGML_Q4_1 ? Q41_BYTES : Q80_BYTES);
    for (size_t g = 0; g < rows / GROUP; g++) {
        __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
        if (type == KV_GGML_Q4_1) q4_1_q16_group_vnni(w + g * group_bytes, x, xs, nb, acc);
        else q8_0_q16_group_vnni(w + g * group_bytes, x, xs, nb, acc);
        float *out = y + g * GROUP;
        for (int half = 0; half < 2; half++) {
            const __m512 v = accumulate ? _mm512_add_ps(_mm512_loadu_ps(out + 16 * half), acc[half]) : acc[half];
            _mm512_storeu_ps(out + 16 * half, v);
        }
    }
}

/* Split inputs of up to this many blocks live on the stack (cols <= 32,768); wider inputs
   take the AVX2 kernels. */
enum { SPLIT_MAX_BLOCKS = 1024 };

#endif

/* Any x86-64 (or other CPU): the same sums, row by row, in plain C. Row r of a group is
   lane r % 8 of sub-group r / 8; the per-block float arithmetic is the AVX2 kernels'. */
static void matvec_generic(int type, const uint8_t *w, const kv_q8_block *x8, const kv_q16_block *x16, float *y,
                           size_t rows, size_t nb, int accumulate) {
    const int q41 = type == KV_GGML_Q4_1;
    const size_t block_bytes = q41 ? Q41_BYTES : Q80_BYTES, chunks = q41 ? 4 : 8;
    for (size_t g = 0; g < rows / GROUP; g++)
        for (size_t r = 0; r < GROUP; r++) {
            float acc = 0;
            for (size_t b = 0; b < nb; b++) {
                const uint8_t *o = w + (g * nb + b) * block_bytes;
                const uint8_t *codes = o + (q41 ? 128 : 64) + (r / 8) * 32 + (r % 8) * 4;
                int32_t dot = 0;
                for (size_t c = 0; c < chunks; c++)
                    for (int t = 0; t < 4; t++) {
                        const uint8_t byte = codes[c * 4 * 32 + (size_t)t];
                        const size_t k = 4 * c + (size_t)t;
                        const int32_t lo = x16 ? x16[b].q[k] : x8[b].q[k];
                        if (q41) dot += (byte & 15) * lo + (byte >> 4) * (x16 ? x16[b].q[16 + k] : x8[b].q[16 + k]);
                        else dot += (int8_t)byte * lo;
                    }
                const float d = x16 ? x16[b].d : x8[b].d, sum = x16 ? x16[b].s : x8[b].s;
                acc = __builtin_fmaf(h2f(o + 2 * r) * d, (float)dot, acc);
                if (q41) acc = __builtin_fmaf(h2f(o + 64 + 2 * r), sum, acc);
            }
            float *out = y + g * GROUP + r;
            *out = accumulate ? *out + acc : acc;
        }
}

/* Checks the shape, then runs the AVX2 kernels where the CPU has them (unless `portable`). */
static int matvec_codes(int type, const void *w, const kv_q8_block *x8, const kv_q16_block *x16, float *y,
                        size_t rows, size_t cols, int accumulate, int portable) {
    if (cols % 32 || rows % GROUP || (type != KV_GGML_Q4_1 && type != KV_GGML_Q8_0)) return -1;
#if defined(__x86_64__)
    if (!portable && x16 && cols / 32 <= SPLIT_MAX_BLOCKS && kv_gemm_q16_path() == KV_GEMM_Q16_VNNI) {
        q16_split xs[cols / 32];
        split_q16(x16, xs, cols / 32);
        matvec_vnni(type, (const uint8_t *)w, x16, xs, y, rows, cols / 32, accumulate);
        return 0;
    }
    if (!portable && kv_has_avx2_fma_f16c()) {
        matvec_avx2(type, (const uint8_t *)w, x8, x16, y, rows, cols / 32, accumulate);
        return 0;
    }
#endif
    (void)portable;
    matvec_generic(type, (const uint8_t *)w, x8, x16, y, rows, cols / 32, accumulate);
    return 0;
}

int kv_matvec_qdot(int type, const void *w, const kv_q8_block *x, float *y, size_t rows, size_t cols, int accumulate) {
    return matvec_codes(type, w, x, NULL, y, rows, cols, accumulate, 0);
}

int kv_matvec_qdot_portable(int type, const void *w, const kv_q8_block *x, float *y, size_t rows, size_t cols,
                            int accumulate) {
    return matvec_codes(type, w, x, NULL, y, rows, cols, accumulate, 1);
}

int kv_matvec_q16dot(int type, const void *w, const kv_q16_block *x, float *y, size_t rows, size_t cols, int accumulate) {
    return matvec_codes(type, w, NULL, x, y, rows, cols, accumulate, 0);
}

int kv_matvec_q16dot_portable(int type, const void *w, const kv_q16_block *x, float *y, size_t rows, size_t cols,
                              int accumulate) {
    return matvec_codes(type, w, NULL, x, y, rows, cols, accumulate, 1);
}
