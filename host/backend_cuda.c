/* CUDA backend: the encoder of host/backend_cpu.c, op by op, with the CUDA twins of
 * kernels/ops.h and cuBLASLt, in f32, f16 or bf16 storage with f32 accumulation.
 *
 * Memory: the weights are uploaded once at init into one device arena (converted to the
 * compute dtype; LayerNorm gamma/beta stay f32). The workspace (activations for
 * cap_batch x cap_seq tokens, the packing plan, the graphs' copy of the mask, the cuBLASLt
 * workspace, the device error flags and their pinned host mirrors) is allocated at init /
 * reserve; forward, embed and table_copy never allocate.
 *
 * A forward is three parts. The head reads the inputs: error-flag reset, mask check,
 * embeddings (+ LayerNorm). The body is every encoder layer except the last LayerNorm. The
 * tail writes the outputs: the last LayerNorm with its f32 output fused, and the pooler.
 * With CUDA graphs (host/cuda_graphs.c) all three are one graph per shape: the call copies
 * the caller's inputs into model-owned staging buffers, the graph reads and writes only
 * model-owned memory (its addresses fixed until the next reserve), and the call copies
 * last_hidden_state and pooler_output out. Calls that write hidden_states or remove padding,
 * and calls larger than the staging buffers (GRAPH_TOKENS), run with ordinary launches.
 *
 * Padding removal (EMBER_FORWARD_SKIP_MASKED, kernels/packing.cu): after the mask check the
 * plan kernel packs the valid tokens; the host reads T back (the one synchronisation of such
 * a call, see packing.cu for why) unless the caller gave it as ember_inputs.valid_tokens (the
 * plan kernel then checks it), the embedding kernel writes the T packed rows directly,
 * every GEMM and LayerNorm runs on T rows, attention on cu_seqlens, and the f32 outputs are
 * unpacked into the padded layout with zero rows for masked tokens.
 *
 * Programmatic dependent launch (kernels/pdl.cuh, ember.h EMBER_TUNE_PDL): on devices of
 * compute capability 9.0+ whose kernels have the grid-dependency wait (probed at init), a
 * graphed shape's capture captures the forward with and without the PDL attribute and keeps
 * the faster graph (pdl_make); EMBER_PDL=on|off forces it for every launch of a forward. Off
 * everywhere else, and in every other call (embed, pool, table_copy).
 *
 * Streams: all work of a call is enqueued on the caller's stream. A forward or embed without
 * EMBER_FORWARD_ASYNC ends with one 4-byte copy of its device error flag into pinned memory
 * and one cudaStreamSynchronize, so that ids, token types or positions outside their tables
 * (clamped on the device) and mask values other than 0/1 come back as a status. An ASYNC
 * forward returns without waiting; its kernels set bits in a second flag, which only
 * ember_model_sync reads and clears. Every forward records an event, also one that failed
 * after enqueueing part of its work; a call on another stream than the previous ASYNC (or
 * failed) call first makes its stream wait for that event, since the two share the
 * workspace. The wait is issued on the caller's stream before anything else of the call, so
 * it also orders a replayed CUDA graph, and it is never issued inside a capture (graphs are
 * captured on the cache's own stream, which runs nothing). table_copy does not wait.
 *
 * Threads: one model owns one cuBLASLt handle, one algorithm cache, one workspace, one graph
 * cache and one set of error flags; host/model.c serialises every call on a model with the
 * model's mutex, so this file never sees two calls on one model at once. Different models
 * run concurrently, on the same device or not.
 *
 * Errors: every CUDA and cuBLAS call goes through EMBER_CUDA_CHECK / EMBER_CUBLAS_CHECK
 * (host/cuda_check.h). A sticky error (illegal address, device assert, ...) poisons the
 * model: every later call on it fails fast with EMBER_ERR_DEVICE_LOST. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda_candidates.h"
#include "cuda_check.h"
#include "cuda_graphs.h"
#include "cuda_tune.h"
#include "error.h"
#include "kernels/ops.h"
#include "model.h"
#include "weights/arch.h"

#define LT_WORKSPACE_BYTES ((size_t)32 << 20) /* NVIDIA's recommendation for Hopper */
/* Calls of up to this many tokens run as one CUDA graph (staged inputs and outputs). Beyond,
 * a forward's kernels run for milliseconds, the launches are hidden behind them, and the
 * staging copies would cost memory (2 x tokens x H floats) for nothing. */
#define GRAPH_TOKENS 8192
#define ARENA_ALIGN 256                       /* every tensor starts 256-byte aligned */

/* ---- error mapping (declared in host/cuda_check.h) ----------------------------------------- */

int ember_cuda_is_sticky(cudaError_t e) {
    switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchTimeout:
    case cudaErrorAssert:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorLaunchFailure:
    case cudaErrorTensorMemoryLeak:
    case cudaErrorECCUncorrectable:
    case cudaErrorNvlinkUncorrectable:
    case cudaErrorContextIsDestroyed:
    case cudaErrorContained:
    case cudaErrorMpsClientTerminated:
    case cudaErrorExternalDevice: return 1;
    default: return 0;
    }
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

ember_status ember_cuda_fail(cudaError_t e, const char *expr, const char *func, const char *file,
                             int line) {
    const int sticky = ember_cuda_is_sticky(e);
    const ember_status st = e == cudaErrorMemoryAllocation ? EMBER_ERR_OUT_OF_MEMORY
                            : sticky                       ? EMBER_ERR_DEVICE_LOST
                                                           : EMBER_ERR_CUDA;
    /* A recoverable error stays in the runtime's last-error slot; clear it so that the next
     * launch check (cudaGetLastError) does not report it again. */
    if (!sticky) (void)cudaGetLastError();
    return ember_fail(st, "%s failed in %s (%s:%d): %s: %s%s", expr, func, base_name(file), line,
                      cudaGetErrorName(e), cudaGetErrorString(e),
                      sticky ? " (sticky: the CUDA context is unusable)" : "");
}

ember_status ember_cublas_fail(cublasStatus_t s, const char *expr, const char *func,
                               const char *file, int line) {
    ember_status st = s == CUBLAS_STATUS_ALLOC_FAILED ? EMBER_ERR_OUT_OF_MEMORY : EMBER_ERR_CUDA;
    cudaError_t e = cudaSuccess;
    if (s == CUBLAS_STATUS_EXECUTION_FAILED || s == CUBLAS_STATUS_INTERNAL_ERROR) {
        e = cudaPeekAtLastError();
        if (ember_cuda_is_sticky(e)) st = EMBER_ERR_DEVICE_LOST;
        else if (e != cudaSuccess) (void)cudaGetLastError();
    }
    return ember_fail(st, "%s failed in %s (%s:%d): %s: %s%s%s", expr, func, base_name(file), line,
                      cublasGetStatusName(s), cublasGetStatusString(s),
                      st == EMBER_ERR_DEVICE_LOST ? "; CUDA: " : "",
                      st == EMBER_ERR_DEVICE_LOST ? cudaGetErrorName(e) : "");
}

int ember_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

/* ---- state ------------------------------------------------------------------------------------ */

typedef struct cuda_layer {
    void *qkv_w, *qkv_b; /* (3H,H), (3H) dt */
    void *ao_w, *ao_b;   /* (H,H), (H)      */
    void *i_w, *i_b;     /* (I,H), (I)      */
    void *o_w, *o_b;     /* (H,I), (H)      */
    void *ln1_g, *ln1_b, *ln2_g, *ln2_b; /* (H) f32 */
} cuda_layer;

typedef struct cuda_state {
    int device;
    ember_dtype dt;
    size_t esize; /* bytes per element of dt */
    int poisoned;
    char poison_msg[512];

    void *warena; /* weights */
    size_t wbytes;
    void *word, *pos, *type; /* (V,E), (P,E), (ember_type_rows,E) dt */
    void *emb_g, *emb_b; /* (E) f32 */
    void *proj_w, *proj_b; /* (H,E), (H) dt: ELECTRA's embeddings_project, NULL when E == H */
    cuda_layer *layers;
    void *pool_w, *pool_b; /* NULL without a pooler */
    void *head_dense_w, *head_dense_b; /* (H,H), (H) dt: a sequence head's dense (BERT: the pooler) */
    void *head_out_w, *head_out_b;     /* (L,H), (L) dt, NULL without a head */

    void *lt_ws; /* cuBLASLt workspace */
    ember_cuda_gemm *gemm;
    int *d_err;  /* device error flags (EMBER_BAD_* bits): [ERR_ASYNC], [ERR_CALL] */
    int *h_err;  /* pinned mirrors of both, then [H_TOTAL] = T read back by padding removal */

    void *ws; /* activations for cap_tokens tokens */
    size_t ws_bytes;
    int64_t cap_tokens;
    void *x, *x1, *ctx, *tmp; /* (T,H) each             */
    void *big;                /* (T, max(3H, I, E)): E-wide embeddings, qkv, the FFN intermediate;
                               * f32 scratch of a sequence head after the encoder */
    int32_t *cu_seqlens;      /* (T+1) packing plan (B <= T sequences) */
    int32_t *index, *inverse; /* (T), (T)                              */
    int32_t *positions;       /* (T) RoBERTa's default position ids     */
    /* graph staging: the inputs and outputs a whole-forward graph reads and writes */
    int64_t io_tokens;                           /* min(T, GRAPH_TOKENS)             */
    int32_t *io_ids, *io_mask, *io_types, *io_pos; /* (io_tokens) each              */
    float *io_f32;            /* io_tokens x (max(E,H) + H + labels) floats: embeds in, then
                               * last_hidden_state, pooler_output and logits out, in the
                               * call's dtypes                                              */
    ember_attn_scratch sc;    /* cuDNN attention's per-sequence tensors (T+1 each) */

    cudaEvent_t done;         /* recorded at the end of every forward           */
    cudaStream_t last_stream; /* stream of the last ASYNC forward, ...          */
    int pending;              /* ... whose work may still run                   */
    int graphs;               /* ember_load_options.cuda_graphs                 */
    ember_graph_cache gcache;
    ember_tuner tuner;        /* the candidates' choices (host/tune.h)          */
    ember_cudnn *dnn;         /* cuDNN's candidates, NULL without the library   */
    int pdl_ok;               /* PDL possible: compute capability 9.0+ and kernels with the
                               * grid-dependency wait (ember_cuda_pdl_probe)     */
    int pdl_mode;             /* EMBER_PDL: -1 tuned per graphed shape, 0 off, 1 on */
} cuda_state;

enum { ERR_ASYNC = 0, ERR_CALL = 1, H_TOTAL = 2 };

static size_t align_up(size_t n) { return (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN; }

/* Record a sticky failure so that later calls fail fast, and give the device back. */
static ember_status leave(cuda_state *s, int prev_device, ember_status st) {
    if (st == EMBER_ERR_DEVICE_LOST && !s->poisoned) {
        s->poisoned = 1;
        snprintf(s->poison_msg, sizeof s->poison_msg, "%s", ember_last_error());
    }
    if (prev_device >= 0 && prev_device != s->device) (void)cudaSetDevice(prev_device);
    return st;
}

/* Fail fast on a poisoned model; make the model's device current (restored by leave). */
static ember_status enter(cuda_state *s, int *prev_device) {
    *prev_device = -1;
    if (s->poisoned)
        return ember_fail(EMBER_ERR_DEVICE_LOST,
                          "this model hit a sticky CUDA error earlier and cannot be used; free it "
                          "and load it again (first error: %s)", s->poison_msg);
    int cur = -1;
    EMBER_CUDA_CHECK(cudaGetDevice(&cur));
    if (cur != s->device) EMBER_CUDA_CHECK(cudaSetDevice(s->device));
    *prev_device = cur;
    return EMBER_OK;
}

static void free_state(cuda_state *s) {
    if (!s) return;
    /* Errors are ignored: after a sticky error these calls fail, and there is nothing to do. */
    ember_graph_cache_free(&s->gcache); /* in-flight graphs are freed on completion */
    ember_tuner_free(&s->tuner);
    /* cuDNN's plans last until the model's work is done (graphs may hold their kernels) */
    if (s->dnn && s->done) (void)cudaEventSynchronize(s->done);
    ember_cudnn_destroy(s->dnn);
    if (s->done) cudaEventDestroy(s->done);
    ember_cuda_gemm_destroy(s->gemm);
    if (s->ws) cudaFree(s->ws);
    if (s->lt_ws) cudaFree(s->lt_ws);
    if (s->warena) cudaFree(s->warena);
    if (s->d_err) cudaFree(s->d_err);
    if (s->h_err) cudaFreeHost(s->h_err);
    (void)cudaGetLastError();
    free(s->layers);
    free(s);
}

/* ---- init: upload the weights ---------------------------------------------------------------- */

typedef struct upload {
    const float *src;
    size_t n;
    int keep_f32; /* LayerNorm parameters stay f32 */
    void **dst;
    size_t off;
} upload;

static void plan(upload *u, int *k, const float *src, size_t n, int keep_f32, void **dst) {
    u[*k] = (upload){.src = src, .n = n, .keep_f32 = keep_f32, .dst = dst};
    (*k)++;
}

static ember_status upload_weights(ember_model *m, cuda_state *s, const ember_weights *w) {
    const ember_config *c = &m->cfg;
    const size_t H = (size_t)c->hidden_size, I = (size_t)c->intermediate_size;
    const size_t E = (size_t)c->embedding_size, NL = (size_t)c->num_labels;
    const int L = c->num_hidden_layers;
    upload *u = calloc((size_t)(13 + 12 * L), sizeof *u);
    if (!u) return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "cannot allocate the upload plan");
    int k = 0;
    plan(u, &k, w->word, (size_t)c->vocab_size * E, 0, &s->word);
    plan(u, &k, w->position, (size_t)c->max_position_embeddings * E, 0, &s->pos);
    plan(u, &k, w->token_type, (size_t)ember_type_rows(c) * E, 0, &s->type);
    plan(u, &k, w->emb_ln_g, E, 1, &s->emb_g);
    plan(u, &k, w->emb_ln_b, E, 1, &s->emb_b);
    if (w->emb_proj_w) {
        plan(u, &k, w->emb_proj_w, H * E, 0, &s->proj_w);
        plan(u, &k, w->emb_proj_b, H, 0, &s->proj_b);
    }
    for (int l = 0; l < L; l++) {
        const ember_layer_weights *hw = &w->layers[l];
        cuda_layer *d = &s->layers[l];
        plan(u, &k, hw->qkv_w, 3 * H * H, 0, &d->qkv_w);
        plan(u, &k, hw->qkv_b, 3 * H, 0, &d->qkv_b);
        plan(u, &k, hw->attn_out_w, H * H, 0, &d->ao_w);
        plan(u, &k, hw->attn_out_b, H, 0, &d->ao_b);
        plan(u, &k, hw->attn_ln_g, H, 1, &d->ln1_g);
        plan(u, &k, hw->attn_ln_b, H, 1, &d->ln1_b);
        plan(u, &k, hw->inter_w, I * H, 0, &d->i_w);
        plan(u, &k, hw->inter_b, I, 0, &d->i_b);
        plan(u, &k, hw->out_w, H * I, 0, &d->o_w);
        plan(u, &k, hw->out_b, H, 0, &d->o_b);
        plan(u, &k, hw->out_ln_g, H, 1, &d->ln2_g);
        plan(u, &k, hw->out_ln_b, H, 1, &d->ln2_b);
    }
    if (c->has_pooler && w->pool_w && w->pool_b) {
        plan(u, &k, w->pool_w, H * H, 0, &s->pool_w);
        plan(u, &k, w->pool_b, H, 0, &s->pool_b);
    }
    if (w->head_dense_w && w->head_dense_w != w->pool_w) {
        plan(u, &k, w->head_dense_w, H * H, 0, &s->head_dense_w);
        plan(u, &k, w->head_dense_b, H, 0, &s->head_dense_b);
    }
    if (w->head_out_w) {
        plan(u, &k, w->head_out_w, NL * H, 0, &s->head_out_w);
        plan(u, &k, w->head_out_b, NL, 0, &s->head_out_b);
    }

    size_t total = 0, stage_n = 0;
    for (int i = 0; i < k; i++) {
        u[i].off = total;
        total = align_up(total + u[i].n * (u[i].keep_f32 ? sizeof(float) : s->esize));
        if (!u[i].keep_f32 && s->dt != EMBER_DTYPE_F32 && u[i].n > stage_n) stage_n = u[i].n;
    }
    float *stage = NULL;
    ember_status st = EMBER_OK;
    cudaError_t e = cudaMalloc(&s->warena, total);
    if (e != cudaSuccess) {
        s->warena = NULL;
        st = ember_cuda_fail(e, "cudaMalloc(&s->warena, total)", __func__, __FILE__, __LINE__);
        ember_fail_context(st, "uploading %zu bytes of weights to device %d", total, s->device);
        goto done;
    }
    s->wbytes = total;
    if (stage_n) {
        e = cudaMalloc((void **)&stage, stage_n * sizeof(float));
        if (e != cudaSuccess) {
            stage = NULL;
            st = ember_cuda_fail(e, "cudaMalloc(&stage)", __func__, __FILE__, __LINE__);
            goto done;
        }
    }
    for (int i = 0; i < k && st == EMBER_OK; i++) {
        void *dst = (char *)s->warena + u[i].off;
        *u[i].dst = dst;
        const size_t bytes = u[i].n * sizeof(float);
        if (u[i].keep_f32 || s->dt == EMBER_DTYPE_F32) {
            e = cudaMemcpy(dst, u[i].src, bytes, cudaMemcpyHostToDevice);
            if (e != cudaSuccess)
                st = ember_cuda_fail(e, "cudaMemcpy(weights)", __func__, __FILE__, __LINE__);
        } else {
            /* Pageable cudaMemcpy waits for the previous conversion on the legacy stream
             * before it overwrites the staging buffer. */
            e = cudaMemcpy(stage, u[i].src, bytes, cudaMemcpyHostToDevice);
            if (e != cudaSuccess)
                st = ember_cuda_fail(e, "cudaMemcpy(stage)", __func__, __FILE__, __LINE__);
            else
                st = ember_cuda_convert(dst, s->dt, stage, EMBER_DTYPE_F32, (int64_t)u[i].n, 0);
        }
    }
    if (st == EMBER_OK) {
        e = cudaStreamSynchronize(0);
        if (e != cudaSuccess)
            st = ember_cuda_fail(e, "cudaStreamSynchronize(0)", __func__, __FILE__, __LINE__);
    }
done:
    if (stage) cudaFree(stage);
    free(u);
    if (w->head_dense_w && w->head_dense_w == w->pool_w) { /* BERT: the head's dense is the pooler */
        s->head_dense_w = s->pool_w;
        s->head_dense_b = s->pool_b;
    }
    return st;
}

static ember_status check_supported(const ember_model *m) {
    const ember_config *c = &m->cfg;
    const int HD = c->hidden_size / c->num_attention_heads;
    if (HD > EMBER_CUDA_MAX_HEAD_SIZE)
        return ember_fail(EMBER_ERR_UNSUPPORTED,
                          "attention head size %d (hidden_size %d / %d heads): the CUDA backend "
                          "supports head sizes up to %d", HD, c->hidden_size,
                          c->num_attention_heads, EMBER_CUDA_MAX_HEAD_SIZE);
    if (m->dtype != EMBER_DTYPE_F32 && m->dtype != EMBER_DTYPE_F16 && m->dtype != EMBER_DTYPE_BF16)
        return ember_fail(EMBER_ERR_UNSUPPORTED, "compute dtype %d", (int)m->dtype);
    if (c->hidden_act != EMBER_ACT_GELU && c->hidden_act != EMBER_ACT_GELU_TANH &&
        c->hidden_act != EMBER_ACT_RELU)
        return ember_fail(EMBER_ERR_UNSUPPORTED, "activation %d", (int)c->hidden_act);
    /* The LayerNorm kernels stage one f32 row of H (the embeddings' of E) in shared memory. */
    int smem = 0;
    EMBER_CUDA_CHECK(cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin,
                                            m->device));
    const int row = c->hidden_size > c->embedding_size ? c->hidden_size : c->embedding_size;
    if ((size_t)row * sizeof(float) + 256 > (size_t)smem)
        return ember_fail(EMBER_ERR_UNSUPPORTED,
                          "hidden_size %d, embedding_size %d: a LayerNorm row needs %zu bytes of "
                          "shared memory, device %d has %d per block", c->hidden_size,
                          c->embedding_size, (size_t)row * sizeof(float), m->device, smem);
    return EMBER_OK;
}

/* The tuning table and what its choices depend on (the device, cuBLASLt, cuDNN). */
static ember_status init_tuner(ember_model *m, cuda_state *s) {
    int mode = 1;
    EMBER_TRY(ember_tune_mode(m->tuning, getenv("EMBER_TUNE"), &mode));
    ember_tuner_init(&s->tuner, mode);
    struct cudaDeviceProp p;
    EMBER_CUDA_CHECK(cudaGetDeviceProperties(&p, s->device));
    snprintf(s->tuner.device, sizeof s->tuner.device, "%.127s", p.name);
    s->tuner.cc_major = p.major;
    s->tuner.cc_minor = p.minor;
    s->tuner.lt_version = (long)cublasLtGetVersion();
    s->tuner.dnn_version = ember_cudnn_version(NULL);
    ember_cuda_gemm_set_tuner(s->gemm, &s->tuner);
    /* cuDNN shares cuBLASLt's workspace: both run in stream order on the caller's stream */
    return ember_cudnn_create(&s->dnn, s->lt_ws, LT_WORKSPACE_BYTES);
}

static ember_status init_state(ember_model *m, cuda_state *s, ember_weights *w) {
    EMBER_TRY(check_supported(m));
    s->layers = calloc((size_t)(m->cfg.num_hidden_layers > 0 ? m->cfg.num_hidden_layers : 1),
                       sizeof *s->layers);
    if (!s->layers) return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "cannot allocate the layer table");
    EMBER_TRY(upload_weights(m, s, w));
    EMBER_CUDA_CHECK(cudaMalloc(&s->lt_ws, LT_WORKSPACE_BYTES));
    EMBER_CUDA_CHECK(cudaMalloc((void **)&s->d_err, 2 * sizeof(int)));
    EMBER_CUDA_CHECK(cudaMemset(s->d_err, 0, 2 * sizeof(int)));
    EMBER_CUDA_CHECK(cudaMallocHost((void **)&s->h_err, 3 * sizeof(int)));
    EMBER_TRY(ember_cuda_gemm_create(&s->gemm, s->lt_ws, LT_WORKSPACE_BYTES));
    EMBER_TRY(init_tuner(m, s));
    EMBER_TRY(ember_tune_pdl_mode(getenv("EMBER_PDL"), &s->pdl_mode));
    /* before 9.0 PDL does not exist; after, only if the code this device runs waits */
    if (s->tuner.cc_major >= 9) EMBER_TRY(ember_cuda_pdl_probe(s->d_err, &s->pdl_ok));
    EMBER_CUDA_CHECK(cudaEventCreateWithFlags(&s->done, cudaEventDisableTiming));
    EMBER_TRY(ember_graph_cache_init(&s->gcache));
    s->graphs = m->cuda_graphs != 0;
    return EMBER_OK;
}

static ember_status cuda_init(ember_model *m, ember_weights *w) {
    m->impl = NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        (void)cudaGetLastError();
        return ember_fail(EMBER_ERR_NO_DEVICE, "no CUDA device: cudaGetDeviceCount returned %s (%s)%s",
                          cudaGetErrorName(e), cudaGetErrorString(e),
                          e == cudaSuccess ? " with 0 devices" : "");
    }
    if (m->device < 0 || m->device >= n)
        return ember_fail(EMBER_ERR_NO_DEVICE,
                          "no CUDA device %d: %d device(s) visible (check CUDA_VISIBLE_DEVICES)",
                          m->device, n);
    cuda_state *s = calloc(1, sizeof *s);
    if (!s) return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "cannot allocate the CUDA backend state");
    s->device = m->device;
    s->dt = m->dtype;
    s->esize = m->dtype == EMBER_DTYPE_F32 ? 4 : 2;
    int prev = -1;
    ember_status st = enter(s, &prev);
    if (st == EMBER_OK) st = init_state(m, s, w);
    leave(s, prev, st);
    if (st != EMBER_OK) {
        free_state(s);
        return ember_fail_context(st, "CUDA backend on device %d", m->device);
    }
    m->impl = s;
    return EMBER_OK;
}

static void cuda_destroy(ember_model *m) {
    cuda_state *s = m->impl;
    if (!s) return;
    int cur = -1;
    if (cudaGetDevice(&cur) == cudaSuccess && cur != s->device) (void)cudaSetDevice(s->device);
    free_state(s);
    if (cur >= 0 && cur != m->device) (void)cudaSetDevice(cur);
    (void)cudaGetLastError();
    m->impl = NULL;
}

/* ---- workspace ---------------------------------------------------------------------------------- */

static ember_status reserve_impl(ember_model *m, cuda_state *s, int64_t T) {
    const size_t H = (size_t)m->cfg.hidden_size, I = (size_t)m->cfg.intermediate_size;
    const size_t E = (size_t)m->cfg.embedding_size;
    const size_t wide3 = 3 * H > I ? 3 * H : I, wide = wide3 > E ? wide3 : E;
    const size_t act = align_up((size_t)T * H * s->esize);
    const size_t big = align_up((size_t)T * wide * s->esize);
    const size_t ints = align_up(sizeof(int32_t) * (size_t)T);
    const size_t seq32 = align_up(sizeof(int32_t) * (size_t)(T + 1));
    const size_t seq64 = align_up(sizeof(int64_t) * (size_t)(T + 1));
    const int64_t io_tokens = T < GRAPH_TOKENS ? T : GRAPH_TOKENS;
    const size_t io_ints = align_up(sizeof(int32_t) * (size_t)io_tokens);
    const size_t io_f32 = align_up(sizeof(float) * (size_t)io_tokens *
                                   ((E > H ? E : H) + H + (size_t)m->cfg.num_labels));
    const size_t total = 4 * act + big + seq32 + 3 * ints + 3 * seq32 + 2 * seq64 + 4 * io_ints +
                         io_f32;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, total);
    if (e != cudaSuccess) {
        ember_status st = ember_cuda_fail(e, "cudaMalloc(&workspace, total)", __func__, __FILE__,
                                          __LINE__);
        return ember_fail_context(st, "workspace of %zu bytes for %lld tokens (the model keeps "
                                  "its previous workspace)", total, (long long)T);
    }
    if (s->ws) EMBER_CUDA_CHECK(cudaFree(s->ws)); /* waits for work still using it */
    ember_graph_cache_clear(&s->gcache);          /* the graphs point into the old one */
    s->ws = p;
    s->ws_bytes = total;
    s->cap_tokens = T;
    char *b = p;
    s->x = b;
    s->x1 = b + act;
    s->ctx = b + 2 * act;
    s->tmp = b + 3 * act;
    s->big = b + 4 * act;
    b += 4 * act + big;
    s->cu_seqlens = (int32_t *)b;
    b += align_up(sizeof(int32_t) * (size_t)(T + 1));
    s->index = (int32_t *)b;
    s->inverse = (int32_t *)(b + ints);
    s->positions = (int32_t *)(b + 2 * ints);
    b += 3 * ints;
    s->sc.seq_q = (int32_t *)b;
    s->sc.seq_kv = (int32_t *)(b + seq32);
    s->sc.only = (int32_t *)(b + 2 * seq32);
    s->sc.off_qkv = (int64_t *)(b + 3 * seq32);
    s->sc.off_o = (int64_t *)(b + 3 * seq32 + seq64);
    b += 3 * seq32 + 2 * seq64;
    s->io_tokens = io_tokens;
    s->io_ids = (int32_t *)b;
    s->io_mask = (int32_t *)(b + io_ints);
    s->io_types = (int32_t *)(b + 2 * io_ints);
    s->io_pos = (int32_t *)(b + 3 * io_ints);
    s->io_f32 = (float *)(b + 4 * io_ints);
    return EMBER_OK;
}

static ember_status cuda_reserve(ember_model *m, int max_batch, int max_seq_len) {
    cuda_state *s = m->impl;
    const int64_t T = (int64_t)max_batch * max_seq_len;
    int prev;
    ember_status st = enter(s, &prev);
    if (st == EMBER_OK && T > s->cap_tokens) st = reserve_impl(m, s, T);
    return leave(s, prev, st);
}

/* ---- forward ------------------------------------------------------------------------------------ */

/* Turn the device error flag into a status naming every kind of bad value seen. */
static ember_status report_flag(const ember_config *c, int flag, const char *call) {
    if (!flag) return EMBER_OK;
    char what[512] = "";
    size_t n = 0;
    if (flag & EMBER_BAD_ID)
        n += (size_t)snprintf(what + n, sizeof what - n, "%sinput_ids outside [0, vocab_size = %d)",
                              n ? "; " : "", c->vocab_size);
    if ((flag & EMBER_BAD_TOKEN_TYPE) && n < sizeof what)
        n += (size_t)snprintf(what + n, sizeof what - n,
                              "%stoken_type_ids outside [0, type_vocab_size = %d)", n ? "; " : "",
                              c->type_vocab_size);
    if ((flag & EMBER_BAD_POSITION) && n < sizeof what)
        n += (size_t)snprintf(what + n, sizeof what - n,
                              "%sposition_ids outside [0, max_position_embeddings = %d)",
                              n ? "; " : "", c->max_position_embeddings);
    if ((flag & EMBER_BAD_MASK) && n < sizeof what)
        n += (size_t)snprintf(what + n, sizeof what - n,
                              "%sattention_mask values other than 0 and 1", n ? "; " : "");
    if ((flag & EMBER_BAD_NONFINITE) && n < sizeof what)
        n += (size_t)snprintf(what + n, sizeof what - n,
                              "%sNaN or Inf in inputs_embeds / embedding_output (rejected)",
                              n ? "; " : "");
    if ((flag & EMBER_BAD_VALID_TOKENS) && n < sizeof what)
        snprintf(what + n, sizeof what - n,
                 "%sa valid_tokens count that differs from the number of nonzero "
                 "attention_mask values", n ? "; " : "");
    const ember_status st = (flag & (EMBER_BAD_ID | EMBER_BAD_TOKEN_TYPE | EMBER_BAD_POSITION))
                                ? EMBER_ERR_OUT_OF_RANGE
                                : EMBER_ERR_INVALID_ARGUMENT;
    return ember_fail(st, "%s: the device found %s (clamped; the outputs of this call are not "
                      "valid, the model is still usable)", call, what);
}

/* Make `stream` wait (on the device) for the model's last ASYNC forward when that one ran on
 * another stream: both use the workspace. */
static ember_status order_after_pending(cuda_state *s, cudaStream_t stream) {
    if (s->pending && stream != s->last_stream)
        EMBER_CUDA_CHECK(cudaStreamWaitEvent(stream, s->done, 0));
    return EMBER_OK;
}

/* Wait for the stream and read the call's error flag (d_err[ERR_CALL]). */
static ember_status finish(const ember_config *c, cuda_state *s, cudaStream_t stream,
                           const char *call) {
    EMBER_CUDA_CHECK(cudaMemcpyAsync(s->h_err + ERR_CALL, s->d_err + ERR_CALL, sizeof(int),
                                     cudaMemcpyDeviceToHost, stream));
    EMBER_CUDA_CHECK(cudaStreamSynchronize(stream));
    s->pending = 0; /* the stream waited for the previous ASYNC call too */
    return report_flag(c, s->h_err[ERR_CALL], call);
}

/* What one forward runs on: T rows (the packed valid tokens, or all B*S). */
typedef struct fwd {
    ember_model *m;
    cuda_state *s;
    int B, S, N, T;
    int packed;            /* padding removal: T rows, attention by cu_seqlens */
    const int32_t *mask;   /* the mask the attention reads (NULL = none)       */
    void *hs;              /* hidden_states (L+1,B,S,H) in odt, or NULL        */
    ember_dtype odt;       /* ember_outputs.dtype                              */
    size_t osize;          /* its bytes per element                            */
} fwd;

/* Row n of a caller's (.., H) output in odt. */
static void *out_rows(const fwd *f, void *base, int64_t n) {
    return base ? (char *)base + (size_t)n * f->m->cfg.hidden_size * f->osize : NULL;
}

/* out (B,S,H) in odt = the current hidden state s->x in the padded layout. */
static ember_status emit(const fwd *f, void *out, cudaStream_t stream) {
    const cuda_state *s = f->s;
    const int H = f->m->cfg.hidden_size;
    if (f->packed)
        return ember_cuda_unpack_rows(out, f->odt, s->x, s->dt, s->inverse, f->N, H, stream);
    return ember_cuda_convert(out, f->odt, s->x, s->dt, (int64_t)f->N * H, stream);
}

/* The final LayerNorm of layer l alone (the tail's half of the last layer). */
static ember_status enqueue_layer_final_ln(const fwd *f, int l, void *out_x,
                                           cudaStream_t stream) {
    const ember_config *c = &f->m->cfg;
    cuda_state *s = f->s;
    const cuda_layer *w = &s->layers[l];
    return ember_cuda_bias_residual_layernorm(s->x, out_x, f->odt, s->tmp, w->o_b, s->x1,
                                              w->ln2_g, w->ln2_b, f->T, c->hidden_size,
                                              c->layer_norm_eps, s->dt, stream);
}

/* Layer l up to (and, if final_ln, including) its last LayerNorm; out_x (T,H) in odt as in
 * ember_cuda_bias_residual_layernorm. */
static ember_status enqueue_layer(const fwd *f, int l, int final_ln, void *out_x,
                                  cudaStream_t stream) {
    const ember_config *c = &f->m->cfg;
    cuda_state *s = f->s;
    const cuda_layer *w = &s->layers[l];
    const int H = c->hidden_size, I = c->intermediate_size, T = f->T;
    const int NH = c->num_attention_heads, HD = H / NH;
    const double eps = c->layer_norm_eps;
    const ember_dtype dt = s->dt;
    EMBER_TRY(ember_cuda_linear(s->big, s->x, w->qkv_w, w->qkv_b, T, H, 3 * H, H, dt, s->gemm,
                                stream));
    EMBER_TRY(ember_attention(&s->tuner, s->dnn, &s->sc, s->ctx, s->big, f->packed ? NULL : f->mask,
                              f->packed ? s->cu_seqlens : NULL, f->B, f->S, T, NH, HD, dt, stream));
    EMBER_TRY(ember_cuda_linear(s->tmp, s->ctx, w->ao_w, NULL, T, H, H, H, dt, s->gemm, stream));
    EMBER_TRY(ember_cuda_bias_residual_layernorm(s->x1, NULL, dt, s->tmp, w->ao_b, s->x,
                                                 w->ln1_g, w->ln1_b, T, H, eps, dt, stream));
    EMBER_TRY(ember_ffn_in(&s->tuner, s->dnn, s->gemm, s->big, s->x1, w->i_w, w->i_b, T, H, I,
                           (int)c->hidden_act, dt, stream));
    EMBER_TRY(ember_cuda_linear(s->tmp, s->big, w->o_w, NULL, T, I, H, I, dt, s->gemm, stream));
    if (!final_ln) return EMBER_OK;
    return enqueue_layer_final_ln(f, l, out_x, stream);
}

/* The body: every layer except the last one's final LayerNorm, and the hidden_states of
 * layers 1..L-1. Reads and writes model-owned buffers only when hs is NULL. */
static ember_status enqueue_body(void *ctx, cudaStream_t stream) {
    const fwd *f = ctx;
    const int L = f->m->cfg.num_hidden_layers;
    for (int l = 0; l < L; l++) {
        void *hs_l = out_rows(f, f->hs, (int64_t)(l + 1) * f->N);
        const int last = l == L - 1;
        EMBER_TRY(enqueue_layer(f, l, !last, f->packed ? NULL : hs_l, stream));
        if (!last && f->packed && hs_l) EMBER_TRY(emit(f, hs_l, stream));
    }
    return EMBER_OK;
}

/* The head after the encoder (host/backend_cpu.c's head()), from the final hidden state s->x
 * in the compute dtype (what last_hidden_state gets before any rounding to the output dtype):
 * the family's dense + activation on token 0 into f32 scratch (s->big, which the encoder no
 * longer needs), then the logits; or the logits of every token. Packed: token 0 rows (zero
 * when masked) as the pooler reads them; every token's row unpacked to f32 with zero rows. */
static ember_status enqueue_logits(const fwd *f, const ember_outputs *out, cudaStream_t stream) {
    const ember_config *c = &f->m->cfg;
    cuda_state *s = f->s;
    const int H = c->hidden_size, L = c->num_labels;
    const ember_dtype dt = s->dt;
    float *scratch = s->big; /* N*H floats fit: big holds T * 3H elements of >= 2 bytes */
    if (c->head == EMBER_HEAD_TOKEN_CLASSIFICATION) {
        if (!f->packed)
            return ember_cuda_dense(out->logits, f->odt, s->x, dt, H, s->head_out_w, s->head_out_b,
                                    f->N, H, L, EMBER_HEAD_ACT_NONE, dt, stream);
        EMBER_TRY(ember_cuda_unpack_rows(scratch, EMBER_DTYPE_F32, s->x, dt, s->inverse, f->N, H,
                                         stream));
        return ember_cuda_dense(out->logits, f->odt, scratch, EMBER_DTYPE_F32, H, s->head_out_w,
                                s->head_out_b, f->N, H, L, EMBER_HEAD_ACT_NONE, dt, stream);
    }
    const void *first = s->x;
    int64_t ld = (int64_t)f->S * H;
    if (f->packed) {
        EMBER_TRY(ember_cuda_first_rows(s->ctx, s->x, s->inverse, f->B, f->S, H, dt, stream));
        first = s->ctx;
        ld = H;
    }
    EMBER_TRY(ember_cuda_dense(scratch, EMBER_DTYPE_F32, first, dt, ld, s->head_dense_w,
                               s->head_dense_b, f->B, H, H, ember_arch_get(c->arch)->seq_act, dt,
                               stream));
    return ember_cuda_dense(out->logits, f->odt, scratch, EMBER_DTYPE_F32, H, s->head_out_w,
                            s->head_out_b, f->B, H, L, EMBER_HEAD_ACT_NONE, dt, stream);
}

/* The tail: the last LayerNorm with last_hidden_state (and hidden_states[L]) written, then the
 * pooler. */
static ember_status enqueue_tail(const fwd *f, const ember_outputs *out, cudaStream_t stream) {
    const ember_config *c = &f->m->cfg;
    cuda_state *s = f->s;
    const int H = c->hidden_size, L = c->num_hidden_layers;
    void *hs_L = out_rows(f, f->hs, (int64_t)L * f->N);
    if (L > 0) {
        void *dst = f->packed ? NULL : hs_L ? hs_L : out->last_hidden_state;
        EMBER_TRY(enqueue_layer_final_ln(f, L - 1, dst, stream));
    }
    if (f->packed || L == 0) {
        if (hs_L && L > 0) EMBER_TRY(emit(f, hs_L, stream));
        EMBER_TRY(emit(f, out->last_hidden_state, stream));
    } else if (hs_L) {
        EMBER_CUDA_CHECK(cudaMemcpyAsync(out->last_hidden_state, hs_L,
                                         f->osize * (size_t)f->N * H, cudaMemcpyDeviceToDevice,
                                         stream));
    }
    if (out->pooler_output) {
        if (!s->pool_w)
            return ember_fail(EMBER_ERR_UNSUPPORTED, "pooler_output requested without a pooler");
        if (!f->packed) {
            EMBER_TRY(ember_cuda_pooler(out->pooler_output, f->odt, s->x, s->pool_w, s->pool_b,
                                        f->B, f->S, H, s->tmp, s->dt, s->gemm, stream));
        } else {
            /* packed: row 0 of each sequence, or a zero row when token 0 is masked */
            EMBER_TRY(ember_cuda_first_rows(s->ctx, s->x, s->inverse, f->B, f->S, H, s->dt, stream));
            EMBER_TRY(ember_cuda_pooler(out->pooler_output, f->odt, s->ctx, s->pool_w, s->pool_b,
                                        f->B, 1, H, s->tmp, s->dt, s->gemm, stream));
        }
    }
    return out->logits ? enqueue_logits(f, out, stream) : EMBER_OK;
}

/* The embeddings of the T rows into s->x: E-wide rows (into s->big when E != H) with the
 * family's default positions, then ELECTRA's projection to H. */
static ember_status enqueue_embeddings(const fwd *f, const ember_inputs *in, int *err,
                                       cudaStream_t stream) {
    const ember_config *c = &f->m->cfg;
    cuda_state *s = f->s;
    const int H = c->hidden_size, E = c->embedding_size;
    const ember_dtype dt = s->dt, edt = in->embeds_dtype;
    const double eps = c->layer_norm_eps;
    const int32_t *pos = in->position_ids;
    if (!pos && ember_arch_get(c->arch)->padding_positions) {
        EMBER_TRY(ember_cuda_position_ids(s->positions, in->input_ids, f->B, f->S, c->pad_token_id,
                                          stream));
        pos = s->positions;
    }
    void *emb = E != H ? s->big : s->x;
    if (f->packed)
        EMBER_TRY(ember_cuda_embed_layernorm_packed(
            emb, s->index, f->T, in->input_ids, in->inputs_embeds, edt, in->token_type_ids, pos,
            s->word, s->pos, s->type, s->emb_g, s->emb_b, f->S, E, c->vocab_size,
            c->max_position_embeddings, ember_type_rows(c), eps, dt, err, stream));
    else
        EMBER_TRY(ember_cuda_embed_layernorm(emb, in->input_ids, in->inputs_embeds, edt,
                                             in->token_type_ids, pos, s->word, s->pos, s->type,
                                             s->emb_g, s->emb_b, f->B, f->S, E, c->vocab_size,
                                             c->max_position_embeddings, ember_type_rows(c), eps,
                                             dt, err, stream));
    if (E == H || f->T == 0) return EMBER_OK;
    return ember_cuda_linear(s->x, emb, s->proj_w, s->proj_b, f->T, E, H, E, dt, s->gemm, stream);
}

/* The head: error flag, input checks, packing plan (and T read back), embeddings. */
static ember_status enqueue_head(fwd *f, const ember_inputs *in, int *err, int async,
                                 cudaStream_t stream) {
    const ember_config *c = &f->m->cfg;
    cuda_state *s = f->s;
    const int H = c->hidden_size;
    const ember_dtype dt = s->dt;
    if (!async) EMBER_CUDA_CHECK(cudaMemsetAsync(err, 0, sizeof(int), stream));
    EMBER_TRY(ember_cuda_check_mask(in->attention_mask, f->N, err, stream));
    const ember_dtype edt = in->embeds_dtype;
    EMBER_TRY(ember_cuda_check_finite(in->inputs_embeds, edt, (int64_t)f->N * c->embedding_size,
                                      err, stream));
    EMBER_TRY(ember_cuda_check_finite(in->embedding_output, edt, (int64_t)f->N * H, err, stream));
    if (f->packed) {
        /* the packed embedding reads only valid tokens: check every token here */
        if (!in->embedding_output)
            EMBER_TRY(ember_cuda_check_indices(in->input_ids, c->vocab_size, in->token_type_ids,
                                               ember_type_rows(c), in->position_ids,
                                               c->max_position_embeddings, f->N, err, stream));
        const int given = in->valid_tokens > 0; /* checked <= N by ember_forward */
        EMBER_TRY(ember_cuda_pack_plan(in->attention_mask, f->B, f->S,
                                       given ? in->valid_tokens : -1, s->cu_seqlens, s->index,
                                       s->inverse, err, stream));
        if (given) {
            f->T = in->valid_tokens; /* the device flags a count that differs */
        } else {
            EMBER_CUDA_CHECK(cudaMemcpyAsync(s->h_err + H_TOTAL, s->cu_seqlens + f->B,
                                             sizeof(int32_t), cudaMemcpyDeviceToHost, stream));
            /* the one synchronisation: T sizes the GEMMs */
            EMBER_CUDA_CHECK(cudaStreamSynchronize(stream));
            f->T = s->h_err[H_TOTAL];
        }
        if (f->T < 0 || f->T > f->N)
            return ember_fail(EMBER_ERR_INTERNAL, "packing plan: %d valid tokens of %d", f->T,
                              f->N);
        if (in->embedding_output)
            return ember_cuda_gather_rows(s->x, dt, in->embedding_output, edt, s->index, f->T, H,
                                          stream);
        return enqueue_embeddings(f, in, err, stream);
    }
    if (in->embedding_output)
        return ember_cuda_convert(s->x, dt, in->embedding_output, edt, (int64_t)f->N * H, stream);
    return enqueue_embeddings(f, in, err, stream);
}

/* Head, body and tail of one forward on `stream`, with ordinary launches. */
static ember_status enqueue_plain(fwd *fp, const ember_inputs *in, const ember_outputs *out,
                                  int *err, int async, cudaStream_t stream) {
    fwd f = *fp;
    const ember_config *c = &f.m->cfg;
    EMBER_TRY(enqueue_head(&f, in, err, async, stream));
    if (f.hs) EMBER_TRY(emit(&f, f.hs, stream));
    const int L = c->num_hidden_layers;
    if (f.T > 0 && L > 0) {
        EMBER_TRY(enqueue_body(&f, stream));
    } else if (f.hs) { /* no valid token: every hidden state is zero rows */
        for (int l = 1; l < L; l++) EMBER_TRY(emit(&f, out_rows(&f, f.hs, (int64_t)l * f.N), stream));
    }
    return enqueue_tail(&f, out, stream);
}

/* A whole forward as the graph holds it: staged inputs and outputs, all model-owned. */
typedef struct whole {
    fwd f;
    ember_inputs in;
    ember_outputs out;
    int *err;
    int async;
} whole;

static ember_status enqueue_whole(void *ctx, cudaStream_t stream) {
    whole *w = ctx;
    return enqueue_plain(&w->f, &w->in, &w->out, w->err, w->async, stream);
}

/* Copy n elements of `size` bytes from the caller's src to dst (device to device). */
static ember_status stage(void *dst, const void *src, size_t n, size_t size, cudaStream_t stream) {
    if (src) EMBER_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * size, cudaMemcpyDeviceToDevice, stream));
    return EMBER_OK;
}

/* Programmatic dependent launch as a candidate of a graphed forward (ember.h, EMBER_TUNE_PDL):
 * at the shape's capture the tuner runs the graph captured with PDL off (candidate 0) and on
 * (1), each captured when first asked for, checks that both give the same bits, times them
 * (graph launches, as every later call of the shape) and keeps the faster. A recorded choice
 * (another graph of the same B, S and mask, or an imported one) is captured alone. */
typedef struct pdl_pick {
    cuda_state *s;
    ember_graph_cache *c;
    ember_graph_body body;
    void *ctx;
    cudaGraphExec_t exec[2];
    int64_t p[3];            /* the key: B, S, mask given                              */
    const void *out;         /* what the graph writes, count elements of odt: checked  */
    size_t count;
    ember_dtype odt;
    void *restage;           /* inputs_embeds staged in io, which the graph overwrites */
    const void *embeds;
    size_t embeds_bytes;
} pdl_pick;

static ember_status pdl_run(void *ctx, int cand, cudaStream_t stream) {
    pdl_pick *k = ctx;
    if (!k->exec[cand]) {
        const int was = ember_cuda_pdl_set(cand);
        const ember_status st = ember_graph_capture(k->c, k->body, k->ctx, &k->exec[cand]);
        ember_cuda_pdl_set(was);
        EMBER_TRY(st);
    }
    if (k->embeds_bytes)
        EMBER_CUDA_CHECK(cudaMemcpyAsync(k->restage, k->embeds, k->embeds_bytes,
                                         cudaMemcpyDeviceToDevice, stream));
    EMBER_CUDA_CHECK(cudaGraphLaunch(k->exec[cand], stream));
    return EMBER_OK;
}

static ember_status pdl_make(void *mctx, ember_graph_cache *c, ember_graph_body body, void *ctx,
                             cudaStream_t stream, cudaGraphExec_t *exec) {
    pdl_pick *k = mctx;
    k->c = c;
    k->body = body;
    k->ctx = ctx;
    ember_tune_job job = ember_tune_job_of(EMBER_TUNE_PDL, k->s->dt, k->p, 3, 2, pdl_run, k,
                                           k->out, k->count);
    job.dt = k->odt; /* the outputs' type; the key keeps the compute dtype */
    int chosen = 0;
    const ember_status st = ember_tune_run(&k->s->tuner, &job, stream, &chosen);
    *exec = st == EMBER_OK ? k->exec[chosen] : NULL;
    for (int i = 0; i < 2; i++) /* a graph still running is freed when it completes */
        if (k->exec[i] && k->exec[i] != *exec) (void)cudaGraphExecDestroy(k->exec[i]);
    return st;
}

/* The forward as one CUDA graph per shape (and per set of inputs given, outputs asked for,
 * dtypes, ASYNC or not): inputs copied in, the graph, outputs copied out. io_f32 holds the
 * embeds in (E wide, embeds_dtype), then last_hidden_state, pooler_output and logits
 * (outputs.dtype). */
static ember_status enqueue_graphed(fwd *fp, const ember_inputs *in, const ember_outputs *out,
                                    int *err, int async, cudaStream_t stream) {
    cuda_state *s = fp->s;
    const ember_config *c = &fp->m->cfg;
    const size_t N = (size_t)fp->N, H = (size_t)c->hidden_size, B = (size_t)fp->B;
    const size_t esize = in->embeds_dtype == EMBER_DTYPE_F32 ? 4 : 2, osize = fp->osize;
    const size_t width = in->embedding_output ? H : (size_t)c->embedding_size;
    const size_t n_logits = (c->head == EMBER_HEAD_TOKEN_CLASSIFICATION ? N : B) * (size_t)c->num_labels;
    whole w = {.f = *fp, .in = *in, .out = *out, .err = err, .async = async};
    const void *embeds = in->inputs_embeds ? (const void *)in->inputs_embeds
                                           : (const void *)in->embedding_output;
    char *io = (char *)s->io_f32;
    char *io_pool = io + N * H * osize, *io_logits = io_pool + B * H * osize;
    EMBER_TRY(stage(s->io_ids, in->input_ids, N, sizeof(int32_t), stream));
    EMBER_TRY(stage(s->io_mask, in->attention_mask, N, sizeof(int32_t), stream));
    EMBER_TRY(stage(s->io_types, in->token_type_ids, N, sizeof(int32_t), stream));
    EMBER_TRY(stage(s->io_pos, in->position_ids, N, sizeof(int32_t), stream));
    EMBER_TRY(stage(io, embeds, N * width, esize, stream));
    w.in.input_ids = in->input_ids ? s->io_ids : NULL;
    w.in.attention_mask = in->attention_mask ? s->io_mask : NULL;
    w.in.token_type_ids = in->token_type_ids ? s->io_types : NULL;
    w.in.position_ids = in->position_ids ? s->io_pos : NULL;
    w.in.inputs_embeds = in->inputs_embeds ? (const float *)io : NULL;
    w.in.embedding_output = in->embedding_output ? (const float *)io : NULL;
    w.f.mask = w.in.attention_mask;
    /* the embeddings read io before the last LayerNorm writes it: stream order */
    w.out.last_hidden_state = (float *)io;
    w.out.pooler_output = out->pooler_output ? (float *)io_pool : NULL;
    w.out.logits = out->logits ? (float *)io_logits : NULL;
    const ember_graph_key key = {
        .batch = fp->B, .seq_len = fp->S, .has_mask = in->attention_mask != NULL,
        .entry = in->input_ids ? 0 : in->inputs_embeds ? 1 : 2,
        .has_types = in->token_type_ids != NULL, .has_positions = in->position_ids != NULL,
        .pooler = out->pooler_output != NULL, .logits = out->logits != NULL, .async = async,
        .embeds_dtype = in->input_ids ? 0 : (int)in->embeds_dtype, .out_dtype = (int)out->dtype};
    size_t n_out = N * H; /* the outputs written, contiguous from io */
    if (out->pooler_output) n_out += B * H + (out->logits ? n_logits : 0);
    pdl_pick pick = {.s = s, .p = {fp->B, fp->S, in->attention_mask != NULL}, .out = io,
                     .count = n_out, .odt = out->dtype, .restage = io,
                     .embeds = in->input_ids ? NULL : embeds,
                     .embeds_bytes = in->input_ids ? 0 : N * width * esize};
    const int tune_pdl = s->pdl_ok && s->pdl_mode < 0;
    EMBER_TRY(ember_graph_run(&s->gcache, key, enqueue_whole, &w, stream,
                              tune_pdl ? pdl_make : NULL, &pick));
    EMBER_CUDA_CHECK(cudaMemcpyAsync(out->last_hidden_state, io, N * H * osize,
                                     cudaMemcpyDeviceToDevice, stream));
    if (out->pooler_output)
        EMBER_CUDA_CHECK(cudaMemcpyAsync(out->pooler_output, io_pool, B * H * osize,
                                         cudaMemcpyDeviceToDevice, stream));
    if (out->logits)
        EMBER_CUDA_CHECK(cudaMemcpyAsync(out->logits, io_logits, n_logits * osize,
                                         cudaMemcpyDeviceToDevice, stream));
    return EMBER_OK;
}

/* One forward on `stream`: a graph where the call allows, ordinary launches otherwise. */
static ember_status enqueue_forward(fwd *fp, const ember_inputs *in, const ember_outputs *out,
                                    int *err, int async, cudaStream_t stream) {
    cuda_state *s = fp->s;
    if (s->graphs && !fp->packed && !fp->hs && fp->N <= s->io_tokens)
        return enqueue_graphed(fp, in, out, err, async, stream);
    return enqueue_plain(fp, in, out, err, async, stream);
}

static ember_status forward_impl(ember_model *m, cuda_state *s, const ember_inputs *in,
                                 const ember_outputs *out, cudaStream_t stream) {
    const ember_config *c = &m->cfg;
    const int async = (in->flags & EMBER_FORWARD_ASYNC) != 0;
    fwd f = {.m = m, .s = s, .B = in->batch, .S = in->seq_len, .mask = in->attention_mask,
             .hs = out->hidden_states, .odt = out->dtype,
             .osize = out->dtype == EMBER_DTYPE_F32 ? sizeof(float) : 2};
    f.N = f.B * f.S;
    f.T = f.N;
    f.packed = (in->flags & EMBER_FORWARD_SKIP_MASKED) && in->attention_mask;
    if (f.N > s->cap_tokens)
        return ember_fail(EMBER_ERR_INTERNAL, "forward: %d tokens exceed the workspace (%lld)", f.N,
                          (long long)s->cap_tokens);
    int *err = s->d_err + (async ? ERR_ASYNC : ERR_CALL);

    EMBER_TRY(order_after_pending(s, stream));
    /* the shapes of a padded call repeat with (B, S): its choices may be made and kept now */
    s->tuner.allow = !f.packed;
    /* EMBER_PDL=on: every launch of the forward (graphs capture the setting) */
    const int pdl_was = ember_cuda_pdl_set(s->pdl_ok && s->pdl_mode == 1);
    const ember_status st = enqueue_forward(&f, in, out, err, async, stream);
    ember_cuda_pdl_set(pdl_was);
    s->tuner.allow = 0;
    if (st != EMBER_OK) {
        /* Part of the call may be queued on `stream` and still use the workspace: a later
         * call on another stream must wait for it as for an ASYNC call (best effort; after a
         * sticky error the model is poisoned anyway). The message stays the failure's. */
        if (st != EMBER_ERR_DEVICE_LOST && cudaEventRecord(s->done, stream) == cudaSuccess) {
            s->pending = 1;
            s->last_stream = stream;
        }
        (void)cudaGetLastError();
        return st;
    }
    EMBER_CUDA_CHECK(cudaEventRecord(s->done, stream));
    if (async) {
        s->pending = 1;
        s->last_stream = stream;
        return EMBER_OK;
    }
    return finish(c, s, stream, "forward");
}

static ember_status cuda_forward(ember_model *m, const ember_inputs *in, const ember_outputs *out,
                                 ember_stream stream) {
    cuda_state *s = m->impl;
    int prev;
    ember_status st = enter(s, &prev);
    if (st == EMBER_OK) st = forward_impl(m, s, in, out, (cudaStream_t)stream);
    return leave(s, prev, st);
}

/* Report and clear what the ASYNC calls' kernels flagged (d_err[ERR_ASYNC]). */
static ember_status cuda_sync(ember_model *m, ember_stream stream_) {
    cuda_state *s = m->impl;
    cudaStream_t stream = (cudaStream_t)stream_;
    int prev;
    ember_status st = enter(s, &prev);
    if (st != EMBER_OK) return leave(s, prev, st);
    cudaError_t e = cudaSuccess;
    if (s->pending && stream != s->last_stream) e = cudaStreamWaitEvent(stream, s->done, 0);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(s->h_err + ERR_ASYNC, s->d_err + ERR_ASYNC, sizeof(int),
                            cudaMemcpyDeviceToHost, stream);
    if (e == cudaSuccess) e = cudaMemsetAsync(s->d_err + ERR_ASYNC, 0, sizeof(int), stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
    if (e != cudaSuccess) {
        st = ember_cuda_fail(e, "waiting for the stream", __func__, __FILE__, __LINE__);
        return leave(s, prev, st);
    }
    s->pending = 0;
    st = report_flag(&m->cfg, s->h_err[ERR_ASYNC], "forward (EMBER_FORWARD_ASYNC, since the last "
                                                    "ember_model_sync)");
    return leave(s, prev, st);
}

ember_status ember_cuda_graph_stats_get(const ember_model *m, ember_cuda_graph_stats *out) {
    if (!m || !out || m->backend != EMBER_BACKEND_CUDA || !m->impl)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "ember_cuda_graph_stats_get: not a CUDA model");
    const cuda_state *s = m->impl;
    out->cached = ember_graph_cache_count(&s->gcache);
    out->captured = s->gcache.captured;
    out->replayed = s->gcache.replayed;
    out->failed = s->gcache.failed;
    return EMBER_OK;
}

/* Like a forward: a synchronous call checks its own flag; an ASYNC one flags ERR_ASYNC for
 * ember_model_sync and returns. The gather reads only the weights and the caller's buffers, so
 * it orders after a pending call only for its flag's sake (cheap: one event wait). */
static ember_status cuda_embed(ember_model *m, const int32_t *ids, int64_t n, void *out,
                               ember_dtype out_dt, unsigned flags, ember_stream stream) {
    cuda_state *s = m->impl;
    cudaStream_t st_ = (cudaStream_t)stream;
    const int async = (flags & EMBER_FORWARD_ASYNC) != 0;
    int *err = s->d_err + (async ? ERR_ASYNC : ERR_CALL);
    int prev;
    ember_status st = enter(s, &prev);
    if (st == EMBER_OK) st = order_after_pending(s, st_);
    if (st == EMBER_OK && !async) {
        cudaError_t e = cudaMemsetAsync(err, 0, sizeof(int), st_);
        if (e != cudaSuccess) st = ember_cuda_fail(e, "cudaMemsetAsync(d_err)", __func__, __FILE__, __LINE__);
    }
    if (st == EMBER_OK)
        st = ember_cuda_gather(out, out_dt, ids, n, s->word, m->cfg.embedding_size,
                               m->cfg.vocab_size, s->dt, err, st_);
    if (st == EMBER_OK && async) {
        cudaError_t e = cudaEventRecord(s->done, st_);
        if (e != cudaSuccess) st = ember_cuda_fail(e, "cudaEventRecord(done)", __func__, __FILE__, __LINE__);
        s->pending = 1;
        s->last_stream = st_;
    } else if (st == EMBER_OK) {
        st = finish(&m->cfg, s, st_, "embed_tokens");
    }
    return leave(s, prev, st);
}

static ember_status cuda_table_copy(const ember_model *m, ember_table t, float *dst,
                                    ember_stream stream) {
    cuda_state *s = m->impl;
    const ember_config *c = &m->cfg;
    const void *src = t == EMBER_TABLE_WORD ? s->word : t == EMBER_TABLE_POSITION ? s->pos : s->type;
    const int64_t rows = t == EMBER_TABLE_WORD       ? c->vocab_size
                         : t == EMBER_TABLE_POSITION ? c->max_position_embeddings
                                                     : c->type_vocab_size;
    int prev;
    ember_status st = enter(s, &prev);
    if (st == EMBER_OK)
        st = ember_cuda_convert(dst, EMBER_DTYPE_F32, src, s->dt, rows * c->embedding_size,
                                (cudaStream_t)stream);
    return leave(s, prev, st);
}

/* Reads the caller's f32 hidden state only (no workspace), so it needs no ordering after an
 * ASYNC forward beyond the caller's stream; not waited for. */
static ember_status cuda_pool(ember_model *m, const float *hidden, const int32_t *mask, int B,
                              int S, ember_pooling mode, int normalize, float *out,
                              ember_stream stream) {
    cuda_state *s = m->impl;
    int prev;
    ember_status st = enter(s, &prev);
    if (st == EMBER_OK)
        st = ember_cuda_pool(out, hidden, mask, B, S, m->cfg.hidden_size, mode, normalize,
                             (cudaStream_t)stream);
    return leave(s, prev, st);
}

static ember_status cuda_memory(const ember_model *m, size_t *weight_bytes,
                                size_t *workspace_bytes) {
    const cuda_state *s = m->impl;
    *weight_bytes = s->wbytes;
    *workspace_bytes = s->ws_bytes + LT_WORKSPACE_BYTES + 2 * sizeof(int);
    return EMBER_OK;
}

/* splitmix64, for the tuning inputs of cuda_tune_shapes */
static uint64_t mix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* ember_model_reserve_shapes: one forward per shape on random ids (and a random right-padded
 * mask), with buffers of its own, so that each shape's choices are made now. */
static ember_status cuda_tune_shapes(ember_model *m, const ember_shape *shapes, int n) {
    cuda_state *s = m->impl;
    if (!s->tuner.mode) return EMBER_OK;
    const int H = m->cfg.hidden_size;
    int64_t N = 0, B = 0;
    for (int i = 0; i < n; i++) {
        const int64_t t = (int64_t)shapes[i].batch * shapes[i].seq_len;
        if (t > N) N = t;
        if (shapes[i].batch > B) B = shapes[i].batch;
    }
    int32_t *h = malloc(sizeof(int32_t) * 2 * (size_t)N);
    void *d = NULL;
    const size_t ints = sizeof(int32_t) * (size_t)N, floats = sizeof(float) * (size_t)(N + B) * H;
    ember_status st = h ? EMBER_OK : ember_fail(EMBER_ERR_OUT_OF_MEMORY, "tuning inputs");
    if (st == EMBER_OK) {
        const cudaError_t e = cudaMalloc(&d, 2 * ints + floats);
        if (e != cudaSuccess) {
            d = NULL;
            st = ember_cuda_fail(e, "cudaMalloc(tuning inputs)", __func__, __FILE__, __LINE__);
        }
    }
    uint64_t seed = 0x5eed;
    for (int i = 0; i < n && st == EMBER_OK; i++) {
        const ember_shape *x = &shapes[i];
        int32_t *ids = h, *mask = h + N;
        int valid = 0;
        for (int b = 0; b < x->batch; b++) {
            const int len = x->seq_len - (int)(mix(&seed) % (uint64_t)(x->seq_len / 2 + 1));
            for (int t = 0; t < x->seq_len; t++) {
                const int64_t k = (int64_t)b * x->seq_len + t;
                ids[k] = (int32_t)(mix(&seed) % (uint64_t)m->cfg.vocab_size);
                mask[k] = t < len;
                valid += t < len;
            }
        }
        int32_t *d_ids = d, *d_mask = (int32_t *)((char *)d + ints);
        float *d_last = (float *)((char *)d + 2 * ints);
        const size_t nk = (size_t)x->batch * (size_t)x->seq_len;
        cudaError_t e = cudaMemcpy(d_ids, ids, sizeof(int32_t) * nk, cudaMemcpyHostToDevice);
        if (e == cudaSuccess) e = cudaMemcpy(d_mask, mask, sizeof(int32_t) * nk, cudaMemcpyHostToDevice);
        if (e != cudaSuccess) {
            st = ember_cuda_fail(e, "cudaMemcpy(tuning inputs)", __func__, __FILE__, __LINE__);
            break;
        }
        const int packed = x->has_mask && (x->flags & EMBER_FORWARD_SKIP_MASKED);
        ember_inputs in = {.batch = x->batch, .seq_len = x->seq_len, .input_ids = d_ids,
                           .attention_mask = x->has_mask ? d_mask : NULL,
                           .flags = packed ? EMBER_FORWARD_SKIP_MASKED : 0,
                           .valid_tokens = packed ? valid : 0};
        ember_outputs out = {.last_hidden_state = d_last,
                             .pooler_output = s->pool_w ? d_last + nk * (size_t)H : NULL};
        st = cuda_forward(m, &in, &out, NULL);
        /* a second call captures the shape's graph, where PDL is timed (pdl_make) */
        if (st == EMBER_OK && !packed && s->graphs && s->pdl_ok && s->pdl_mode < 0 &&
            (int64_t)nk <= s->io_tokens)
            st = cuda_forward(m, &in, &out, NULL);
        if (st != EMBER_OK) ember_fail_context(st, "tuning shapes[%d] (batch %d, seq_len %d)", i,
                                               x->batch, x->seq_len);
    }
    if (d) (void)cudaFree(d);
    free(h);
    return st;
}

static ember_tuner *cuda_tuner(ember_model *m) {
    cuda_state *s = m->impl;
    return s ? &s->tuner : NULL;
}

const ember_backend_ops ember_cuda_backend = {
    .name = "cuda",
    .init = cuda_init,
    .destroy = cuda_destroy,
    .reserve = cuda_reserve,
    .forward = cuda_forward,
    .embed = cuda_embed,
    .table_copy = cuda_table_copy,
    .memory = cuda_memory,
    .sync = cuda_sync,
    .pool = cuda_pool,
    .tuner = cuda_tuner,
    .tune_shapes = cuda_tune_shapes,
};
