/* Private to CKernels: KV_CLONES compiles a hot function once per x86-64 level
   (AVX-512, AVX2+FMA, baseline) and lets the loader pick one for the running CPU, so a
   generic binary stays correct everywhere and fast on AVX-512. */
#ifndef KVSTASH_CLONES_H
#define KVSTASH_CLONES_H

#if defined(__x86_64__) && defined(__clang__) && defined(KVSTASH_MAX_ISA_AVX2)
#define KV_CLONES __attribute__((target("arch=x86-64-v3")))
#elif defined(__x86_64__) && defined(__clang__)
#define KV_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#else
#define KV_CLONES
#endif

/* 1 when the CPU runs AVX-512F and the build allows it. A build with KVSTASH_MAX_ISA_AVX2
   (`swift build -Xcc -DKVSTASH_MAX_ISA_AVX2`, for measuring and testing on an AVX-512 machine
   what an AVX2 machine runs) compiles the clones for AVX2 only and answers 0 here, so every
   kernel takes its AVX2 path. */
int kv_cpu_has_avx512(void);

/* 1 when the CPU runs AVX2, FMA and F16C: the explicit-intrinsics kernels (matvec_q8.c,
   qrows.c) check it once and otherwise take their plain C paths (kernels.c). */
int kv_has_avx2_fma_f16c(void);

#endif
