/* The model object shared by all backends; internal. */
#ifndef EMBER_MODEL_H
#define EMBER_MODEL_H

#include <pthread.h>

#include "ember.h"
#include "weights/config.h"
#include "weights/weights.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a backend implements. Arguments are validated by host/model.c before the call. */
typedef struct ember_backend_ops {
    const char *name;
    /* Take the host weights: the backend may keep them (CPU steals the arena and clears *w)
     * or upload and leave *w for the caller to free. */
    ember_status (*init)(ember_model *m, ember_weights *w);
    void (*destroy)(ember_model *m);
    ember_status (*reserve)(ember_model *m, int max_batch, int max_seq_len);
    ember_status (*forward)(ember_model *m, const ember_inputs *in, const ember_outputs *out,
                            ember_stream stream);
    /* out (n,H) in out_dt; flags 0 or EMBER_FORWARD_ASYNC */
    ember_status (*embed)(ember_model *m, const int32_t *ids, int64_t n, void *out,
                          ember_dtype out_dt, unsigned flags, ember_stream stream);
    ember_status (*table_copy)(const ember_model *m, ember_table t, float *dst,
                               ember_stream stream);
    ember_status (*memory)(const ember_model *m, size_t *weight_bytes, size_t *workspace_bytes);
    /* Wait for `stream`; report device-detected input errors of EMBER_FORWARD_ASYNC calls.
     * NULL for backends that check inputs on the host. */
    ember_status (*sync)(ember_model *m, ember_stream stream);
    /* ember_pool: hidden (B,S,H), mask (B,S) or NULL, out (B,H), all f32 / int32 where the
     * backend keeps tensors; mask values already checked on the host for the CPU. */
    ember_status (*pool)(ember_model *m, const float *hidden, const int32_t *mask, int B, int S,
                         ember_pooling mode, int normalize, float *out, ember_stream stream);
    /* The tuning table (host/tune.h); NULL for backends with nothing to tune. */
    struct ember_tuner *(*tuner)(ember_model *m);
    /* One tuning forward per shape (ember_model_reserve_shapes, after the reserve); NULL when
     * there is nothing to tune. */
    ember_status (*tune_shapes)(ember_model *m, const ember_shape *shapes, int n);
} ember_backend_ops;

struct ember_model {
    ember_config cfg;
    ember_model_meta meta; /* the head's labels and the architecture's class name */
    ember_backend backend;
    ember_dtype dtype;
    int device;
    int cap_batch;   /* workspace holds cap_batch * cap_seq tokens ...        */
    int cap_seq;     /* ... and sequences up to cap_seq long                  */
    int cuda_graphs; /* ember_load_options.cuda_graphs                        */
    int tuning;      /* ember_load_options.tuning                             */
    const ember_backend_ops *ops;
    void *impl;      /* backend state */
    /* Serialises every call that touches the workspace or backend state (host/model.c; the
     * Threads paragraph of ember.h). cap_batch / cap_seq are read and written under it. */
    pthread_mutex_t lock;
};

extern const ember_backend_ops ember_cpu_backend; /* EMBER_BACKEND_CPU and _REFERENCE */
#ifdef EMBER_WITH_CUDA
extern const ember_backend_ops ember_cuda_backend;

/* What the CUDA graph cache of a model did (host/cuda_graphs.c), for tests and benchmarks. */
typedef struct ember_cuda_graph_stats {
    int cached;    /* executable graphs held now                      */
    long captured; /* shapes captured (each then launched once)        */
    long replayed; /* graph launches of an already captured shape      */
    long failed;   /* captures that failed (those shapes keep ordinary launches) */
} ember_cuda_graph_stats;
ember_status ember_cuda_graph_stats_get(const ember_model *m, ember_cuda_graph_stats *out);
#endif

#ifdef __cplusplus
}
#endif

#endif
