/* The per-thread PDL setting and the probe of kernels/pdl.cuh. */
#include "kernels/cuda_common.cuh"

using namespace ember_cuda;

static thread_local int pdl_on = 0;

extern "C" int ember_cuda_pdl_set(int on) {
    const int was = pdl_on;
    pdl_on = on != 0;
    return was;
}

extern "C" int ember_cuda_pdl_get(void) { return pdl_on; }

/* out[0] = whether the code this device runs has the grid-dependency instructions: the
 * compilation pass that made it (sm_80 code, or compute_80 PTX JIT-compiled for a newer GPU,
 * has not). */
static __global__ void pdl_probe_kernel(int *out) {
    pdl_begin();
    if (blockIdx.x == 0 && threadIdx.x == 0) out[0] = EMBER_PDL_COMPILED;
}

extern "C" ember_status ember_cuda_pdl_probe(int *scratch, int *compiled) {
    *compiled = 0;
    const int was = ember_cuda_pdl_set(0);
    const cudaError_t e = launch_kernel(pdl_probe_kernel, 1, 32, 0, 0, scratch);
    ember_cuda_pdl_set(was);
    EMBER_CUDA_CHECK(e);
    int v = 0;
    EMBER_CUDA_CHECK(cudaMemcpy(&v, scratch, sizeof v, cudaMemcpyDeviceToHost));
    EMBER_CUDA_CHECK(cudaMemset(scratch, 0, sizeof v));
    *compiled = v == 1;
    return EMBER_OK;
}
