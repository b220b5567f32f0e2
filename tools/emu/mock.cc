// Host-memory stand-in for the CUDA runtime and cuBLASLt pieces ember uses (tools/emu).
#include "cuda_runtime.h"  // the fake one
#include <cublasLt.h>
#include <cstdio>
#include <cstdlib>
#include <set>
#include "kernels/ops.h"
#include "host/error.h"

thread_local emu::Ctx emu::tl;
emu::Fiber *emu::g_fibers;
int emu::g_cur;
void *emu::g_sched_sp;
std::function<void()> *emu::g_body;
emu::Bar emu::g_block_bar, emu::g_warp_bar[32];
int emu::g_alive, emu::g_warp_alive[32];
void emu::fiber_entry() {
    (*g_body)();
    g_fibers[g_cur].done = true;
    emu_switch(&g_fibers[g_cur].sp, g_sched_sp);
    abort();
}
asm(R"(
.text
.globl emu_switch
.type emu_switch,@function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
)");
static cudaError_t g_last = cudaSuccess;
static std::set<void *> g_live;
static size_t g_fail_after = (size_t)-1;  // make the N-th cudaMalloc fail (EMU_FAIL_MALLOC)

static cudaError_t set(cudaError_t e) { if (e != cudaSuccess) g_last = e; return e; }

extern "C" {
cudaError_t cudaGetDeviceCount(int *n) { *n = getenv("EMU_NO_DEVICE") ? 0 : 1; return cudaSuccess; }
cudaError_t cudaGetDevice(int *d) { *d = 0; return cudaSuccess; }
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : set(cudaErrorInvalidDevice); }
cudaError_t cudaMalloc(void **p, size_t n) {
    static size_t count = 0;
    if (const char *f = getenv("EMU_FAIL_MALLOC")) g_fail_after = strtoull(f, 0, 10);
    if (++count == g_fail_after) { *p = nullptr; return set(cudaErrorMemoryAllocation); }
    if (posix_memalign(p, 256, n ? n : 1)) abort();  // exact size: ASan sees overruns
    memset(*p, 0xA5, n);  // garbage, like fresh device memory
    g_live.insert(*p);
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) { if (p) { if (!g_live.erase(p)) { fprintf(stderr, "emu: bad cudaFree\n"); abort(); } free(p); } return cudaSuccess; }
cudaError_t cudaMallocHost(void **p, size_t n) { *p = malloc(n); return cudaSuccess; }
cudaError_t cudaFreeHost(void *p) { free(p); return cudaSuccess; }
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind) { memmove(d, s, n); return cudaSuccess; }
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind, cudaStream_t) {
    if (emu::g_capturing) { emu::g_capture->push_back([=] { memmove(d, s, n); }); return cudaSuccess; }
    memmove(d, s, n); return cudaSuccess; }
cudaError_t cudaMemset(void *d, int v, size_t n) { memset(d, v, n); return cudaSuccess; }
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t) {
    if (emu::g_capturing) { emu::g_capture->push_back([=] { memset(d, v, n); }); return cudaSuccess; }
    memset(d, v, n); return cudaSuccess; }
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) {
    static size_t count = 0;
    const char *f = getenv("EMU_STICKY_SYNC");
    if (f && ++count >= strtoull(f, 0, 10)) return set(cudaErrorIllegalAddress);
    return cudaSuccess;
}
size_t emu_live_allocs() { return g_live.size(); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { *s = (cudaStream_t)0x1234; return cudaSuccess; }
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int) {
    const char *cc = getenv("EMU_CC_MAJOR");
    *v = a == cudaDevAttrMaxSharedMemoryPerBlockOptin ? 232448 : a == cudaDevAttrComputeCapabilityMajor ? (cc ? atoi(cc) : 9) : 0;
    return cudaSuccess;
}
cudaError_t cudaGetLastError(void) { cudaError_t e = g_last; g_last = cudaSuccess; return e; }
cudaError_t cudaPeekAtLastError(void) { return g_last; }
const char *cudaGetErrorName(cudaError_t e) { return e == cudaSuccess ? "cudaSuccess" : e == cudaErrorMemoryAllocation ? "cudaErrorMemoryAllocation" : "cudaErrorSomething"; }
const char *cudaGetErrorString(cudaError_t) { return "emulated"; }
const char *cublasGetStatusName(cublasStatus_t) { return "CUBLAS_STATUS_X"; }
const char *cublasGetStatusString(cublasStatus_t) { return "emulated"; }
}

// ---- linear: naive f32-accumulating GEMM instead of cuBLASLt ----
struct ember_cuda_gemm { int dummy; };
extern "C" ember_status ember_cuda_gemm_create(ember_cuda_gemm **out, void *, size_t) { *out = new ember_cuda_gemm(); return EMBER_OK; }
extern "C" void ember_cuda_gemm_destroy(ember_cuda_gemm *g) { delete g; }
template <typename T> static float f(const T x) { return (float)x; }
static float f(const __half x) { return __half2float(x); }
static float f(const __nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> static T to(float x);
template <> float to<float>(float x) { return x; }
template <> __half to<__half>(float x) { return __float2half_rn(x); }
template <> __nv_bfloat16 to<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <typename T>
static void lin(T *out, const T *in, const T *w, const T *b, int N, int IN, int OUT, int64_t ld) {
    for (int t = 0; t < N; t++)
        for (int j = 0; j < OUT; j++) {
            float acc = 0.f;
            for (int i = 0; i < IN; i++) acc += f(in[t * ld + i]) * f(w[(int64_t)j * IN + i]);
            out[(int64_t)t * OUT + j] = to<T>(b ? acc + f(b[j]) : acc);
        }
}
extern "C" ember_status ember_cuda_linear(void *out, const void *in, const void *w, const void *b, int N, int IN, int OUT, int64_t ld, ember_dtype dt, ember_cuda_gemm *gg, cudaStream_t st) {
    if (emu::g_capturing) { emu::g_capture->push_back([=] { emu::g_capturing = false; ember_cuda_linear(out, in, w, b, N, IN, OUT, ld, dt, gg, st); }); return EMBER_OK; }
    if (g_live.empty()) abort();
    if (dt == EMBER_DTYPE_F32) lin((float *)out, (const float *)in, (const float *)w, (const float *)b, N, IN, OUT, ld);
    else if (dt == EMBER_DTYPE_F16) lin((__half *)out, (const __half *)in, (const __half *)w, (const __half *)b, N, IN, OUT, ld);
    else lin((__nv_bfloat16 *)out, (const __nv_bfloat16 *)in, (const __nv_bfloat16 *)w, (const __nv_bfloat16 *)b, N, IN, OUT, ld);
    return EMBER_OK;
}
