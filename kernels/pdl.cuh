/* Programmatic dependent launch (PDL, compute capability 9.0+) and the one launch path of
 * ember's kernels; internal.
 *
 * With PDL a kernel launched with cudaLaunchAttributeProgrammaticStreamSerialization may be
 * scheduled before the kernel ahead of it in the stream has finished, so that its launch
 * latency hides behind that kernel's tail. The rules ember follows, from the CUDA programming
 * guide ("Programmatic Dependent Launch and Synchronization") and the PTX ISA (griddepcontrol):
 *   - every ember kernel calls pdl_begin() as its first statement, before any read or write of
 *     global memory (tools/emu/prep.py refuses a kernel that does not). Its
 *     griddepcontrol.wait "causes the executing thread to wait until all prerequisite grids in
 *     flight have completed and all the memory operations from the prerequisite grids are
 *     performed and made visible to the current grid" (PTX ISA); so nothing a kernel does
 *     overlaps the kernel before it, and since that kernel waited for its own predecessor
 *     before anything else, every kernel sees the whole stream's earlier work, as without PDL;
 *   - right after the wait it signals griddepcontrol.launch_dependents: the next kernel may be
 *     scheduled as soon as every block of this one has signalled or exited. That is safe only
 *     because of the wait above in the next kernel (launch_dependents alone makes nothing
 *     visible); what it buys is the next kernel's launch and block scheduling, not more;
 *   - the predecessor may be a library kernel (cuBLASLt, cuDNN) that never signals: the
 *     dependent is then scheduled when that kernel's blocks exit ("the trigger occurs
 *     implicitly"), and the wait still orders its memory. Copies, memsets and event records
 *     between kernels keep the ordinary stream order;
 *   - without the launch attribute (PDL off, a device before 9.0) both instructions are no-ops
 *     and the launch is an ordinary one. Before sm_90 they are not compiled at all, so
 *     host/backend_cuda.c offers PDL only when the probe kernel below reports that the code
 *     this device runs has them (an sm_80-only build JIT-compiled on a Hopper GPU does not).
 * Whether a launch carries the attribute is a per-thread setting (ember_cuda_pdl_set in
 * kernels/ops.h): the backend turns it on around a forward or a graph capture that uses PDL.
 * The CPU emulation (tools/emu) runs the same helpers: EMBER_EMU routes them to its checks. */
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "kernels/ops.h"

namespace ember_cuda {

/* 1 where this compilation pass has the grid-dependency instructions (what the probe reports). */
#if (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900) || defined(EMBER_EMU)
#define EMBER_PDL_COMPILED 1
#else
#define EMBER_PDL_COMPILED 0
#endif

/* The first statement of every ember kernel: wait for the grid ahead, then let the next one
 * be scheduled. All threads call it (no early return before it). */
__device__ __forceinline__ void pdl_begin() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#elif defined(EMBER_EMU)
    emu::pdl_wait();
    emu::pdl_launch_dependents();
#endif
}

/* kernel<<<grid, block, smem, stream>>>(args...), with the PDL attribute when this thread's
 * setting asks for it; returns the launch's error, which stays the runtime's last error too
 * (EMBER_CUDA_CHECK clears it). Arguments convert to the kernel's parameter types as with
 * <<<>>> (cudaLaunchKernelEx's C++ template coerces them). */
template <typename... P, typename... A>
inline cudaError_t launch_kernel(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem,
                                 cudaStream_t stream, A &&...args) {
    cudaLaunchAttribute attr[1] = {};
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    /* positional: grid, block, dynamic shared memory, stream, attributes (the CPU emulation
     * defines gridDim and blockDim as macros, so the fields are not named here) */
    cudaLaunchConfig_t cfg = {grid, block, smem, stream, attr, ember_cuda_pdl_get() ? 1u : 0u};
    return cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...);
}

}  // namespace ember_cuda
