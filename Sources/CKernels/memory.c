#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kvkernels.h"

#if defined(__linux__)
#include <sys/mman.h>

#define KV_HUGE (2u << 20)

/* Large blocks come straight from the kernel: zeroed, aligned to 2 MiB and marked for
   transparent huge pages, so filling a long prompt's KV faults 512x fewer times. */
void *kv_zeroed_alloc(size_t bytes, void **base, size_t *mapped) {
    if (bytes < KV_HUGE) {
        *base = calloc(1, bytes ? bytes : 1);
        *mapped = 0;
        return *base;
    }
    const size_t length = bytes + KV_HUGE;
    void *p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { *base = NULL; *mapped = 0; return NULL; }
    uintptr_t aligned = ((uintptr_t)p + KV_HUGE - 1) & ~(uintptr_t)(KV_HUGE - 1);
#ifdef MADV_HUGEPAGE
    madvise((void *)aligned, bytes & ~(size_t)(KV_HUGE - 1), MADV_HUGEPAGE);
#endif
    *base = p;
    *mapped = length;
    return (void *)aligned;
}

void kv_zeroed_free(void *base, size_t mapped) {
    if (!base) return;
    if (mapped) munmap(base, mapped); else free(base);
}

void kv_advise_huge(void *p, size_t bytes) {
#ifdef MADV_HUGEPAGE
    const uintptr_t lo = ((uintptr_t)p + KV_HUGE - 1) & ~(uintptr_t)(KV_HUGE - 1);
    const uintptr_t hi = ((uintptr_t)p + bytes) & ~(uintptr_t)(KV_HUGE - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#else
    (void)p; (void)bytes;
#endif
}
#else
void kv_advise_huge(void *p, size_t bytes) { (void)p; (void)bytes; }

void *kv_zeroed_alloc(size_t bytes, void **base, size_t *mapped) {
    *base = calloc(1, bytes ? bytes : 1);
    *mapped = 0;
    return *base;
}

void kv_zeroed_free(void *base, size_t mapped) { (void)mapped; free(base); }
#endif

/* The calling thread's scratch: one buffer per thread, kept in a thread-specific slot whose
   destructor frees it when the thread exits (request threads come and go). */
typedef struct {
    float *floats;
    size_t capacity;
} thread_scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_release(void *p) {
    thread_scratch *s = p;
    free(s->floats);
    free(s);
}

static void scratch_key_create(void) { scratch_key_ok = pthread_key_create(&scratch_key, scratch_release) == 0; }

float *kv_thread_scratch(size_t floats) {
    pthread_once(&scratch_once, scratch_key_create);
    if (!scratch_key_ok || floats > SIZE_MAX / sizeof(float) - 64) return NULL;
    thread_scratch *s = pthread_getspecific(scratch_key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return NULL;
        if (pthread_setspecific(scratch_key, s) != 0) { free(s); return NULL; }
    }
    if (s->capacity < floats) {
        const size_t bytes = (floats * sizeof(float) + 63) & ~(size_t)63;
        float *grown = aligned_alloc(64, bytes);
        if (!grown) return NULL;
        free(s->floats);
        s->floats = grown;
        s->capacity = bytes / sizeof(float);
    }
    return s->floats;
}
