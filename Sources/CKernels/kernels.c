#include "kvkernels.h"

#include "clones.h"

int kv_cpu_has_avx512(void) {
#if defined(__x86_64__) && !defined(KVSTASH_MAX_ISA_AVX2)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

const char *kv_kernels_isa(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (kv_cpu_has_avx512()) return "avx512f";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2+fma";
#endif
    return "default";
}

#if defined(__x86_64__)
int kv_has_avx2_fma_f16c(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    }
    return cached;
}
#endif

KV_CLONES void kv_axpy(float *y, const float *x, float a, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

/* 16 floats with 64-byte alignment, the unit of a non-temporal store here. */
typedef float v16f_aligned __attribute__((vector_size(64), aligned(64)));

KV_CLONES void kv_stream_floats(float *dst, const float *src, size_t n) {
    size_t i = 0;
    if (((uintptr_t)dst & 63) == 0) {
        for (; i + 16 <= n; i += 16) {
            v16f_aligned v;
            __builtin_memcpy(&v, src + i, sizeof v);
            __builtin_nontemporal_store(v, (v16f_aligned *)(dst + i));
        }
#if defined(__x86_64__)
        __builtin_ia32_sfence();
#endif
    }
    for (; i < n; i++) dst[i] = src[i];
}
