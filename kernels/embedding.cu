/* Embeddings on the GPU: the word gather (ember_embed_tokens) and the fused
 * word + token type + position + LayerNorm that starts a forward, over every token of the
 * padded batch or (padding removal) over the packed tokens only: block r embeds token
 * index[r], keeping its padded position r % S, and writes packed row r directly, so packing
 * costs no extra pass. ember_cuda_check_indices validates what the packed path does not read.
 *
 * version 1: one block per token; the f32 sum row is staged in shared memory, LayerNorm
 * statistics in f32 with two passes (mean, then mean of squared deviations) like the
 * reference. Caller indices are clamped into their table and reported through the error
 * flag, never trapped, so a bad id costs one forward, not the CUDA context.
 *
 * Bit identity of the two entry points: the ids path widens word[id] to f32 and the embeds
 * path reads the caller's f32; ember_cuda_gather writes exactly that widened value, so both
 * paths add the same f32 numbers in the same order, for every storage type. */
#include "kernels/cuda_common.cuh"

using namespace ember_cuda;

__device__ __forceinline__ int clamp_index(int v, int limit, int bit, int *bad) {
    if (v < 0 || v >= limit) {
        *bad |= bit;
        return v < 0 ? 0 : limit - 1;
    }
    return v;
}

/* ---- gather: out (n,H) in O = word[ids[t]] (widened exactly to f32, or copied for O = T) ---- */

template <typename T, typename O>
static __global__ void gather_kernel(O *out, const int32_t *ids, int64_t n, const T *word,
                                     int H, int V, int *err_flag) {
    pdl_begin();
    for (int64_t t = blockIdx.x; t < n; t += gridDim.x) {
        int bad = 0;
        const int id = clamp_index(ids[t], V, EMBER_BAD_ID, &bad);
        if (bad && threadIdx.x == 0) atomicOr(err_flag, bad);
        const T *w = word + (int64_t)id * H;
        O *o = out + t * H;
        for (int k = threadIdx.x; k < H; k += blockDim.x) o[k] = from_f32<O>(to_f32(w[k]));
    }
}

template <typename T, typename O>
static cudaError_t gather_cuda(O *out, const int32_t *ids, int64_t n, const T *word, int H,
                               int V, int *err_flag, cudaStream_t stream) {
    const int threads = row_threads(H, 4);
    const int blocks = n < 65536 ? (int)n : 65536;
    return launch_kernel(gather_kernel<T, O>, blocks, threads, 0, stream, out, ids, n, word, H, V,
                         err_flag);
}

extern "C" ember_status ember_cuda_gather(void *out, ember_dtype out_dt, const int32_t *ids,
                                          int64_t n, const void *word, int H, int V,
                                          ember_dtype dt, int *err_flag, cudaStream_t stream) {
    if (n <= 0) return EMBER_OK;
    return dispatch(dt, [&](auto tag) {
        using T = decltype(tag);
        return dispatch(out_dt, [&](auto otag) {
            using O = decltype(otag);
            EMBER_CUDA_CHECK(gather_cuda((O *)out, ids, n, (const T *)word, H, V, err_flag,
                                         stream));
            return EMBER_OK;
        });
    });
}

/* ---- embeddings + LayerNorm: out (B*S,H) ---------------------------------------------------- */

/* Block r writes row r of out; it embeds token t = index[r] of the padded batch (index NULL:
 * t = r). */
template <typename T, typename E>
static __global__ void embed_layernorm_kernel(T *out, const int32_t *index, const int32_t *ids,
                                              const E *embeds, const int32_t *type_ids,
                                              const int32_t *pos_ids, const T *word, const T *pos,
                                              const T *type, const float *gamma,
                                              const float *beta, int S, int H, int V, int P,
                                              int TV, float eps, int *err_flag) {
    pdl_begin();
    extern __shared__ float row[]; /* (H) f32 sum, read back by the thread that wrote it */
    __shared__ float red[32];
    const int64_t r = blockIdx.x;
    const int64_t t = index ? (int64_t)index[r] : r;

    int bad = 0;
    const E *e = nullptr;
    const T *w = nullptr;
    if (ids)
        w = word + (int64_t)clamp_index(ids[t], V, EMBER_BAD_ID, &bad) * H;
    else
        e = embeds + t * H;
    const T *ty = type + (int64_t)clamp_index(type_ids ? type_ids[t] : 0, TV, EMBER_BAD_TOKEN_TYPE,
                                              &bad) * H;
    const T *ps = pos + (int64_t)clamp_index(pos_ids ? pos_ids[t] : (int)(t % S), P,
                                             EMBER_BAD_POSITION, &bad) * H;
    if (bad && threadIdx.x == 0) atomicOr(err_flag, bad);

    float sum = 0.f;
    for (int k = threadIdx.x; k < H; k += blockDim.x) {
        /* HF order: (inputs_embeds + token_type) + position, in f32. */
        const float x = ((w ? to_f32(w[k]) : to_f32(e[k])) + to_f32(ty[k])) + to_f32(ps[k]);
        row[k] = x;
        sum += x;
    }
    const float mean = block_sum(sum, red) / (float)H;
    float sq = 0.f;
    for (int k = threadIdx.x; k < H; k += blockDim.x) {
        const float d = row[k] - mean;
        sq += d * d;
    }
    const float var = block_sum(sq, red) / (float)H;
    const float rstd = 1.f / sqrtf(var + eps);
    T *o = out + r * H;
    for (int k = threadIdx.x; k < H; k += blockDim.x)
        o[k] = from_f32<T>((row[k] - mean) * rstd * gamma[k] + beta[k]);
}

template <typename T, typename E>
static cudaError_t embed_layernorm_cuda(T *out, const int32_t *index, int64_t rows,
                                        const int32_t *ids, const E *embeds,
                                        const int32_t *type_ids, const int32_t *pos_ids,
                                        const T *word, const T *pos, const T *type,
                                        const float *gamma, const float *beta, int S, int H,
                                        int V, int P, int TV, float eps, int *err_flag,
                                        cudaStream_t stream) {
    const int threads = row_threads(H, 4);
    const size_t smem = sizeof(float) * (size_t)H;
    cudaError_t e = allow_smem(embed_layernorm_kernel<T, E>, smem);
    if (e != cudaSuccess) return e;
    return launch_kernel(embed_layernorm_kernel<T, E>, (unsigned)rows, threads, smem, stream, out,
                         index, ids, embeds, type_ids, pos_ids, word, pos, type, gamma, beta, S, H,
                         V, P, TV, eps, err_flag);
}

/* Both entries below: f(T{}, E{}) with T the storage type and E the embeds' type (E = T when
 * embeds is NULL: nothing of type E is read then). */
template <typename F>
static ember_status dispatch_embeds(ember_dtype dt, const void *embeds, ember_dtype edt, F &&f) {
    return dispatch(dt, [&](auto tag) {
        if (!embeds) return f(tag, tag);
        return dispatch(edt, [&](auto etag) { return f(tag, etag); });
    });
}

extern "C" ember_status ember_cuda_embed_layernorm(void *out, const int32_t *ids,
                                                   const void *embeds, ember_dtype embeds_dt,
                                                   const int32_t *type_ids,
                                                   const int32_t *pos_ids, const void *word,
                                                   const void *pos, const void *type,
                                                   const float *gamma, const float *beta, int B,
                                                   int S, int H, int V, int P, int T, double eps,
                                                   ember_dtype dt, int *err_flag,
                                                   cudaStream_t stream) {
    if ((int64_t)B * S <= 0) return EMBER_OK;
    if (!ids && !embeds)
        return ember_fail(EMBER_ERR_INTERNAL, "ember_cuda_embed_layernorm: ids and embeds are NULL");
    return dispatch_embeds(dt, embeds, embeds_dt, [&](auto tag, auto etag) {
        using D = decltype(tag);
        using E = decltype(etag);
        EMBER_CUDA_CHECK(embed_layernorm_cuda((D *)out, nullptr, (int64_t)B * S, ids,
                                              (const E *)embeds, type_ids, pos_ids,
                                              (const D *)word, (const D *)pos, (const D *)type,
                                              gamma, beta, S, H, V, P, T, (float)eps, err_flag,
                                              stream));
        return EMBER_OK;
    });
}

extern "C" ember_status ember_cuda_embed_layernorm_packed(
    void *out, const int32_t *index, int64_t T, const int32_t *ids, const void *embeds,
    ember_dtype embeds_dt, const int32_t *type_ids, const int32_t *pos_ids, const void *word, const void *pos,
    const void *type, const float *gamma, const float *beta, int S, int H, int V, int P, int TV,
    double eps, ember_dtype dt, int *err_flag, cudaStream_t stream) {
    if (T <= 0) return EMBER_OK;
    if ((!ids && !embeds) || !index)
        return ember_fail(EMBER_ERR_INTERNAL,
                          "ember_cuda_embed_layernorm_packed: ids/embeds or index is NULL");
    return dispatch_embeds(dt, embeds, embeds_dt, [&](auto tag, auto etag) {
        using D = decltype(tag);
        using E = decltype(etag);
        EMBER_CUDA_CHECK(embed_layernorm_cuda((D *)out, index, T, ids, (const E *)embeds, type_ids,
                                              pos_ids, (const D *)word, (const D *)pos,
                                              (const D *)type, gamma, beta, S, H, V, P, TV,
                                              (float)eps, err_flag, stream));
        return EMBER_OK;
    });
}

/* ---- index validation over every token (the packed path reads only the valid ones) ---------- */

static __global__ void check_indices_kernel(const int32_t *ids, int V, const int32_t *type_ids,
                                            int TV, const int32_t *pos_ids, int P, int64_t n,
                                            int *err_flag) {
    pdl_begin();
    int bad = 0;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        if (ids) clamp_index(ids[i], V, EMBER_BAD_ID, &bad);
        if (type_ids) clamp_index(type_ids[i], TV, EMBER_BAD_TOKEN_TYPE, &bad);
        if (pos_ids) clamp_index(pos_ids[i], P, EMBER_BAD_POSITION, &bad);
    }
    if (bad) atomicOr(err_flag, bad);
}

extern "C" ember_status ember_cuda_check_indices(const int32_t *ids, int V, const int32_t *type_ids,
                                                 int TV, const int32_t *pos_ids, int P, int64_t n,
                                                 int *err_flag, cudaStream_t stream) {
    if (n <= 0 || (!ids && !type_ids && !pos_ids)) return EMBER_OK;
    const int threads = 256;
    EMBER_CUDA_CHECK(launch_kernel(check_indices_kernel, grid_blocks(n, threads), threads, 0,
                                   stream, ids, V, type_ids, TV, pos_ids, P, n, err_flag));
    return EMBER_OK;
}

/* ---- NaN / Inf in the caller's inputs_embeds or embedding_output (f32, f16 or bf16) -------- */

template <typename X>
static __global__ void check_finite_kernel(const X *x, int64_t n, int *err_flag) {
    pdl_begin();
    int bad = 0;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        bad |= !isfinite(to_f32(x[i]));
    if (bad) atomicOr(err_flag, EMBER_BAD_NONFINITE);
}

extern "C" ember_status ember_cuda_check_finite(const void *x, ember_dtype x_dt, int64_t n,
                                                int *err_flag, cudaStream_t stream) {
    if (n <= 0 || !x) return EMBER_OK;
    const int threads = 256;
    return dispatch(x_dt, [&](auto tag) {
        using X = decltype(tag);
        EMBER_CUDA_CHECK(launch_kernel(check_finite_kernel<X>, grid_blocks(n, threads), threads, 0,
                                       stream, (const X *)x, n, err_flag));
        return EMBER_OK;
    });
}

/* ---- RoBERTa's default position ids (create_position_ids_from_input_ids) --------------------
 * One thread per sequence runs the row's prefix count: S is at most max_position_embeddings,
 * and the ids are read once. */

static __global__ void position_ids_kernel(int32_t *out, const int32_t *ids, int B, int S, int pad) {
    pdl_begin();
    const int stride = gridDim.x * blockDim.x;
    for (int b = blockIdx.x * blockDim.x + threadIdx.x; b < B; b += stride) {
        int32_t count = 0;
        for (int s = 0; s < S; s++) {
            const int64_t t = (int64_t)b * S + s;
            out[t] = !ids ? pad + 1 + s : ids[t] == pad ? pad : pad + ++count;
        }
    }
}

extern "C" ember_status ember_cuda_position_ids(int32_t *out, const int32_t *ids, int B, int S,
                                                int pad, cudaStream_t stream) {
    if (B <= 0 || S <= 0) return EMBER_OK;
    const int threads = 128;
    EMBER_CUDA_CHECK(launch_kernel(position_ids_kernel, grid_blocks(B, threads), threads, 0, stream,
                                   out, ids, B, S, pad));
    return EMBER_OK;
}
