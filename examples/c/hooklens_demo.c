/*
 * hooklens from C: load a model, zero-ablate one attention head through a hook callback,
 * read blocks.0.attn.hook_pattern from a cache, and run a head-ablation sweep from JSON.
 *
 *   gcc -Wall -Wextra -Werror -I include examples/c/hooklens_demo.c \
 *       -L target/release -lhooklens -Wl,-rpath,"$PWD/target/release" -o hooklens_demo
 *   ./hooklens_demo [MODEL] [PROMPT]
 *
 * MODEL is an HF checkpoint directory, a .gguf file or a known name (default: the default
 * model). It prints one "key values..." line per result, which tests/c_examples.rs compares
 * with the Rust library's numbers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hooklens.h"

/* Stops the program with the library's message when a call fails. */
#define CHECK(call)                                                                 \
    do {                                                                            \
        int status_ = (call);                                                       \
        if (status_ != HL_OK) {                                                     \
            fprintf(stderr, "%s failed (%d): %s\n", #call, status_, hl_last_error()); \
            exit(1);                                                                \
        }                                                                           \
    } while (0)

/* The head the hook zeroes. */
struct ablation {
    int64_t head;
    int calls;
};

/* Zeroes one head of attn.hook_z, shaped [batch, pos, n_heads, d_head], in place. */
static int zero_head(const char *name, float *data, const int64_t *shape, int ndim, void *user) {
    struct ablation *a = user;
    (void)name;
    if (ndim != 4 || a->head >= shape[2]) {
        return 100; /* aborts the pass; hl_run_with_hook returns 100 */
    }
    int64_t rows = shape[0] * shape[1], heads = shape[2], d_head = shape[3];
    for (int64_t r = 0; r < rows; r++) {
        memset(data + (r * heads + a->head) * d_head, 0, (size_t)d_head * sizeof(float));
    }
    a->calls++;
    return 0;
}

static void print_floats(const char *key, const float *v, size_t n) {
    printf("%s", key);
    for (size_t i = 0; i < n; i++) {
        printf(" %.9g", v[i]);
    }
    printf("\n");
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : NULL;
    const char *prompt = argc > 2 ? argv[2] : "The Eiffel Tower is in the city of";
    printf("version %s\n", hl_version());

    hl_model *model = NULL;
    CHECK(hl_model_load(path, "cpu", &model));
    int64_t n_layers, n_heads, d_model, d_vocab;
    CHECK(hl_model_dims(model, &n_layers, &n_heads, &d_model, &d_vocab));
    printf("dims %lld %lld %lld %lld\n", (long long)n_layers, (long long)n_heads,
           (long long)d_model, (long long)d_vocab);

    /* Tokenize: ask for the size first, then fill. */
    size_t seq = 0;
    if (hl_tokenize(model, prompt, 1, NULL, 0, &seq) != HL_ERR_BUFFER_TOO_SMALL) {
        fprintf(stderr, "sizing the tokens failed: %s\n", hl_last_error());
        return 1;
    }
    uint32_t *tokens = malloc(seq * sizeof *tokens);
    CHECK(hl_tokenize(model, prompt, 1, tokens, seq, &seq));
    printf("tokens");
    for (size_t i = 0; i < seq; i++) {
        printf(" %u", tokens[i]);
    }
    printf("\n");

    /* Clean logits, then with head 1 of layer 0 zeroed: [1, seq, d_vocab]. */
    size_t logits_len = seq * (size_t)d_vocab;
    float *clean = malloc(logits_len * sizeof *clean);
    float *ablated = malloc(logits_len * sizeof *ablated);
    CHECK(hl_run_logits(model, tokens, 1, seq, clean, logits_len));
    struct ablation a = {.head = 1, .calls = 0};
    CHECK(hl_run_with_hook(model, tokens, 1, seq, "blocks.0.attn.hook_z", zero_head, &a, ablated,
                           logits_len));
    printf("hook_calls %d\n", a.calls);
    print_floats("clean_last", clean + (seq - 1) * (size_t)d_vocab, (size_t)d_vocab);
    print_floats("ablated_last", ablated + (seq - 1) * (size_t)d_vocab, (size_t)d_vocab);

    /* The attention pattern of layer 0 from a cache of the pattern hooks. */
    hl_cache *cache = NULL;
    CHECK(hl_run_with_cache(model, tokens, 1, seq, "hook_pattern", &cache));
    const float *pattern;
    const int64_t *shape;
    int ndim;
    CHECK(hl_cache_get(cache, "blocks.0.attn.hook_pattern", &pattern, &shape, &ndim));
    size_t numel = 1;
    printf("pattern_shape");
    for (int i = 0; i < ndim; i++) {
        printf(" %lld", (long long)shape[i]);
        numel *= (size_t)shape[i];
    }
    printf("\n");
    print_floats("pattern", pattern, numel); /* [batch, head, q_pos, k_pos] */
    hl_cache_free(cache);

    /* Every head zero-ablated in turn, measured on log p(top prediction). */
    size_t request_cap = 64 + seq * 12;
    char *request = malloc(request_cap);
    size_t used = (size_t)snprintf(request, request_cap, "{\"kind\": \"ablate\", \"tokens\": [");
    for (size_t i = 0; i < seq; i++) {
        used += (size_t)snprintf(request + used, request_cap - used, "%s%u", i ? ", " : "",
                                 tokens[i]);
    }
    snprintf(request + used, request_cap - used, "], \"method\": \"zero\", \"metric\": \"logprob\"}");
    char *response = NULL;
    CHECK(hl_sweep_json(model, request, &response));
    printf("sweep %s\n", response);
    hl_string_free(response);

    free(request);
    free(ablated);
    free(clean);
    free(tokens);
    hl_model_free(model);
    return 0;
}
