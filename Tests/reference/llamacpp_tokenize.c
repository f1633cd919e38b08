// Token ids from llama.cpp itself, for cross-checking Tests/reference/tokenizer_golden.json.
// Reads NUL-separated texts on stdin; prints one line of space-separated ids per text.
// Usage: llamacpp_tokenize MODEL.gguf PARSE_SPECIAL(0|1) < texts
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "llama.h"

static void quiet(enum ggml_log_level level, const char * text, void * data) { (void)level; (void)text; (void)data; }

int main(int argc, char ** argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s MODEL PARSE_SPECIAL < texts\n", argv[0]); return 2; }
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    struct llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    const struct llama_vocab * vocab = llama_model_get_vocab(model);
    bool parse_special = atoi(argv[2]) != 0;
    size_t cap = 1 << 20, len = 0;
    char * buf = malloc(cap);
    int c;
    for (;;) {
        c = getchar();
        if (c == EOF && len == 0) break;
        if (c == 0 || c == EOF) {
            int n = llama_tokenize(vocab, buf, (int32_t)len, NULL, 0, false, parse_special);
            int32_t * ids = malloc(sizeof(int32_t) * (size_t)(n < 0 ? -n : n) + 4);
            n = llama_tokenize(vocab, buf, (int32_t)len, ids, n < 0 ? -n : n, false, parse_special);
            for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
            printf("\n");
            free(ids);
            len = 0;
            if (c == EOF) break;
            continue;
        }
        if (len + 1 >= cap) { cap *= 2; buf = realloc(buf, cap); }
        buf[len++] = (char)c;
    }
    llama_model_free(model);
    return 0;
}
