/* Linear layers through cuBLASLt: out (N,OUT) = in (N,IN) @ w^T + b, w (OUT,IN) row-major.
 *
 * cuBLAS is column-major, so the row-major product is computed transposed: out^T = w . in^T,
 * i.e. D (OUT x N, ld OUT) = op_T(A) . B with A = w seen column-major as (IN x OUT, ld IN)
 * and B = in seen column-major as (IN x N, ld ld_in). The bias is the BIAS epilogue (one value
 * per row of D = per output feature), added to the f32 accumulator before rounding; if no
 * algorithm supports the epilogue for a shape, the GEMM runs plain and ember_cuda_bias_act
 * adds the bias.
 *
 * Precision: compute type CUBLAS_COMPUTE_32F with scale type f32 for every storage type. For
 * f32 inputs this is true fp32: TF32 would need CUBLAS_COMPUTE_32F_FAST_TF32, which is never
 * used (HF's float32 reference does not use TF32 for matmuls by default either). Split-K
 * reductions are restricted to none or in f32 (never in the 16-bit output type).
 *
 * The heuristic query costs microseconds of CPU, so the chosen algorithm is cached per shape,
 * dtype, bias use and pointer alignment; the same key always gets the same algorithm, which
 * keeps repeated runs bit-identical. The cache makes the object not thread-safe. */
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda_common.cuh"

#define EMBER_GEMM_CACHE 64

namespace {

struct GemmKey {
    int dt, N, IN, OUT, bias;
    int64_t ld_in;
    uint32_t align_w, align_in, align_out, align_bias;
};

struct GemmEntry {
    GemmKey key;
    int valid;
    int bias_epilogue; /* 1: the bias is added by the epilogue; 0: by ember_cuda_bias_act */
    cublasLtMatmulAlgo_t algo;
};

bool same_key(const GemmKey &a, const GemmKey &b) {
    return a.dt == b.dt && a.N == b.N && a.IN == b.IN && a.OUT == b.OUT && a.bias == b.bias &&
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
    GemmEntry cache[EMBER_GEMM_CACHE];
};

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
    if (epi == CUBLASLT_EPILOGUE_BIAS)
        EMBER_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
            &x->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    EMBER_CUBLAS_CHECK(cublasLtMatrixLayoutInit(&x->a, ty, (uint64_t)IN, (uint64_t)OUT, IN));
    EMBER_CUBLAS_CHECK(cublasLtMatrixLayoutInit(&x->b, ty, (uint64_t)IN, (uint64_t)N, ld_in));
    EMBER_CUBLAS_CHECK(cublasLtMatrixLayoutInit(&x->d, ty, (uint64_t)OUT, (uint64_t)N, OUT));
    return EMBER_OK;
}

/* Best algorithm for the key, or *found = 0. */
static ember_status heuristic(ember_cuda_gemm *g, const GemmKey &k, ember_dtype dt,
                              cublasLtEpilogue_t epi, const void *bias, cublasLtMatmulAlgo_t *algo,
                              int *found) {
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
    cublasLtMatmulHeuristicResult_t res;
    int n = 0;
    memset(&res, 0, sizeof res);
    cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(g->lt, &x.op, &x.a, &x.b, &x.d, &x.d, &pref,
                                                      1, &res, &n);
    *found = 0;
    if (s == CUBLAS_STATUS_NOT_SUPPORTED) return EMBER_OK; /* no algorithm for this config */
    EMBER_CUBLAS_CHECK(s);
    if (n > 0 && res.state == CUBLAS_STATUS_SUCCESS && res.workspaceSize <= g->workspace_bytes) {
        *algo = res.algo;
        *found = 1;
    }
    return EMBER_OK;
}

static ember_status lookup(ember_cuda_gemm *g, const GemmKey &k, ember_dtype dt, const void *bias,
                           const GemmEntry **out) {
    for (int i = 0; i < EMBER_GEMM_CACHE; i++)
        if (g->cache[i].valid && same_key(g->cache[i].key, k)) {
            *out = &g->cache[i];
            return EMBER_OK;
        }
    GemmEntry e;
    memset(&e, 0, sizeof e);
    e.key = k;
    int found = 0;
    if (bias) {
        EMBER_TRY(heuristic(g, k, dt, CUBLASLT_EPILOGUE_BIAS, bias, &e.algo, &found));
        e.bias_epilogue = found;
    }
    if (!found) EMBER_TRY(heuristic(g, k, dt, CUBLASLT_EPILOGUE_DEFAULT, NULL, &e.algo, &found));
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

extern "C" ember_status ember_cuda_linear(void *out, const void *in, const void *w, const void *b,
                                          int N, int IN, int OUT, int64_t ld_in, ember_dtype dt,
                                          ember_cuda_gemm *g, cudaStream_t stream) {
    if (N <= 0 || OUT <= 0) return EMBER_OK;
    if (IN <= 0 || ld_in < IN)
        return ember_fail(EMBER_ERR_INTERNAL, "ember_cuda_linear: IN = %d, ld_in = %lld", IN,
                          (long long)ld_in);
    GemmKey k;
    k.dt = (int)dt;
    k.N = N;
    k.IN = IN;
    k.OUT = OUT;
    k.bias = b != NULL;
    k.ld_in = ld_in;
    k.align_w = alignment(w);
    k.align_in = alignment(in);
    k.align_out = alignment(out);
    k.align_bias = b ? alignment(b) : 0;
    const GemmEntry *e = NULL;
    EMBER_TRY(lookup(g, k, dt, b, &e));

    const int bias_epi = b && e->bias_epilogue;
    GemmDescs x;
    EMBER_TRY(make_descs(&x, dt, N, IN, OUT, ld_in,
                         bias_epi ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT, b));
    const float alpha = 1.f, beta = 0.f;
    EMBER_CUBLAS_CHECK(cublasLtMatmul(g->lt, &x.op, &alpha, w, &x.a, in, &x.b, &beta, out, &x.d,
                                      out, &x.d, &e->algo, g->workspace, g->workspace_bytes,
                                      stream));
    if (b && !bias_epi)
        EMBER_TRY(ember_cuda_bias_act(out, b, N, OUT, EMBER_CUDA_ACT_NONE, dt, stream));
    return EMBER_OK;
}
