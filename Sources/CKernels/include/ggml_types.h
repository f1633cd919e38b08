#ifndef KVSTASH_GGML_TYPES_H
#define KVSTASH_GGML_TYPES_H

/* ggml tensor element type ids, as stored in a GGUF tensor info (ggml.h's enum
   ggml_type). Swift's GGMLType mirrors these values. */
enum kv_ggml_type {
    KV_GGML_F32 = 0,
    KV_GGML_F16 = 1,
    KV_GGML_Q4_0 = 2,
    KV_GGML_Q4_1 = 3,
    KV_GGML_Q5_0 = 6,
    KV_GGML_Q5_1 = 7,
    KV_GGML_Q8_0 = 8,
    KV_GGML_Q8_1 = 9,
    KV_GGML_Q2_K = 10,
    KV_GGML_Q3_K = 11,
    KV_GGML_Q4_K = 12,
    KV_GGML_Q5_K = 13,
    KV_GGML_Q6_K = 14,
    KV_GGML_Q8_K = 15,
    KV_GGML_I8 = 24,
    KV_GGML_I16 = 25,
    KV_GGML_I32 = 26,
    KV_GGML_I64 = 27,
    KV_GGML_F64 = 28,
    KV_GGML_BF16 = 30,
};

#endif
