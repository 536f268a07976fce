/* Runs a cross-compiled llama-cpp-python wheel's libraries the way the runtime does
 * (runtime/models/backends.py): load every CPU variant ggml scores for this CPU from the lib
 * folder, then print the system info, the devices, the CPU variant ggml mapped (what
 * backends.py reads in /proc/self/maps) and, given a model, a few greedy tokens.
 * Usage: llama_smoke LIB_DIR [MODEL.gguf]   (under qemu-aarch64 for an arm64 wheel) */
#include <stdio.h>
#include <string.h>

#include "ggml-backend.h"
#include "llama.h"

/* The libggml-cpu-<variant>.so this process has mapped: qemu-user shows the guest's mappings. */
static void print_variant(void) {
    char line[4096];
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps) return;
    while (fgets(line, sizeof line, maps)) {
        char *name = strstr(line, "/libggml-cpu-");
        char *end = name ? strstr(name, ".so") : NULL;
        if (end) {
            name += strlen("/libggml-cpu-");
            printf("variant: %.*s\n", (int)(end - name), name);
            break;
        }
    }
    fclose(maps);
}

static void quiet(enum ggml_log_level level, const char *text, void *data) {
    (void)data;
    if (level >= GGML_LOG_LEVEL_WARN) fputs(text, stderr);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s LIB_DIR [MODEL.gguf]\n", argv[0]);
        return 2;
    }
    llama_log_set(quiet, NULL);
    ggml_backend_load_all_from_path(argv[1]);
    llama_backend_init();
    printf("system: %s\n", llama_print_system_info());
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        printf("device: %s (%s)\n", ggml_backend_dev_name(dev), ggml_backend_dev_description(dev));
    }
    print_variant();
    if (ggml_backend_dev_count() == 0) {
        fprintf(stderr, "no backend loaded from %s\n", argv[1]);
        return 1;
    }
    if (argc < 3) return 0;

    struct llama_model *model = llama_model_load_from_file(argv[2], llama_model_default_params());
    if (!model) return 1;
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    struct llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = 128;
    cparams.n_batch = 32;
    cparams.n_threads = cparams.n_threads_batch = 2;
    struct llama_context *ctx = llama_init_from_model(model, cparams);
    if (!ctx) return 1;
    const char *prompt = "The capital of France is";
    llama_token tokens[32];
    int n = llama_tokenize(vocab, prompt, (int)strlen(prompt), tokens, 32, true, false);
    if (n <= 0) return 1;
    struct llama_sampler *sampler = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(sampler, llama_sampler_init_greedy());
    struct llama_batch batch = llama_batch_get_one(tokens, n);
    printf("generated:");
    for (int i = 0; i < 6; i++) {
        if (llama_decode(ctx, batch) != 0) return 1;
        llama_token token = llama_sampler_sample(sampler, ctx, -1);
        if (llama_vocab_is_eog(vocab, token)) break;
        char piece[64];
        int len = llama_token_to_piece(vocab, token, piece, sizeof piece, 0, false);
        printf("%.*s", len > 0 ? len : 0, piece);
        tokens[0] = token;
        batch = llama_batch_get_one(tokens, 1);
    }
    printf("\n");
    llama_sampler_free(sampler);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
