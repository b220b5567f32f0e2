/* Linear layers through cuBLASLt: out (N,OUT) = in (N,IN) @ w^T + b, w (OUT,IN) row-major.
 *
 * cuBLAS is column-major, so the row-major product is computed transposed: out^T = w . in^T,
 * i.e. D (OUT x N, ld OUT) = op_T(A) . B with A = w seen column-major as (IN x OUT, ld IN)
 * and B = in seen column-major as (IN x N, ld ld_in). The bias is the BIAS epilogue (one value
 * per row of D = per output feature), added to the f32 accumulator before rounding; if no
 * algorithm supports the epilogue for a shape, the GEMM runs plain and ember_cuda_bias_act
 * adds the bias.
 *
 * Activations (ember_cuda_linear_act, the FFN's intermediate GEMM): tanh GELU ("gelu_new",
 * "gelu_pytorch_tanh") runs in the GEMM's epilogue, CUBLASLT_EPILOGUE_GELU_BIAS, which saves
 * a read and a write of the (N, I) intermediate. Which GELU that epilogue computes is not
 * written in cuBLAS's documentation or cublasLt.h ("apply GELU point-wise transform"); the
 * users that depend on it treat it as the tanh approximation: PyTorch's addmm with GELU
 * epilogue (aten/src/ATen/native/cuda/Blas.cpp) falls back to at::gelu_(result, "tanh") when
 * the epilogue is unavailable, and XLA fuses only its approximate GELU into it (openxla/xla
 * PR 7751, "cublasLt Fp8 Approx Gelu epilogue fusion"). Rather than trust either, the library
 * checks: ember_cuda_gemm_create runs the epilogue once in f32 on x in [-4, 4] and uses it
 * only if it matches tanh GELU to 2e-5 while differing from erf GELU (the two differ by up to
 * 4.7e-4, at |x| = 2.7). Exact erf GELU ("gelu", BERT's default) keeps the BIAS epilogue and
 * ember_cuda_bias_act's erf kernel; so does ReLU (cuBLASLt's RELU epilogue turns NaN into 0,
 * torch.relu keeps it). Any epilogue without an algorithm for a shape falls back to the next
 * simpler one: GELU_BIAS -> BIAS + kernel -> plain GEMM + bias/activation kernel.
 *
 * Precision: compute type CUBLAS_COMPUTE_32F with scale type f32 for every storage type. For
 * f32 inputs this is true fp32: TF32 would need CUBLAS_COMPUTE_32F_FAST_TF32, which is never
 * used (HF's float32 reference does not use TF32 for matmuls by default either). Split-K
 * reductions are restricted to none or in f32 (never in the 16-bit output type).
 *
 * Algorithms (ember.h, "Tuning"): the heuristic is asked for its top EMBER_TUNE_GEMM_ALGOS (8)
 * algorithms for the richest epilogue that has any; they are the op's candidates, in the
 * heuristic's order, candidate 0 the heuristic's first choice. With a tuner
 * (ember_cuda_gemm_set_tuner) the first call of a shape may time them all (host/cuda_tune.c)
 * and keep the fastest that matches candidate 0's output; without one, or with tuning off,
 * candidate 0 runs, as before tuning existed. (Candidates 1..7 have run only against the
 * emulation's cuBLASLt model, never on a GPU.) The heuristic query costs microseconds of CPU,
 * so the list and the decided candidate are cached per shape, dtype, bias use and pointer
 * alignment; the same key always gets the same algorithm, which keeps repeated runs
 * bit-identical. The cache makes the object not thread-safe. */
#include <stdlib.h>
#include <string.h>

#include "host/cuda_tune.h"
#include "kernels/cuda_common.cuh"

#define EMBER_GEMM_CACHE 64
#define EMBER_GEMM_ALGOS EMBER_TUNE_GEMM_ALGOS

namespace {

struct GemmKey {
    int dt, N, IN, OUT, bias, gelu; /* gelu: the GELU_BIAS epilogue is wanted */
    int64_t ld_in;
    uint32_t align_w, align_in, align_out, align_bias;
};

struct GemmEntry {
    GemmKey key;
    int valid;
    cublasLtEpilogue_t epi; /* GELU_BIAS, BIAS or DEFAULT: what the GEMM does itself */
    int n_algo;             /* the heuristic's algorithms for it, best first */
    cublasLtMatmulAlgo_t algo[EMBER_GEMM_ALGOS];
    int chosen;             /* the candidate that runs, once decided ...           */
    int decided;            /* ... by the tuner's table at generation decided_gen  */
    unsigned decided_gen;
};

bool same_key(const GemmKey &a, const GemmKey &b) {
    return a.dt == b.dt && a.N == b.N && a.IN == b.IN && a.OUT == b.OUT && a.bias == b.bias &&
           a.gelu == b.gelu &&
           a.ld_in == b.ld_in && a.align_w == b.align_w && a.align_in == b.align_in &&
           a.align_out == b.align_out && a.align_bias == b.align_bias;
}

/* Largest power of two (<= 256) dividing the address: what cuBLASLt may assume. */
uint32_t alignment(const void *p) {
    const uintptr_t a = (uintptr_t)p;
    uint32_t r = 256;
    while (r > 1 && (a & (r - 1))) r >>= 1;
    return r;
}

cudaDataType_t cuda_type(ember_dtype dt) {
    return dt == EMBER_DTYPE_F16 ? CUDA_R_16F : dt == EMBER_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

}  // namespace

struct ember_cuda_gemm {
    cublasLtHandle_t lt;
    void *workspace;
    size_t workspace_bytes;
    int next; /* round-robin victim when the cache is full */
    int gelu_epilogue; /* 1: CUBLASLT_EPILOGUE_GELU_BIAS passed the tanh probe */
    ember_tuner *tuner; /* NULL: candidate 0 always */
    GemmEntry cache[EMBER_GEMM_CACHE];
};

static ember_status probe_gelu_epilogue(ember_cuda_gemm *g);

extern "C" ember_status ember_cuda_gemm_create(ember_cuda_gemm **out, void *workspace,
                                               size_t workspace_bytes) {
    *out = NULL;
    ember_cuda_gemm *g = (ember_cuda_gemm *)calloc(1, sizeof *g);
    if (!g) return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "cannot allocate the GEMM context");
    cublasStatus_t s = cublasLtCreate(&g->lt);
    if (s != CUBLAS_STATUS_SUCCESS) {
        free(g);
        return ember_cublas_fail(s, "cublasLtCreate(&g->lt)", __func__, __FILE__, __LINE__);
    }
    g->workspace = workspace;
    g->workspace_bytes = workspace_bytes;
    ember_status st = probe_gelu_epilogue(g);
    if (st != EMBER_OK) {
        cublasLtDestroy(g->lt);
        free(g);
        return st;
    }
    *out = g;
    return EMBER_OK;
}

extern "C" void ember_cuda_gemm_destroy(ember_cuda_gemm *g) {
    if (!g) return;
    cublasLtDestroy(g->lt);
    free(g);
}

/* Descriptors for one call; all on the stack (cublasLt*Init, no allocation). */
struct GemmDescs {
    cublasLtMatmulDescOpaque_t op;
    cublasLtMatrixLayoutOpaque_t a, b, d;
};

static ember_status make_descs(GemmDescs *x, ember_dtype dt, int N, int IN, int OUT,
                               int64_t ld_in, cublasLtEpilogue_t epi, const void *bias) {
    const cudaDataType_t ty = cuda_type(dt);
    const cublasOperation_t op_t = CUBLAS_OP_T, op_n = CUBLAS_OP_N;
    EMBER_CUBLAS_CHECK(cublasLtMatmulDescInit(&x->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    EMBER_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(&x->op, CUBLASLT_MATMUL_DESC_TRANSA, &op_t,
                                                      sizeof op_t));
    EMBER_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(&x->op, CUBLASLT_MATMUL_DESC_TRANSB, &op_n,
                                                      sizeof op_n));
    EMBER_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(&x->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                                                      sizeof epi));
    if (epi == CUBLASLT_EPILOGUE_BIAS || epi == CUBLASLT_EPILOGUE_GELU_BIAS)
        EMBER_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
            &x->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    EMBER_CUBLAS_CHECK(cublasLtMatrixLayoutInit(&x->a, ty, (uint64_t)IN, (uint64_t)OUT, IN));
    EMBER_CUBLAS_CHECK(cublasLtMatrixLayoutInit(&x->b, ty, (uint64_t)IN, (uint64_t)N, ld_in));
    EMBER_CUBLAS_CHECK(cublasLtMatrixLayoutInit(&x->d, ty, (uint64_t)OUT, (uint64_t)N, OUT));
    return EMBER_OK;
}

/* The heuristic's best algorithms for the key, up to `want`, into algo[]; *found = how many
 * (0 when none fits). */
static ember_status heuristic(ember_cuda_gemm *g, const GemmKey &k, ember_dtype dt,
                              cublasLtEpilogue_t epi, const void *bias, cublasLtMatmulAlgo_t *algo,
                              int want, int *found) {
    GemmDescs x;
    EMBER_TRY(make_descs(&x, dt, k.N, k.IN, k.OUT, k.ld_in, epi, bias));
    cublasLtMatmulPreferenceOpaque_t pref;
    const uint64_t ws = g->workspace_bytes;
    const uint32_t reduction = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE; /* NONE is always allowed */
    EMBER_CUBLAS_CHECK(cublasLtMatmulPreferenceInit(&pref));
    EMBER_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        &pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    EMBER_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        &pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &reduction, sizeof reduction));
    EMBER_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        &pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &k.align_w, sizeof k.align_w));
    EMBER_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        &pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &k.align_in, sizeof k.align_in));
    EMBER_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        &pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &k.align_out, sizeof k.align_out));
    EMBER_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        &pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &k.align_out, sizeof k.align_out));
    cublasLtMatmulHeuristicResult_t res[EMBER_GEMM_ALGOS];
    int n = 0;
    memset(res, 0, sizeof res);
    if (want > EMBER_GEMM_ALGOS) want = EMBER_GEMM_ALGOS;
    cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(g->lt, &x.op, &x.a, &x.b, &x.d, &x.d, &pref,
                                                      want, res, &n);
    *found = 0;
    if (s == CUBLAS_STATUS_NOT_SUPPORTED) return EMBER_OK; /* no algorithm for this config */
    EMBER_CUBLAS_CHECK(s);
    for (int i = 0; i < n && i < want; i++)
        if (res[i].state == CUBLAS_STATUS_SUCCESS && res[i].workspaceSize <= g->workspace_bytes)
            algo[(*found)++] = res[i].algo;
    return EMBER_OK;
}

/* Which GELU does CUBLASLT_EPILOGUE_GELU_BIAS compute? out = gelu(x . I + 0) for 256 values of
 * x in [-4, 4], in f32, compared on the host with both GELUs. The caller's workspace holds the
 * operands (nothing uses it yet); the GEMM itself runs without workspace on the legacy stream,
 * and the copies synchronise. Sets g->gelu_epilogue; CUDA errors are returned. */
static ember_status probe_gelu_epilogue(ember_cuda_gemm *g) {
    enum { K = 16, NR = 16, NX = K * NR };
    g->gelu_epilogue = 0;
    if (!g->workspace || g->workspace_bytes < 2304 + sizeof(float) * NX) return EMBER_OK;
    float h_w[K * K], h_x[NX], h_b[K], h_out[NX];
    for (int i = 0; i < K * K; i++) h_w[i] = i / K == i % K ? 1.f : 0.f;
    for (int i = 0; i < NX; i++) h_x[i] = -4.f + 8.f * (float)i / (float)(NX - 1);
    for (int i = 0; i < K; i++) h_b[i] = 0.f;
    /* operands at 256-byte aligned offsets of the workspace */
    char *base = (char *)g->workspace;
    float *d_w = (float *)base, *d_x = (float *)(base + 1024), *d_b = (float *)(base + 2048),
          *d_out = (float *)(base + 2304);
    EMBER_CUDA_CHECK(cudaMemcpy(d_w, h_w, sizeof h_w, cudaMemcpyHostToDevice));
    EMBER_CUDA_CHECK(cudaMemcpy(d_x, h_x, sizeof h_x, cudaMemcpyHostToDevice));
    EMBER_CUDA_CHECK(cudaMemcpy(d_b, h_b, sizeof h_b, cudaMemcpyHostToDevice));
    GemmKey k;
    memset(&k, 0, sizeof k);
    k.dt = EMBER_DTYPE_F32;
    k.N = NR;
    k.IN = K;
    k.OUT = K;
    k.bias = 1;
    k.gelu = 1;
    k.ld_in = K;
    k.align_w = alignment(d_w);
    k.align_in = alignment(d_x);
    k.align_out = alignment(d_out);
    k.align_bias = alignment(d_b);
    cublasLtMatmulAlgo_t algo;
    int found = 0;
    const size_t saved = g->workspace_bytes;
    g->workspace_bytes = 0; /* the operands live in the workspace */
    ember_status st = heuristic(g, k, EMBER_DTYPE_F32, CUBLASLT_EPILOGUE_GELU_BIAS, d_b, &algo,
                                1, &found);
    g->workspace_bytes = saved;
    if (st != EMBER_OK || !found) {
        ember_clear_error();
        return EMBER_OK; /* no GELU epilogue here: the kernel path is used */
    }
    GemmDescs x;
    EMBER_TRY(make_descs(&x, EMBER_DTYPE_F32, NR, K, K, K, CUBLASLT_EPILOGUE_GELU_BIAS, d_b));
    const float alpha = 1.f, beta = 0.f;
    cublasStatus_t cs = cublasLtMatmul(g->lt, &x.op, &alpha, d_w, &x.a, d_x, &x.b, &beta, d_out,
                                       &x.d, d_out, &x.d, &algo, NULL, 0, 0);
    if (cs != CUBLAS_STATUS_SUCCESS) {
        if (cs == CUBLAS_STATUS_EXECUTION_FAILED || cs == CUBLAS_STATUS_INTERNAL_ERROR)
            EMBER_CUBLAS_CHECK(cs);
        return EMBER_OK;
    }
    EMBER_CUDA_CHECK(cudaMemcpy(h_out, d_out, sizeof h_out, cudaMemcpyDeviceToHost));
    double err_tanh = 0.0, err_erf = 0.0;
    for (int i = 0; i < NX; i++) {
        const double v = h_x[i];
        const double t = 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
        const double e = 0.5 * v * (1.0 + erf(v * 0.7071067811865476));
        err_tanh = fmax(err_tanh, fabs((double)h_out[i] - t));
        err_erf = fmax(err_erf, fabs((double)h_out[i] - e));
    }
    g->gelu_epilogue = err_tanh <= 2e-5 && err_erf >= 1e-4;
    return EMBER_OK;
}

static ember_status lookup(ember_cuda_gemm *g, const GemmKey &k, ember_dtype dt, const void *bias,
                           GemmEntry **out) {
    for (int i = 0; i < EMBER_GEMM_CACHE; i++)
        if (g->cache[i].valid && same_key(g->cache[i].key, k)) {
            *out = &g->cache[i];
            return EMBER_OK;
        }
    GemmEntry e;
    memset(&e, 0, sizeof e);
    e.key = k;
    int found = 0;
    /* the richest epilogue first, then simpler ones */
    const cublasLtEpilogue_t tries[] = {CUBLASLT_EPILOGUE_GELU_BIAS, CUBLASLT_EPILOGUE_BIAS,
                                        CUBLASLT_EPILOGUE_DEFAULT};
    for (cublasLtEpilogue_t epi : tries) {
        if (epi == CUBLASLT_EPILOGUE_GELU_BIAS && !(k.gelu && bias)) continue;
        if (epi == CUBLASLT_EPILOGUE_BIAS && !bias) continue;
        EMBER_TRY(heuristic(g, k, dt, epi, epi == CUBLASLT_EPILOGUE_DEFAULT ? NULL : bias, e.algo,
                            EMBER_GEMM_ALGOS, &found));
        if (found) {
            e.epi = epi;
            e.n_algo = found;
            break;
        }
    }
    if (!found)
        return ember_fail(EMBER_ERR_CUDA,
                          "cuBLASLt has no algorithm for linear N=%d IN=%d OUT=%d ld_in=%lld "
                          "dtype %d (alignments w %u, in %u, out %u bytes)",
                          k.N, k.IN, k.OUT, (long long)k.ld_in, k.dt, k.align_w, k.align_in,
                          k.align_out);
    e.valid = 1;
    GemmEntry *slot = &g->cache[g->next];
    g->next = (g->next + 1) % EMBER_GEMM_CACHE;
    *slot = e;
    *out = slot;
    return EMBER_OK;
}

/* One call of ember_cuda_linear_act, as the candidates see it. */
struct GemmCall {
    ember_cuda_gemm *g;
    const GemmEntry *e;
    void *out;
    const void *in, *w, *b;
    int N, IN, OUT, act;
    int64_t ld_in;
    ember_dtype dt;
};

/* Candidate i: the heuristic's i-th algorithm, then what the epilogue did not do. */
static ember_status gemm_candidate(void *ctx, int i, cudaStream_t stream) {
    const GemmCall *c = (const GemmCall *)ctx;
    const GemmEntry *e = c->e;
    if (i < 0 || i >= e->n_algo)
        return ember_fail(EMBER_ERR_INTERNAL, "GEMM candidate %d of %d", i, e->n_algo);
    GemmDescs x;
    EMBER_TRY(make_descs(&x, c->dt, c->N, c->IN, c->OUT, c->ld_in, e->epi, c->b));
    const float alpha = 1.f, beta = 0.f;
    EMBER_CUBLAS_CHECK(cublasLtMatmul(c->g->lt, &x.op, &alpha, c->w, &x.a, c->in, &x.b, &beta,
                                      c->out, &x.d, c->out, &x.d, &e->algo[i], c->g->workspace,
                                      c->g->workspace_bytes, stream));
    if (e->epi == CUBLASLT_EPILOGUE_GELU_BIAS) return EMBER_OK;
    const void *rest_bias = e->epi == CUBLASLT_EPILOGUE_BIAS ? NULL : c->b;
    if (rest_bias || c->act != EMBER_CUDA_ACT_NONE)
        EMBER_TRY(ember_cuda_bias_act(c->out, rest_bias, c->N, c->OUT, c->act, c->dt, stream));
    return EMBER_OK;
}

static int log2u(uint32_t a) {
    int l = 0;
    while (a > 1) {
        a >>= 1;
        l++;
    }
    return l;
}


extern "C" ember_status ember_cuda_linear_act(void *out, const void *in, const void *w,
                                              const void *b, int N, int IN, int OUT,
                                              int64_t ld_in, int act, ember_dtype dt,
                                              ember_cuda_gemm *g, cudaStream_t stream) {
    if (N <= 0 || OUT <= 0) return EMBER_OK;
    if (IN <= 0 || ld_in < IN)
        return ember_fail(EMBER_ERR_INTERNAL, "ember_cuda_linear: IN = %d, ld_in = %lld", IN,
                          (long long)ld_in);
    GemmKey k;
    memset(&k, 0, sizeof k);
    k.dt = (int)dt;
    k.N = N;
    k.IN = IN;
    k.OUT = OUT;
    k.bias = b != NULL;
    k.gelu = act == EMBER_ACT_GELU_TANH && g->gelu_epilogue;
    k.ld_in = ld_in;
    k.align_w = alignment(w);
    k.align_in = alignment(in);
    k.align_out = alignment(out);
    k.align_bias = b ? alignment(b) : 0;
    GemmEntry *e = NULL;
    EMBER_TRY(lookup(g, k, dt, b, &e));
    GemmCall call = {g, e, out, in, w, b, N, IN, OUT, act, ld_in, dt};
    if (!g->tuner) return gemm_candidate(&call, 0, stream);
    if (e->decided && e->decided_gen == g->tuner->generation)
        return gemm_candidate(&call, e->chosen, stream);
    /* the tuning key: the shape, and the four alignments as log2 nibbles (w, in, out, bias) */
    const int64_t shape[7] = {N, IN, OUT, ld_in, k.bias, act + 1,
                              log2u(k.align_w) | log2u(k.align_in) << 4 | log2u(k.align_out) << 8 |
                                  (k.bias ? log2u(k.align_bias) : 0) << 12};
    const ember_tune_job job = ember_tune_job_of(EMBER_TUNE_GEMM, dt, shape, 7, e->n_algo,
                                                 gemm_candidate, &call, out,
                                                 (size_t)N * (size_t)OUT);
    EMBER_TRY(ember_tune_run(g->tuner, &job, stream, NULL));
    /* a settled choice is cached with the entry until the table changes (an import) */
    const ember_tune_record *r = ember_tuner_find(g->tuner, &job.key);
    if (r && r->checked) {
        e->chosen = r->choice > 0 && r->choice < e->n_algo ? r->choice : 0;
        e->decided = 1;
        e->decided_gen = g->tuner->generation;
    }
    return EMBER_OK;
}

extern "C" ember_status ember_cuda_linear(void *out, const void *in, const void *w, const void *b,
                                          int N, int IN, int OUT, int64_t ld_in, ember_dtype dt,
                                          ember_cuda_gemm *g, cudaStream_t stream) {
    return ember_cuda_linear_act(out, in, w, b, N, IN, OUT, ld_in, EMBER_CUDA_ACT_NONE, dt, g,
                                 stream);
}

extern "C" int ember_cuda_gemm_gelu_epilogue(const ember_cuda_gemm *g) {
    return g ? g->gelu_epilogue : 0;
}

extern "C" void ember_cuda_gemm_set_tuner(ember_cuda_gemm *g, ember_tuner *t) {
    g->tuner = t;
    for (int i = 0; i < EMBER_GEMM_CACHE; i++) g->cache[i].decided = 0;
}
