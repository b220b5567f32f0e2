/* Padding removal on the GPU (EMBER_FORWARD_SKIP_MASKED): the packing plan and the row moves
 * between the padded (B,S) layout and the packed layout of valid tokens. Twins of
 * kernels/packing.c; the driver is host/backend_cuda.c.
 *
 * Where T (the number of valid tokens) comes from, and why the driver reads it back.
 * The mask is device memory, so T is first known on the device, by the plan kernel below.
 * Every launch after it wants T on the host: cuBLASLt takes M (= T rows) as a host integer,
 * and so do grid sizes. The options were:
 *   (a) copy T back and synchronise once, right after this kernel, then size every GEMM and
 *       kernel exactly: one host round trip (~10-20 us of latency while the GPU drains what
 *       is queued before it), then no wasted work;
 *   (b) launch everything for the worst case M = B*S and have the kernels skip rows >= T:
 *       no synchronisation, but the GEMMs (~95% of the FLOPs) still run on B*S rows, so
 *       padding removal would save nothing;
 *   (c) bucketed graphs: capture the encoder for a few row counts and pick one on the device
 *       (conditional graph nodes or device-side graph launch). No host round trip and little
 *       waste, but a second driver path that cannot be validated without a GPU.
 *   (d) the caller says T (ember_inputs.valid_tokens): a host tokenizer knows it for free.
 *       No round trip and no waste; the plan kernel compares its own count with the caller's
 *       and flags a difference like a bad id.
 * The driver takes (d) when the caller gives T and (a) otherwise: for the batches where
 * padding removal pays (B16 x S512, ~1 ms of GPU work, ~40% of it padding) one round trip is
 * ~1-2% of the call; (c) is the follow-up if a measurement says the round trip matters. The
 * plan itself never synchronises: in (a) the driver copies cu_seqlens[B] to pinned memory
 * and waits for that copy.
 *
 * version 1: the plan is one block of 1024 threads (32 warps). Phase 1: each warp counts the
 * valid tokens of its sequences (ballot + popc over 32 tokens at a time). Phase 2: a
 * block-wide scan turns the counts into cu_seqlens, 1024 sequences per step. Phase 3: each
 * warp writes index/inverse for its sequences, a token's packed row being its sequence's
 * start plus the number of valid tokens before it (ballot prefix). B*S = 8192 (B16 S512) is
 * 8 ballots per warp per phase. The row moves are grid-stride loops, one block per row. */
#include "kernels/cuda_common.cuh"

using namespace ember_cuda;

static constexpr int kPlanThreads = 1024;

/* Inclusive sum over the block of v (blockDim.x == kPlanThreads), Hillis-Steele in shared
 * memory; buf holds kPlanThreads ints. Every thread gets its own prefix and the block's total. */
__device__ __forceinline__ int block_inclusive_scan(int v, int *buf, int *total) {
    const int t = threadIdx.x;
    buf[t] = v;
    __syncthreads();
    for (int off = 1; off < kPlanThreads; off <<= 1) {
        const int add = t >= off ? buf[t - off] : 0;
        __syncthreads();
        buf[t] += add;
        __syncthreads();
    }
    const int r = buf[t];
    *total = buf[kPlanThreads - 1];
    __syncthreads();
    return r;
}

static __global__ void __launch_bounds__(kPlanThreads)
    pack_plan_kernel(const int32_t *mask, int B, int S, int expected_T, int32_t *cu_seqlens,
                     int32_t *index, int32_t *inverse, int *err_flag) {
    pdl_begin();
    __shared__ int buf[kPlanThreads];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = kPlanThreads / 32;
    const unsigned below = (1u << lane) - 1u; /* lanes before this one */

    /* 1. valid tokens per sequence, into cu_seqlens[b + 1] */
    for (int b = warp; b < B; b += nwarps) {
        const int32_t *m = mask + (int64_t)b * S;
        int n = 0;
        for (int s0 = 0; s0 < S; s0 += 32) {
            const int s = s0 + lane;
            n += __popc(__ballot_sync(0xffffffffu, s < S && m[s] != 0));
        }
        if (lane == 0) cu_seqlens[b + 1] = n;
    }
    __syncthreads();

    /* 2. inclusive scan of the counts: cu_seqlens[b + 1] = tokens of sequences 0..b */
    int carry = 0;
    for (int b0 = 0; b0 < B; b0 += kPlanThreads) {
        const int b = b0 + (int)threadIdx.x;
        const int v = b < B ? cu_seqlens[b + 1] : 0;
        int total;
        const int inc = block_inclusive_scan(v, buf, &total);
        if (b < B) cu_seqlens[b + 1] = carry + inc;
        carry += total;
    }
    if (threadIdx.x == 0) cu_seqlens[0] = 0;
    /* carry = T. The caller's count: flag a difference; rows T..expected_T of index, which
     * phase 3 does not write, get token position 0 (valid for any B, S) */
    if (expected_T >= 0 && carry != expected_T) {
        if (threadIdx.x == 0) atomicOr(err_flag, EMBER_BAD_VALID_TOKENS);
        for (int r = carry + (int)threadIdx.x; r < expected_T; r += kPlanThreads) index[r] = 0;
    }
    __syncthreads();

    /* 3. index and inverse */
    for (int b = warp; b < B; b += nwarps) {
        const int64_t row0 = (int64_t)b * S;
        int next = cu_seqlens[b];
        for (int s0 = 0; s0 < S; s0 += 32) {
            const int s = s0 + lane;
            const bool in = s < S;
            const bool valid = in && mask[row0 + s] != 0;
            const unsigned ballot = __ballot_sync(0xffffffffu, valid);
            if (in) {
                const int r = next + __popc(ballot & below);
                if (valid) index[r] = (int32_t)(row0 + s);
                inverse[row0 + s] = valid ? r : -1;
            }
            next += __popc(ballot);
        }
    }
}

extern "C" ember_status ember_cuda_pack_plan(const int32_t *mask, int B, int S, int expected_T,
                                             int32_t *cu_seqlens, int32_t *index,
                                             int32_t *inverse, int *err_flag,
                                             cudaStream_t stream) {
    if (B <= 0 || S <= 0) return EMBER_OK;
    EMBER_CUDA_CHECK(launch_kernel(pack_plan_kernel, 1, kPlanThreads, 0, stream, mask, B, S,
                                   expected_T, cu_seqlens, index, inverse, err_flag));
    return EMBER_OK;
}

/* ---- row moves -------------------------------------------------------------------------------- */

/* out (T,C) in T_ = rows index[r] of in (N,C) in I, converted. */
template <typename T_, typename I>
static __global__ void gather_rows_kernel(T_ *out, const I *in, const int32_t *index, int64_t T,
                                          int C) {
    pdl_begin();
    for (int64_t r = blockIdx.x; r < T; r += gridDim.x) {
        const I *src = in + (int64_t)index[r] * C;
        T_ *dst = out + r * C;
        for (int k = threadIdx.x; k < C; k += blockDim.x) dst[k] = from_f32<T_>(to_f32(src[k]));
    }
}

/* out (N,C) in O: row p = packed[inverse[p]] converted, or zeros. */
template <typename T_, typename O>
static __global__ void unpack_rows_kernel(O *out, const T_ *packed, const int32_t *inverse,
                                          int64_t N, int C) {
    pdl_begin();
    for (int64_t p = blockIdx.x; p < N; p += gridDim.x) {
        const int32_t r = inverse[p];
        O *dst = out + p * C;
        if (r >= 0) {
            const T_ *src = packed + (int64_t)r * C;
            for (int k = threadIdx.x; k < C; k += blockDim.x) dst[k] = from_f32<O>(to_f32(src[k]));
        } else {
            for (int k = threadIdx.x; k < C; k += blockDim.x) dst[k] = from_f32<O>(0.f);
        }
    }
}

/* out (B,C) in T_: row b = packed row of token (b,0), or zeros. */
template <typename T_>
static __global__ void first_rows_kernel(T_ *out, const T_ *packed, const int32_t *inverse, int B,
                                         int S, int C) {
    pdl_begin();
    for (int b = blockIdx.x; b < B; b += gridDim.x) {
        const int32_t r = inverse[(int64_t)b * S];
        T_ *dst = out + (int64_t)b * C;
        for (int k = threadIdx.x; k < C; k += blockDim.x)
            dst[k] = r >= 0 ? packed[(int64_t)r * C + k] : from_f32<T_>(0.f);
    }
}

static unsigned row_grid(int64_t rows) {
    return (unsigned)(rows < 65535 * 16 ? rows : 65535 * 16);
}

extern "C" ember_status ember_cuda_gather_rows(void *out, ember_dtype dt, const void *in,
                                               ember_dtype in_dt, const int32_t *index, int64_t T,
                                               int C, cudaStream_t stream) {
    if (T <= 0 || C <= 0) return EMBER_OK;
    return dispatch(dt, [&](auto tag) {
        using T_ = decltype(tag);
        return dispatch(in_dt, [&](auto itag) {
            using I = decltype(itag);
            EMBER_CUDA_CHECK(launch_kernel(gather_rows_kernel<T_, I>, row_grid(T),
                                           row_threads(C, 4), 0, stream, (T_ *)out, (const I *)in,
                                           index, T, C));
            return EMBER_OK;
        });
    });
}

extern "C" ember_status ember_cuda_unpack_rows(void *out, ember_dtype out_dt, const void *packed,
                                               ember_dtype dt, const int32_t *inverse, int64_t N,
                                               int C, cudaStream_t stream) {
    if (N <= 0 || C <= 0) return EMBER_OK;
    return dispatch(dt, [&](auto tag) {
        using T_ = decltype(tag);
        return dispatch(out_dt, [&](auto otag) {
            using O = decltype(otag);
            EMBER_CUDA_CHECK(launch_kernel(unpack_rows_kernel<T_, O>, row_grid(N),
                                           row_threads(C, 4), 0, stream, (O *)out,
                                           (const T_ *)packed, inverse, N, C));
            return EMBER_OK;
        });
    });
}

extern "C" ember_status ember_cuda_first_rows(void *out, const void *packed,
                                              const int32_t *inverse, int B, int S, int C,
                                              ember_dtype dt, cudaStream_t stream) {
    if (B <= 0 || C <= 0) return EMBER_OK;
    return dispatch(dt, [&](auto tag) {
        using T_ = decltype(tag);
        EMBER_CUDA_CHECK(launch_kernel(first_rows_kernel<T_>, row_grid(B), row_threads(C, 4), 0,
                                       stream, (T_ *)out, (const T_ *)packed, inverse, B, S, C));
        return EMBER_OK;
    });
}

/* ---- cuDNN's per-sequence tensors (see ember_cuda_seq_info in kernels/ops.h) ------------------
 * One thread per sequence: it scans its mask row once (S <= max_position_embeddings). */
static __global__ void seq_info_kernel(const int32_t *mask, const int32_t *cu_seqlens, int B, int S,
                                       int H, int32_t *seq_q, int32_t *seq_kv, int32_t *only,
                                       int64_t *off_qkv, int64_t *off_o) {
    pdl_begin();
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; b <= B; b += stride) {
        if (cu_seqlens) {
            const int32_t start = cu_seqlens[b];
            if (off_qkv) off_qkv[b] = (int64_t)start * 3 * H;
            if (off_o) off_o[b] = (int64_t)start * H;
            if (b == B) continue;
            const int32_t len = cu_seqlens[b + 1] - start;
            if (seq_q) seq_q[b] = len;
            if (seq_kv) seq_kv[b] = len;
            continue;
        }
        if (b == B) continue;
        int len = S, right_padded = 1;
        if (mask) {
            const int32_t *row = mask + b * S;
            len = 0;
            while (len < S && row[len]) len++;
            for (int s = len; s < S; s++) right_padded &= row[s] == 0;
            right_padded &= len > 0;
        }
        if (seq_q) seq_q[b] = S;
        if (seq_kv) seq_kv[b] = right_padded ? len : S;
        if (only) only[b] = !right_padded;
    }
}

extern "C" ember_status ember_cuda_seq_info(const int32_t *mask, const int32_t *cu_seqlens, int B,
                                            int S, int H, int32_t *seq_q, int32_t *seq_kv,
                                            int32_t *only, int64_t *off_qkv, int64_t *off_o,
                                            cudaStream_t stream) {
    if (B <= 0) return EMBER_OK;
    const int threads = 128;
    EMBER_CUDA_CHECK(launch_kernel(seq_info_kernel, grid_blocks((int64_t)B + 1, threads), threads,
                                   0, stream, mask, cu_seqlens, B, S, H, seq_q, seq_kv, only,
                                   off_qkv, off_o));
    return EMBER_OK;
}
