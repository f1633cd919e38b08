#ifndef KVSTASH_KERNELS_H
#define KVSTASH_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/* Hot loops of KVStash. Each is compiled for several x86-64 levels with
   target_clones, so one generic binary picks AVX-512/AVX2 at run time and stays
   correct on a baseline CPU. Swift calls them through safe wrappers only. */

/* Which instruction set the dispatcher picked for these kernels ("avx512f", "avx2", "default"). */
const char *kv_kernels_isa(void);

/* `bytes` of zeroed memory, 64-byte aligned at least. Large blocks are mapped from the
   kernel (2 MiB aligned, transparent huge pages requested). Free with
   kv_zeroed_free(*base, *mapped). Returns NULL when out of memory. */
void *kv_zeroed_alloc(size_t bytes, void **base, size_t *mapped);
/* Marks the whole 2 MiB pages inside [p, p + bytes) for transparent huge pages (before they
   are first written): for large weight copies the kernels stream every token. */
void kv_advise_huge(void *p, size_t bytes);
void kv_zeroed_free(void *base, size_t mapped);
/* At least `floats` floats, 64-byte aligned, that belong to the calling thread: the same
   buffer (grown when a call asks for more) for each of its calls, freed when the thread ends.
   For per-task scratch of parallel loops: a thread runs one task at a time, so its tasks'
   scratch stays in its own caches instead of one buffer per task. Its users (attention's
   tasks, kv_matmul_interleaved's strip, the narrow product's widened tile) hold it only
   within one kernel call, so they share it; a later call may move it. NULL when out of memory. */
float *kv_thread_scratch(size_t floats);

/* y[i] += a * x[i] */
void kv_axpy(float *y, const float *x, float a, size_t n);

/* dst[i] = src[i] for n floats, written around the caches (non-temporal stores) when dst is
   64-byte aligned: for filling a large KV cache that will not be read again before it has
   left the caches anyway. A plain store first reads each line it writes; this does not,
   which halves the memory traffic of a splice. Ends with a store fence, so the data is
   ordered before anything the caller writes next. */
void kv_stream_floats(float *dst, const float *src, size_t n);

#endif
#include "engine.h"
#include "kvcodec.h"
#include "qrows.h"
#include "gemm_q16.h"
#include "gemm_q8.h"
