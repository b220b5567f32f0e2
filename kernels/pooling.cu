/* Sentence-embedding pooling on the GPU: twin of kernels/pooling.c (sentence-transformers'
 * Pooling + Normalize) on the f32 last_hidden_state that ember_forward writes.
 *
 * version 1: one block per sequence. The block first counts the sequence's valid tokens
 * (block_sum over the mask); then each thread owns V consecutive features (V = 4, float4
 * loads and stores, when H % 4 == 0 and both pointers are 16-byte aligned; else V = 1) and
 * walks down the sequence for them, so a warp reads 512 contiguous bytes of a row per step.
 * With normalisation the unnormalised values are written first, the block reduces the sum of
 * squares, and each thread rescales the elements it wrote itself (no barrier needed for
 * those). Accumulation is f32. Pooling is a tiny fraction of a forward (B*S*H reads once), so
 * nothing fancier was tried. */
#include "kernels/cuda_common.cuh"

using namespace ember_cuda;

template <int V> struct F32Vec;
template <> struct F32Vec<1> {
    using T = float;
    static __device__ __forceinline__ float get(const T &v, int) { return v; }
    static __device__ __forceinline__ void set(T &v, int, float x) { v = x; }
};
template <> struct F32Vec<4> {
    using T = float4;
    static __device__ __forceinline__ float get(const T &v, int k) {
        return k == 0 ? v.x : k == 1 ? v.y : k == 2 ? v.z : v.w;
    }
    static __device__ __forceinline__ void set(T &v, int k, float x) {
        if (k == 0) v.x = x;
        else if (k == 1) v.y = x;
        else if (k == 2) v.z = x;
        else v.w = x;
    }
};

/* grid (B), block a multiple of 32. hidden (B,S,H), out (B,H), mask (B,S) or NULL. */
template <int V>
static __global__ void pool_kernel(float *out, const float *hidden, const int32_t *mask, int S,
                                   int H, int mode, int normalize) {
    pdl_begin();
    using W = F32Vec<V>;
    using T = typename W::T;
    __shared__ float red[32];
    const int64_t b = blockIdx.x;
    const int32_t *mk = mask ? mask + b * S : nullptr;
    const T *h = reinterpret_cast<const T *>(hidden + b * S * (int64_t)H);
    T *o = reinterpret_cast<T *>(out + b * (int64_t)H);
    const int C = H / V; /* vectors per row */

    float n = 0.f;
    if (mode == EMBER_POOL_MEAN) {
        float c = 0.f;
        for (int s = threadIdx.x; s < S; s += blockDim.x) c += (!mk || mk[s]) ? 1.f : 0.f;
        n = fmaxf(block_sum(c, red), 1e-9f); /* torch.clamp(sum_mask, min=1e-9) */
    }

    float sq = 0.f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        T r;
        if (mode == EMBER_POOL_CLS) {
            r = h[c];
        } else if (mode == EMBER_POOL_MAX) {
            float m[V];
#pragma unroll
            for (int k = 0; k < V; k++) m[k] = -INFINITY;
            for (int s = 0; s < S; s++) {
                const bool valid = !mk || mk[s];
                const T x = h[(int64_t)s * C + c];
#pragma unroll
                for (int k = 0; k < V; k++) {
                    const float v = valid ? W::get(x, k) : -1e9f; /* masked: -1e9, as s-t */
                    if (v > m[k] || v != v) m[k] = v;              /* NaN sticks, as torch.max */
                }
            }
#pragma unroll
            for (int k = 0; k < V; k++) W::set(r, k, m[k]);
        } else {
            float a[V];
#pragma unroll
            for (int k = 0; k < V; k++) a[k] = 0.f;
            for (int s = 0; s < S; s++) {
                if (mk && !mk[s]) continue;
                const T x = h[(int64_t)s * C + c];
#pragma unroll
                for (int k = 0; k < V; k++) a[k] += W::get(x, k);
            }
#pragma unroll
            for (int k = 0; k < V; k++) W::set(r, k, a[k] / n);
        }
#pragma unroll
        for (int k = 0; k < V; k++) sq += W::get(r, k) * W::get(r, k);
        o[c] = r;
    }
    if (!normalize) return;
    const float denom = fmaxf(sqrtf(block_sum(sq, red)), 1e-12f); /* F.normalize */
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        T r = o[c]; /* written by this thread above */
#pragma unroll
        for (int k = 0; k < V; k++) W::set(r, k, W::get(r, k) / denom);
        o[c] = r;
    }
}

template <int V>
static cudaError_t pool_cuda(float *out, const float *hidden, const int32_t *mask, int B, int S,
                             int H, int mode, int normalize, cudaStream_t stream) {
    const int threads = row_threads(H / V, 1);
    return launch_kernel(pool_kernel<V>, B, threads, 0, stream, out, hidden, mask, S, H, mode,
                         normalize);
}

extern "C" ember_status ember_cuda_pool(float *out, const float *hidden, const int32_t *mask,
                                        int B, int S, int H, ember_pooling mode, int normalize,
                                        cudaStream_t stream) {
    if (B <= 0 || S <= 0 || H <= 0) return EMBER_OK;
    if (H % 4 == 0 && aligned16(hidden) && aligned16(out))
        EMBER_CUDA_CHECK(pool_cuda<4>(out, hidden, mask, B, S, H, (int)mode, normalize, stream));
    else
        EMBER_CUDA_CHECK(pool_cuda<1>(out, hidden, mask, B, S, H, (int)mode, normalize, stream));
    return EMBER_OK;
}
