#ifndef KVSTASH_ENGINE_H
#define KVSTASH_ENGINE_H
#include <stddef.h>
#include <stdint.h>
#include "ggml_types.h"

/* Inference kernels of the engine: GGUF dequantization, the element-wise parts of a
   transformer layer, and the products and attention of up to 32 rows (decode, a cache
   hit's question) straight from the encoded weights; longer inputs go through BLAS. */

/* GGUF tensor dequantization to f32. `n` counts elements (a multiple of 32 for the
   block types); `src` points at the raw GGUF bytes. */
void kv_dequant_f16(const uint16_t *src, float *dst, size_t n);
void kv_dequant_bf16(const uint16_t *src, float *dst, size_t n);
void kv_dequant_q8_0(const void *src, float *dst, size_t n);
void kv_dequant_q4_0(const void *src, float *dst, size_t n);
void kv_dequant_q4_1(const void *src, float *dst, size_t n);

/* IEEE half to float for one value. */
float kv_half_to_float(uint16_t h);

/* Branch-free half -> float (normals, subnormals, inf, nan), as in FP16/ggml; inline
   so kernels vectorize it. */
static inline float kv_h2f_inline(uint16_t h) {
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    union { uint32_t u; float f; } norm, den, out;
    norm.u = (two_w >> 4) + (0xE0u << 23);
    den.u = (two_w >> 17) | (126u << 23);
    const float normalized = norm.f * 0x1.0p-112f;
    const float denormalized = den.f - 0.5f;
    union { float f; uint32_t u; } a, b;
    a.f = denormalized; b.f = normalized;
    out.u = sign | (two_w < (1u << 27) ? a.u : b.u);
    return out.f;
}

/* out[r][i] = x[r][i] / sqrt(mean(x[r]^2) + eps) * w[i] for `rows` rows of `n`. */
void kv_rmsnorm(float *out, const float *x, const float *w, size_t rows, size_t n, float eps);

/* x[r][i] += y[r][i] / sqrt(mean(y[r]^2) + eps) * w[i] for `rows` rows of `n`: a post-norm and
   the residual add in one pass, the same bits as kv_rmsnorm into a buffer then kv_add. */
void kv_add_rmsnorm(float *x, const float *y, const float *w, size_t rows, size_t n, float eps);

/* gate[r][i] = silu(gate[r][i]) * up[r][i], rows of `n`, each row of both at stride `ld`. */
void kv_silu_mul(float *gate, const float *up, size_t rows, size_t n, size_t ld);

/* gate[r][i] = gelu(gate[r][i]) * up[r][i] with ggml's tanh approximation of GELU, same layout. */
void kv_gelu_mul(float *gate, const float *up, size_t rows, size_t n, size_t ld);

/* kv_rmsnorm over each of `heads` consecutive slices of `head_dim` in `rows` rows (row r at
   x + r*ld), in place, all with the same weight `w` (head_dim values): QK-norm. */
void kv_rmsnorm_heads(float *x, size_t ld, size_t rows, size_t heads, size_t head_dim, const float *w, float eps);

/* Rotary embedding of `rows` rows (row r at x + r*ld) holding `heads` heads of
   `head_dim`; only the first `n_rot` dims of each head rotate. `cos_t`/`sin_t` hold
   `n_rot/2` values per row. neox = 0: pairs (2i, 2i+1) (llama.cpp NORMAL);
   neox = 1: pairs (i, i + n_rot/2) (NEOX). src may equal dst (same ld). */
void kv_rope(float *dst, size_t ld_dst, const float *src, size_t ld_src, size_t rows,
             size_t heads, size_t head_dim, size_t n_rot,
             const float *cos_t, const float *sin_t, int neox);
/* kv_rope with the rotated rows narrowed to f16 (round to nearest even) into dst, in the
   same pass: equal to kv_rope then kv_f32_to_f16, bit for bit. Head h of row r goes to
   dst + r * ld_dst + h * head_stride (a KVCache's heads: ld_dst = head_dim; row-major rows:
   head_stride = head_dim). Non-temporal stores when dst is 32-byte aligned and ld_dst,
   head_stride and head_dim are multiples of 16 (a spliced KV cache), then a store fence. */
void kv_rope_f16_stream(uint16_t *dst, size_t ld_dst, size_t head_stride, const float *src, size_t ld_src, size_t rows,
                        size_t heads, size_t head_dim, size_t n_rot,
                        const float *cos_t, const float *sin_t, int neox);

/* Causal softmax of a block of attention scores: row r of `s` (stride ld) holds
   scores against keys 0..<ld; keys 0..<valid0 + r are visible (exclusive bound
   valid0 + r, clipped to `cols`), the rest become 0. Numerically stable. */
void kv_softmax_causal(float *s, size_t rows, size_t cols, size_t ld, size_t valid0);

/* The same with a sliding window: row r sees keys [first0 + r, valid0 + r) (the lower bound
   clipped to 0, the upper to `cols`); every other entry up to `cols` becomes 0. */
void kv_softmax_band(float *s, size_t rows, size_t cols, size_t ld, size_t valid0, ptrdiff_t first0);

/* out[i] = x[i] + y[i] */
void kv_add(float *out, const float *x, const float *y, size_t n);

/* Matrix-vector product straight from GGUF-encoded weights (decode path):
   y[r] = dot(row r, x) (+ y[r] when accumulate), for `rows` rows of `cols` elements
   (cols a multiple of 32, of 256 for the K-quants). `type` is the ggml type id
   (enum kv_ggml_type): F32, F16, BF16, Q4_0, Q4_1, Q8_0, and those of kquants.h.
   Returns 0, or -1 for an unsupported type. */
int kv_matvec(int type, const void *w, const float *x, float *y, size_t rows, size_t cols, int accumulate);

/* y[r][o] = sum_k W[o][k] x[r][k] (+ y when accumulate), r < m, o < rows: a few input rows
   (ldx apart) against GGUF-encoded weight rows (types as kv_matvec). Each weight row is
   dequantized once into L1 and multiplied by the input rows eight at a time, so small
   prefills read the encoded tensor, not an f32 copy. Returns -1 for an unknown type or
   cols % 32 != 0. */
int kv_matmul_rows(int type, const void *w, const float *x, size_t ldx, float *y, size_t ldy,
                   size_t m, size_t rows, size_t cols, int accumulate);
/* Chooses kv_matmul_rows's register tiles for 9...32 input rows: 1 wide (AVX-512), 0 narrow
   (AVX2), -1 by the CPU (the default). Both give the same bits; for tests. */
void kv_matmul_set_tiles(int wide);

/* kv_matmul_interleaved is kv_matmul_rows for a Q4_1 or Q8_0 tensor (`type`) rewritten by
   kv_qdot_interleave (below; a Q5_0 tensor rewritten as Q8_0 too) and 1 <= m <= 32 input
   rows (bit for bit what kv_matmul_rows gives for 9...32 rows: same dequantization, same
   order of sums); it returns -1 for other types and shapes and -2 when its per-thread
   scratch (32 x cols floats) cannot be allocated. */
int kv_matmul_interleaved(int type, const void *w, const float *x, size_t ldx, float *y, size_t ldy, size_t m,
                          size_t rows, size_t cols, int accumulate);

/* Decode products on 8-bit activations (docs in matvec_q8.c). kv_quantize_q8 quantizes
   `cols` floats (a multiple of 32) into cols / 32 blocks: d = max|x| / 127, q = round(x / d)
   in [-127, 127], s = d * sum(q). kv_qdot_interleave rewrites a Q4_1 or Q8_0 tensor of `rows`
   x `cols` (both multiples of 32) into groups of 32 rows laid out for integer dot products
   (and the small prefills of kv_matmul_interleaved); dst has the same size
   as src. kv_matvec_qdot is y[r] = W[r] . x (+ y[r] when accumulate)
   on such a tensor and a quantized input, exactly the dequantized weights against the
   dequantized input up to float rounding (integer sums per block, AVX2 or plain C chosen at
   run time). Returns -1 for another type, or rows or cols not multiples of 32. */
typedef struct { float d, s; int8_t q[32]; } kv_q8_block;
void kv_quantize_q8(const float *x, kv_q8_block *out, size_t cols);
void kv_qdot_interleave(int type, const void *src, void *dst, size_t rows, size_t cols);
/* The inverse for one row: row `row` of a tensor kv_qdot_interleave rewrote, back as its
   cols / 32 row-major GGUF blocks in dst (20 or 34 bytes each). */
void kv_qdot_interleaved_row(int type, const void *src, void *dst, size_t row, size_t cols);
int kv_matvec_qdot(int type, const void *w, const kv_q8_block *x, float *y, size_t rows, size_t cols, int accumulate);
/* The same on 16-bit input codes (kv_quantize_q16: d = max|x| / 32767, q in [-32767, 32767],
   s = d * sum(q)): 256 times finer input steps than 8 bits, so the products stay within
   about 1e-5 of the f32 ones. kv_matvec_q16dot takes Q4_1 and Q8_0 tensors laid out by
   kv_qdot_interleave; _portable is its plain C path, callable on any CPU. */
typedef struct { float d, s; int16_t q[32]; } kv_q16_block;
void kv_quantize_q16(const float *x, kv_q16_block *out, size_t cols);
/* Producers whose output only enters packed products, writing it as those 16-bit codes
   directly (no f32 row in between), bit for bit kv_quantize_q16 of kv_rmsnorm's, kv_silu_mul's
   and kv_gelu_mul's results; n a multiple of 32. kv_rmsnorm_q16's `out` holds n / 32 blocks per
   row; the gated ones' output rows start `ldo` blocks apart (ldo >= n / 32: a column of blocks
   of a wider row, as the gated product writes 32 features of every row at a time). */
void kv_rmsnorm_q16(const float *x, const float *w, kv_q16_block *out, size_t rows, size_t n, float eps);
void kv_silu_mul_q16(const float *gate, const float *up, size_t rows, size_t n, size_t ld, kv_q16_block *out,
                     size_t ldo);
void kv_gelu_mul_q16(const float *gate, const float *up, size_t rows, size_t n, size_t ld, kv_q16_block *out,
                     size_t ldo);
int kv_matvec_q16dot(int type, const void *w, const kv_q16_block *x, float *y, size_t rows, size_t cols, int accumulate);
int kv_matvec_q16dot_portable(int type, const void *w, const kv_q16_block *x, float *y, size_t rows, size_t cols,
                              int accumulate);
/* The plain C path kv_matvec_qdot takes on a CPU without AVX2 (same contract), callable on
   any CPU so tests check it everywhere. */
int kv_matvec_qdot_portable(int type, const void *w, const kv_q8_block *x, float *y, size_t rows, size_t cols,
                            int accumulate);

/* Attention of stacked query rows without BLAS (decode, the question after a cache hit, and
   the prefill's blocks of rows where the CPU has AVX-512).
   The m query rows that share one KV head are stacked and transposed into qt ([d][mp],
   mp = m rounded up to 16, scaled by the attention scale, padding lanes zero); last[t] is the last
   key stacked row t may see (t < mp), and first[t], unless `first` is NULL, the first one
   (a sliding window). kv_attend_partial runs keys [p0, p1) of that head
   (k, v: IEEE f16 rows, ld elements apart) in blocks at multiples of KV_ATTEND_BLOCK with a
   running max, folding the state at each multiple of `segment` keys (a multiple of
   KV_ATTEND_BLOCK; every call for one model takes the same), and leaves a partial
   state: mx[t] the largest visible score (-inf if none), sum[t] = sum_p exp(s[t][p] - mx[t])
   and o[t][c] = sum_p exp(s[t][p] - mx[t]) v[p][c] ([m][d]). scratch holds
   KV_ATTEND_SCRATCH(mp, d) floats; mp <= KV_ATTEND_MAX_ROWS, d a multiple of 16 and at most
   KV_ATTEND_MAX_DIM.
   kv_attend_merge folds `parts` such states (part i at o + i*m*d, mx/sum + i*mp), in order,
   into the attention output out[t][c] ([m][d]); a row that sees no key gets zeros.
   A row's output is the same bits for any stacking, p0 at or before its first visible key,
   and split of the keys into calls at multiples of `segment` merged in order. */
#define KV_ATTEND_BLOCK 256
#define KV_ATTEND_MAX_ROWS 256
#define KV_ATTEND_MAX_DIM 256
#define KV_ATTEND_SCRATCH(mp, d) ((KV_ATTEND_BLOCK + (d) + 2) * (mp))
void kv_attend_partial(const float *qt, size_t m, size_t mp, size_t d, const uint16_t *k, const uint16_t *v,
                       size_t ld, size_t p0, size_t p1, size_t segment, const int32_t *last, const int32_t *first,
                       float *scratch, float *o, float *mx, float *sum);
/* Chooses kv_attend_partial's register tiles: 1 wide (AVX-512), 0 narrow (AVX2), -1 by the
   CPU (the default). For tests, which check both on any CPU. */
void kv_attend_set_tiles(int wide);
/* Stacks n rows' `group` query heads (row r's head j at q + r*ldq + j*d) into qt as
   kv_attend_partial takes them: lane r*group + j, times `scale` (one float multiply per
   element), lanes m = n*group ..< mp zero. */
void kv_attend_stack(const float *q, size_t ldq, size_t n, size_t group, size_t d, float scale, float *qt, size_t mp);
void kv_attend_merge(size_t parts, size_t m, size_t mp, size_t d, const float *o, const float *mx, const float *sum,
                     float *out);

#endif
