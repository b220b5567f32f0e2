/* Bias + activation, in place: x = act(x + bias). Exact-erf GELU ("gelu", BERT's default),
 * tanh GELU ("gelu_new") and ReLU, in f32 like torch's kernels for every storage type.
 * cuBLASLt's GELU epilogue is the tanh approximation, so exact GELU runs here; the GEMM before
 * it adds the bias in its epilogue and this kernel is then called with bias = NULL.
 *
 * version 1: grid-stride over 16-byte vectors when C is a multiple of the vector and the
 * pointers are aligned, element by element otherwise. */
#include "kernels/cuda_common.cuh"

using namespace ember_cuda;

template <int ACT> __device__ __forceinline__ float activate(float x) {
    if constexpr (ACT == EMBER_ACT_GELU) {
        return 0.5f * x * (1.f + erff(x * 0.70710678118654752440f));
    } else if constexpr (ACT == EMBER_ACT_GELU_TANH) {
        const float k = 0.79788456080286535588f; /* sqrt(2/pi) */
        return 0.5f * x * (1.f + tanhf(k * (x + 0.044715f * x * x * x)));
    } else if constexpr (ACT == EMBER_ACT_RELU) {
        return x < 0.f ? 0.f : x; /* NaN stays NaN, like torch.relu */
    } else {
        return x;
    }
}

template <typename T, int ACT, bool VEC>
static __global__ void bias_act_kernel(T *x, const T *bias, int64_t n, int C) {
    pdl_begin();
    constexpr int VE = VEC ? Vec<T>::N : 1;
    const int64_t nv = n / VE;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < nv; i += stride) {
        const int64_t e = i * VE;
        const int c = (int)(e % C);
        if constexpr (VEC) {
            Vec<T> xv = load_vec(x + e);
            Vec<T> bv{};
            if (bias) bv = load_vec(bias + c);
#pragma unroll
            for (int j = 0; j < VE; j++)
                xv.v[j] = from_f32<T>(
                    activate<ACT>(to_f32(xv.v[j]) + (bias ? to_f32(bv.v[j]) : 0.f)));
            store_vec(x + e, xv);
        } else {
            x[e] = from_f32<T>(activate<ACT>(to_f32(x[e]) + (bias ? to_f32(bias[c]) : 0.f)));
        }
    }
}

template <typename T, int ACT>
static cudaError_t launch(T *x, const T *bias, int64_t n, int C, cudaStream_t stream) {
    const int threads = 256;
    const bool vec = C % Vec<T>::N == 0 && aligned16(x) && (!bias || aligned16(bias));
    if (vec)
        return launch_kernel(bias_act_kernel<T, ACT, true>, grid_blocks(n / Vec<T>::N, threads),
                             threads, 0, stream, x, bias, n, C);
    else
        return launch_kernel(bias_act_kernel<T, ACT, false>, grid_blocks(n, threads), threads, 0,
                             stream, x, bias, n, C);
}

template <typename T>
static cudaError_t bias_act_cuda(T *x, const T *bias, int64_t N, int C, int act,
                                 cudaStream_t stream) {
    const int64_t n = N * C;
    switch (act) {
    case EMBER_ACT_GELU: return launch<T, EMBER_ACT_GELU>(x, bias, n, C, stream);
    case EMBER_ACT_GELU_TANH: return launch<T, EMBER_ACT_GELU_TANH>(x, bias, n, C, stream);
    case EMBER_ACT_RELU: return launch<T, EMBER_ACT_RELU>(x, bias, n, C, stream);
    case EMBER_CUDA_ACT_NONE: return launch<T, EMBER_CUDA_ACT_NONE>(x, bias, n, C, stream);
    }
    return cudaErrorInvalidValue;
}

extern "C" ember_status ember_cuda_bias_act(void *x, const void *bias, int64_t N, int C, int act,
                                            ember_dtype dt, cudaStream_t stream) {
    if (N <= 0 || C <= 0) return EMBER_OK;
    if (act != EMBER_ACT_GELU && act != EMBER_ACT_GELU_TANH && act != EMBER_ACT_RELU &&
        act != EMBER_CUDA_ACT_NONE)
        return ember_fail(EMBER_ERR_UNSUPPORTED, "ember_cuda_bias_act: activation %d", act);
    if (act == EMBER_CUDA_ACT_NONE && !bias) return EMBER_OK;
    return dispatch(dt, [&](auto tag) {
        using T = decltype(tag);
        EMBER_CUDA_CHECK(bias_act_cuda((T *)x, (const T *)bias, N, C, act, stream));
        return EMBER_OK;
    });
}
