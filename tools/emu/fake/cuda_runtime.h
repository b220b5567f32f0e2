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
inline int atomicOr(int *p, int v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }

template <class T> cudaError_t cudaFuncSetAttribute(T *, cudaFuncAttribute, int) { return cudaSuccess; }

namespace emu {
template <typename... KA, typename... A>
void launch(const char *name, void (*k)(KA...), dim3 grid, dim3 block, size_t smem, cudaStream_t st,
            A... args) {
    if (g_capturing) {
        g_capture->push_back([=] { g_capturing = false; launch(name, k, grid, block, smem, st, args...); });
        return;
    }
    const int nt = (int)(block.x * block.y * block.z);
    if (nt <= 0 || nt > 1024 || block.y != 1 || block.z != 1) { fprintf(stderr, "emu: bad block\n"); abort(); }
    g_clock_us += emu_kernel_us(name);
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
                        alive |= !fibers[t].done;
                    }
                    if (!alive) break;
                }
            }
}
}  // namespace emu
