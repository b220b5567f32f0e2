/* Pooler: out (B,H) = tanh(w @ hidden[b,0,:] + b). The first token of each sequence is a
 * strided view of hidden (row stride S*H), so the GEMM reads it in place (ld = S*H); a small
 * kernel adds the bias in f32, applies tanh and writes the caller's dtype (f32, f16, bf16). Then
 * the classification heads' dense layer (ember_cuda_dense). */
#include "kernels/cuda_common.cuh"

using namespace ember_cuda;

template <typename T, typename O>
static __global__ void bias_tanh_kernel(O *out, const T *x, const T *bias, int64_t n, int H) {
    pdl_begin();
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = from_f32<O>(tanhf(to_f32(x[i]) + to_f32(bias[i % H])));
}

template <typename T, typename O>
static cudaError_t bias_tanh_cuda(O *out, const T *x, const T *bias, int64_t n, int H,
                                  cudaStream_t stream) {
    const int threads = 256;
    return launch_kernel(bias_tanh_kernel<T, O>, grid_blocks(n, threads), threads, 0, stream, out,
                         x, bias, n, H);
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

/* ---- the heads' dense layer: out (N,OUT) = act(in[n] @ w^T + b) ----------------------------
 * version 1: one warp per output element, lanes striding over IN, a fixed-order warp sum (the
 * heads are a few thousand dot products at most: B x H for a sequence head's dense, B*S x L
 * for a token head). in is the final hidden state in the compute dtype (or f32 scratch), out
 * the f32 scratch between a sequence head's two layers or the caller's logits in their dtype;
 * w and b in the compute dtype; f32 arithmetic. */

__device__ __forceinline__ float head_activate(float x, int act) {
    switch (act) {
    case EMBER_HEAD_ACT_TANH: return tanhf(x);
    case EMBER_HEAD_ACT_GELU: return 0.5f * x * (1.f + erff(x * 0.70710678118654752440f));
    case EMBER_HEAD_ACT_RELU: return x < 0.f ? 0.f : x;
    default: return x;
    }
}

template <typename W, typename I, typename O>
static __global__ void dense_kernel(O *out, const I *in, int64_t ld_in, const W *w, const W *b,
                                    int64_t n_out, int IN, int OUT, int act) {
    pdl_begin();
    const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    const int64_t stride = (int64_t)gridDim.x * warps;
    for (int64_t e = (int64_t)blockIdx.x * warps + (threadIdx.x >> 5); e < n_out; e += stride) {
        const I *x = in + (e / OUT) * ld_in;
        const int o = (int)(e % OUT);
        const W *wr = w + (int64_t)o * IN;
        float acc = 0.f;
        for (int i = lane; i < IN; i += 32) acc += to_f32(x[i]) * to_f32(wr[i]);
        acc = warp_sum(acc);
        if (lane == 0) out[e] = from_f32<O>(head_activate(acc + (b ? to_f32(b[o]) : 0.f), act));
    }
}

template <typename W, typename I, typename O>
static cudaError_t dense_cuda(O *out, const I *in, int64_t ld_in, const W *w, const W *b, int N,
                              int IN, int OUT, int act, cudaStream_t stream) {
    const int threads = 256;
    const int64_t n_out = (int64_t)N * OUT;
    return launch_kernel(dense_kernel<W, I, O>, grid_blocks(n_out, threads / 32), threads, 0,
                         stream, out, in, ld_in, w, b, n_out, IN, OUT, act);
}

extern "C" ember_status ember_cuda_dense(void *out, ember_dtype out_dt, const void *in,
                                         ember_dtype in_dt, int64_t ld_in, const void *w,
                                         const void *b, int N, int IN, int OUT, ember_head_act act,
                                         ember_dtype dt, cudaStream_t stream) {
    if (N <= 0 || OUT <= 0) return EMBER_OK;
    return dispatch(dt, [&](auto wtag) {
        using W = decltype(wtag);
        return dispatch(in_dt, [&](auto itag) {
            using I = decltype(itag);
            return dispatch(out_dt, [&](auto otag) {
                using O = decltype(otag);
                EMBER_CUDA_CHECK(dense_cuda((O *)out, (const I *)in, ld_in, (const W *)w,
                                            (const W *)b, N, IN, OUT, (int)act, stream));
                return EMBER_OK;
            });
        });
    });
}
