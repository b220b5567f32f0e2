/* Multi-head self-attention on the tensor cores (f16 / bf16, head sizes 32 and 64), HF eager
 * semantics, never materialising (B,NH,S,S).
 *
 * version 2 (FlashAttention-2 style, mma.sync): replaces the SIMT kernel (version 1,
 * kernels/attention.cu) for f16/bf16 activations with head size 32 or 64 and 16-byte aligned
 * qkv and out; version 1 stays the path for f32, for other head sizes, and for unaligned
 * pointers. Its speed is not yet measured: it has never run on a GPU when this was written.
 * It was checked only by reasoning, by the compiler's resource report and disassembly, and on
 * a CPU emulation of the warp-level instructions (which counts as no GPU run).
 *
 * Shape: a block of 4 warps takes BM = 64 queries of one (sequence, head); each warp owns 16
 * query rows, whose Q fragments stay in registers for the whole block. Keys and values go
 * through shared memory in tiles of BN = 64, double-buffered with cp.async (16-byte copies,
 * rows past the sequence zero-filled), while the previous tile is consumed. Per tile and warp:
 *   S (16x64, f32 accumulators) = Q Kᵀ with mma.m16n8k16 (K fragments by ldmatrix),
 *   online softmax on the accumulator registers (each lane holds rows lane/4 and lane/4 + 8,
 *   columns 2(lane%4)+{0,1} of every n8 tile; row max over the 4 lanes of a quad by shuffles),
 *   P rounded to f16/bf16 straight into A fragments (no shared memory), and
 *   O (16xHD, f32) += P V with mma (V fragments by ldmatrix.trans).
 * At the end O / l goes through the warp's own Q rows in shared memory to 16-byte stores, heads
 * merged: out (B,S,H) or (T,H), head h at columns h*HD. Shared-memory rows are padded by 16
 * bytes (HD + 8 elements), so the 8 row addresses of every ldmatrix phase fall in distinct
 * bank groups; 45.5 KB (HD 64) or 25.5 KB (HD 32) of static shared memory per block.
 * ptxas (CUDA 13.0, sm_80 and sm_90): HD 64 154-161 registers under __launch_bounds__(128, 3),
 * so 3 blocks (12 warps) per SM; HD 32 121-125 registers, 4 blocks (16 warps); no spills.
 *
 * Masking is exactly the SIMT kernel's (see its header): scores are in the log2 domain and
 * each key adds 0 (attended), -FLT_MAX (mask 0: HF eager's finfo.min) or -inf (past the end of
 * the sequence in a partial tile) after scaling, so a fully masked row averages V uniformly over
 * all S keys and never gives NaN. The packed (VARLEN) form takes sequence b as rows
 * cu_seqlens[b] .. cu_seqlens[b+1]-1 of qkv and out, no mask; blocks whose query tile starts
 * past their sequence exit at once.
 *
 * EMBER_ATTENTION=simt in the environment (read once, at the first attention call) makes
 * ember_cuda_attention and ember_cuda_attention_packed use the SIMT kernel for every case, so
 * that one build can compare the two; any other value, or none, chooses automatically.
 * The entries here (ember_cuda_attention_mma*) always use this kernel; see kernels/ops.h. */
#include <float.h>
#include <math.h>

#include <atomic>

#include "kernels/cuda_common.cuh"
#include "kernels/mma_sm80.cuh"

using namespace ember_cuda;

namespace {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kBM = 16 * kWarps; /* queries per block */
constexpr int kBN = 64;          /* keys per tile     */
constexpr unsigned kFull = 0xffffffffu;

/* Copies a tile of BR rows of HD elements (row r at src + r * ld) into dst (rows of LD
 * elements), asynchronously; rows >= nvalid are zero-filled and their source is not read.
 * Offsets inside one sequence fit in int (the host checks S * 3H < 2^31). */
template <typename T, int BR, int HD, int LD>
__device__ __forceinline__ void load_tile(T (*dst)[LD], const T *src, int ld, int nvalid) {
    constexpr int CPR = HD / 8; /* 16-byte chunks per row */
    static_assert(BR * CPR % kThreads == 0, "whole chunks per thread");
#pragma unroll
    for (int i = 0; i < BR * CPR / kThreads; i++) {
        const int c = (int)threadIdx.x + i * kThreads;
        const int r = c / CPR, col = (c % CPR) * 8;
        const bool valid = r < nvalid;
        cp_async16(&dst[r][col], valid ? src + r * ld + col : src, valid);
    }
}

/* qkv: token i of the sequence at row tok0 + i, query at column h*HD, key at H + h*HD, value
 * at 2H + h*HD; out row tok0 + i, column h*HD. Padded: tok0 = b*S, len = S, mask (B,S) or
 * NULL, and cu_seqlens is `only` (B) or NULL: sequences with only[b] == 0 are left alone.
 * VARLEN: tok0 = cu_seqlens[b], len = cu_seqlens[b+1] - tok0 (clamped to [0, S]),
 * S = max_len. */
template <typename T, int HD, bool VARLEN>
__global__ void __launch_bounds__(kThreads, HD <= 32 ? 4 : 3)
attention_mma_kernel(T *__restrict__ out, const T *__restrict__ qkv,
                     const int32_t *__restrict__ mask, const int32_t *__restrict__ cu_seqlens,
                     int S, int NH, float scale_log2) {
    pdl_begin();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    __trap(); /* never launched: the host checks the compute capability */
#else
    constexpr int LD = HD + 8;      /* padded row: 16 bytes more than the head */
    constexpr int KC = HD / 16;     /* k16 chunks of the head dimension         */
    constexpr int NT = kBN / 8;     /* n8 tiles of S across a key tile          */
    constexpr int OT = HD / 8;      /* n8 tiles of O across the head           */
    static_assert(HD % 16 == 0 && kBN % 16 == 0, "whole mma tiles");
    __shared__ __align__(16) T Qs[kBM][LD];
    __shared__ __align__(16) T Ks[2][kBN][LD];
    __shared__ __align__(16) T Vs[2][kBN][LD];
    __shared__ __align__(16) float Madd[2][kBN]; /* 0, -FLT_MAX or -inf per key of a tile */

    const int qtiles = (S + kBM - 1) / kBM;
    const int qt = (int)blockIdx.x % qtiles;
    const int h = (int)(blockIdx.x / qtiles) % NH;
    const int b = (int)(blockIdx.x / qtiles) / NH;
    int64_t tok0;
    int len;
    if constexpr (VARLEN) {
        tok0 = cu_seqlens[b];
        len = min(max(cu_seqlens[b + 1] - cu_seqlens[b], 0), S);
    } else {
        if (cu_seqlens && !cu_seqlens[b]) return; /* whole block: before any barrier */
        tok0 = (int64_t)b * S;
        len = S;
    }
    const int q0 = qt * kBM;
    if (q0 >= len) return; /* whole block: before any barrier */

    const int H = NH * HD;
    const int row = 3 * H;                      /* S * row < 2^31: checked by the host */
    const T *qbase = qkv + tok0 * row + h * HD; /* query of token i: qbase + i * row */
    const T *kbase = qbase + H, *vbase = qbase + 2 * H;
    const int32_t *mrow = VARLEN || !mask ? nullptr : mask + (int64_t)b * S;

    const int warp = (int)threadIdx.x >> 5, lane = (int)threadIdx.x & 31;
    const int t = lane & 3;
    /* ldmatrix row addresses: Q (A operand) and V (.trans) take rows lane & 15 and column
     * half lane >> 4; K (B operand, two n8 tiles per x4) takes rows (lane & 7) + 8 (lane >> 4)
     * and column half (lane >> 3) & 1. */
    const int a_row = lane & 15, a_col = (lane >> 4) * 8;
    const int k_row = (lane & 7) + (lane >> 4) * 8, k_col = ((lane >> 3) & 1) * 8;

    auto load_keys = [&](int buf, int k0) {
        const int kn = min(kBN, len - k0);
        load_tile<T, kBN, HD, LD>(Ks[buf], kbase + k0 * row, row, kn);
        load_tile<T, kBN, HD, LD>(Vs[buf], vbase + k0 * row, row, kn);
    };
    /* Additive mask of key k0 + threadIdx.x (threads < kBN store it in Madd). The next tile's
     * value is read at the top of an iteration and stored at its end, so the global load's
     * latency stays off the path to the barrier. */
    static_assert(kBN <= kThreads, "one mask entry per thread");
    auto key_madd = [&](int k0) {
        const int k = k0 + (int)threadIdx.x;
        if (threadIdx.x >= kBN || k >= len) return -INFINITY;
        return mrow && mrow[k] == 0 ? -FLT_MAX : 0.f;
    };

    load_tile<T, kBM, HD, LD>(Qs, qbase + q0 * row, row, len - q0);
    load_keys(0, 0);
    if (threadIdx.x < kBN) Madd[0][threadIdx.x] = key_madd(0);
    cp_async_commit();

    uint32_t qa[KC][4];
    float o[OT][4];
#pragma unroll
    for (int j = 0; j < OT; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
    float m0 = -INFINITY, m1 = -INFINITY; /* running max of rows lane/4 and lane/4 + 8 */
    float l0 = 0.f, l1 = 0.f;             /* this lane's part of the running sums      */

    const int nkt = (len + kBN - 1) / kBN;
    for (int kt = 0; kt < nkt; kt++) {
        const int buf = kt & 1;
        float madd_next = 0.f;
        if (kt + 1 < nkt) {
            load_keys(buf ^ 1, (kt + 1) * kBN);
            madd_next = key_madd((kt + 1) * kBN);
        }
        cp_async_commit();  /* possibly empty: keeps the count uniform */
        cp_async_wait<1>(); /* everything but the tile just issued has landed */
        __syncthreads();
        if (kt == 0) {
#pragma unroll
            for (int kc = 0; kc < KC; kc++)
                ldmatrix_x4(qa[kc], &Qs[16 * warp + a_row][16 * kc + a_col]);
        }

        /* S = Q Kᵀ: 16 rows x 64 keys per warp */
        float s[NT][4];
#pragma unroll
        for (int j = 0; j < NT; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
        for (int kc = 0; kc < KC; kc++) {
#pragma unroll
            for (int jp = 0; jp < NT / 2; jp++) {
                uint32_t kb[4];
                ldmatrix_x4(kb, &Ks[buf][16 * jp + k_row][16 * kc + k_col]);
                mma_16816<T>(s[2 * jp], qa[kc], kb);
                mma_16816<T>(s[2 * jp + 1], qa[kc], kb + 2);
            }
        }

        /* online softmax in the log2 domain, on the accumulators */
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int j = 0; j < NT; j++) {
            const float2 ma = *reinterpret_cast<const float2 *>(&Madd[buf][8 * j + 2 * t]);
            s[j][0] = fmaf(s[j][0], scale_log2, ma.x);
            s[j][1] = fmaf(s[j][1], scale_log2, ma.y);
            s[j][2] = fmaf(s[j][2], scale_log2, ma.x);
            s[j][3] = fmaf(s[j][3], scale_log2, ma.y);
            mx0 = fmaxf(mx0, fmaxf(s[j][0], s[j][1]));
            mx1 = fmaxf(mx1, fmaxf(s[j][2], s[j][3]));
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(kFull, mx0, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(kFull, mx1, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(kFull, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(kFull, mx1, 2));
        /* The tile's first key is a real key, so mx is finite (-FLT_MAX at worst) and
         * exp2(m - mx) is 0 on the first tile (m = -inf), never NaN. */
        const float n0 = fmaxf(m0, mx0), n1 = fmaxf(m1, mx1);
        const float c0 = exp2f(m0 - n0), c1 = exp2f(m1 - n1);
        m0 = n0;
        m1 = n1;
        float r0 = 0.f, r1 = 0.f;
#pragma unroll
        for (int j = 0; j < NT; j++) {
            s[j][0] = exp2f(s[j][0] - n0);
            s[j][1] = exp2f(s[j][1] - n0);
            s[j][2] = exp2f(s[j][2] - n1);
            s[j][3] = exp2f(s[j][3] - n1);
            r0 += s[j][0] + s[j][1];
            r1 += s[j][2] + s[j][3];
        }
        l0 = l0 * c0 + r0;
        l1 = l1 * c1 + r1;
#pragma unroll
        for (int j = 0; j < OT; j++) {
            o[j][0] *= c0;
            o[j][1] *= c0;
            o[j][2] *= c1;
            o[j][3] *= c1;
        }

        /* O += P V: the S accumulators of n8 tiles 2kc, 2kc+1 are the A fragment of keys
         * 16kc..16kc+15 */
#pragma unroll
        for (int kc = 0; kc < kBN / 16; kc++) {
            const uint32_t pa[4] = {pack2<T>(s[2 * kc][0], s[2 * kc][1]),
                                    pack2<T>(s[2 * kc][2], s[2 * kc][3]),
                                    pack2<T>(s[2 * kc + 1][0], s[2 * kc + 1][1]),
                                    pack2<T>(s[2 * kc + 1][2], s[2 * kc + 1][3])};
#pragma unroll
            for (int jp = 0; jp < OT / 2; jp++) {
                uint32_t vb[4];
                ldmatrix_x4_trans(vb, &Vs[buf][16 * kc + a_row][16 * jp + a_col]);
                mma_16816<T>(o[2 * jp], pa, vb);
                mma_16816<T>(o[2 * jp + 1], pa, vb + 2);
            }
        }
        /* Madd[buf ^ 1] was last read in the previous iteration, before its closing barrier */
        if (kt + 1 < nkt && threadIdx.x < kBN) Madd[buf ^ 1][threadIdx.x] = madd_next;
        __syncthreads(); /* the next iteration refills this buffer */
    }
    cp_async_wait<0>();

    /* O / l, through this warp's own Q rows (no other warp reads them), to 16-byte stores */
    l0 += __shfl_xor_sync(kFull, l0, 1);
    l1 += __shfl_xor_sync(kFull, l1, 1);
    l0 += __shfl_xor_sync(kFull, l0, 2);
    l1 += __shfl_xor_sync(kFull, l1, 2);
    const float i0 = 1.f / l0, i1 = 1.f / l1; /* l >= 1: the row's max key contributes 1 */
    T(*ow)[LD] = Qs + 16 * warp;
    const int g = lane >> 2;
#pragma unroll
    for (int j = 0; j < OT; j++) {
        *reinterpret_cast<uint32_t *>(&ow[g][8 * j + 2 * t]) = pack2<T>(o[j][0] * i0, o[j][1] * i0);
        *reinterpret_cast<uint32_t *>(&ow[g + 8][8 * j + 2 * t]) =
            pack2<T>(o[j][2] * i1, o[j][3] * i1);
    }
    __syncwarp();
    constexpr int CPR = HD / 8; /* 16-byte chunks per row */
#pragma unroll
    for (int i = 0; i < 16 * CPR / 32; i++) {
        const int c = lane + 32 * i;
        const int r = c / CPR, col = (c % CPR) * 8;
        const int qi = q0 + 16 * warp + r;
        if (qi < len) store_vec(out + (tok0 + qi) * H + h * HD + col, load_vec(&ow[r][col]));
    }
#endif
}

template <typename T, int HD, bool VARLEN>
cudaError_t launch(T *out, const T *qkv, const int32_t *mask, const int32_t *cu_seqlens, int B,
                   int S, int NH, cudaStream_t stream) {
    const int64_t blocks = (int64_t)((S + kBM - 1) / kBM) * NH * B;
    if (blocks > 0x7fffffff) return cudaErrorInvalidConfiguration;
    /* softmax(x * scale) = exp2 of (x * scale * log2 e), normalised */
    const float scale_log2 = (float)(1.4426950408889634 / sqrt((double)HD));
    return launch_kernel(attention_mma_kernel<T, HD, VARLEN>, (unsigned)blocks, kThreads, 0, stream,
                         out, qkv, mask, cu_seqlens, S, NH, scale_log2);
}

/* Packed when varlen (seqs = cu_seqlens), else padded (seqs = `only` or NULL). */
template <typename T>
cudaError_t dispatch_hd(T *out, const T *qkv, const int32_t *mask, const int32_t *seqs,
                        bool varlen, int B, int S, int NH, int HD, cudaStream_t stream) {
    if (varlen)
        return HD == 32 ? launch<T, 32, true>(out, qkv, nullptr, seqs, B, S, NH, stream)
                        : launch<T, 64, true>(out, qkv, nullptr, seqs, B, S, NH, stream);
    return HD == 32 ? launch<T, 32, false>(out, qkv, mask, seqs, B, S, NH, stream)
                    : launch<T, 64, false>(out, qkv, mask, seqs, B, S, NH, stream);
}

/* Compute capability major of the current device, cached per device (0 if unknown). */
int device_cc_major() {
    static std::atomic<int> cache[64];
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) {
        (void)cudaGetLastError(); /* not ours to report: the caller falls back to SIMT */
        return 0;
    }
    if (dev >= 0 && dev < 64) {
        const int c = cache[dev].load(std::memory_order_relaxed);
        if (c > 0) return c;
    }
    int major = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    if (dev >= 0 && dev < 64) cache[dev].store(major, std::memory_order_relaxed);
    return major;
}

}  // namespace

extern "C" int ember_cuda_attention_mma_supported(const void *out, const void *qkv, int S, int NH,
                                                  int HD, ember_dtype dt) {
    return (dt == EMBER_DTYPE_F16 || dt == EMBER_DTYPE_BF16) && (HD == 32 || HD == 64) &&
           aligned16(out) && aligned16(qkv) && (int64_t)S * 3 * NH * HD < INT32_MAX &&
           device_cc_major() >= 8;
}

static ember_status attention_mma(void *out, const void *qkv, const int32_t *mask,
                                  const int32_t *seqs, bool varlen, int B, int S, int NH, int HD,
                                  ember_dtype dt, cudaStream_t stream) {
    if (B <= 0 || S <= 0 || NH <= 0) return EMBER_OK;
    if (!ember_cuda_attention_mma_supported(out, qkv, S, NH, HD, dt))
        return ember_fail(EMBER_ERR_UNSUPPORTED,
                          "tensor-core attention: needs f16/bf16, head size 32 or 64, 16-byte "
                          "aligned out and qkv, S*3H < 2^31, compute capability >= 8.0 (dtype "
                          "%d, head size %d)",
                          (int)dt, HD);
    if (dt == EMBER_DTYPE_F16)
        EMBER_CUDA_CHECK(dispatch_hd((__half *)out, (const __half *)qkv, mask, seqs, varlen, B, S,
                                     NH, HD, stream));
    else
        EMBER_CUDA_CHECK(dispatch_hd((__nv_bfloat16 *)out, (const __nv_bfloat16 *)qkv, mask,
                                     seqs, varlen, B, S, NH, HD, stream));
    return EMBER_OK;
}

extern "C" ember_status ember_cuda_attention_mma(void *out, const void *qkv, const int32_t *mask,
                                                 const int32_t *cu_seqlens, int B, int S, int NH,
                                                 int HD, ember_dtype dt, cudaStream_t stream) {
    return attention_mma(out, qkv, cu_seqlens ? nullptr : mask, cu_seqlens, cu_seqlens != nullptr,
                         B, S, NH, HD, dt, stream);
}

extern "C" ember_status ember_cuda_attention_mma_only(void *out, const void *qkv,
                                                      const int32_t *mask, const int32_t *only,
                                                      int B, int S, int NH, int HD, ember_dtype dt,
                                                      cudaStream_t stream) {
    return attention_mma(out, qkv, mask, only, false, B, S, NH, HD, dt, stream);
}
