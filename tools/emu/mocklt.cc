// Host-memory model of the cuBLASLt calls kernels/linear.cu makes (tools/emu; not a GPU).
//
// It lets the emulator build the real kernels/linear.cu (descriptors, heuristic query,
// algorithm cache, epilogue fallbacks, the GELU probe) instead of replacing it. The model
// follows cuBLASLt's documented semantics as we read them: column-major matrices,
// D = alpha * op(A) * op(B) + beta * C, then the epilogue (BIAS adds bias[row] in D's type,
// GELU_BIAS then applies GELU), f32 accumulation, one rounding to D's type. It is strict
// where the real library may be lenient, so that a misuse shows up here:
//   - an attribute linear.cu does not set, a compute/scale type other than 32F, mixed
//     storage types, inconsistent dimensions or ld < rows are CUBLAS_STATUS_INVALID_VALUE;
//   - every operand's extent ((cols - 1) * ld + rows elements) must lie inside one live
//     cudaMalloc allocation (emu_dev_range in mock.cc), the bias too;
//   - an algorithm remembers the alignments the preference promised; cublasLtMatmul with a
//     less aligned pointer is CUBLAS_STATUS_INVALID_VALUE (the algorithm cache must key on
//     alignment);
//   - the workspace passed to cublasLtMatmul must be a device range of the stated size.
// The heuristic returns up to EMU_LT_ALGOS (default 8) algorithms, never more than asked for.
// Algorithm r sums the K products in (r % 4) + 1 chunks, so different algorithms give results
// a few f32 roundings apart, as real ones do, and costs a fake time on the emulator's clock
// (emu::g_clock_us, what CUDA events read).
// Knobs (read at every call):
//   EMU_LT_EPILOGUES=all|bias|none  which epilogues the heuristic finds algorithms for
//                                   (default all): exercises linear.cu's fallbacks
//   EMU_LT_GELU=tanh|erf            what the GELU_BIAS epilogue computes (default tanh):
//                                   erf must make the probe reject the epilogue
//   EMU_LT_ALGOS=n                  algorithms per heuristic query (1..8, default 8)
//   EMU_LT_TIMES=t0,t1,...          fake microseconds per matmul of algorithm r (default 10
//                                   each; missing entries 10)
//   EMU_LT_WRONG=r                  algorithm r scales its result by 1.05: a wrong algorithm
//                                   that tuning must reject however fast it is
//   EMU_LT_FAIL=r                   algorithm r fails at cublasLtMatmul (NOT_SUPPORTED): a
//                                   candidate that cannot run
#include "cuda_runtime.h"  // the fake one
#include <cublasLt.h>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

extern "C" bool emu_dev_range(const void *p, size_t bytes);  // mock.cc

namespace {

constexpr uint64_t kMagicDesc = 0x4d4c54444553430aull, kMagicLayout = 0x4d4c544c41590aull,
                   kMagicPref = 0x4d4c5450524546ull, kMagicAlgo = 0x4d4c54414c474full;

struct Desc {
    uint64_t magic;
    cublasComputeType_t compute;
    cudaDataType_t scale;
    cublasOperation_t ta, tb;
    cublasLtEpilogue_t epi;
    const void *bias;
};
struct Layout {
    uint64_t magic;
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
};
struct Pref {
    uint64_t magic;
    uint64_t max_ws;
    uint32_t reduction;
    uint32_t align[4];  // A, B, C, D
};
struct Algo {
    uint64_t magic;
    uint32_t align[4];
    cublasLtEpilogue_t epi;
    size_t workspace;
    int rank;  // position in the heuristic's answer
};
static_assert(sizeof(Desc) <= sizeof(cublasLtMatmulDescOpaque_t), "desc");
static_assert(sizeof(Layout) <= sizeof(cublasLtMatrixLayoutOpaque_t), "layout");
static_assert(sizeof(Pref) <= sizeof(cublasLtMatmulPreferenceOpaque_t), "pref");
static_assert(sizeof(Algo) <= sizeof(cublasLtMatmulAlgo_t), "algo");

cublasStatus_t bad(const char *why) {
    fprintf(stderr, "emu cuBLASLt: %s\n", why);
    return CUBLAS_STATUS_INVALID_VALUE;
}

// SetAttribute's common part: the caller's buffer must be exactly one T.
template <typename T> cublasStatus_t put(T *dst, const void *buf, size_t size, const char *what) {
    if (size != sizeof(T)) return bad(what);
    memcpy(dst, buf, size);
    return CUBLAS_STATUS_SUCCESS;
}

size_t elem(cudaDataType_t t) {
    return t == CUDA_R_32F ? 4 : (t == CUDA_R_16F || t == CUDA_R_16BF) ? 2 : 0;
}

uint32_t alignment(const void *p) {
    uint32_t r = 256;
    while (r > 1 && ((uintptr_t)p & (r - 1))) r >>= 1;
    return r;
}

int epilogues_allowed() {  // 2: GELU_BIAS and BIAS, 1: BIAS, 0: none
    const char *e = getenv("EMU_LT_EPILOGUES");
    if (!e || !strcmp(e, "all")) return 2;
    if (!strcmp(e, "bias")) return 1;
    if (!strcmp(e, "none")) return 0;
    fprintf(stderr, "emu cuBLASLt: EMU_LT_EPILOGUES=%s (want all, bias or none)\n", e);
    abort();
}

bool gelu_is_erf() {
    const char *e = getenv("EMU_LT_GELU");
    return e && !strcmp(e, "erf");
}

int env_int(const char *name, int def) {
    const char *e = getenv(name);
    return e && *e ? atoi(e) : def;
}

double algo_time_us(int rank) {
    const char *e = getenv("EMU_LT_TIMES");
    double t = 10.0;
    for (int i = 0; e && *e; i++) {
        char *end;
        const double v = strtod(e, &end);
        if (i == rank) { t = v; break; }
        e = *end == ',' ? end + 1 : nullptr;
    }
    return t;
}

// The checks shared by the heuristic query and the matmul: D = op(A) op(B), C = D's layout.
cublasStatus_t check_problem(const Desc *op, const Layout *a, const Layout *b, const Layout *c,
                             const Layout *d) {
    if (!op || op->magic != kMagicDesc) return bad("matmul descriptor not initialised");
    for (const Layout *l : {a, b, c, d})
        if (!l || l->magic != kMagicLayout) return bad("matrix layout not initialised");
    if (op->compute != CUBLAS_COMPUTE_32F || op->scale != CUDA_R_32F)
        return bad("compute/scale type other than CUBLAS_COMPUTE_32F/CUDA_R_32F");
    if (a->type != b->type || a->type != c->type || a->type != d->type || !elem(a->type))
        return bad("storage types differ or are not f32/f16/bf16");
    for (const Layout *l : {a, b, c, d})
        if (l->ld < (int64_t)l->rows || l->rows == 0 || l->cols == 0)
            return bad("ld < rows, or an empty matrix");
    const uint64_t am = op->ta == CUBLAS_OP_N ? a->rows : a->cols,
                   ak = op->ta == CUBLAS_OP_N ? a->cols : a->rows,
                   bk = op->tb == CUBLAS_OP_N ? b->rows : b->cols,
                   bn = op->tb == CUBLAS_OP_N ? b->cols : b->rows;
    if (ak != bk || am != d->rows || bn != d->cols) return bad("op(A) op(B) does not match D");
    if (c->rows != d->rows || c->cols != d->cols || c->ld != d->ld)
        return bad("C and D layouts differ (in-place D = C expected)");
    const bool wants_bias =
        op->epi == CUBLASLT_EPILOGUE_BIAS || op->epi == CUBLASLT_EPILOGUE_GELU_BIAS;
    if (op->epi != CUBLASLT_EPILOGUE_DEFAULT && !wants_bias) return bad("unexpected epilogue");
    if (wants_bias && !op->bias) return bad("bias epilogue without a bias pointer");
    return CUBLAS_STATUS_SUCCESS;
}

size_t extent(const Layout *l) { return ((l->cols - 1) * (uint64_t)l->ld + l->rows) * elem(l->type); }

float load(const void *p, cudaDataType_t t, size_t i) {
    if (t == CUDA_R_32F) return ((const float *)p)[i];
    if (t == CUDA_R_16F) return __half2float(((const __half *)p)[i]);
    return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
}
void store(void *p, cudaDataType_t t, size_t i, float v) {
    if (t == CUDA_R_32F) ((float *)p)[i] = v;
    else if (t == CUDA_R_16F) ((__half *)p)[i] = __float2half_rn(v);
    else ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
}

struct Matmul {
    Desc op;
    Layout a, b, d;
    float alpha, beta;
    const void *A, *B, *C;
    void *D;
    bool erf;
    int rank;
    void run() const {
        emu::g_clock_us += algo_time_us(rank);
        const int chunks = rank % 4 + 1;
        const float scale = rank == env_int("EMU_LT_WRONG", -1) ? 1.05f : 1.f;
        const uint64_t M = d.rows, N = d.cols, K = op.ta == CUBLAS_OP_N ? a.cols : a.rows;
        // op(A) as M rows of K and op(B) as N columns of K, widened once: the dot products
        // then run over contiguous floats (the emulated GEMMs dominate the emulator's time)
        std::vector<float> ra(M * K), cb(N * K), out(M * N);
        for (uint64_t i = 0; i < M; i++)
            for (uint64_t k = 0; k < K; k++)
                ra[i * K + k] = load(A, a.type, op.ta == CUBLAS_OP_N ? i + k * a.ld : k + i * a.ld);
        for (uint64_t j = 0; j < N; j++)
            for (uint64_t k = 0; k < K; k++)
                cb[j * K + k] = load(B, b.type, op.tb == CUBLAS_OP_N ? k + j * b.ld : j + k * b.ld);
        for (uint64_t j = 0; j < N; j++)
            for (uint64_t i = 0; i < M; i++) {
                const float *x = &ra[i * K], *y = &cb[j * K];
                float acc = 0.f;
                const uint64_t step = (K + chunks - 1) / chunks;
                for (uint64_t k0 = 0; k0 < K; k0 += step) {  // the algorithm's summation order
                    float part = 0.f;
                    for (uint64_t k = k0; k < K && k < k0 + step; k++) part += x[k] * y[k];
                    acc += part;
                }
                float v = alpha * acc * scale;
                if (beta != 0.f) v += beta * load(C, d.type, i + j * d.ld);
                if (op.epi != CUBLASLT_EPILOGUE_DEFAULT) v += load(op.bias, d.type, i);
                if (op.epi == CUBLASLT_EPILOGUE_GELU_BIAS)
                    v = erf ? 0.5f * v * (1.f + erff(v * 0.70710678f))
                            : 0.5f * v * (1.f + tanhf(0.7978845608f * (v + 0.044715f * v * v * v)));
                out[i + j * M] = v;
            }
        for (uint64_t j = 0; j < N; j++)  // written after all reads: D may alias C
            for (uint64_t i = 0; i < M; i++) store(D, d.type, i + j * d.ld, out[i + j * M]);
    }
};

int g_handles;

}  // namespace

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
    *h = (cublasLtHandle_t)(uintptr_t)(0x1000 + ++g_handles);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t) { return CUBLAS_STATUS_SUCCESS; }
size_t cublasLtGetVersion(void) { return CUBLAS_VERSION; }

cublasStatus_t cublasLtMatmulDescInit_internal(cublasLtMatmulDesc_t desc, size_t size,
                                               cublasComputeType_t compute, cudaDataType_t scale) {
    if (size != sizeof(cublasLtMatmulDescOpaque_t)) return bad("matmul descriptor size");
    memset(desc, 0, size);
    Desc *d = (Desc *)desc;
    d->magic = kMagicDesc;
    d->compute = compute;
    d->scale = scale;
    d->ta = d->tb = CUBLAS_OP_N;
    d->epi = CUBLASLT_EPILOGUE_DEFAULT;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t size) {
    Desc *d = (Desc *)desc;
    if (d->magic != kMagicDesc) return bad("SetAttribute on an uninitialised descriptor");
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: return put(&d->ta, buf, size, "TRANSA size");
    case CUBLASLT_MATMUL_DESC_TRANSB: return put(&d->tb, buf, size, "TRANSB size");
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return put(&d->epi, buf, size, "EPILOGUE size");
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return put(&d->bias, buf, size, "BIAS_POINTER size");
    default:
        return bad("matmul descriptor attribute the model does not know");
    }
}

cublasStatus_t cublasLtMatrixLayoutInit_internal(cublasLtMatrixLayout_t layout, size_t size,
                                                 cudaDataType type, uint64_t rows, uint64_t cols,
                                                 int64_t ld) {
    if (size != sizeof(cublasLtMatrixLayoutOpaque_t)) return bad("layout size");
    memset(layout, 0, size);
    Layout *l = (Layout *)layout;
    *l = Layout{kMagicLayout, type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceInit_internal(cublasLtMatmulPreference_t pref,
                                                     size_t size) {
    if (size != sizeof(cublasLtMatmulPreferenceOpaque_t)) return bad("preference size");
    memset(pref, 0, size);
    Pref *p = (Pref *)pref;
    p->magic = kMagicPref;
    p->reduction = CUBLASLT_REDUCTION_SCHEME_MASK;
    for (uint32_t &a : p->align) a = 256;  // the documented default
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t size) {
    Pref *p = (Pref *)pref;
    if (p->magic != kMagicPref) return bad("SetAttribute on an uninitialised preference");
    switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
        return put(&p->max_ws, buf, size, "MAX_WORKSPACE_BYTES size");
    case CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK:
        return put(&p->reduction, buf, size, "REDUCTION_SCHEME_MASK size");
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: {
        uint32_t v;
        if (put(&v, buf, size, "MIN_ALIGNMENT size") != CUBLAS_STATUS_SUCCESS)
            return CUBLAS_STATUS_INVALID_VALUE;
        if (v == 0 || (v & (v - 1))) return bad("MIN_ALIGNMENT not a power of two");
        p->align[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES] = v;
        return CUBLAS_STATUS_SUCCESS;
    }
    default:
        return bad("preference attribute the model does not know");
    }
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t op,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t *results,
                                              int *returned) {
    *returned = 0;
    const Desc *o = (const Desc *)op;
    const Pref *p = (const Pref *)pref;
    if (!p || p->magic != kMagicPref) return bad("preference not initialised");
    if (requested < 1) return bad("requestedAlgoCount < 1");
    cublasStatus_t s = check_problem(o, (const Layout *)a, (const Layout *)b, (const Layout *)c,
                                     (const Layout *)d);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    const int allowed = epilogues_allowed();
    if ((o->epi == CUBLASLT_EPILOGUE_GELU_BIAS && allowed < 2) ||
        (o->epi == CUBLASLT_EPILOGUE_BIAS && allowed < 1))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    // an algorithm needs its operands aligned to at least one element
    const uint32_t es = (uint32_t)elem(((const Layout *)a)->type);
    for (uint32_t al : p->align)
        if (al < es) return CUBLAS_STATUS_NOT_SUPPORTED;
    const int n = std::max(1, std::min({requested, env_int("EMU_LT_ALGOS", 8), 8}));
    for (int r = 0; r < n; r++) {
        memset(&results[r], 0, sizeof results[r]);
        Algo *al = (Algo *)&results[r].algo;
        al->magic = kMagicAlgo;
        for (int i = 0; i < 4; i++) al->align[i] = p->align[i] < 16 ? p->align[i] : 16;
        al->epi = o->epi;
        al->rank = r;
        // even ranks use workspace when they may, odd ones none
        al->workspace = r % 2 || p->max_ws < 4096 ? 0 : 4096;
        results[r].workspaceSize = al->workspace;
        results[r].state = CUBLAS_STATUS_SUCCESS;
        results[r].wavesCount = 1.f;
    }
    *returned = n;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t op, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t a, const void *B,
                              cublasLtMatrixLayout_t b, const void *beta, const void *C,
                              cublasLtMatrixLayout_t c, void *D, cublasLtMatrixLayout_t d,
                              const cublasLtMatmulAlgo_t *algo, void *workspace,
                              size_t workspace_bytes, cudaStream_t) {
    const Desc *o = (const Desc *)op;
    cublasStatus_t s = check_problem(o, (const Layout *)a, (const Layout *)b, (const Layout *)c,
                                     (const Layout *)d);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    const Algo *al = (const Algo *)algo;
    if (!al || al->magic != kMagicAlgo) return bad("algorithm not from the heuristic query");
    if (al->epi != o->epi) return bad("algorithm chosen for another epilogue");
    const void *ptr[4] = {A, B, C, D};
    for (int i = 0; i < 4; i++)
        if (alignment(ptr[i]) < al->align[i]) return bad("operand less aligned than the algorithm needs");
    const Layout *la = (const Layout *)a, *lb = (const Layout *)b, *ld = (const Layout *)d;
    if (!emu_dev_range(A, extent(la))) return bad("A outside its device allocation");
    if (!emu_dev_range(B, extent(lb))) return bad("B outside its device allocation");
    if (!emu_dev_range(D, extent(ld))) return bad("D outside its device allocation");
    if (C != D) return bad("C != D (linear.cu computes in place with beta = 0)");
    if (o->epi != CUBLASLT_EPILOGUE_DEFAULT && !emu_dev_range(o->bias, ld->rows * elem(ld->type)))
        return bad("bias outside its device allocation");
    if (al->rank == env_int("EMU_LT_FAIL", -1)) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (workspace_bytes < al->workspace) return bad("workspace smaller than the algorithm needs");
    if (workspace_bytes && !emu_dev_range(workspace, workspace_bytes))
        return bad("workspace outside its device allocation");
    Matmul m{*o, *la, *lb, *ld, *(const float *)alpha, *(const float *)beta, A, B, C, D, gelu_is_erf(),
             al->rank};
    if (emu::g_capturing) {
        emu::g_capture->push_back([m] { m.run(); });
        return CUBLAS_STATUS_SUCCESS;
    }
    m.run();
    return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
