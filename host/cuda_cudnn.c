/* cuDNN's candidates: the FFN input layer as one fused graph and fused attention (see
 * host/cuda_cudnn.h), through cuDNN's graph API (the C backend, cudnn_graph.h).
 *
 * HONESTY NOTE. None of this has run on a GPU. It compiles against cuDNN 9.19's headers, and
 * it runs in the CPU emulation (tools/emu) against a host model of the backend calls made here,
 * written from our reading of cuDNN's documentation; whether the real cuDNN accepts these
 * graphs, which engines it offers, and what they compute, only a GPU run shows. That is why a
 * cuDNN candidate is used only after it has matched ember's own path on the tuning call's data
 * on the user's GPU (host/cuda_tune.c), and why a refusal anywhere here is a fallback, never an
 * error.
 *
 * Loading. cuDNN is loaded with dlopen, not linked: a binary built where cuDNN's headers were
 * found must still start on a machine without the library (a linked libcudnn.so.9 that is
 * missing stops the program before main), and cuDNN's engine libraries are about 1 GB that
 * many installations leave out. The headers give the types and enums at build time; the twelve
 * functions used are resolved once per process. cuDNN 9.x is required (the backend API and
 * its enums are stable within a major version; the SDPA operation needs 9.13, older ones
 * refuse it at finalization, which is a fallback like any refusal).
 *
 * Graphs. FFN input: matmul (x (1,N,IN) by w^T (1,IN,OUT), a stride view of w) -> pointwise
 * add of the bias (1,1,OUT) -> pointwise GELU (erf or tanh), the two intermediates virtual f32,
 * the output in the storage type. Attention: one CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR
 * (cuDNN >= 9.13) on Q, K, V as strided views of the qkv rows ((B,NH,S,HD), strides
 * (S*3H, HD, 3H, 1)), O likewise in out, the scale 1/sqrt(HD) by value, and, with a mask or
 * padding removal, per-sequence lengths; padding removal gives Q, K, V and O ragged offsets.
 * The first engine configuration cuDNN's heuristics (mode A) offer that finalizes is kept, per
 * shape, in a small cache; one whose workspace exceeds the shared one is refused. */
#define _GNU_SOURCE
#include "cuda_cudnn.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#ifndef EMBER_WITH_CUDNN

long ember_cudnn_version(const char **why) {
    if (why) *why = "built without cuDNN's headers";
    return 0;
}
ember_status ember_cudnn_create(ember_cudnn **out, void *workspace, size_t workspace_bytes) {
    (void)workspace;
    (void)workspace_bytes;
    *out = NULL;
    return EMBER_OK;
}
void ember_cudnn_destroy(ember_cudnn *d) { (void)d; }
ember_status ember_cudnn_linear_act(ember_cudnn *d, void *out, const void *in, const void *w,
                                    const void *b, int N, int IN, int OUT, int act,
                                    ember_dtype dt, cudaStream_t stream) {
    return ember_fail(EMBER_ERR_UNSUPPORTED, "cuDNN: built without cuDNN's headers");
}
ember_status ember_cudnn_attention(ember_cudnn *d, void *out, const void *qkv,
                                   const int32_t *seq_q, const int32_t *seq_kv,
                                   const int64_t *off_qkv, const int64_t *off_o, int B, int S,
                                   int NH, int HD, ember_dtype dt, cudaStream_t stream) {
    return ember_fail(EMBER_ERR_UNSUPPORTED, "cuDNN: built without cuDNN's headers");
}

#else

#include <cudnn_graph.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>

/* ---- the library ------------------------------------------------------------------------- */

static struct {
    void *lib;
    long version;
    char why[512];
    cudnnStatus_t (*create)(cudnnHandle_t *);
    cudnnStatus_t (*destroy)(cudnnHandle_t);
    cudnnStatus_t (*set_stream)(cudnnHandle_t, cudaStream_t);
    size_t (*get_version)(void);
    const char *(*error_string)(cudnnStatus_t);
    void (*last_error)(char *, size_t);
    cudnnStatus_t (*desc_create)(cudnnBackendDescriptorType_t, cudnnBackendDescriptor_t *);
    cudnnStatus_t (*desc_destroy)(cudnnBackendDescriptor_t);
    cudnnStatus_t (*set)(cudnnBackendDescriptor_t, cudnnBackendAttributeName_t,
                         cudnnBackendAttributeType_t, int64_t, const void *);
    cudnnStatus_t (*get)(cudnnBackendDescriptor_t, cudnnBackendAttributeName_t,
                         cudnnBackendAttributeType_t, int64_t, int64_t *, void *);
    cudnnStatus_t (*finalize)(cudnnBackendDescriptor_t);
    cudnnStatus_t (*execute)(cudnnHandle_t, cudnnBackendDescriptor_t, cudnnBackendDescriptor_t);
} api;

static pthread_once_t api_once = PTHREAD_ONCE_INIT;

static void load_api(void) {
    const char *off = getenv("EMBER_CUDNN");
    if (off && !strcmp(off, "off")) {
        snprintf(api.why, sizeof api.why, "EMBER_CUDNN=off in the environment");
        return;
    }
    const char *path = getenv("EMBER_CUDNN_LIB");
    if (!path || !*path) path = "libcudnn.so.9";
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *e = dlerror();
        snprintf(api.why, sizeof api.why, "cannot load %s: %s", path, e ? e : "?");
        return;
    }
    struct {
        const char *name;
        void **slot;
    } sym[] = {
        {"cudnnCreate", (void **)&api.create},
        {"cudnnDestroy", (void **)&api.destroy},
        {"cudnnSetStream", (void **)&api.set_stream},
        {"cudnnGetVersion", (void **)&api.get_version},
        {"cudnnGetErrorString", (void **)&api.error_string},
        {"cudnnGetLastErrorString", (void **)&api.last_error},
        {"cudnnBackendCreateDescriptor", (void **)&api.desc_create},
        {"cudnnBackendDestroyDescriptor", (void **)&api.desc_destroy},
        {"cudnnBackendSetAttribute", (void **)&api.set},
        {"cudnnBackendGetAttribute", (void **)&api.get},
        {"cudnnBackendFinalize", (void **)&api.finalize},
        {"cudnnBackendExecute", (void **)&api.execute},
    };
    for (size_t i = 0; i < sizeof sym / sizeof sym[0]; i++) {
        *sym[i].slot = dlsym(lib, sym[i].name);
        if (!*sym[i].slot) {
            snprintf(api.why, sizeof api.why, "%s has no %s", path, sym[i].name);
            dlclose(lib);
            return;
        }
    }
    const long v = (long)api.get_version();
    if (v < 90000 || v >= 100000) {
        snprintf(api.why, sizeof api.why, "%s is cuDNN %ld; ember uses cuDNN 9", path, v);
        dlclose(lib);
        return;
    }
    api.version = v;
    api.lib = lib;
}

long ember_cudnn_version(const char **why) {
    pthread_once(&api_once, load_api);
    if (why) *why = api.lib ? "" : api.why;
    return api.lib ? api.version : 0;
}

/* A failed cuDNN call: EMBER_ERR_UNSUPPORTED with cuDNN's own words. */
static ember_status dnn_fail(cudnnStatus_t s, const char *what) {
    char detail[256] = "";
    api.last_error(detail, sizeof detail);
    return ember_fail(EMBER_ERR_UNSUPPORTED, "cuDNN: %s: %s%s%s", what, api.error_string(s),
                      detail[0] ? ": " : "", detail);
}

/* ---- descriptors: a build keeps every descriptor it creates, to destroy them together ---- */

/* Plans are never evicted: a CUDA graph that captured a plan's kernels may still be replayed,
 * and a plan's runtime-compiled kernels may live only as long as the plan. A shape beyond
 * PLANS gets no cuDNN candidate (a refusal like any other). */
enum { MAX_DESC = 48, PLANS = 64, MAX_UIDS = 10 };

typedef struct build {
    cudnnBackendDescriptor_t d[MAX_DESC];
    int n;
    cudnnStatus_t status; /* the first failure; later calls do nothing */
    const char *what;     /* ... and the step that failed */
} build;

static cudnnBackendDescriptor_t make(build *b, cudnnBackendDescriptorType_t type, const char *what) {
    cudnnBackendDescriptor_t d = NULL;
    if (b->status != CUDNN_STATUS_SUCCESS) return NULL;
    if (b->n == MAX_DESC) {
        b->status = CUDNN_STATUS_NOT_SUPPORTED;
        b->what = "too many descriptors";
        return NULL;
    }
    b->status = api.desc_create(type, &d);
    if (b->status != CUDNN_STATUS_SUCCESS) {
        b->what = what;
        return NULL;
    }
    b->d[b->n++] = d;
    return d;
}

static void set(build *b, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
                cudnnBackendAttributeType_t type, int64_t count, const void *value,
                const char *what) {
    if (b->status != CUDNN_STATUS_SUCCESS) return;
    b->status = api.set(d, name, type, count, value);
    if (b->status != CUDNN_STATUS_SUCCESS) b->what = what;
}

static void link_desc(build *b, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
                      cudnnBackendDescriptor_t value, const char *what) {
    set(b, d, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &value, what);
}

static void finalize(build *b, cudnnBackendDescriptor_t d, const char *what) {
    if (b->status != CUDNN_STATUS_SUCCESS) return;
    b->status = api.finalize(d);
    if (b->status != CUDNN_STATUS_SUCCESS) b->what = what;
}

static void drop(build *b) {
    for (int i = b->n - 1; i >= 0; i--) api.desc_destroy(b->d[i]);
    b->n = 0;
}

/* A finalized tensor of `rank` dimensions. virt: lives only between two operations;
 * by_value: a host scalar; ragged: the descriptor of its ragged offsets, or NULL. */
static cudnnBackendDescriptor_t tensor(build *b, int64_t uid, cudnnDataType_t type, int rank,
                                       const int64_t *dims, const int64_t *strides, bool virt,
                                       bool by_value, cudnnBackendDescriptor_t ragged) {
    cudnnBackendDescriptor_t t = make(b, CUDNN_BACKEND_TENSOR_DESCRIPTOR, "tensor");
    const int64_t align = 16;
    set(b, t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor id");
    set(b, t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, "tensor type");
    set(b, t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, rank, dims, "tensor dims");
    set(b, t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, rank, strides, "tensor strides");
    set(b, t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, "tensor alignment");
    set(b, t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt, "tensor virtual");
    if (by_value) set(b, t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value, "by value");
    if (ragged) link_desc(b, t, CUDNN_ATTR_TENSOR_RAGGED_OFFSET_DESC, ragged, "ragged offsets");
    finalize(b, t, "tensor");
    return t;
}

static cudnnBackendDescriptor_t pointwise(build *b, cudnnPointwiseMode_t mode,
                                          cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t bb,
                                          cudnnBackendDescriptor_t y) {
    cudnnBackendDescriptor_t pw = make(b, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, "pointwise");
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    set(b, pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, "pointwise mode");
    set(b, pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &f32, "pointwise precision");
    finalize(b, pw, "pointwise");
    cudnnBackendDescriptor_t op = make(b, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, "pointwise op");
    link_desc(b, op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw, "pointwise op");
    link_desc(b, op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x, "pointwise x");
    if (bb) link_desc(b, op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, bb, "pointwise b");
    link_desc(b, op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y, "pointwise y");
    finalize(b, op, "pointwise op");
    return op;
}

/* ---- plans --------------------------------------------------------------------------------- */

enum { KIND_FFN = 1, KIND_SDPA = 2 };

typedef struct plan {
    int kind, dt;
    int64_t p[5];
    int used;
    int refused;        /* cuDNN said no for this shape: remembered, not asked again */
    char why[256];
    build b;            /* every descriptor of the graph and the plan */
    cudnnBackendDescriptor_t exec;
    int64_t workspace;
    float scale;        /* by-value scalar of the attention graph */
} plan;

struct ember_cudnn {
    cudnnHandle_t handle;
    void *workspace;
    size_t workspace_bytes;
    plan plans[PLANS];
    int next; /* plans used */
};

ember_status ember_cudnn_create(ember_cudnn **out, void *workspace, size_t workspace_bytes) {
    *out = NULL;
    if (!ember_cudnn_version(NULL)) return EMBER_OK;
    ember_cudnn *d = calloc(1, sizeof *d);
    if (!d) return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "cannot allocate the cuDNN state");
    d->workspace = workspace;
    d->workspace_bytes = workspace_bytes;
    *out = d;
    return EMBER_OK;
}

static void plan_free(plan *p) {
    drop(&p->b);
    memset(p, 0, sizeof *p);
}

void ember_cudnn_destroy(ember_cudnn *d) {
    if (!d) return;
    for (int i = 0; i < PLANS; i++) plan_free(&d->plans[i]);
    if (d->handle) api.destroy(d->handle);
    free(d);
}

static plan *find_plan(ember_cudnn *d, int kind, int dt, const int64_t *p) {
    for (int i = 0; i < PLANS; i++) {
        plan *x = &d->plans[i];
        if (x->used && x->kind == kind && x->dt == dt && !memcmp(x->p, p, sizeof x->p)) return x;
    }
    return NULL;
}

static plan *new_plan(ember_cudnn *d, int kind, int dt, const int64_t *p) {
    if (d->next == PLANS) return NULL;
    plan *x = &d->plans[d->next++];
    x->used = 1;
    x->kind = kind;
    x->dt = dt;
    memcpy(x->p, p, sizeof x->p);
    return x;
}

/* The graph of `ops` -> heuristics -> the first engine configuration that finalizes. */
static void make_plan(ember_cudnn *d, plan *x, cudnnBackendDescriptor_t *ops, int n_ops) {
    build *b = &x->b;
    cudnnBackendDescriptor_t graph = make(b, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "graph");
    set(b, graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n_ops, ops, "graph ops");
    set(b, graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &d->handle, "graph handle");
    finalize(b, graph, "operation graph");
    cudnnBackendDescriptor_t heur = make(b, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "heuristics");
    const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    link_desc(b, heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph, "heuristics graph");
    set(b, heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "heuristics mode");
    finalize(b, heur, "heuristics");
    int64_t count = 0;
    if (b->status == CUDNN_STATUS_SUCCESS) {
        b->status = api.get(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                            &count, NULL);
        if (b->status != CUDNN_STATUS_SUCCESS) b->what = "heuristics results";
    }
    if (count > 8) count = 8;
    cudnnBackendDescriptor_t cfg[8] = {0};
    for (int64_t i = 0; i < count; i++)
        cfg[i] = make(b, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "engine configuration");
    if (b->status == CUDNN_STATUS_SUCCESS && count > 0) {
        int64_t got = 0;
        b->status = api.get(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                            count, &got, cfg);
        if (b->status != CUDNN_STATUS_SUCCESS) b->what = "heuristics results";
        count = got < count ? got : count;
    }
    if (b->status != CUDNN_STATUS_SUCCESS) return;
    if (count == 0) {
        b->status = CUDNN_STATUS_NOT_SUPPORTED;
        b->what = "no engine for this graph";
        return;
    }
    cudnnStatus_t last = CUDNN_STATUS_NOT_SUPPORTED;
    for (int64_t i = 0; i < count && !x->exec; i++) {
        cudnnBackendDescriptor_t ep = make(b, CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, "plan");
        if (b->status != CUDNN_STATUS_SUCCESS) return;
        if (api.set(ep, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                    &cfg[i]) != CUDNN_STATUS_SUCCESS)
            continue;
        /* deprecated in 9.x, required by older 9 releases; a refusal is harmless */
        (void)api.set(ep, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &d->handle);
        last = api.finalize(ep);
        if (last == CUDNN_STATUS_SUCCESS) x->exec = ep;
    }
    if (!x->exec) {
        b->status = last;
        b->what = "no engine configuration finalized";
        return;
    }
    b->status = api.get(x->exec, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1,
                        &count, &x->workspace);
    if (b->status != CUDNN_STATUS_SUCCESS) b->what = "workspace size";
}

/* Make sure of the handle, then the cached plan of the key, or build it with `builder`.
 * EMBER_ERR_UNSUPPORTED (and the refusal remembered) when cuDNN will not. */
typedef void (*builder_fn)(ember_cudnn *d, plan *x, const void *arg);

static ember_status get_plan(ember_cudnn *d, int kind, int dt, const int64_t *key,
                             builder_fn builder, const void *arg, plan **out) {
    *out = NULL;
    if (!d) {
        const char *why = "";
        ember_cudnn_version(&why);
        return ember_fail(EMBER_ERR_UNSUPPORTED, "cuDNN is not available: %s", why);
    }
    if (!d->handle) {
        const cudnnStatus_t s = api.create(&d->handle);
        if (s != CUDNN_STATUS_SUCCESS) {
            d->handle = NULL;
            return dnn_fail(s, "cudnnCreate");
        }
    }
    plan *x = find_plan(d, kind, dt, key);
    if (!x) {
        x = new_plan(d, kind, dt, key);
        if (!x)
            return ember_fail(EMBER_ERR_UNSUPPORTED, "cuDNN: this model holds %d plans already",
                              PLANS);
        builder(d, x, arg);
        if (x->b.status != CUDNN_STATUS_SUCCESS) {
            char detail[200] = "";
            api.last_error(detail, sizeof detail);
            snprintf(x->why, sizeof x->why, "%s: %s%s%s", x->b.what ? x->b.what : "graph",
                     api.error_string(x->b.status), detail[0] ? ": " : "", detail);
            drop(&x->b);
            x->exec = NULL;
            x->refused = 1;
        } else if (x->workspace < 0 || (size_t)x->workspace > d->workspace_bytes) {
            snprintf(x->why, sizeof x->why, "the plan needs %lld bytes of workspace, %zu are there",
                     (long long)x->workspace, d->workspace_bytes);
            drop(&x->b);
            x->exec = NULL;
            x->refused = 1;
        }
    }
    if (x->refused) return ember_fail(EMBER_ERR_UNSUPPORTED, "cuDNN refused: %s", x->why);
    *out = x;
    return EMBER_OK;
}

/* Run a plan with the pointers of its tensors (uids[i] at ptr[i]). */
static ember_status execute(ember_cudnn *d, plan *x, const int64_t *uids, void **ptrs, int n,
                            cudaStream_t stream) {
    cudnnStatus_t s = api.set_stream(d->handle, stream);
    if (s != CUDNN_STATUS_SUCCESS) return dnn_fail(s, "cudnnSetStream");
    build vb = {.n = 0, .status = CUDNN_STATUS_SUCCESS};
    cudnnBackendDescriptor_t pack = make(&vb, CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, "variant pack");
    set(&vb, pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids, "variant ids");
    set(&vb, pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs, "variant pointers");
    set(&vb, pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &d->workspace,
        "variant workspace");
    finalize(&vb, pack, "variant pack");
    if (vb.status == CUDNN_STATUS_SUCCESS) {
        vb.status = api.execute(d->handle, x->exec, pack);
        if (vb.status != CUDNN_STATUS_SUCCESS) vb.what = "execute";
    }
    s = vb.status;
    const char *what = vb.what;
    drop(&vb);
    if (s == CUDNN_STATUS_SUCCESS) return EMBER_OK;
    const ember_status st = dnn_fail(s, what);
    /* a failed launch inside cuDNN is a CUDA error the caller must see as one */
    return s == CUDNN_STATUS_EXECUTION_FAILED ? ember_fail_context(EMBER_ERR_CUDA, "cuDNN") : st;
}

static cudnnDataType_t dnn_type(ember_dtype dt) {
    return dt == EMBER_DTYPE_F16 ? CUDNN_DATA_HALF : dt == EMBER_DTYPE_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
}

static int aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* ---- FFN input: matmul -> bias -> GELU ------------------------------------------------------- */

enum { U_X = 1, U_W, U_BIAS, U_Y, U_MM = 101, U_ADD };

static void build_ffn(ember_cudnn *d, plan *x, const void *arg) {
    (void)arg;
    build *b = &x->b;
    const int64_t N = x->p[0], IN = x->p[1], OUT = x->p[2], act = x->p[3];
    const cudnnDataType_t t = dnn_type((ember_dtype)x->dt);
    const int64_t dx[3] = {1, N, IN}, sx[3] = {N * IN, IN, 1};
    const int64_t dw[3] = {1, IN, OUT}, sw[3] = {IN * OUT, 1, IN}; /* w^T as a view of w (OUT,IN) */
    const int64_t db[3] = {1, 1, OUT}, sb[3] = {OUT, OUT, 1};
    const int64_t dy[3] = {1, N, OUT}, sy[3] = {N * OUT, OUT, 1};
    cudnnBackendDescriptor_t tx = tensor(b, U_X, t, 3, dx, sx, false, false, NULL);
    cudnnBackendDescriptor_t tw = tensor(b, U_W, t, 3, dw, sw, false, false, NULL);
    cudnnBackendDescriptor_t tb = tensor(b, U_BIAS, t, 3, db, sb, false, false, NULL);
    cudnnBackendDescriptor_t ty = tensor(b, U_Y, t, 3, dy, sy, false, false, NULL);
    cudnnBackendDescriptor_t tmm = tensor(b, U_MM, CUDNN_DATA_FLOAT, 3, dy, sy, true, false, NULL);
    cudnnBackendDescriptor_t tadd = tensor(b, U_ADD, CUDNN_DATA_FLOAT, 3, dy, sy, true, false, NULL);
    cudnnBackendDescriptor_t mm = make(b, CUDNN_BACKEND_MATMUL_DESCRIPTOR, "matmul");
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    set(b, mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, "matmul precision");
    finalize(b, mm, "matmul");
    cudnnBackendDescriptor_t ops[3];
    ops[0] = make(b, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, "matmul op");
    link_desc(b, ops[0], CUDNN_ATTR_OPERATION_MATMUL_ADESC, tx, "matmul a");
    link_desc(b, ops[0], CUDNN_ATTR_OPERATION_MATMUL_BDESC, tw, "matmul b");
    link_desc(b, ops[0], CUDNN_ATTR_OPERATION_MATMUL_CDESC, tmm, "matmul c");
    link_desc(b, ops[0], CUDNN_ATTR_OPERATION_MATMUL_DESC, mm, "matmul desc");
    finalize(b, ops[0], "matmul op");
    ops[1] = pointwise(b, CUDNN_POINTWISE_ADD, tmm, tb, tadd);
    ops[2] = pointwise(b, act == EMBER_ACT_GELU ? CUDNN_POINTWISE_GELU_FWD
                                                : CUDNN_POINTWISE_GELU_APPROX_TANH_FWD,
                       tadd, NULL, ty);
    make_plan(d, x, ops, 3);
}

ember_status ember_cudnn_linear_act(ember_cudnn *d, void *out, const void *in, const void *w,
                                    const void *bias, int N, int IN, int OUT, int act,
                                    ember_dtype dt, cudaStream_t stream) {
    if (dt == EMBER_DTYPE_F32)
        return ember_fail(EMBER_ERR_UNSUPPORTED, "cuDNN FFN: f32 stays on cuBLASLt (no TF32)");
    if (act != EMBER_ACT_GELU && act != EMBER_ACT_GELU_TANH)
        return ember_fail(EMBER_ERR_UNSUPPORTED, "cuDNN FFN: GELU only (activation %d)", act);
    if (!bias || !aligned16(out) || !aligned16(in) || !aligned16(w) || !aligned16(bias))
        return ember_fail(EMBER_ERR_UNSUPPORTED, "cuDNN FFN: needs a bias and 16-byte alignment");
    const int64_t key[5] = {N, IN, OUT, act, 0};
    plan *x;
    EMBER_TRY(get_plan(d, KIND_FFN, dt, key, build_ffn, NULL, &x));
    const int64_t uids[4] = {U_X, U_W, U_BIAS, U_Y};
    void *ptrs[4] = {(void *)in, (void *)w, (void *)bias, out};
    return execute(d, x, uids, ptrs, 4, stream);
}

/* ---- attention: SDPA ----------------------------------------------------------------------- */

enum { U_Q = 1, U_K, U_V, U_O, U_SCALE, U_SEQ_Q, U_SEQ_KV, U_OFF_QKV, U_OFF_O };
enum { SDPA_PLAIN = 0, SDPA_LENGTHS = 1, SDPA_RAGGED = 2 };

static void build_sdpa(ember_cudnn *d, plan *x, const void *arg) {
    (void)arg;
    build *b = &x->b;
    const int64_t B = x->p[0], S = x->p[1], NH = x->p[2], HD = x->p[3], variant = x->p[4];
    const int64_t H = NH * HD;
    const cudnnDataType_t t = dnn_type((ember_dtype)x->dt);
    cudnnBackendDescriptor_t off_qkv = NULL, off_o = NULL, seq_q = NULL, seq_kv = NULL;
    const int64_t one4[4] = {1, 1, 1, 1}, dlen[4] = {B, 1, 1, 1}, doff[4] = {B + 1, 1, 1, 1};
    if (variant == SDPA_RAGGED) {
        off_qkv = tensor(b, U_OFF_QKV, CUDNN_DATA_INT64, 4, doff, one4, false, false, NULL);
        off_o = tensor(b, U_OFF_O, CUDNN_DATA_INT64, 4, doff, one4, false, false, NULL);
    }
    if (variant != SDPA_PLAIN) {
        seq_q = tensor(b, U_SEQ_Q, CUDNN_DATA_INT32, 4, dlen, one4, false, false, NULL);
        seq_kv = tensor(b, U_SEQ_KV, CUDNN_DATA_INT32, 4, dlen, one4, false, false, NULL);
    }
    /* (B, NH, S, HD) views of the token rows: qkv rows of 3H, out rows of H */
    const int64_t dims[4] = {B, NH, S, HD};
    const int64_t sqkv[4] = {S * 3 * H, HD, 3 * H, 1}, so[4] = {S * H, HD, H, 1};
    cudnnBackendDescriptor_t q = tensor(b, U_Q, t, 4, dims, sqkv, false, false, off_qkv);
    cudnnBackendDescriptor_t k = tensor(b, U_K, t, 4, dims, sqkv, false, false, off_qkv);
    cudnnBackendDescriptor_t v = tensor(b, U_V, t, 4, dims, sqkv, false, false, off_qkv);
    cudnnBackendDescriptor_t o = tensor(b, U_O, t, 4, dims, so, false, false, off_o);
    cudnnBackendDescriptor_t scale = tensor(b, U_SCALE, CUDNN_DATA_FLOAT, 4, one4, one4, false, true, NULL);
    cudnnBackendDescriptor_t op = make(b, CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR, "SDPA op (cuDNN >= 9.13)");
    link_desc(b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC, q, "SDPA q");
    link_desc(b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC, k, "SDPA k");
    link_desc(b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC, v, "SDPA v");
    link_desc(b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC, o, "SDPA o");
    link_desc(b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC, scale, "SDPA scale");
    if (seq_q) {
        link_desc(b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_SEQ_LEN_QDESC, seq_q, "SDPA seq_len_q");
        link_desc(b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_SEQ_LEN_KVDESC, seq_kv, "SDPA seq_len_kv");
    }
    finalize(b, op, "SDPA op");
    x->scale = (float)(1.0 / sqrt((double)HD));
    make_plan(d, x, &op, 1);
}

ember_status ember_cudnn_attention(ember_cudnn *d, void *out, const void *qkv,
                                   const int32_t *seq_q, const int32_t *seq_kv,
                                   const int64_t *off_qkv, const int64_t *off_o, int B, int S,
                                   int NH, int HD, ember_dtype dt, cudaStream_t stream) {
    if (dt == EMBER_DTYPE_F32)
        return ember_fail(EMBER_ERR_UNSUPPORTED, "cuDNN attention: f16 and bf16 only");
    if (HD % 8 || HD > 256)
        return ember_fail(EMBER_ERR_UNSUPPORTED, "cuDNN attention: head size %d (multiples of 8 "
                          "up to 256)", HD);
    const size_t es = 2, H = (size_t)NH * (size_t)HD;
    const char *k = (const char *)qkv + H * es, *v = (const char *)qkv + 2 * H * es;
    if (!aligned16(out) || !aligned16(qkv) || !aligned16(k) || !aligned16(v))
        return ember_fail(EMBER_ERR_UNSUPPORTED, "cuDNN attention: needs 16-byte aligned rows");
    const int variant = off_qkv ? SDPA_RAGGED : seq_kv ? SDPA_LENGTHS : SDPA_PLAIN;
    const int64_t key[5] = {B, S, NH, HD, variant};
    plan *x;
    EMBER_TRY(get_plan(d, KIND_SDPA, dt, key, build_sdpa, NULL, &x));
    int64_t uids[MAX_UIDS] = {U_Q, U_K, U_V, U_O, U_SCALE};
    void *ptrs[MAX_UIDS] = {(void *)qkv, (void *)k, (void *)v, out, &x->scale};
    int n = 5;
    if (variant != SDPA_PLAIN) {
        uids[n] = U_SEQ_Q;
        ptrs[n++] = (void *)seq_q;
        uids[n] = U_SEQ_KV;
        ptrs[n++] = (void *)seq_kv;
    }
    if (variant == SDPA_RAGGED) {
        uids[n] = U_OFF_QKV;
        ptrs[n++] = (void *)off_qkv;
        uids[n] = U_OFF_O;
        ptrs[n++] = (void *)off_o;
    }
    return execute(d, x, uids, ptrs, n, stream);
}

#endif /* EMBER_WITH_CUDNN */
