/* CUDA graphs for repeated forward shapes: a small LRU cache of executable graphs, keyed by
 * shape, used by host/backend_cuda.c; internal. See host/cuda_graphs.c. */
#ifndef EMBER_CUDA_GRAPHS_H
#define EMBER_CUDA_GRAPHS_H

#include <cuda_runtime_api.h>

#include "ember.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EMBER_GRAPH_SLOTS 16 /* shapes remembered (seen once, captured, or failed) */
#define EMBER_GRAPH_MAX 8    /* executable graphs kept at once                      */

/* What a captured forward depends on besides the model's fixed buffers: the shape, which
 * inputs are given (entry: 0 input_ids, 1 inputs_embeds, 2 embedding_output) and their
 * dtype, whether the pooler and the logits are computed, the outputs' dtype, and which error
 * flag an ASYNC call sets. */
typedef struct ember_graph_key {
    int batch, seq_len, has_mask;
    int entry, has_types, has_positions, pooler, logits, async, embeds_dtype, out_dtype;
} ember_graph_key;

/* Enqueue the work to capture or run on `stream`; reads and writes only buffers whose
 * addresses stay fixed while the cache holds the graph. */
typedef ember_status (*ember_graph_body)(void *ctx, cudaStream_t stream);

typedef struct ember_graph_slot {
    ember_graph_key key;
    int used, failed;       /* failed: capture did not work for this shape; never retried */
    cudaGraphExec_t exec;   /* NULL until the shape's second call                          */
    unsigned long long last; /* LRU clock                                                  */
} ember_graph_slot;

typedef struct ember_graph_cache {
    cudaStream_t capture_stream; /* internal, non-blocking: never capture on the legacy stream */
    ember_graph_slot slot[EMBER_GRAPH_SLOTS];
    unsigned long long tick;
    long captured, replayed, failed;
} ember_graph_cache;

ember_status ember_graph_cache_init(ember_graph_cache *c);
/* Destroys every graph and forgets every shape (the workspace moved); keeps the stream. */
void ember_graph_cache_clear(ember_graph_cache *c);
void ember_graph_cache_free(ember_graph_cache *c);
int ember_graph_cache_count(const ember_graph_cache *c);

/* Capture body on the cache's stream and instantiate it (*exec NULL on failure). */
ember_status ember_graph_capture(ember_graph_cache *c, ember_graph_body body, void *ctx,
                                 cudaGraphExec_t *exec);

/* At a shape's second call: make its executable graph (*exec, kept by the cache) and enqueue
 * what the call needs on `stream` (at least one launch of it). A failure leaves *exec NULL and
 * may have enqueued part of the work; the shape then runs body with ordinary launches. */
typedef ember_status (*ember_graph_maker)(void *mctx, ember_graph_cache *c, ember_graph_body body,
                                          void *ctx, cudaStream_t stream, cudaGraphExec_t *exec);

/* Run `body` for `key` on `stream`: the first call of a shape runs it with ordinary launches,
 * the second captures it into a graph and launches that (or leaves both to `make`, when not
 * NULL), later calls launch the graph. If a capture fails the shape runs with ordinary
 * launches from then on. */
ember_status ember_graph_run(ember_graph_cache *c, ember_graph_key key, ember_graph_body body,
                             void *ctx, cudaStream_t stream, ember_graph_maker make, void *mctx);

#ifdef __cplusplus
}
#endif

#endif
