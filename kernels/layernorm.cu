/* Bias + residual + LayerNorm, fused: out = LN(x + bias + residual) * gamma + beta.
 *
 * version 1: one block per row; the f32 row is staged in shared memory; statistics in f32,
 * two passes (mean, then mean of squared deviations), like the double reference. When H is a
 * multiple of the 16-byte vector and every pointer is 16-byte aligned, rows move as 16-byte
 * vectors (8 halves or 4 floats per access); otherwise element by element. Only ember's own
 * buffers decide the path: the caller's second output (out_x, in f32, f16 or bf16: the
 * caller's last_hidden_state / hidden_states) is written with scalar stores when it is not
 * 16-byte aligned, so the reduction order, and the bits, never depend on where the caller's
 * output lies. Each thread reads and writes the same columns, so out may alias residual. */
#include <type_traits>

#include "kernels/cuda_common.cuh"

using namespace ember_cuda;

template <typename T, typename O, bool VEC>
static __global__ void bias_residual_layernorm_kernel(T *out, O *out_x, const T *x,
                                                      const T *bias, const T *residual,
                                                      const float *gamma, const float *beta,
                                                      int H, float eps, bool x_vec) {
    pdl_begin();
    extern __shared__ float row[]; /* (H) f32, read back by the thread that wrote it */
    __shared__ float red[32];
    constexpr int VE = VEC ? Vec<T>::N : 1;
    const int64_t off = (int64_t)blockIdx.x * H;
    const int step = blockDim.x * VE;

    float sum = 0.f;
    for (int k = threadIdx.x * VE; k < H; k += step) {
        if constexpr (VEC) {
            const Vec<T> xv = load_vec(x + off + k), rv = load_vec(residual + off + k);
            Vec<T> bv{};
            if (bias) bv = load_vec(bias + k);
#pragma unroll
            for (int j = 0; j < VE; j++) {
                /* HF: dense(x) (bias included) + input_tensor. */
                const float v = (to_f32(xv.v[j]) + (bias ? to_f32(bv.v[j]) : 0.f)) +
                                to_f32(rv.v[j]);
                row[k + j] = v;
                sum += v;
            }
        } else {
            const float v = (to_f32(x[off + k]) + (bias ? to_f32(bias[k]) : 0.f)) +
                            to_f32(residual[off + k]);
            row[k] = v;
            sum += v;
        }
    }
    const float mean = block_sum(sum, red) / (float)H;
    float sq = 0.f;
    for (int k = threadIdx.x * VE; k < H; k += step) {
#pragma unroll
        for (int j = 0; j < VE; j++) {
            const float d = row[k + j] - mean;
            sq += d * d;
        }
    }
    const float var = block_sum(sq, red) / (float)H;
    const float rstd = 1.f / sqrtf(var + eps);

    for (int k = threadIdx.x * VE; k < H; k += step) {
        if constexpr (VEC) {
            Vec<T> ov;
            float f[VE];
#pragma unroll
            for (int j = 0; j < VE; j += 4) {
                const float4 g = *reinterpret_cast<const float4 *>(gamma + k + j);
                const float4 b = *reinterpret_cast<const float4 *>(beta + k + j);
                f[j + 0] = (row[k + j + 0] - mean) * rstd * g.x + b.x;
                f[j + 1] = (row[k + j + 1] - mean) * rstd * g.y + b.y;
                f[j + 2] = (row[k + j + 2] - mean) * rstd * g.z + b.z;
                f[j + 3] = (row[k + j + 3] - mean) * rstd * g.w + b.w;
            }
#pragma unroll
            for (int j = 0; j < VE; j++) {
                ov.v[j] = from_f32<T>(f[j]);
                f[j] = to_f32(ov.v[j]);
            }
            store_vec(out + off + k, ov);
            if constexpr (std::is_same<O, float>::value) {
                if (out_x && x_vec) {
#pragma unroll
                    for (int j = 0; j < VE; j += 4)
                        *reinterpret_cast<float4 *>(out_x + off + k + j) =
                            make_float4(f[j], f[j + 1], f[j + 2], f[j + 3]);
                    continue;
                }
            } else if constexpr (std::is_same<O, T>::value) {
                if (out_x && x_vec) {
                    store_vec(out_x + off + k, ov);
                    continue;
                }
            }
            if (out_x) {
#pragma unroll
                for (int j = 0; j < VE; j++) out_x[off + k + j] = from_f32<O>(f[j]);
            }
        } else {
            const T o = from_f32<T>((row[k] - mean) * rstd * gamma[k] + beta[k]);
            out[off + k] = o;
            if (out_x) out_x[off + k] = from_f32<O>(to_f32(o));
        }
    }
}

template <typename T, typename O, bool VEC>
static cudaError_t launch(T *out, O *out_x, const T *x, const T *bias, const T *residual,
                          const float *gamma, const float *beta, int N, int H, float eps,
                          cudaStream_t stream) {
    const int threads = row_threads(H, VEC ? Vec<T>::N : 4);
    const size_t smem = sizeof(float) * (size_t)H;
    cudaError_t e = allow_smem(bias_residual_layernorm_kernel<T, O, VEC>, smem);
    if (e != cudaSuccess) return e;
    return launch_kernel(bias_residual_layernorm_kernel<T, O, VEC>, N, threads, smem, stream, out,
                         out_x, x, bias, residual, gamma, beta, H, eps, !out_x || aligned16(out_x));
}

template <typename T, typename O>
static cudaError_t bias_residual_layernorm_cuda(T *out, O *out_x, const T *x, const T *bias,
                                                const T *residual, const float *gamma,
                                                const float *beta, int N, int H, float eps,
                                                cudaStream_t stream) {
    const bool vec = H % Vec<T>::N == 0 && aligned16(out) && aligned16(x) &&
                     aligned16(residual) && (!bias || aligned16(bias)) && aligned16(gamma) &&
                     aligned16(beta);
    if (vec) return launch<T, O, true>(out, out_x, x, bias, residual, gamma, beta, N, H, eps, stream);
    return launch<T, O, false>(out, out_x, x, bias, residual, gamma, beta, N, H, eps, stream);
}

extern "C" ember_status ember_cuda_bias_residual_layernorm(void *out, void *out_x,
                                                           ember_dtype out_x_dt,
                                                           const void *x, const void *bias,
                                                           const void *residual,
                                                           const float *gamma, const float *beta,
                                                           int N, int H, double eps,
                                                           ember_dtype dt, cudaStream_t stream) {
    if (N <= 0) return EMBER_OK;
    return dispatch(dt, [&](auto tag) {
        using T = decltype(tag);
        return dispatch(out_x ? out_x_dt : dt, [&](auto otag) {
            using O = decltype(otag);
            EMBER_CUDA_CHECK(bias_residual_layernorm_cuda((T *)out, (O *)out_x, (const T *)x,
                                                          (const T *)bias, (const T *)residual,
                                                          gamma, beta, N, H, (float)eps, stream));
            return EMBER_OK;
        });
    });
}
