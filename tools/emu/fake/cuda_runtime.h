// CPU emulation of the CUDA execution model for ember's kernels (tools/emu, see README.md).
#pragma once
#include <cuda_runtime_api.h>
#include <vector_types.h>
#include <vector_functions.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cfloat>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#undef __launch_bounds__
#undef __align__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

using std::max;
using std::min;

#include <functional>
extern "C" void emu_switch(void **save_sp, void *to_sp);
namespace emu {
struct Ctx {
    dim3 tid, bid, bdim, gdim;
    float *shfl;
    char *smem;
};
extern thread_local Ctx tl;
struct Fiber {
    void *sp;
    char *stack;
    bool done;
};
extern Fiber *g_fibers;
extern int g_cur;
extern void *g_sched_sp;
extern std::function<void()> *g_body;
void fiber_entry();
inline void yield() { emu_switch(&g_fibers[g_cur].sp, g_sched_sp); }
// Counting barriers: a block barrier over the block's live threads, a warp barrier over the
// warp's live lanes. Waiting threads yield; other warps may run ahead (see the scheduler).
struct Bar { int arrived = 0; unsigned gen = 0; };
extern Bar g_block_bar, g_warp_bar[32];
extern int g_alive, g_warp_alive[32];
inline void wait_bar(Bar &b, const int &alive) {
    const unsigned my = b.gen;
    b.arrived++;
    while (b.gen == my) {
        if (b.arrived >= alive) { b.arrived = 0; b.gen++; break; }
        yield();
    }
}
inline void block_barrier() { wait_bar(g_block_bar, g_alive); }
inline void warp_barrier() { const int w = (int)tl.tid.x >> 5; wait_bar(g_warp_bar[w], g_warp_alive[w]); }
}  // namespace emu

#define threadIdx (emu::tl.tid)
#define blockIdx (emu::tl.bid)
#define blockDim (emu::tl.bdim)
#define gridDim (emu::tl.gdim)

inline void __syncthreads() { emu::block_barrier(); }
inline float __shfl_xor_sync(unsigned, float v, int o) {
    const int t = (int)threadIdx.x;
    emu::tl.shfl[t] = v;
    emu::warp_barrier();
    float r = emu::tl.shfl[t ^ o];
    emu::warp_barrier();
    return r;
}
inline void __syncwarp(unsigned = 0xffffffffu) { emu::warp_barrier(); }
namespace emu { inline int g_ballot[1024]; }
inline unsigned __ballot_sync(unsigned, int pred) {
    const int t = (int)threadIdx.x, w0 = t & ~31;
    emu::g_ballot[t] = pred != 0;
    emu::warp_barrier();
    unsigned m = 0;
    for (int l = 0; l < 32 && w0 + l < (int)blockDim.x; l++) m |= (unsigned)emu::g_ballot[w0 + l] << l;
    emu::warp_barrier();
    return m;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
// Stream capture: while capturing, launches and async copies are recorded, replayed by
// cudaGraphLaunch (mockx.cc).
namespace emu {
inline bool g_capturing = false;
inline std::vector<std::function<void()>> *g_capture = nullptr;
// Fake device time (tools/emu/README.md, "Fake timings"): every kernel that runs costs what
// emu_kernel_us says for its name (1 us, or EMU_KERNEL_TIMES); cuBLASLt and cuDNN calls cost
// what their mocks say. Events read this clock.
inline double g_clock_us = 0;
}
extern "C" double emu_kernel_us(const char *kernel_name);  // mock.cc
extern "C" double emu_pdl_us();                            // mock.cc: EMU_PDL_US
extern "C" int emu_cc_major();                             // mock.cc: EMU_CC_MAJOR
extern "C" cudaError_t emu_set_error(cudaError_t e);       // mock.cc: the last error
// Programmatic dependent launch (kernels/pdl.cuh; EMBER_EMU routes its device helpers here).
// Kernels run one after another, so nothing overlaps; what is checked is the contract that
// makes overlap safe on a GPU: every thread of a kernel launched with the PDL attribute calls
// the grid-dependency wait before it returns (the kernels call it first: tools/emu/prep.py
// checks that). A PDL launch costs EMU_PDL_US more (or, negative, less) fake time.
#define EMBER_EMU 1
namespace emu {
inline thread_local const char *g_kernel_name = nullptr;  // prep.py: named(), the next launch's
template <typename K> K *named(const char *n, K *kernel) {
    g_kernel_name = n;
    return kernel;
}
inline bool g_launch_pdl = false;        // the running kernel has the PDL attribute
inline std::vector<char> g_pdl_waited;   // per thread of the running block
inline long g_pdl_launches = 0, g_pdl_waits = 0;  // PDL kernels run, waits in them
inline void pdl_wait() {
    if (!g_launch_pdl) return;
    g_pdl_waited[threadIdx.x] = 1;
    g_pdl_waits++;
}
inline void pdl_launch_dependents() {}
}
inline int atomicOr(int *p, int v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }

template <class T> cudaError_t cudaFuncSetAttribute(T *, cudaFuncAttribute, int) { return cudaSuccess; }

namespace emu {
template <typename... KA, typename... A>
void launch(const char *name, bool pdl, void (*k)(KA...), dim3 grid, dim3 block, size_t smem,
            cudaStream_t st, A... args) {
    if (g_capturing) {
        g_capture->push_back([=] { g_capturing = false; launch(name, pdl, k, grid, block, smem, st, args...); });
        return;
    }
    const int nt = (int)(block.x * block.y * block.z);
    if (nt <= 0 || nt > 1024 || block.y != 1 || block.z != 1) { fprintf(stderr, "emu: bad block\n"); abort(); }
    g_clock_us += std::max(0.0, emu_kernel_us(name) + (pdl ? emu_pdl_us() : 0.0));
    g_launch_pdl = pdl;
    g_pdl_launches += pdl;
    std::vector<char> dyn(smem ? smem : 1);  // exact size: an overrun is caught under EMU_SANITIZE=1
    std::vector<float> shfl(nt);
    const size_t SS = 256 * 1024;
    static char *stacks_mem = nullptr;
    static int stacks_n = 0;
    if (stacks_n < nt) {
        free(stacks_mem);
        stacks_mem = (char *)malloc((size_t)nt * SS);
        stacks_n = nt;
    }
    std::vector<Fiber> fibers(nt);
    std::function<void()> body = [&] { k(args...); };
    g_fibers = fibers.data();
    g_body = &body;
    tl.bdim = block;
    tl.gdim = grid;
    tl.shfl = shfl.data();
    tl.smem = dyn.data();
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                tl.bid = dim3(bx, by, bz);
                memset(dyn.data(), 0xFF, dyn.size());  // undefined at block start: NaN if read unwritten
                g_pdl_waited.assign(nt, 0);
                for (int t = 0; t < nt; t++) {
                    char *top = stacks_mem + (size_t)(t + 1) * SS;
                    top = (char *)((uintptr_t)top & ~(uintptr_t)15);
                    void **sp = (void **)(top - 16);
                    sp[0] = (void *)&fiber_entry;
                    sp -= 6;
                    for (int r = 0; r < 6; r++) sp[r] = nullptr;
                    fibers[t].sp = sp;
                    fibers[t].done = false;
                }
                // EMU_SCHED=drift: each round every warp runs with probability 1/2, so warps
                // drift apart between block barriers (exposes missing __syncthreads).
                static int drift = -1;
                static unsigned rng = 12345;
                if (drift < 0) { const char *e = getenv("EMU_SCHED"); drift = e && !strcmp(e, "drift"); }
                g_alive = nt;
                g_block_bar = Bar{};
                for (int w = 0; w < 32; w++) { g_warp_bar[w] = Bar{}; g_warp_alive[w] = std::max(0, std::min(32, nt - 32 * w)); }
                for (;;) {
                    bool alive = false;
                    unsigned active = ~0u;
                    if (drift) { rng = rng * 1103515245u + 12345u; active = (rng >> 8) | 1u << ((rng >> 4) % ((nt + 31) / 32)); }
                    for (int t = 0; t < nt; t++) {
                        if (fibers[t].done) continue;
                        if (!(active >> (t >> 5) & 1)) { alive = true; continue; }
                        g_cur = t;
                        tl.tid = dim3(t, 0, 0);
                        emu_switch(&g_sched_sp, fibers[t].sp);
                        if (fibers[t].done) { g_alive--; g_warp_alive[t >> 5]--; }
                        if (fibers[t].done && pdl && !g_pdl_waited[t]) {
                            fprintf(stderr, "emu: %s was launched with programmatic stream serialization, "
                                    "but thread %d of block %u returned without the grid-dependency wait "
                                    "(kernels/pdl.cuh: pdl_begin)\n", name, t, bx);
                            abort();
                        }
                        alive |= !fibers[t].done;
                    }
                    if (!alive) break;
                }
            }
    g_launch_pdl = false;
}
}  // namespace emu

// The C++ form of cudaLaunchKernelEx (kernels/pdl.cuh's launch_kernel): the one attribute ember
// sets, checked; refused (cudaErrorNotSupported) before compute capability 9.0, where we do not
// know what a real device does with it and ember must never ask.
template <typename... E, typename... A>
cudaError_t cudaLaunchKernelEx(const cudaLaunchConfig_t *cfg, void (*k)(E...), A &&...args) {
    const char *name = emu::g_kernel_name ? emu::g_kernel_name : "unnamed_kernel";
    emu::g_kernel_name = nullptr;
    bool pdl = false;
    for (unsigned i = 0; i < cfg->numAttrs; i++) {
        if (cfg->attrs[i].id != cudaLaunchAttributeProgrammaticStreamSerialization) {
            fprintf(stderr, "emu: launch attribute %d is not modelled\n", (int)cfg->attrs[i].id);
            abort();
        }
        pdl = cfg->attrs[i].val.programmaticStreamSerializationAllowed != 0;
    }
    if (pdl && emu_cc_major() < 9) return emu_set_error(cudaErrorNotSupported);
#pragma push_macro("gridDim")
#pragma push_macro("blockDim")
#undef gridDim
#undef blockDim
    const dim3 grid = cfg->gridDim, block = cfg->blockDim;
#pragma pop_macro("blockDim")
#pragma pop_macro("gridDim")
    emu::launch(name, pdl, k, grid, block, cfg->dynamicSmemBytes, cfg->stream,
                static_cast<E>(std::forward<A>(args))...);
    return cudaSuccess;
}
