/* Element type conversion between f32, f16 and bf16 (round to nearest even, like torch .to()).
 * Used to upload weights, to take embedding_output in, and to widen activations and tables
 * to the f32 the caller receives. Memory-bound; a grid-stride loop is enough. */
#include "kernels/cuda_common.cuh"

using namespace ember_cuda;

template <typename D, typename S>
static __global__ void convert_kernel(D *dst, const S *src, int64_t n) {
    pdl_begin();
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = from_f32<D>(to_f32(src[i]));
}

template <typename D, typename S>
static cudaError_t convert_cuda(D *dst, const S *src, int64_t n, cudaStream_t stream) {
    const int threads = 256;
    return launch_kernel(convert_kernel<D, S>, grid_blocks(n, threads), threads, 0, stream, dst,
                         src, n);
}

extern "C" ember_status ember_cuda_convert(void *dst, ember_dtype dst_dt, const void *src,
                                           ember_dtype src_dt, int64_t n, cudaStream_t stream) {
    if (n <= 0) return EMBER_OK;
    return dispatch(dst_dt, [&](auto d) {
        using D = decltype(d);
        return dispatch(src_dt, [&](auto s) {
            using S = decltype(s);
            EMBER_CUDA_CHECK(convert_cuda((D *)dst, (const S *)src, n, stream));
            return EMBER_OK;
        });
    });
}
