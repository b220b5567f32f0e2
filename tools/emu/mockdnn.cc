// Host-memory model of the cuDNN backend calls host/cuda_cudnn.c makes (tools/emu; not a GPU).
//
// Built as a shared library that the emulated ember loads exactly as it loads the real cuDNN
// (EMBER_CUDNN_LIB=.../libemucudnn.so, dlopen), so the loader, the graph building, the plan
// cache and the execution path of host/cuda_cudnn.c run, and the two cuDNN candidates compute
// something the tuner can check and time. It follows cuDNN's documented backend semantics as we
// read them, and is strict where the real library may be lenient:
//   - descriptors must be finalized before they are linked or executed, and cannot change after;
//   - each descriptor type accepts only the attributes host/cuda_cudnn.c sets, with their types;
//   - a tensor needs id, type, dims, strides and alignment; an operation's tensors must chain
//     (matmul (b,M,K) x (b,K,N) -> (b,M,N), pointwise shapes, SDPA (B,H,S,D) with lengths as
//     (B,1,1,1) int32 and ragged offsets as (B+1,1,1,1));
//   - the graphs it has an engine for are the two ember builds: matmul -> add -> GELU and one
//     SDPA forward; any other graph gets no engine configuration (a refusal);
//   - execution needs a pointer for every non-virtual tensor, inside one live cudaMalloc range
//     (emu_dev_range), and the workspace the plan asked for.
// Computation: the FFN graph in f32 with one rounding to the output type; SDPA in f32 with the
// probabilities unrounded (the real kernels round them to 16 bits: within the candidate bound).
// Ragged offsets replace the batch stride term of an element's address (our reading).
// Knobs (read at every call): EMU_DNN=run|refuse|wrong (refuse: no execution plan finalizes;
// wrong: the FFN forgets its bias and SDPA its scale), EMU_DNN_TIME=us (fake time of one
// execution on the emulator's clock, default 5), EMU_DNN_WORKSPACE=bytes (default 1024),
// EMU_DNN_VERSION (what cudnnGetVersion says, default 91900).
#include <cuda_runtime_api.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cudnn_graph.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

extern "C" {  // the emulated runtime (mock.cc), exported by the test binary (-rdynamic)
bool emu_dev_range(const void *p, size_t bytes);
void emu_clock_advance(double us);
bool emu_capturing();
void emu_capture_push(std::function<void()> f);
}

namespace {

std::string g_last;

cudnnStatus_t bad(const std::string &why, cudnnStatus_t st = CUDNN_STATUS_BAD_PARAM) {
    g_last = "emu cuDNN: " + why;
    fprintf(stderr, "%s\n", g_last.c_str());
    return st;
}

const char *mode() {
    const char *e = getenv("EMU_DNN");
    return e && *e ? e : "run";
}

struct Attr {
    cudnnBackendAttributeType_t type;
    std::vector<char> bytes;
    int64_t count;
};

struct Desc {
    cudnnBackendDescriptorType_t type;
    bool final = false;
    std::map<int, Attr> attrs;
    const Desc *graph = nullptr;  // ENGINECFG / EXECUTION_PLAN: the graph it runs
    template <typename T> const T *get(int a, int64_t *n = nullptr) const {
        auto it = attrs.find(a);
        if (it == attrs.end()) return nullptr;
        if (n) *n = it->second.count;
        return (const T *)it->second.bytes.data();
    }
    bool has(int a) const { return attrs.count(a) != 0; }
    const Desc *link(int a) const {
        const Desc *const *d = get<const Desc *>(a);
        return d ? *d : nullptr;
    }
};

size_t type_size(cudnnBackendAttributeType_t t) {
    switch (t) {
    case CUDNN_TYPE_HANDLE: return sizeof(cudnnHandle_t);
    case CUDNN_TYPE_DATA_TYPE: return sizeof(cudnnDataType_t);
    case CUDNN_TYPE_BOOLEAN: return sizeof(bool);
    case CUDNN_TYPE_INT64: return 8;
    case CUDNN_TYPE_VOID_PTR: return sizeof(void *);
    case CUDNN_TYPE_HEUR_MODE: return sizeof(cudnnBackendHeurMode_t);
    case CUDNN_TYPE_POINTWISE_MODE: return sizeof(cudnnPointwiseMode_t);
    case CUDNN_TYPE_BACKEND_DESCRIPTOR: return sizeof(void *);
    default: return 0;
    }
}

// The attributes host/cuda_cudnn.c sets, per descriptor type, with their types.
cudnnBackendAttributeType_t expected(cudnnBackendDescriptorType_t d, int a, bool *ok) {
    *ok = true;
    switch (d) {
    case CUDNN_BACKEND_TENSOR_DESCRIPTOR:
        switch (a) {
        case CUDNN_ATTR_TENSOR_UNIQUE_ID:
        case CUDNN_ATTR_TENSOR_DIMENSIONS:
        case CUDNN_ATTR_TENSOR_STRIDES:
        case CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT: return CUDNN_TYPE_INT64;
        case CUDNN_ATTR_TENSOR_DATA_TYPE: return CUDNN_TYPE_DATA_TYPE;
        case CUDNN_ATTR_TENSOR_IS_VIRTUAL:
        case CUDNN_ATTR_TENSOR_IS_BY_VALUE: return CUDNN_TYPE_BOOLEAN;
        case CUDNN_ATTR_TENSOR_RAGGED_OFFSET_DESC: return CUDNN_TYPE_BACKEND_DESCRIPTOR;
        }
        break;
    case CUDNN_BACKEND_POINTWISE_DESCRIPTOR:
        if (a == CUDNN_ATTR_POINTWISE_MODE) return CUDNN_TYPE_POINTWISE_MODE;
        if (a == CUDNN_ATTR_POINTWISE_MATH_PREC) return CUDNN_TYPE_DATA_TYPE;
        break;
    case CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR:
        if (a >= CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR && a <= CUDNN_ATTR_OPERATION_POINTWISE_YDESC)
            return CUDNN_TYPE_BACKEND_DESCRIPTOR;
        break;
    case CUDNN_BACKEND_MATMUL_DESCRIPTOR:
        if (a == CUDNN_ATTR_MATMUL_COMP_TYPE) return CUDNN_TYPE_DATA_TYPE;
        break;
    case CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR:
        if (a >= CUDNN_ATTR_OPERATION_MATMUL_ADESC && a <= CUDNN_ATTR_OPERATION_MATMUL_DESC)
            return CUDNN_TYPE_BACKEND_DESCRIPTOR;
        break;
    case CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR:
        switch (a) {
        case CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC:
        case CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC:
        case CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC:
        case CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC:
        case CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC:
        case CUDNN_ATTR_OPERATION_SDPA_FWD_SEQ_LEN_QDESC:
        case CUDNN_ATTR_OPERATION_SDPA_FWD_SEQ_LEN_KVDESC: return CUDNN_TYPE_BACKEND_DESCRIPTOR;
        }
        break;
    case CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR:
        if (a == CUDNN_ATTR_OPERATIONGRAPH_OPS) return CUDNN_TYPE_BACKEND_DESCRIPTOR;
        if (a == CUDNN_ATTR_OPERATIONGRAPH_HANDLE) return CUDNN_TYPE_HANDLE;
        break;
    case CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR:
        if (a == CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH) return CUDNN_TYPE_BACKEND_DESCRIPTOR;
        if (a == CUDNN_ATTR_ENGINEHEUR_MODE) return CUDNN_TYPE_HEUR_MODE;
        break;
    case CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR:
        if (a == CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG) return CUDNN_TYPE_BACKEND_DESCRIPTOR;
        if (a == CUDNN_ATTR_EXECUTION_PLAN_HANDLE) return CUDNN_TYPE_HANDLE;
        break;
    case CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR:
        if (a == CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS) return CUDNN_TYPE_INT64;
        if (a == CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS || a == CUDNN_ATTR_VARIANT_PACK_WORKSPACE)
            return CUDNN_TYPE_VOID_PTR;
        break;
    default: break;
    }
    *ok = false;
    return CUDNN_TYPE_HANDLE;
}

// ---- tensors --------------------------------------------------------------------------------

struct Tensor {
    int64_t uid = 0;
    cudnnDataType_t type = CUDNN_DATA_FLOAT;
    std::vector<int64_t> dims, strides;
    bool virt = false, by_value = false;
    const Desc *ragged = nullptr;
};

bool tensor_of(const Desc *d, Tensor *t) {
    if (!d || d->type != CUDNN_BACKEND_TENSOR_DESCRIPTOR || !d->final) return false;
    int64_t n = 0, m = 0;
    t->uid = *d->get<int64_t>(CUDNN_ATTR_TENSOR_UNIQUE_ID);
    t->type = *d->get<cudnnDataType_t>(CUDNN_ATTR_TENSOR_DATA_TYPE);
    const int64_t *dims = d->get<int64_t>(CUDNN_ATTR_TENSOR_DIMENSIONS, &n);
    const int64_t *str = d->get<int64_t>(CUDNN_ATTR_TENSOR_STRIDES, &m);
    t->dims.assign(dims, dims + n);
    t->strides.assign(str, str + m);
    const bool *v = d->get<bool>(CUDNN_ATTR_TENSOR_IS_VIRTUAL), *bv = d->get<bool>(CUDNN_ATTR_TENSOR_IS_BY_VALUE);
    t->virt = v && *v;
    t->by_value = bv && *bv;
    t->ragged = d->link(CUDNN_ATTR_TENSOR_RAGGED_OFFSET_DESC);
    return true;
}

size_t elem(cudnnDataType_t t) {
    switch (t) {
    case CUDNN_DATA_FLOAT: case CUDNN_DATA_INT32: return 4;
    case CUDNN_DATA_HALF: case CUDNN_DATA_BFLOAT16: return 2;
    case CUDNN_DATA_INT64: return 8;
    default: return 0;
    }
}

float ld(const void *p, cudnnDataType_t t, int64_t i) {
    if (t == CUDNN_DATA_FLOAT) return ((const float *)p)[i];
    if (t == CUDNN_DATA_HALF) return __half2float(((const __half *)p)[i]);
    return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
}
void st(void *p, cudnnDataType_t t, int64_t i, float v) {
    if (t == CUDNN_DATA_FLOAT) ((float *)p)[i] = v;
    else if (t == CUDNN_DATA_HALF) ((__half *)p)[i] = __float2half_rn(v);
    else ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
}

// Bytes spanned by a strided tensor (dims of the ragged batch dimension excluded by the caller).
size_t extent(const Tensor &t) {
    int64_t last = 0;
    for (size_t i = 0; i < t.dims.size(); i++) last += (t.dims[i] - 1) * t.strides[i];
    return (size_t)(last + 1) * elem(t.type);
}

// ---- the two graphs ---------------------------------------------------------------------------

struct Ffn {  // matmul (x, w) -> add bias -> gelu -> y
    Tensor x, w, b, y;
    bool erf = true;
};
struct Sdpa {
    Tensor q, k, v, o, scale, seq_q, seq_kv, off_qkv, off_o;
    bool lengths = false, ragged = false;
};
struct Graph {
    int kind = 0;  // 1 FFN, 2 SDPA, 0 none we have an engine for
    Ffn ffn;
    Sdpa sdpa;
};
std::map<const Desc *, Graph> g_graphs;

bool same_shape(const Tensor &a, const Tensor &b) { return a.dims == b.dims; }

// Recognise the operation graph; a shape mistake is a finalization error (bad).
cudnnStatus_t analyse(const Desc *graph, Graph *out) {
    int64_t n = 0;
    const Desc *const *ops = graph->get<const Desc *>(CUDNN_ATTR_OPERATIONGRAPH_OPS, &n);
    if (n == 1 && ops[0]->type == CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR) {
        const Desc *op = ops[0];
        Sdpa s;
        tensor_of(op->link(CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC), &s.q);
        tensor_of(op->link(CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC), &s.k);
        tensor_of(op->link(CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC), &s.v);
        tensor_of(op->link(CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC), &s.o);
        tensor_of(op->link(CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC), &s.scale);
        s.lengths = op->has(CUDNN_ATTR_OPERATION_SDPA_FWD_SEQ_LEN_QDESC);
        if (s.lengths) {
            tensor_of(op->link(CUDNN_ATTR_OPERATION_SDPA_FWD_SEQ_LEN_QDESC), &s.seq_q);
            tensor_of(op->link(CUDNN_ATTR_OPERATION_SDPA_FWD_SEQ_LEN_KVDESC), &s.seq_kv);
        }
        s.ragged = s.q.ragged != nullptr;
        if (s.ragged) {
            tensor_of(s.q.ragged, &s.off_qkv);
            if (!s.o.ragged) return bad("SDPA: Q is ragged, O is not");
            tensor_of(s.o.ragged, &s.off_o);
            if (s.k.ragged != s.q.ragged || s.v.ragged != s.q.ragged)
                return bad("SDPA: K and V must share Q's ragged offsets (ember's packed rows)");
            if (!s.lengths) return bad("SDPA: ragged tensors without sequence lengths");
        }
        out->kind = 2;
        out->sdpa = s;
        return CUDNN_STATUS_SUCCESS;
    }
    if (n == 3 && ops[0]->type == CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR &&
        ops[1]->type == CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR &&
        ops[2]->type == CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR) {
        Ffn f;
        Tensor mm, add_x, add_y, gelu_x;
        tensor_of(ops[0]->link(CUDNN_ATTR_OPERATION_MATMUL_ADESC), &f.x);
        tensor_of(ops[0]->link(CUDNN_ATTR_OPERATION_MATMUL_BDESC), &f.w);
        tensor_of(ops[0]->link(CUDNN_ATTR_OPERATION_MATMUL_CDESC), &mm);
        tensor_of(ops[1]->link(CUDNN_ATTR_OPERATION_POINTWISE_XDESC), &add_x);
        tensor_of(ops[1]->link(CUDNN_ATTR_OPERATION_POINTWISE_BDESC), &f.b);
        tensor_of(ops[1]->link(CUDNN_ATTR_OPERATION_POINTWISE_YDESC), &add_y);
        tensor_of(ops[2]->link(CUDNN_ATTR_OPERATION_POINTWISE_XDESC), &gelu_x);
        tensor_of(ops[2]->link(CUDNN_ATTR_OPERATION_POINTWISE_YDESC), &f.y);
        const cudnnPointwiseMode_t m1 =
            *ops[1]->link(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR)->get<cudnnPointwiseMode_t>(CUDNN_ATTR_POINTWISE_MODE);
        const cudnnPointwiseMode_t m2 =
            *ops[2]->link(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR)->get<cudnnPointwiseMode_t>(CUDNN_ATTR_POINTWISE_MODE);
        if (m1 != CUDNN_POINTWISE_ADD ||
            (m2 != CUDNN_POINTWISE_GELU_FWD && m2 != CUDNN_POINTWISE_GELU_APPROX_TANH_FWD)) {
            out->kind = 0;
            return CUDNN_STATUS_SUCCESS;
        }
        if (mm.uid != add_x.uid || add_y.uid != gelu_x.uid) return bad("FFN graph: the ops do not chain");
        if (!mm.virt || !add_y.virt || f.x.virt || f.w.virt || f.b.virt || f.y.virt)
            return bad("FFN graph: intermediates virtual, inputs and output not");
        f.erf = m2 == CUDNN_POINTWISE_GELU_FWD;
        out->kind = 1;
        out->ffn = f;
        return CUDNN_STATUS_SUCCESS;
    }
    out->kind = 0;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_checks(Desc *d) {
    auto need = [&](int a, const char *what) { return d->has(a) ? CUDNN_STATUS_SUCCESS : bad(std::string("missing ") + what); };
    cudnnStatus_t s = CUDNN_STATUS_SUCCESS;
    switch (d->type) {
    case CUDNN_BACKEND_TENSOR_DESCRIPTOR: {
        for (auto [a, w] : {std::pair<int, const char *>{CUDNN_ATTR_TENSOR_UNIQUE_ID, "tensor id"},
                            {CUDNN_ATTR_TENSOR_DATA_TYPE, "tensor type"},
                            {CUDNN_ATTR_TENSOR_DIMENSIONS, "tensor dims"},
                            {CUDNN_ATTR_TENSOR_STRIDES, "tensor strides"},
                            {CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, "tensor alignment"}})
            if ((s = need(a, w)) != CUDNN_STATUS_SUCCESS) return s;
        int64_t n, m;
        const int64_t *dims = d->get<int64_t>(CUDNN_ATTR_TENSOR_DIMENSIONS, &n);
        d->get<int64_t>(CUDNN_ATTR_TENSOR_STRIDES, &m);
        if (n != m || n < 1 || n > 8) return bad("tensor dims and strides differ in rank");
        for (int64_t i = 0; i < n; i++)
            if (dims[i] < 1) return bad("tensor dimension < 1");
        if (!elem(*d->get<cudnnDataType_t>(CUDNN_ATTR_TENSOR_DATA_TYPE))) return bad("tensor type");
        return CUDNN_STATUS_SUCCESS;
    }
    case CUDNN_BACKEND_POINTWISE_DESCRIPTOR:
        if ((s = need(CUDNN_ATTR_POINTWISE_MODE, "pointwise mode")) != CUDNN_STATUS_SUCCESS) return s;
        return need(CUDNN_ATTR_POINTWISE_MATH_PREC, "pointwise precision");
    case CUDNN_BACKEND_MATMUL_DESCRIPTOR: return need(CUDNN_ATTR_MATMUL_COMP_TYPE, "matmul precision");
    case CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR: {
        Tensor a, b, c;
        if (!tensor_of(d->link(CUDNN_ATTR_OPERATION_MATMUL_ADESC), &a) ||
            !tensor_of(d->link(CUDNN_ATTR_OPERATION_MATMUL_BDESC), &b) ||
            !tensor_of(d->link(CUDNN_ATTR_OPERATION_MATMUL_CDESC), &c) ||
            !d->has(CUDNN_ATTR_OPERATION_MATMUL_DESC))
            return bad("matmul op: A, B, C and the matmul descriptor");
        if (a.dims.size() != 3 || b.dims.size() != 3 || c.dims.size() != 3 || a.dims[2] != b.dims[1] ||
            c.dims[1] != a.dims[1] || c.dims[2] != b.dims[2] || a.dims[0] != c.dims[0])
            return bad("matmul op: (b,M,K) x (b,K,N) -> (b,M,N)");
        if (a.type != b.type) return bad("matmul op: A and B types differ");
        return CUDNN_STATUS_SUCCESS;
    }
    case CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR: {
        Tensor x, y, b;
        const Desc *pw = d->link(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR);
        if (!pw || !tensor_of(d->link(CUDNN_ATTR_OPERATION_POINTWISE_XDESC), &x) ||
            !tensor_of(d->link(CUDNN_ATTR_OPERATION_POINTWISE_YDESC), &y))
            return bad("pointwise op: descriptor, X and Y");
        if (!same_shape(x, y)) return bad("pointwise op: X and Y shapes differ");
        const cudnnPointwiseMode_t m = *pw->get<cudnnPointwiseMode_t>(CUDNN_ATTR_POINTWISE_MODE);
        const bool binary = m == CUDNN_POINTWISE_ADD;
        if (binary != d->has(CUDNN_ATTR_OPERATION_POINTWISE_BDESC)) return bad("pointwise op: B for binary modes only");
        if (binary) {
            tensor_of(d->link(CUDNN_ATTR_OPERATION_POINTWISE_BDESC), &b);
            if (b.dims.size() != x.dims.size()) return bad("pointwise op: B rank");
            for (size_t i = 0; i < b.dims.size(); i++)
                if (b.dims[i] != 1 && b.dims[i] != x.dims[i]) return bad("pointwise op: B does not broadcast");
        }
        return CUDNN_STATUS_SUCCESS;
    }
    case CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR: {
        Tensor q, k, v, o, sc;
        if (!tensor_of(d->link(CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC), &q) ||
            !tensor_of(d->link(CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC), &k) ||
            !tensor_of(d->link(CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC), &v) ||
            !tensor_of(d->link(CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC), &o) ||
            !tensor_of(d->link(CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC), &sc))
            return bad("SDPA: Q, K, V, O and the scale");
        if (q.dims.size() != 4 || !same_shape(q, o) || !same_shape(k, v) || k.dims[0] != q.dims[0] ||
            k.dims[1] != q.dims[1] || k.dims[3] != q.dims[3])
            return bad("SDPA: (B,H,S,D) shapes");
        if (q.type != k.type || q.type != v.type || q.type != o.type ||
            (q.type != CUDNN_DATA_HALF && q.type != CUDNN_DATA_BFLOAT16))
            return bad("SDPA: f16 or bf16, all four the same");
        if (!sc.by_value || sc.type != CUDNN_DATA_FLOAT) return bad("SDPA: the scale is a by-value float");
        const bool lq = d->has(CUDNN_ATTR_OPERATION_SDPA_FWD_SEQ_LEN_QDESC),
                   lk = d->has(CUDNN_ATTR_OPERATION_SDPA_FWD_SEQ_LEN_KVDESC);
        if (lq != lk) return bad("SDPA: both sequence lengths or neither");
        if (lq) {
            Tensor a, b;
            tensor_of(d->link(CUDNN_ATTR_OPERATION_SDPA_FWD_SEQ_LEN_QDESC), &a);
            tensor_of(d->link(CUDNN_ATTR_OPERATION_SDPA_FWD_SEQ_LEN_KVDESC), &b);
            for (const Tensor *t : {&a, &b})
                if (t->type != CUDNN_DATA_INT32 || t->dims != std::vector<int64_t>{q.dims[0], 1, 1, 1})
                    return bad("SDPA: sequence lengths are (B,1,1,1) int32");
        }
        if (q.ragged) {
            Tensor r;
            tensor_of(q.ragged, &r);
            if ((r.type != CUDNN_DATA_INT64 && r.type != CUDNN_DATA_INT32) ||
                r.dims != std::vector<int64_t>{q.dims[0] + 1, 1, 1, 1})
                return bad("SDPA: ragged offsets are (B+1,1,1,1) int32/int64");
        }
        return CUDNN_STATUS_SUCCESS;
    }
    case CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR: {
        if ((s = need(CUDNN_ATTR_OPERATIONGRAPH_OPS, "graph ops")) != CUDNN_STATUS_SUCCESS) return s;
        if ((s = need(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, "graph handle")) != CUDNN_STATUS_SUCCESS) return s;
        Graph g;
        if ((s = analyse(d, &g)) != CUDNN_STATUS_SUCCESS) return s;
        g_graphs[d] = g;
        return CUDNN_STATUS_SUCCESS;
    }
    case CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR:
        if ((s = need(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, "heuristics graph")) != CUDNN_STATUS_SUCCESS) return s;
        return need(CUDNN_ATTR_ENGINEHEUR_MODE, "heuristics mode");
    case CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR: {
        const Desc *cfg = d->link(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG);
        if (!cfg || !cfg->graph) return bad("plan: an engine configuration from the heuristics");
        if (!strcmp(mode(), "refuse"))
            return bad("plan refused (EMU_DNN=refuse)", CUDNN_STATUS_NOT_SUPPORTED);
        d->graph = cfg->graph;
        return CUDNN_STATUS_SUCCESS;
    }
    case CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR: {
        int64_t n = 0, m = 0;
        if (!d->get<int64_t>(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, &n) ||
            !d->get<void *>(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, &m) || n != m)
            return bad("variant pack: as many ids as pointers");
        return need(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, "variant pack workspace");
    }
    default: return bad("finalize of a descriptor type the model does not know");
    }
}

int64_t env_i64(const char *n, int64_t def) {
    const char *e = getenv(n);
    return e && *e ? atoll(e) : def;
}

// ---- computation ------------------------------------------------------------------------------

// Element offset of (i0, i1, i2) in a rank-3 tensor.
int64_t at3(const Tensor &t, int64_t a, int64_t b, int64_t c) {
    return a * t.strides[0] + b * t.strides[1] + c * t.strides[2];
}

void run_ffn(const Ffn &f, const void *x, const void *w, const void *b, void *y, bool wrong) {
    const int64_t B = f.x.dims[0], M = f.x.dims[1], K = f.x.dims[2], N = f.w.dims[2];
    for (int64_t z = 0; z < B; z++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                float acc = 0.f;
                for (int64_t k = 0; k < K; k++)
                    acc += ld(x, f.x.type, at3(f.x, z, i, k)) * ld(w, f.w.type, at3(f.w, z, k, j));
                const int64_t bz = f.b.dims[0] == 1 ? 0 : z, bi = f.b.dims[1] == 1 ? 0 : i;
                if (!wrong) acc += ld(b, f.b.type, at3(f.b, bz, bi, j));
                const float g = f.erf ? 0.5f * acc * (1.f + erff(acc * 0.70710678f))
                                      : 0.5f * acc * (1.f + tanhf(0.7978845608f * (acc + 0.044715f * acc * acc * acc)));
                st(y, f.y.type, at3(f.y, z, i, j), g);
            }
}

int64_t at4(const Tensor &t, int64_t base, int64_t h, int64_t s, int64_t d) {
    return base + h * t.strides[1] + s * t.strides[2] + d * t.strides[3];
}

void run_sdpa(const Sdpa &s, const void *q, const void *k, const void *v, void *o, float scale,
              const int32_t *seq_q, const int32_t *seq_kv, const int64_t *off_qkv,
              const int64_t *off_o, bool wrong) {
    const int64_t B = s.q.dims[0], H = s.q.dims[1], S = s.q.dims[2], D = s.q.dims[3], SK = s.k.dims[2];
    if (wrong) scale = 1.f;
    std::vector<float> p(SK);
    for (int64_t b = 0; b < B; b++) {
        const int64_t nq = seq_q ? std::min<int64_t>(seq_q[b], S) : S;
        const int64_t nk = seq_kv ? std::min<int64_t>(seq_kv[b], SK) : SK;
        const int64_t bq = off_qkv ? off_qkv[b] : b * s.q.strides[0];
        const int64_t bk = off_qkv ? off_qkv[b] : b * s.k.strides[0];
        const int64_t bo = off_o ? off_o[b] : b * s.o.strides[0];
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < nq; i++) {
                float mx = -INFINITY;
                for (int64_t j = 0; j < nk; j++) {
                    float dot = 0.f;
                    for (int64_t d = 0; d < D; d++)
                        dot += ld(q, s.q.type, at4(s.q, bq, h, i, d)) * ld(k, s.k.type, at4(s.k, bk, h, j, d));
                    p[j] = dot * scale;
                    mx = std::max(mx, p[j]);
                }
                float sum = 0.f;
                for (int64_t j = 0; j < nk; j++) sum += p[j] = expf(p[j] - mx);
                for (int64_t d = 0; d < D; d++) {
                    float acc = 0.f;
                    for (int64_t j = 0; j < nk; j++) acc += p[j] * ld(v, s.v.type, at4(s.v, bk, h, j, d));
                    st(o, s.o.type, at4(s.o, bo, h, i, d), nk ? acc / sum : 0.f);
                }
            }
    }
}

int g_handles;

}  // namespace

extern "C" {

size_t cudnnGetVersion(void) { return (size_t)env_i64("EMU_DNN_VERSION", 91900); }
const char *cudnnGetErrorString(cudnnStatus_t s) {
    return s == CUDNN_STATUS_SUCCESS ? "CUDNN_STATUS_SUCCESS"
           : s == CUDNN_STATUS_NOT_SUPPORTED ? "CUDNN_STATUS_NOT_SUPPORTED"
                                             : "CUDNN_STATUS_(emulated error)";
}
void cudnnGetLastErrorString(char *msg, size_t n) {
    snprintf(msg, n, "%s", g_last.c_str());
    g_last.clear();
}
cudnnStatus_t cudnnCreate(cudnnHandle_t *h) {
    *h = (cudnnHandle_t)(uintptr_t)(0x2000 + ++g_handles);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t) { return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetStream(cudnnHandle_t, cudaStream_t) { return CUDNN_STATUS_SUCCESS; }

cudnnStatus_t cudnnBackendCreateDescriptor(cudnnBackendDescriptorType_t t, cudnnBackendDescriptor_t *d) {
    Desc *x = new Desc;
    x->type = t;
    *d = (cudnnBackendDescriptor_t)x;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnBackendDestroyDescriptor(cudnnBackendDescriptor_t d) {
    g_graphs.erase((const Desc *)d);
    delete (Desc *)d;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnBackendSetAttribute(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
                                       cudnnBackendAttributeType_t type, int64_t count, const void *value) {
    Desc *x = (Desc *)d;
    if (x->final) return bad("SetAttribute after finalize", CUDNN_STATUS_NOT_INITIALIZED);
    bool ok;
    const cudnnBackendAttributeType_t want = expected(x->type, name, &ok);
    if (!ok) return bad("attribute " + std::to_string((int)name) + " on descriptor type " + std::to_string((int)x->type));
    if (type != want) return bad("attribute " + std::to_string((int)name) + " with the wrong type");
    if (count < 1 || !value) return bad("attribute without a value");
    if (type == CUDNN_TYPE_BACKEND_DESCRIPTOR)
        for (int64_t i = 0; i < count; i++) {
            const Desc *v = ((const Desc *const *)value)[i];
            if (!v || !v->final) return bad("linking a descriptor that is not finalized");
        }
    Attr a{type, std::vector<char>((const char *)value, (const char *)value + count * type_size(type)), count};
    x->attrs[name] = std::move(a);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnBackendGetAttribute(cudnnBackendDescriptor_t const d, cudnnBackendAttributeName_t name,
                                       cudnnBackendAttributeType_t type, int64_t requested, int64_t *count,
                                       void *out) {
    Desc *x = (Desc *)d;
    if (!x->final) return bad("GetAttribute before finalize", CUDNN_STATUS_NOT_INITIALIZED);
    if (x->type == CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR && name == CUDNN_ATTR_ENGINEHEUR_RESULTS) {
        if (type != CUDNN_TYPE_BACKEND_DESCRIPTOR) return bad("heuristics results are descriptors");
        const Desc *graph = x->link(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH);
        const int64_t n = g_graphs.count(graph) && g_graphs[graph].kind ? 1 : 0;
        if (count) *count = requested == 0 ? n : std::min(n, requested);
        for (int64_t i = 0; i < std::min(n, requested); i++) {
            Desc *cfg = ((Desc **)out)[i];
            if (!cfg || cfg->type != CUDNN_BACKEND_ENGINECFG_DESCRIPTOR) return bad("results need ENGINECFG descriptors");
            cfg->graph = graph;
            cfg->final = true;
        }
        return CUDNN_STATUS_SUCCESS;
    }
    if (x->type == CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR && name == CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE) {
        if (type != CUDNN_TYPE_INT64 || requested < 1) return bad("workspace size is one int64");
        *(int64_t *)out = env_i64("EMU_DNN_WORKSPACE", 1024);
        if (count) *count = 1;
        return CUDNN_STATUS_SUCCESS;
    }
    return bad("GetAttribute the model does not know");
}
cudnnStatus_t cudnnBackendFinalize(cudnnBackendDescriptor_t d) {
    Desc *x = (Desc *)d;
    if (x->final) return bad("finalized twice");
    const cudnnStatus_t s = finalize_checks(x);
    if (s == CUDNN_STATUS_SUCCESS) x->final = true;
    return s;
}

cudnnStatus_t cudnnBackendExecute(cudnnHandle_t, cudnnBackendDescriptor_t plan, cudnnBackendDescriptor_t pack) {
    const Desc *p = (const Desc *)plan, *vp = (const Desc *)pack;
    if (!p->final || p->type != CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR) return bad("execute: not a finalized plan");
    if (!vp->final || vp->type != CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR) return bad("execute: not a finalized variant pack");
    auto it = g_graphs.find(p->graph);
    if (it == g_graphs.end()) return bad("execute: the plan's graph is gone");
    const Graph g = it->second;
    int64_t n = 0;
    const int64_t *uids = vp->get<int64_t>(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, &n);
    void *const *ptrs = vp->get<void *>(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS);
    void *ws = *vp->get<void *>(CUDNN_ATTR_VARIANT_PACK_WORKSPACE);
    const int64_t ws_need = env_i64("EMU_DNN_WORKSPACE", 1024);
    if (ws_need && !emu_dev_range(ws, (size_t)ws_need)) return bad("execute: workspace outside its allocation");
    auto ptr = [&](const Tensor &t) -> void * {
        for (int64_t i = 0; i < n; i++)
            if (uids[i] == t.uid) return ptrs[i];
        return nullptr;
    };
    // every non-virtual tensor has a pointer, inside a device allocation (ragged: the offsets
    // decide the batch term, checked when they are read)
    auto check = [&](const Tensor &t, const char *what) -> bool {
        void *q = ptr(t);
        if (!q) return bad(std::string("execute: no pointer for ") + what), false;
        if (t.by_value) return true;
        Tensor u = t;
        if (t.ragged) u.dims[0] = 1;
        if (!emu_dev_range(q, extent(u))) return bad(std::string("execute: ") + what + " outside its allocation"), false;
        return true;
    };
    const bool wrong = !strcmp(mode(), "wrong");
    std::function<void()> work;
    if (g.kind == 1) {
        const Ffn &f = g.ffn;
        if (!check(f.x, "x") || !check(f.w, "w") || !check(f.b, "bias") || !check(f.y, "y")) return CUDNN_STATUS_BAD_PARAM;
        void *x = ptr(f.x), *w = ptr(f.w), *b = ptr(f.b), *y = ptr(f.y);
        work = [f, x, w, b, y, wrong] { run_ffn(f, x, w, b, y, wrong); };
    } else if (g.kind == 2) {
        const Sdpa &s = g.sdpa;
        if (!check(s.q, "Q") || !check(s.k, "K") || !check(s.v, "V") || !check(s.o, "O") || !check(s.scale, "scale"))
            return CUDNN_STATUS_BAD_PARAM;
        const int64_t B = s.q.dims[0];
        const int32_t *sq = nullptr, *sk = nullptr;
        const int64_t *oq = nullptr, *oo = nullptr;
        if (s.lengths) {
            if (!check(s.seq_q, "seq_len_q") || !check(s.seq_kv, "seq_len_kv")) return CUDNN_STATUS_BAD_PARAM;
            sq = (const int32_t *)ptr(s.seq_q);
            sk = (const int32_t *)ptr(s.seq_kv);
        }
        if (s.ragged) {
            if (!check(s.off_qkv, "ragged offsets of Q, K, V") || !check(s.off_o, "ragged offsets of O"))
                return CUDNN_STATUS_BAD_PARAM;
            if (s.off_qkv.type != CUDNN_DATA_INT64 || s.off_o.type != CUDNN_DATA_INT64)
                return bad("the model reads int64 ragged offsets only");
            oq = (const int64_t *)ptr(s.off_qkv);
            oo = (const int64_t *)ptr(s.off_o);
        }
        const float scale = *(const float *)ptr(s.scale);
        void *q = ptr(s.q), *k = ptr(s.k), *v = ptr(s.v), *o = ptr(s.o);
        (void)B;
        work = [s, q, k, v, o, scale, sq, sk, oq, oo, wrong] { run_sdpa(s, q, k, v, o, scale, sq, sk, oq, oo, wrong); };
    } else {
        return bad("execute: a graph without an engine");
    }
    const double us = (double)env_i64("EMU_DNN_TIME", 5);
    auto timed = [work, us] { emu_clock_advance(us); work(); };
    if (emu_capturing()) emu_capture_push(timed);
    else timed();
    return CUDNN_STATUS_SUCCESS;
}

}  // extern "C"
