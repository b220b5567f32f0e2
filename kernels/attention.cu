/* Multi-head self-attention with HF eager semantics, never materialising (B,NH,S,S).
 *
 * version 1 (SIMT, FlashAttention-style online softmax): a block of 128 threads takes QPB
 * queries of one (batch, head); each query is owned by G threads that hold DPT = 16 of its
 * head dimensions in registers (q slice and f32 output accumulator). K and V tiles of KT keys
 * are staged in shared memory as f32; scores are computed 16 keys at a time (partial dots
 * summed across the G threads with xor shuffles), then one running-max rescale per 16 keys.
 * The head size is a template bucket (16, 32, 64, 128, 256); sizes below a bucket (8, 12, 36,
 * ...) run the same code with zero-padded dimensions. Each thread's dimensions are interleaved
 * in float4 groups (group i of thread s is float4 i*G + s of the row) so that a warp's 16-byte
 * shared-memory reads fall in distinct banks. A tensor-core (mma.sync / wgmma) kernel can
 * replace attention_cuda's dispatch without changing the entry point.
 *
 * Masking follows HF eager: a masked key gets score + (-FLT_MAX). Scores are kept in the log2
 * domain (scaled by log2 e) and the mask is added after that scaling, so a masked score is
 * -FLT_MAX in both domains: a fully masked row has all scores equal to -FLT_MAX, every weight
 * exp2(0) = 1, and the output is the plain average of V over all S keys, never NaN. Keys
 * past S in the last tile get -inf and weight 0.
 *
 * The packed form (VARLEN, padding removed) runs the same kernel on sequence b = rows
 * cu_seqlens[b] .. cu_seqlens[b+1]-1 of qkv and out with no mask; the grid is sized by max_len
 * and blocks whose queries all lie past their sequence exit at once.
 *
 * Since version 2 (kernels/attention_mma.cu, tensor cores) this kernel serves f32, head sizes
 * other than 32 and 64, unaligned pointers, and every case when EMBER_ATTENTION=simt. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda_common.cuh"

using namespace ember_cuda;

static constexpr int kThreads = 128;
static constexpr int kChunk = 16; /* keys per online-softmax step */

template <int HDMAX> struct AttnShape {
    static constexpr int DPT = 16;                /* head dims per thread            */
    static constexpr int G = HDMAX / DPT;         /* threads per query               */
    static constexpr int QPB = kThreads / G;      /* queries per block               */
    static constexpr int KT = HDMAX <= 64 ? 64 : 4096 / HDMAX; /* keys per tile: <= 32 KB */
    static_assert(HDMAX % DPT == 0 && G <= 32 && 32 % G == 0, "head-size bucket");
    static_assert(KT % kChunk == 0, "tile holds whole chunks");
};

/* Column of dimension i (0 <= i < DPT) of thread slice s. */
template <int G> __device__ __forceinline__ int dim_of(int s, int i) {
    return ((i >> 2) * G + s) * 4 + (i & 3);
}

/* qkv: token i of the sequence at row tok0 + i, query at column h*HD, key at H + h*HD, value
 * at 2H + h*HD; out row tok0 + i (H columns). Padded: tok0 = b*S, len = S, mask (B,S) or NULL;
 * cu_seqlens is then `only` (B) or NULL: sequences with only[b] == 0 are left alone (another
 * implementation wrote them, see ember_cuda_attention_only).
 * VARLEN: tok0 = cu_seqlens[b], len = cu_seqlens[b+1] - tok0 clamped to [0, S], S = max_len,
 * no mask. EXACT: hd == HDMAX and qkv is 16-byte aligned (16-byte tile loads). */
template <typename T, int HDMAX, bool EXACT, bool VARLEN>
__global__ void __launch_bounds__(kThreads, 4)
attention_kernel(T *out, const T *qkv, const int32_t *mask, const int32_t *cu_seqlens, int S,
                 int NH, int hd, float scale_log2) {
    pdl_begin();
    using Sh = AttnShape<HDMAX>;
    constexpr int DPT = Sh::DPT, G = Sh::G, QPB = Sh::QPB, KT = Sh::KT;
    __shared__ __align__(16) float Ks[KT][HDMAX];
    __shared__ __align__(16) float Vs[KT][HDMAX];
    __shared__ float Madd[KT]; /* additive mask per key of the tile: 0, -FLT_MAX, or -inf */

    const int qblocks = (S + QPB - 1) / QPB;
    const int qb = blockIdx.x % qblocks;
    const int h = (blockIdx.x / qblocks) % NH;
    const int b = blockIdx.x / qblocks / NH;
    int64_t tok0;
    int len;
    if constexpr (VARLEN) {
        tok0 = cu_seqlens[b];
        len = min(max(cu_seqlens[b + 1] - cu_seqlens[b], 0), S);
        if (qb * QPB >= len) return; /* whole block: before any barrier */
    } else {
        if (cu_seqlens && !cu_seqlens[b]) return; /* whole block: before any barrier */
        tok0 = (int64_t)b * S;
        len = S;
    }
    const int32_t *mrow = VARLEN || !mask ? nullptr : mask + (int64_t)b * S;
    const int H = NH * hd;
    const int64_t row = 3 * (int64_t)H;
    const T *base = qkv + tok0 * row;

    const int slice = threadIdx.x % G;
    const int qi = qb * QPB + threadIdx.x / G;
    const bool active = qi < len;

    float q[DPT], acc[DPT];
#pragma unroll
    for (int i = 0; i < DPT; i++) {
        const int d = dim_of<G>(slice, i);
        q[i] = active && (EXACT || d < hd) ? to_f32(base[qi * row + h * hd + d]) : 0.f;
        acc[i] = 0.f;
    }
    float m = -INFINITY, l = 0.f;

    for (int k0 = 0; k0 < len; k0 += KT) {
        const int kn = min(KT, len - k0);
        __syncthreads(); /* the previous tile is consumed */
        if constexpr (EXACT) {
            constexpr int VE = Vec<T>::N, VPR = HDMAX / VE;
            for (int idx = threadIdx.x; idx < KT * VPR; idx += kThreads) {
                const int j = idx / VPR, c = (idx % VPR) * VE;
                Vec<T> kv{}, vv{};
                if (j < kn) {
                    const T *tok = base + (int64_t)(k0 + j) * row + h * hd + c;
                    kv = load_vec(tok + H);
                    vv = load_vec(tok + 2 * H);
                }
#pragma unroll
                for (int e = 0; e < VE; e += 4) {
                    *reinterpret_cast<float4 *>(&Ks[j][c + e]) =
                        make_float4(to_f32(kv.v[e]), to_f32(kv.v[e + 1]), to_f32(kv.v[e + 2]),
                                    to_f32(kv.v[e + 3]));
                    *reinterpret_cast<float4 *>(&Vs[j][c + e]) =
                        make_float4(to_f32(vv.v[e]), to_f32(vv.v[e + 1]), to_f32(vv.v[e + 2]),
                                    to_f32(vv.v[e + 3]));
                }
            }
        } else {
            for (int idx = threadIdx.x; idx < KT * HDMAX; idx += kThreads) {
                const int j = idx / HDMAX, d = idx % HDMAX;
                float kx = 0.f, vx = 0.f;
                if (j < kn && d < hd) {
                    const T *tok = base + (int64_t)(k0 + j) * row + h * hd + d;
                    kx = to_f32(tok[H]);
                    vx = to_f32(tok[2 * H]);
                }
                Ks[j][d] = kx;
                Vs[j][d] = vx;
            }
        }
        for (int j = threadIdx.x; j < KT; j += kThreads)
            Madd[j] = j >= kn ? -INFINITY
                      : mrow && mrow[k0 + j] == 0 ? -FLT_MAX : 0.f;
        __syncthreads();

        for (int c0 = 0; c0 < kn; c0 += kChunk) {
            float s[kChunk];
#pragma unroll
            for (int c = 0; c < kChunk; c++) {
                const float4 *kr = reinterpret_cast<const float4 *>(Ks[c0 + c]);
                float dot = 0.f;
#pragma unroll
                for (int i = 0; i < DPT / 4; i++) {
                    const float4 k4 = kr[i * G + slice];
                    dot = fmaf(q[4 * i + 0], k4.x, dot);
                    dot = fmaf(q[4 * i + 1], k4.y, dot);
                    dot = fmaf(q[4 * i + 2], k4.z, dot);
                    dot = fmaf(q[4 * i + 3], k4.w, dot);
                }
                s[c] = dot;
            }
#pragma unroll
            for (int c = 0; c < kChunk; c++) {
#pragma unroll
                for (int o = G / 2; o > 0; o >>= 1) s[c] += __shfl_xor_sync(0xffffffffu, s[c], o);
            }
            float cmax = -INFINITY;
#pragma unroll
            for (int c = 0; c < kChunk; c++) {
                s[c] = s[c] * scale_log2 + Madd[c0 + c];
                cmax = fmaxf(cmax, s[c]);
            }
            /* cmax is finite: the chunk starts below kn, so it holds a real key. */
            const float m_new = fmaxf(m, cmax);
            const float corr = exp2f(m - m_new); /* 0 on the first chunk (m = -inf) */
            l *= corr;
#pragma unroll
            for (int i = 0; i < DPT; i++) acc[i] *= corr;
#pragma unroll
            for (int c = 0; c < kChunk; c++) {
                const float p = exp2f(s[c] - m_new);
                l += p;
                const float4 *vr = reinterpret_cast<const float4 *>(Vs[c0 + c]);
#pragma unroll
                for (int i = 0; i < DPT / 4; i++) {
                    const float4 v4 = vr[i * G + slice];
                    acc[4 * i + 0] = fmaf(p, v4.x, acc[4 * i + 0]);
                    acc[4 * i + 1] = fmaf(p, v4.y, acc[4 * i + 1]);
                    acc[4 * i + 2] = fmaf(p, v4.z, acc[4 * i + 2]);
                    acc[4 * i + 3] = fmaf(p, v4.w, acc[4 * i + 3]);
                }
            }
            m = m_new;
        }
    }

    if (!active) return;
    const float inv = 1.f / l; /* l >= 1: the maximum key contributes exp2(0) */
    T *o = out + (tok0 + qi) * H + h * hd;
#pragma unroll
    for (int i = 0; i < DPT; i++) {
        const int d = dim_of<G>(slice, i);
        if (EXACT || d < hd) o[d] = from_f32<T>(acc[i] * inv);
    }
}

template <typename T, int HDMAX, bool VARLEN>
static cudaError_t launch(T *out, const T *qkv, const int32_t *mask, const int32_t *cu_seqlens,
                          int B, int S, int NH, int HD, cudaStream_t stream) {
    using Sh = AttnShape<HDMAX>;
    const int64_t blocks = (int64_t)((S + Sh::QPB - 1) / Sh::QPB) * NH * B;
    if (blocks > 0x7fffffff) return cudaErrorInvalidConfiguration;
    /* softmax(x * scale) = exp2 of (x * scale * log2 e), normalised */
    const float scale_log2 = (float)(1.4426950408889634 / sqrt((double)HD));
    if (HD == HDMAX && aligned16(qkv))
        return launch_kernel(attention_kernel<T, HDMAX, true, VARLEN>, (unsigned)blocks, kThreads,
                             0, stream, out, qkv, mask, cu_seqlens, S, NH, HD, scale_log2);
    else
        return launch_kernel(attention_kernel<T, HDMAX, false, VARLEN>, (unsigned)blocks, kThreads,
                             0, stream, out, qkv, mask, cu_seqlens, S, NH, HD, scale_log2);
}

template <typename T, bool VARLEN>
static cudaError_t attention_cuda(T *out, const T *qkv, const int32_t *mask,
                                  const int32_t *cu_seqlens, int B, int S, int NH, int HD,
                                  cudaStream_t stream) {
    if (HD <= 16) return launch<T, 16, VARLEN>(out, qkv, mask, cu_seqlens, B, S, NH, HD, stream);
    if (HD <= 32) return launch<T, 32, VARLEN>(out, qkv, mask, cu_seqlens, B, S, NH, HD, stream);
    if (HD <= 64) return launch<T, 64, VARLEN>(out, qkv, mask, cu_seqlens, B, S, NH, HD, stream);
    if (HD <= 128)
        return launch<T, 128, VARLEN>(out, qkv, mask, cu_seqlens, B, S, NH, HD, stream);
    return launch<T, 256, VARLEN>(out, qkv, mask, cu_seqlens, B, S, NH, HD, stream);
}

/* Padded when !varlen (seqs = `only` or NULL), packed when varlen (seqs = cu_seqlens). */
static ember_status attention_simt(void *out, const void *qkv, const int32_t *mask,
                                   const int32_t *seqs, bool varlen, int B, int S, int NH, int HD,
                                   ember_dtype dt, cudaStream_t stream) {
    if (B <= 0 || S <= 0 || NH <= 0) return EMBER_OK;
    if (HD < 1 || HD > EMBER_CUDA_MAX_HEAD_SIZE)
        return ember_fail(EMBER_ERR_UNSUPPORTED,
                          "attention head size %d: the CUDA kernel supports 1..%d", HD,
                          EMBER_CUDA_MAX_HEAD_SIZE);
    return dispatch(dt, [&](auto tag) {
        using T = decltype(tag);
        if (varlen)
            EMBER_CUDA_CHECK((attention_cuda<T, true>((T *)out, (const T *)qkv, nullptr, seqs, B,
                                                      S, NH, HD, stream)));
        else
            EMBER_CUDA_CHECK((attention_cuda<T, false>((T *)out, (const T *)qkv, mask, seqs, B,
                                                       S, NH, HD, stream)));
        return EMBER_OK;
    });
}

extern "C" ember_status ember_cuda_attention_simt(void *out, const void *qkv, const int32_t *mask,
                                                  const int32_t *cu_seqlens, int B, int S, int NH,
                                                  int HD, ember_dtype dt, cudaStream_t stream) {
    return attention_simt(out, qkv, cu_seqlens ? nullptr : mask, cu_seqlens, cu_seqlens != nullptr,
                          B, S, NH, HD, dt, stream);
}

/* ---- dispatch: tensor cores where they apply, else SIMT; EMBER_ATTENTION=simt forces SIMT -- */

static bool simt_forced() {
    static const bool forced = [] {
        const char *e = getenv("EMBER_ATTENTION");
        return e && strcmp(e, "simt") == 0;
    }();
    return forced;
}

static ember_status attention_any(void *out, const void *qkv, const int32_t *mask,
                                  const int32_t *cu_seqlens, int B, int S, int NH, int HD,
                                  ember_dtype dt, cudaStream_t stream) {
    if (B <= 0 || S <= 0 || NH <= 0) return EMBER_OK;
    if (!simt_forced() && ember_cuda_attention_mma_supported(out, qkv, S, NH, HD, dt))
        return ember_cuda_attention_mma(out, qkv, mask, cu_seqlens, B, S, NH, HD, dt, stream);
    return ember_cuda_attention_simt(out, qkv, mask, cu_seqlens, B, S, NH, HD, dt, stream);
}

extern "C" ember_status ember_cuda_attention(void *out, const void *qkv, const int32_t *mask,
                                             int B, int S, int NH, int HD, ember_dtype dt,
                                             cudaStream_t stream) {
    return attention_any(out, qkv, mask, nullptr, B, S, NH, HD, dt, stream);
}

extern "C" ember_status ember_cuda_attention_only(void *out, const void *qkv, const int32_t *mask,
                                                  const int32_t *only, int B, int S, int NH,
                                                  int HD, ember_dtype dt, cudaStream_t stream) {
    if (B <= 0 || S <= 0 || NH <= 0) return EMBER_OK;
    if (!simt_forced() && ember_cuda_attention_mma_supported(out, qkv, S, NH, HD, dt))
        return ember_cuda_attention_mma_only(out, qkv, mask, only, B, S, NH, HD, dt, stream);
    return attention_simt(out, qkv, mask, only, false, B, S, NH, HD, dt, stream);
}

extern "C" ember_status ember_cuda_attention_packed(void *out, const void *qkv,
                                                    const int32_t *cu_seqlens, int B, int max_len,
                                                    int NH, int HD, ember_dtype dt,
                                                    cudaStream_t stream) {
    if (B > 0 && max_len > 0 && NH > 0 && !cu_seqlens)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "packed attention: cu_seqlens is NULL");
    return attention_any(out, qkv, nullptr, cu_seqlens, B, max_len, NH, HD, dt, stream);
}

/* ---- mask check: values other than 0/1 are an invalid argument ----------------------------- */

static __global__ void check_mask_kernel(const int32_t *mask, int64_t n, int *err_flag) {
    pdl_begin();
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    int bad = 0;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        bad |= mask[i] != 0 && mask[i] != 1;
    if (bad) atomicOr(err_flag, EMBER_BAD_MASK);
}

extern "C" ember_status ember_cuda_check_mask(const int32_t *mask, int64_t n, int *err_flag,
                                              cudaStream_t stream) {
    if (n <= 0 || !mask) return EMBER_OK;
    const int threads = 256;
    EMBER_CUDA_CHECK(launch_kernel(check_mask_kernel, grid_blocks(n, threads), threads, 0, stream,
                                   mask, n, err_flag));
    return EMBER_OK;
}
