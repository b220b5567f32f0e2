/* CUDA graphs for repeated forward shapes (ember_load_options.cuda_graphs).
 *
 * A BERT-base forward is ~100 launches; at B1 S128 launching them costs more host time than
 * the GPU needs to run them, so the GPU idles between kernels. A graph launch replaces the
 * ~100 launches of the whole forward, embeddings to pooler, by one.
 *
 * Rules (what backend_cuda.c hands us is "the body": the whole forward on staged inputs and
 * outputs, reading and writing only model-owned buffers whose addresses are fixed between two
 * ember_model_reserve calls):
 *   - a shape's first call runs the body with ordinary launches: a shape seen once (serving
 *     with ever-changing lengths) never pays for a capture (~100 host launches recorded plus
 *     an instantiation, several times one forward's launch cost);
 *   - its second call captures the body on an internal non-blocking stream in
 *     cudaStreamCaptureModeThreadLocal (so other threads' CUDA calls are unaffected, and the
 *     caller's stream, possibly the legacy one, is never put in capture mode), instantiates
 *     it, and launches it on the caller's stream;
 *   - (a maker given by the caller may capture more than one variant and keep one: the
 *     backend times the forward with and without programmatic dependent launch there);
 *   - later calls launch the graph: one cudaGraphLaunch;
 *   - at most EMBER_GRAPH_MAX graphs are kept; the least recently used is destroyed. A
 *     graph still running is fine: cuGraphExecDestroy frees an in-flight executable graph
 *     asynchronously on completion (CUDA driver API reference);
 *   - a shape whose capture fails (an op that cannot be captured) is remembered and runs
 *     with ordinary launches from then on; the forward itself still succeeds.
 * cuBLASLt is capturable here because every GEMM gets the model's fixed workspace and
 * allocates nothing, and its algorithm was chosen (and cached) by the shape's first call,
 * which also made every tuning choice of the shape (host/cuda_tune.c never times inside a
 * capture). cuDNN's plans likewise execute on the fixed workspace; were one not capturable,
 * the capture fails and the shape keeps ordinary launches. */
#include "cuda_graphs.h"

#include <string.h>

#include "cuda_check.h"
#include "error.h"

ember_status ember_graph_cache_init(ember_graph_cache *c) {
    memset(c, 0, sizeof *c);
    EMBER_CUDA_CHECK(cudaStreamCreateWithFlags(&c->capture_stream, cudaStreamNonBlocking));
    return EMBER_OK;
}

void ember_graph_cache_clear(ember_graph_cache *c) {
    for (int i = 0; i < EMBER_GRAPH_SLOTS; i++) {
        if (c->slot[i].exec) (void)cudaGraphExecDestroy(c->slot[i].exec);
        memset(&c->slot[i], 0, sizeof c->slot[i]);
    }
}

void ember_graph_cache_free(ember_graph_cache *c) {
    ember_graph_cache_clear(c);
    if (c->capture_stream) (void)cudaStreamDestroy(c->capture_stream);
    c->capture_stream = NULL;
}

int ember_graph_cache_count(const ember_graph_cache *c) {
    int n = 0;
    for (int i = 0; i < EMBER_GRAPH_SLOTS; i++) n += c->slot[i].exec != NULL;
    return n;
}

static int same(ember_graph_key a, ember_graph_key b) {
    return a.batch == b.batch && a.seq_len == b.seq_len && a.has_mask == b.has_mask &&
           a.entry == b.entry && a.has_types == b.has_types &&
           a.has_positions == b.has_positions && a.pooler == b.pooler && a.logits == b.logits &&
           a.async == b.async &&
           a.embeds_dtype == b.embeds_dtype && a.out_dtype == b.out_dtype;
}

static void drop_exec(ember_graph_slot *s) {
    if (s->exec) (void)cudaGraphExecDestroy(s->exec);
    s->exec = NULL;
}

/* The least recently used slot among those with (want_exec) or without an executable graph;
 * an unused slot first when !want_exec. NULL if there is none. */
static ember_graph_slot *lru(ember_graph_cache *c, int want_exec) {
    ember_graph_slot *best = NULL;
    for (int i = 0; i < EMBER_GRAPH_SLOTS; i++) {
        ember_graph_slot *s = &c->slot[i];
        if (!want_exec && !s->used) return s;
        if (s->used && (s->exec != NULL) == want_exec && (!best || s->last < best->last)) best = s;
    }
    return best;
}

ember_status ember_graph_capture(ember_graph_cache *c, ember_graph_body body, void *ctx,
                                 cudaGraphExec_t *exec) {
    *exec = NULL;
    EMBER_CUDA_CHECK(cudaStreamBeginCapture(c->capture_stream, cudaStreamCaptureModeThreadLocal));
    ember_status st = body(ctx, c->capture_stream);
    cudaGraph_t graph = NULL;
    /* always end the capture, also after a failed body, so that the stream is usable again */
    cudaError_t e = cudaStreamEndCapture(c->capture_stream, &graph);
    if (st == EMBER_OK && e != cudaSuccess)
        st = ember_cuda_fail(e, "cudaStreamEndCapture", __func__, __FILE__, __LINE__);
    if (st == EMBER_OK) {
        e = cudaGraphInstantiate(exec, graph, 0);
        if (e != cudaSuccess) {
            *exec = NULL;
            st = ember_cuda_fail(e, "cudaGraphInstantiate", __func__, __FILE__, __LINE__);
        }
    }
    if (graph) (void)cudaGraphDestroy(graph); /* the executable graph is independent of it */
    return st;
}

/* The default maker: one capture, one launch. */
static ember_status capture_and_launch(void *mctx, ember_graph_cache *c, ember_graph_body body,
                                       void *ctx, cudaStream_t stream, cudaGraphExec_t *exec) {
    (void)mctx;
    EMBER_TRY(ember_graph_capture(c, body, ctx, exec));
    const cudaError_t e = cudaGraphLaunch(*exec, stream);
    if (e == cudaSuccess) return EMBER_OK;
    (void)cudaGraphExecDestroy(*exec);
    *exec = NULL;
    return ember_cuda_fail(e, "cudaGraphLaunch", __func__, __FILE__, __LINE__);
}

ember_status ember_graph_run(ember_graph_cache *c, ember_graph_key key, ember_graph_body body,
                             void *ctx, cudaStream_t stream, ember_graph_maker make, void *mctx) {
    ember_graph_slot *s = NULL;
    for (int i = 0; i < EMBER_GRAPH_SLOTS && !s; i++)
        if (c->slot[i].used && same(c->slot[i].key, key)) s = &c->slot[i];
    c->tick++;
    if (!s) { /* first sighting: remember the shape, run with ordinary launches */
        s = lru(c, 0);
        if (!s) s = lru(c, 1);
        drop_exec(s);
        memset(s, 0, sizeof *s);
        s->used = 1;
        s->key = key;
        s->last = c->tick;
        return body(ctx, stream);
    }
    s->last = c->tick;
    if (!s->exec && !s->failed) { /* second sighting: capture */
        if (ember_graph_cache_count(c) >= EMBER_GRAPH_MAX) drop_exec(lru(c, 1));
        cudaGraphExec_t exec = NULL;
        ember_status st = (make ? make : capture_and_launch)(mctx, c, body, ctx, stream, &exec);
        if (st == EMBER_ERR_DEVICE_LOST) return st;
        if (st != EMBER_OK) {
            s->failed = 1;
            c->failed++;
            (void)cudaGetLastError();
            ember_clear_error();
        } else {
            s->exec = exec;
            c->captured++;
            return EMBER_OK;
        }
    }
    if (s->failed) return body(ctx, stream);
    EMBER_CUDA_CHECK(cudaGraphLaunch(s->exec, stream));
    c->replayed++;
    return EMBER_OK;
}
