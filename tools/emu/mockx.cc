// More of the CUDA runtime for the whole-model emulation: events (no-ops), stream capture and
// graphs (record and replay), the GEMM+activation entry (naive GEMM then bias_act). tools/emu.
#include "cuda_runtime.h"
#include <cstdio>
#include "kernels/ops.h"
struct CUgraph_st { std::vector<std::function<void()>> ops; };
struct CUgraphExec_st { std::vector<std::function<void()>> ops; };
extern "C" {
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) { *e = (cudaEvent_t)0x77; return cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
cudaError_t cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode) {
    emu::g_capture = new std::vector<std::function<void()>>();
    emu::g_capturing = true;
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t *g) {
    emu::g_capturing = false;
    auto *gr = new CUgraph_st();
    gr->ops = std::move(*emu::g_capture);
    delete emu::g_capture;
    emu::g_capture = nullptr;
    *g = gr;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long) {
    auto *x = new CUgraphExec_st();
    x->ops = g->ops;
    *e = x;
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return cudaSuccess; }
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) { delete e; return cudaSuccess; }
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t) { for (auto &f : e->ops) f(); return cudaSuccess; }
}
extern "C" ember_status ember_cuda_linear_act(void *out, const void *in, const void *w, const void *b, int N, int IN, int OUT,
                                              int64_t ld_in, int act, ember_dtype dt, ember_cuda_gemm *g, cudaStream_t st) {
    ember_status s = ember_cuda_linear(out, in, w, b, N, IN, OUT, ld_in, dt, g, st);
    if (s || act == EMBER_CUDA_ACT_NONE) return s;
    return ember_cuda_bias_act(out, nullptr, N, OUT, act, dt, st);
}
extern "C" int ember_cuda_gemm_gelu_epilogue(const ember_cuda_gemm *) { return 0; }
