/* Device helpers shared by kernels/<op>.cu: storage types, 16-byte vectors, block reductions and
 * the dtype dispatch of the extern "C" entries, and (kernels/pdl.cuh) the one launch path and
 * the grid-dependency wait every kernel begins with; internal. */
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "host/cuda_check.h"
#include "kernels/ops.h"
#include "kernels/pdl.cuh"

namespace ember_cuda {

/* ---- storage types: f32, f16 and bf16 are stored; arithmetic is always f32 ---------------- */

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}

/* 16 bytes of T: the unit of vectorised global access (LDG.128 / STG.128). */
template <typename T> struct alignas(16) Vec {
    static constexpr int N = 16 / sizeof(T);
    T v[N];
};

template <typename T> __device__ __forceinline__ Vec<T> load_vec(const T *p) {
    return *reinterpret_cast<const Vec<T> *>(p);
}
template <typename T> __device__ __forceinline__ void store_vec(T *p, const Vec<T> &v) {
    *reinterpret_cast<Vec<T> *>(p) = v;
}

inline bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* ---- reductions (fixed order: deterministic) ---------------------------------------------- */

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sum over the block, returned to every thread. blockDim.x is a multiple of 32 (<= 1024);
 * red is __shared__ float[32]. Ends with a barrier, so red can be reused at once. */
__device__ __forceinline__ float block_sum(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nwarps = blockDim.x >> 5;
    v = warp_sum(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = lane < nwarps ? red[lane] : 0.f;
    t = warp_sum(t);
    __syncthreads();
    return t;
}

/* Threads for a row kernel: about `per_thread` elements each, a multiple of 32, <= 256. */
inline int row_threads(int n, int per_thread) {
    int t = (n + per_thread - 1) / per_thread;
    t = (t + 31) / 32 * 32;
    return t < 32 ? 32 : t > 256 ? 256 : t;
}

/* Blocks for a grid-stride loop over n items with `threads` per block. */
inline int grid_blocks(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    return b < 1 ? 1 : b > (1 << 20) ? (1 << 20) : (int)b;
}

/* Raise a kernel's dynamic shared-memory limit when a row does not fit the default 48 KB. */
template <typename K> inline cudaError_t allow_smem(K kernel, size_t bytes) {
    if (bytes <= 48 * 1024) return cudaSuccess;
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

/* ---- dtype dispatch: f(T{}) with T the storage type of dt ---------------------------------- */

template <typename F> inline ember_status dispatch(ember_dtype dt, F &&f) {
    switch (dt) {
    case EMBER_DTYPE_F32: return f(float{});
    case EMBER_DTYPE_F16: return f(__half{});
    case EMBER_DTYPE_BF16: return f(__nv_bfloat16{});
    }
    return ember_fail(EMBER_ERR_INTERNAL, "dtype %d is not an ember_dtype", (int)dt);
}

}  // namespace ember_cuda
