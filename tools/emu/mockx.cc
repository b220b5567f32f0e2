// More of the CUDA runtime for the whole-model emulation: events (no-ops), stream capture and
// graphs (record and replay). tools/emu.
#include "cuda_runtime.h"
#include <cstdio>
#include "kernels/ops.h"
struct CUgraph_st { std::vector<std::function<void()>> ops; };
struct CUgraphExec_st { std::vector<std::function<void()>> ops; };
// An event holds the fake device clock (emu::g_clock_us) of its last record; the one stream
// runs everything at once, so a recorded event is always complete.
struct CUevent_st { double t_us = -1; };
extern "C" {
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) { *e = new CUevent_st; return cudaSuccess; }
cudaError_t cudaEventCreate(cudaEvent_t *e) { *e = new CUevent_st; return cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
    if (emu::g_capturing) { emu::g_capture->push_back([e] { e->t_us = emu::g_clock_us; }); return cudaSuccess; }
    e->t_us = emu::g_clock_us;
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    if (a->t_us < 0 || b->t_us < 0) return cudaErrorInvalidResourceHandle;  // never recorded
    *ms = (float)((b->t_us - a->t_us) / 1000.0);
    return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t, cudaStreamCaptureStatus *s) {
    *s = emu::g_capturing ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
    return cudaSuccess;
}
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
