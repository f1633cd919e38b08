// Greedy continuation from llama.cpp itself, for cross-checking reference_forward.py goldens.
// Reads prompts as NUL-separated lines of space-separated token ids on stdin; prints one line
// of N greedy ids per prompt (argmax of llama.cpp's logits, f32 KV cache, one thread).
// Usage: llamacpp_greedy MODEL.gguf N < prompts
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "llama.h"

static void quiet(enum ggml_log_level level, const char * text, void * data) { (void)level; (void)text; (void)data; }

static int argmax(const float * x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[best]) best = i;
    return best;
}

int main(int argc, char ** argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s MODEL N < prompts\n", argv[0]); return 2; }
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model * model = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model)), n_gen = atoi(argv[2]);
    static char line[1 << 20];
    size_t len = 0;
    int c;
    while ((c = getchar()) != EOF || len > 0) {
        if (c != 0 && c != EOF) { if (len + 1 < sizeof line) line[len++] = (char)c; continue; }
        line[len] = 0;
        len = 0;
        int32_t ids[8192];
        int n = 0;
        for (char * p = strtok(line, " \n"); p && n < 8192; p = strtok(NULL, " \n")) ids[n++] = atoi(p);
        struct llama_context_params cp = llama_context_default_params();
        cp.n_ctx = 4096; cp.n_batch = 4096; cp.n_ubatch = 4096; cp.n_threads = 1; cp.n_threads_batch = 1;
        cp.type_k = GGML_TYPE_F32; cp.type_v = GGML_TYPE_F32;
        struct llama_context * ctx = llama_init_from_model(model, cp);
        if (!ctx || llama_decode(ctx, llama_batch_get_one(ids, n)) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
        for (int i = 0; i < n_gen; i++) {
            int32_t t = argmax(llama_get_logits_ith(ctx, -1), n_vocab);
            printf(i ? " %d" : "%d", t);
            if (llama_decode(ctx, llama_batch_get_one(&t, 1)) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
        }
        printf("\n");
        fflush(stdout);
        llama_free(ctx);
        if (c == EOF) break;
    }
    llama_model_free(model);
    return 0;
}
