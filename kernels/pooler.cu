/* Pooler: out (B,H) = tanh(w @ hidden[b,0,:] + b). The first token of each sequence is a
 * strided view of hidden (row stride S*H), so the GEMM reads it in place (ld = S*H); a small
 * kernel adds the bias in f32, applies tanh and writes the caller's dtype (f32, f16, bf16). */
#include "kernels/cuda_common.cuh"

using namespace ember_cuda;

template <typename T, typename O>
static __global__ void bias_tanh_kernel(O *out, const T *x, const T *bias, int64_t n, int H) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = from_f32<O>(tanhf(to_f32(x[i]) + to_f32(bias[i % H])));
}

template <typename T, typename O>
static cudaError_t bias_tanh_cuda(O *out, const T *x, const T *bias, int64_t n, int H,
                                  cudaStream_t stream) {
    const int threads = 256;
    bias_tanh_kernel<T, O><<<grid_blocks(n, threads), threads, 0, stream>>>(out, x, bias, n, H);
    return cudaGetLastError();
}

extern "C" ember_status ember_cuda_pooler(void *out, ember_dtype out_dt, const void *hidden,
                                          const void *w, const void *b, int B, int S, int H,
                                          void *scratch, ember_dtype dt, ember_cuda_gemm *g,
                                          cudaStream_t stream) {
    if (B <= 0) return EMBER_OK;
    EMBER_TRY(ember_cuda_linear(scratch, hidden, w, NULL, B, H, H, (int64_t)S * H, dt, g, stream));
    return dispatch(dt, [&](auto tag) {
        using T = decltype(tag);
        return dispatch(out_dt, [&](auto otag) {
            using O = decltype(otag);
            EMBER_CUDA_CHECK(bias_tanh_cuda((O *)out, (const T *)scratch, (const T *)b,
                                            (int64_t)B * H, H, stream));
            return EMBER_OK;
        });
    });
}
