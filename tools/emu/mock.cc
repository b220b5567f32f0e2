// Host-memory stand-in for the CUDA runtime and cuBLASLt pieces ember uses (tools/emu).
#include "cuda_runtime.h"  // the fake one
#include <cublasLt.h>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
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
static std::map<const void *, size_t> g_live;  // base -> size of each cudaMalloc
static size_t g_fail_after = (size_t)-1;  // make the N-th cudaMalloc fail (EMU_FAIL_MALLOC)

static cudaError_t set(cudaError_t e) { if (e != cudaSuccess) g_last = e; return e; }

extern "C" {
cudaError_t cudaGetDeviceCount(int *n) { *n = getenv("EMU_NO_DEVICE") ? 0 : 1; return cudaSuccess; }
cudaError_t cudaRuntimeGetVersion(int *v) { *v = CUDART_VERSION; return cudaSuccess; }
cudaError_t cudaDriverGetVersion(int *v) { *v = CUDART_VERSION; return cudaSuccess; }
cudaError_t cudaGetDevice(int *d) { *d = 0; return cudaSuccess; }
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : set(cudaErrorInvalidDevice); }
cudaError_t cudaMalloc(void **p, size_t n) {
    static size_t count = 0;
    if (const char *f = getenv("EMU_FAIL_MALLOC")) g_fail_after = strtoull(f, 0, 10);
    if (++count == g_fail_after) { *p = nullptr; return set(cudaErrorMemoryAllocation); }
    if (posix_memalign(p, 256, n ? n : 1)) abort();  // exact size: ASan sees overruns
    memset(*p, 0xA5, n);  // garbage, like fresh device memory
    g_live[*p] = n;
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) { if (p) { if (!g_live.erase(p)) { fprintf(stderr, "emu: bad cudaFree\n"); abort(); } free(p); } return cudaSuccess; }
cudaError_t cudaMallocHost(void **p, size_t n) { *p = malloc(n); return cudaSuccess; }
cudaError_t cudaFreeHost(void *p) { free(p); return cudaSuccess; }
// n = 0 copies and sets are legal in CUDA with any pointers (an empty host vector's data() is NULL)
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind) { if (n) memmove(d, s, n); return cudaSuccess; }
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind, cudaStream_t) {
    if (!n) return cudaSuccess;
    if (emu::g_capturing) { emu::g_capture->push_back([=] { memmove(d, s, n); }); return cudaSuccess; }
    memmove(d, s, n); return cudaSuccess; }
cudaError_t cudaMemset(void *d, int v, size_t n) { if (n) memset(d, v, n); return cudaSuccess; }
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t) {
    if (!n) return cudaSuccess;
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
// Does [p, p + bytes) lie inside one live cudaMalloc allocation? (mocklt.cc's operand checks)
bool emu_dev_range(const void *p, size_t bytes) {
    auto it = g_live.upper_bound(p);
    if (it == g_live.begin()) return false;
    --it;
    const char *base = (const char *)it->first, *q = (const char *)p;
    return q >= base && (size_t)(q - base) <= it->second && bytes <= it->second - (size_t)(q - base);
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    if (d != 0) return set(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "ember CPU emulation (not a GPU)");
    p->major = emu_cc_major();
    p->minor = 0;
    p->multiProcessorCount = 132;
    return cudaSuccess;
}
// The fake device clock, for mocks built outside this binary (the cuDNN mock library).
void emu_clock_advance(double us) { emu::g_clock_us += us; }
// Fake time of one launch of a kernel: 1 us, or the EMU_KERNEL_TIMES=name:us,... entry that
// names it (prep.py passes each launch's kernel name).
double emu_kernel_us(const char *kernel) {
    const char *spec = getenv("EMU_KERNEL_TIMES");
    if (!spec || !*spec) return 1.0;
    std::string s(spec);
    size_t at = 0;
    while (at < s.size()) {
        size_t end = s.find(',', at);
        if (end == std::string::npos) end = s.size();
        const std::string item = s.substr(at, end - at);
        const size_t colon = item.find(':');
        if (colon != std::string::npos && item.substr(0, colon) == kernel)
            return atof(item.c_str() + colon + 1);
        at = end + 1;
    }
    return 1.0;
}
// Extra fake time of a kernel launched with programmatic stream serialization (EMU_PDL_US,
// default 0; negative: PDL saves that much), read at every launch so tests can set it.
double emu_pdl_us() {
    const char *v = getenv("EMU_PDL_US");
    return v && *v ? atof(v) : 0.0;
}
int emu_cc_major() {
    const char *cc = getenv("EMU_CC_MAJOR");
    return cc ? atoi(cc) : 9;
}
cudaError_t emu_set_error(cudaError_t e) { return set(e); }
// For the tests (found with dlsym): PDL kernels run, and grid-dependency waits in them.
void emu_pdl_counts(long *launches, long *waits) {
    *launches = emu::g_pdl_launches;
    *waits = emu::g_pdl_waits;
}
bool emu_capturing() { return emu::g_capturing; }
void emu_capture_push(std::function<void()> f) { emu::g_capture->push_back(std::move(f)); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { *s = (cudaStream_t)0x1234; return cudaSuccess; }
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int) {
    *v = a == cudaDevAttrMaxSharedMemoryPerBlockOptin ? 232448 : a == cudaDevAttrComputeCapabilityMajor ? emu_cc_major() : 0;
    return cudaSuccess;
}
cudaError_t cudaGetLastError(void) { cudaError_t e = g_last; g_last = cudaSuccess; return e; }
cudaError_t cudaPeekAtLastError(void) { return g_last; }
const char *cudaGetErrorName(cudaError_t e) { return e == cudaSuccess ? "cudaSuccess" : e == cudaErrorMemoryAllocation ? "cudaErrorMemoryAllocation" : "cudaErrorSomething"; }
const char *cudaGetErrorString(cudaError_t) { return "emulated"; }
const char *cublasGetStatusName(cublasStatus_t) { return "CUBLAS_STATUS_X"; }
const char *cublasGetStatusString(cublasStatus_t) { return "emulated"; }
}
