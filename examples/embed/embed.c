/* embed: text -> sentence embeddings with ember's C API (tokenizer, forward pass, pooling), on
 * the CPU or on an NVIDIA GPU.
 *
 *   embed [--cuda] MODEL_DIR TEXT [TEXT ...]
 *
 * MODEL_DIR is a BERT directory with vocab.txt: a sentence-transformers model such as
 * all-MiniLM-L6-v2 (its pooling, normalisation and maximum length are read from its files) or
 * a plain HF one (mean pooling). Prints one line per text, the H numbers of its embedding as
 * exact float32 ("%.9g"), like `ember embed --format text`.
 *
 * On the CPU every buffer is host memory. With --cuda they are device memory: this file then
 * needs the CUDA runtime (built with EMBED_CUDA, as CMakeLists.txt does when the CUDA toolkit
 * is found, or `make CUDA_HOME=/usr/local/cuda`). It stays a C program either way. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ember.h>

#ifdef EMBED_CUDA
#include <cuda_runtime.h>
#endif

/* Buffers live where the backend computes: host memory for the CPU, device memory for CUDA. */
static void *buf_alloc(int cuda, size_t bytes) {
#ifdef EMBED_CUDA
    if (cuda) {
        void *p = NULL;
        return cudaMalloc(&p, bytes) == cudaSuccess ? p : NULL;
    }
#endif
    (void)cuda;
    return malloc(bytes);
}

static void buf_free(int cuda, void *p) {
#ifdef EMBED_CUDA
    if (cuda) {
        cudaFree(p);
        return;
    }
#endif
    (void)cuda;
    free(p);
}

/* Host to buffer or buffer to host (cudaMemcpyDefault tells them apart). */
static int buf_copy(int cuda, void *dst, const void *src, size_t bytes) {
#ifdef EMBED_CUDA
    if (cuda) return cudaMemcpy(dst, src, bytes, cudaMemcpyDefault) == cudaSuccess;
#endif
    (void)cuda;
    memcpy(dst, src, bytes);
    return 1;
}

static int fail(const char *what, ember_status st) {
    fprintf(stderr, "embed: %s: %s\n  %s\n", what, ember_status_string(st), ember_last_error());
    return 1;
}

int main(int argc, char **argv) {
    int cuda = argc > 1 && !strcmp(argv[1], "--cuda");
    if (argc < 3 + cuda) {
        fprintf(stderr, "usage: embed [--cuda] MODEL_DIR TEXT [TEXT ...]\n");
        return 2;
    }
#ifndef EMBED_CUDA
    if (cuda) {
        fprintf(stderr, "embed: --cuda: this embed was built without the CUDA runtime\n");
        return 2;
    }
#endif
    const char *dir = argv[1 + cuda];
    const char *const *texts = (const char *const *)argv + 2 + cuda;
    const int n = argc - 2 - cuda;

    ember_tokenizer *tok = NULL;
    ember_model *m = NULL;
    ember_encoding enc = {0};
    void *ids = NULL, *mask = NULL, *types = NULL, *hidden = NULL, *pooled = NULL;
    float *emb = NULL;
    int rc = 1;
    ember_status st;

    /* 1. what the model directory asks for: pooling, normalisation, maximum length */
    ember_pooling_config pc;
    if ((st = ember_pooling_config_load(dir, &pc)) != EMBER_OK) {
        rc = fail("reading the pooling configuration", st);
        goto done;
    }
    if ((st = ember_tokenizer_load(dir, NULL, &tok)) != EMBER_OK) {
        rc = fail("loading the tokenizer", st);
        goto done;
    }
    ember_load_options opt;
    ember_load_options_init(&opt);
    opt.backend = cuda ? EMBER_BACKEND_CUDA : EMBER_BACKEND_CPU;
    if ((st = ember_model_load(dir, &opt, &m)) != EMBER_OK) {
        rc = fail("loading the model", st);
        goto done;
    }
    ember_config cfg;
    ember_model_config(m, &cfg);
    int max_len = pc.max_seq_length ? pc.max_seq_length : cfg.max_position_embeddings;
    if (max_len > cfg.max_position_embeddings) max_len = cfg.max_position_embeddings;

    /* 2. text -> one padded batch of token ids ([CLS] text [SEP], truncated to max_len) */
    if ((st = ember_tokenizer_encode(tok, n, texts, NULL, max_len, &enc)) != EMBER_OK) {
        rc = fail("tokenizing", st);
        goto done;
    }
    const int B = enc.batch, S = enc.seq_len, H = cfg.hidden_size;
    if ((st = ember_model_reserve(m, B, S)) != EMBER_OK) { /* the workspace, sized once */
        rc = fail("reserving the workspace", st);
        goto done;
    }

    /* 3. inputs where the backend computes, the forward pass, the pooling */
    const size_t tokens = (size_t)B * S;
    ids = buf_alloc(cuda, sizeof(int32_t) * tokens);
    mask = buf_alloc(cuda, sizeof(int32_t) * tokens);
    types = buf_alloc(cuda, sizeof(int32_t) * tokens);
    hidden = buf_alloc(cuda, sizeof(float) * tokens * H);
    pooled = buf_alloc(cuda, sizeof(float) * (size_t)B * H);
    emb = malloc(sizeof(float) * (size_t)B * H);
    if (!ids || !mask || !types || !hidden || !pooled || !emb) {
        fprintf(stderr, "embed: out of memory\n");
        goto done;
    }
    if (!buf_copy(cuda, ids, enc.input_ids, sizeof(int32_t) * tokens) ||
        !buf_copy(cuda, mask, enc.attention_mask, sizeof(int32_t) * tokens) ||
        !buf_copy(cuda, types, enc.token_type_ids, sizeof(int32_t) * tokens)) {
        fprintf(stderr, "embed: copying the inputs to the GPU failed\n");
        goto done;
    }
    ember_inputs in = {.batch = B, .seq_len = S, .input_ids = ids, .attention_mask = mask,
                       .token_type_ids = types};
    ember_outputs out = {.last_hidden_state = hidden};
    if ((st = ember_forward(m, &in, &out, NULL)) != EMBER_OK) {
        rc = fail("forward", st);
        goto done;
    }
    if ((st = ember_pool(m, hidden, mask, B, S, pc.mode, pc.normalize, pooled, NULL)) !=
        EMBER_OK) {
        rc = fail("pooling", st);
        goto done;
    }
    if (!buf_copy(cuda, emb, pooled, sizeof(float) * (size_t)B * H)) { /* waits for the GPU */
        fprintf(stderr, "embed: copying the embeddings from the GPU failed\n");
        goto done;
    }

    /* 4. one line per text */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) printf("%.9g%c", emb[(size_t)b * H + h], h + 1 < H ? ' ' : '\n');
    rc = 0;

done:
    buf_free(cuda, ids);
    buf_free(cuda, mask);
    buf_free(cuda, types);
    buf_free(cuda, hidden);
    buf_free(cuda, pooled);
    free(emb);
    ember_encoding_free(&enc);
    ember_model_free(m);
    ember_tokenizer_free(tok);
    return rc;
}
