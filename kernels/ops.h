/*
 * The ops of the encoder. Each op family has a plain-C reference in kernels/<op>.c
 * (fp32 storage, double accumulators: the oracle) and a CUDA twin in kernels/<op>.cu
 * with the same arguments plus dtype, an error flag where the op validates device data,
 * and a stream last. Shapes are in comments; every matrix is row-major.
 *   N = tokens (B*S), H = hidden, I = intermediate, NH = heads, HD = head size (H = NH*HD)
 */
#ifndef EMBER_OPS_H
#define EMBER_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "ember.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- CPU reference ---------------------------------------------------------------- */

/* out is (n,H): out[t,:] = word[ids[t],:]. ids must be in range (checked by the caller). */
void ember_ref_gather(float *out, const int32_t *ids, int64_t n, const float *word, int H);

/* Twin of ember_cuda_convert (kernels/convert.c): dst[i] = src[i], i < n, between F32, F16 and
 * BF16; narrowing rounds to nearest even (NaN stays NaN, overflow gives Inf), like torch .to().
 * dst and src must not overlap unless dst_dt == src_dt and dst == src. */
void ember_ref_convert(void *dst, ember_dtype dst_dt, const void *src, ember_dtype src_dt,
                       int64_t n);

/* Fused embeddings: out[t,:] = LN(w_t + type[tt_t] + pos[p_t]) * gamma + beta, t < B*S.
 * w_t is word[ids[t]] when ids != NULL, else embeds[t,:] (inputs_embeds, (B*S,H)).
 * type_ids NULL = 0; pos_ids NULL = t % S. Indices must be in range (checked by caller).
 * out is (B*S,H); word (V,H); pos (P,H); type (T,H); gamma, beta (H). */
void ember_ref_embed_layernorm(float *out, const int32_t *ids, const float *embeds,
                               const int32_t *type_ids, const int32_t *pos_ids,
                               const float *word, const float *pos, const float *type,
                               const float *gamma, const float *beta, int B, int S, int H,
                               double eps);

/* out is (N,OUT) = in (N,IN) @ w^T + b; w is (OUT,IN) as in torch.nn.Linear; b may be NULL. */
void ember_ref_linear(float *out, const float *in, const float *w, const float *b, int N, int IN,
                      int OUT);

/* In place: x = act(x + bias), x is (N,C), bias (C) may be NULL. */
void ember_ref_bias_act(float *x, const float *bias, int64_t N, int C, ember_activation act);

/* out = LN(x + bias + residual) * gamma + beta. x, residual, out (N,H); bias may be NULL.
 * out may alias residual. */
void ember_ref_bias_residual_layernorm(float *out, const float *x, const float *bias,
                                       const float *residual, const float *gamma,
                                       const float *beta, int N, int H, double eps);

/* HF eager attention. qkv is (B,S,3H): per token [q(H) | k(H) | v(H)], head h at
 * columns h*HD.. of each part. mask (B,S) of 0/1 or NULL; a 0 adds -FLT_MAX to the
 * score. out is (B,S,H) with heads merged. scratch holds S doubles. */
void ember_ref_attention(float *out, const float *qkv, const int32_t *mask, int B, int S, int NH,
                         int HD, double *scratch);

/* Packed attention (padding removed): qkv is (T,3H) with T = cu_seqlens[B] valid tokens,
 * sequence b in rows cu_seqlens[b] .. cu_seqlens[b+1]-1 (cu_seqlens[0] = 0, non-decreasing;
 * an empty sequence has no rows). Every key of a sequence is attended (no mask). out is
 * (T,H). scratch holds max sequence length doubles. */
void ember_ref_attention_packed(float *out, const float *qkv, const int32_t *cu_seqlens, int B,
                                int NH, int HD, double *scratch);

/* out is (B,H) = tanh(w @ hidden[b,0,:] + b); hidden (B,S,H); w (H,H). */
void ember_ref_pooler(float *out, const float *hidden, const float *w, const float *b, int B,
                      int S, int H);

/* The activation of a head's dense layer (kernels/pooler.c, pooler.cu). */
typedef enum ember_head_act {
    EMBER_HEAD_ACT_NONE = 0,
    EMBER_HEAD_ACT_TANH = 1, /* BERT's pooler, RoBERTa / XLM-R classification head */
    EMBER_HEAD_ACT_GELU = 2, /* ELECTRA's classification head: exact erf GELU      */
    EMBER_HEAD_ACT_RELU = 3, /* DistilBERT's pre_classifier                         */
} ember_head_act;

/* The heads' dense layer: out (N,OUT) = act(in[n] @ w^T + b) with row n of in at in + n*ld_in
 * (ld_in = S*H reads token 0 of each sequence of a (B,S,H) tensor); w (OUT,IN), b (OUT) or
 * NULL. Double accumulation. The pooler is dense(TANH) of token 0. */
void ember_ref_dense(float *out, const float *in, int64_t ld_in, const float *w, const float *b,
                     int N, int IN, int OUT, ember_head_act act);

/* The scalar activation of ember_ref_bias_act, in double. */
double ember_ref_activation(double x, ember_activation act);

/* Default position ids of RoBERTa / XLM-R (HF create_position_ids_from_input_ids): out (B,S)
 * = pad for tokens whose id is pad, else pad + (number of non-pad ids up to and including this
 * one in its row). ids NULL (inputs_embeds; create_position_ids_from_inputs_embeds): out[b,s]
 * = pad + 1 + s. */
void ember_ref_position_ids(int32_t *out, const int32_t *ids, int B, int S, int pad);

/* Sentence-transformers pooling (kernels/pooling.c): out (B,H) = pool over the tokens of
 * mask (B,S) (NULL = all ones; values 0/1, checked by the caller) of hidden (B,S,H): MEAN =
 * sum / max(count, 1e-9), CLS = row 0, MAX = max with masked tokens at -1e9; then, if
 * normalize, divided by max(L2 norm, 1e-12). Double accumulation. */
void ember_ref_pool(float *out, const float *hidden, const int32_t *mask, int B, int S, int H,
                    ember_pooling mode, int normalize);

/* ---- CUDA twins (kernels/<op>.cu), device pointers, enqueued on `stream` --------------- */
#ifdef EMBER_WITH_CUDA
/* Activations in the compute dtype `dt` (F32, F16 or BF16) unless named f32. Kernels that
 * read caller indices clamp them in-bounds and set *err_flag (device int) on violation:
 * bit 0 = id, bit 1 = token type, bit 2 = position, bit 3 = mask value not 0/1, bit 4 = a NaN
 * or Inf in the f32 inputs_embeds / embedding_output, bit 5 = the caller's valid_tokens differs
 * from the mask's count.
 * Weights and biases are in `dt`; LayerNorm gamma/beta are f32. Accumulation and LayerNorm
 * statistics are f32. Every entry returns EMBER_OK or the status of the failed CUDA/cuBLAS
 * call (message via ember_last_error(); see host/cuda_check.h). Nothing here allocates
 * device memory and nothing synchronises: all work is enqueued on `stream`. */
#include <cuda_runtime_api.h>

enum {
    EMBER_BAD_ID = 1,
    EMBER_BAD_TOKEN_TYPE = 2,
    EMBER_BAD_POSITION = 4,
    EMBER_BAD_MASK = 8,
    EMBER_BAD_NONFINITE = 16,
    EMBER_BAD_VALID_TOKENS = 32, /* ember_inputs.valid_tokens differs from the mask's count */
};

/* Twin of ember_ref_gather: out (n,H) in out_dt = word[ids[t]] (widened exactly from dt, or
 * copied when out_dt = dt); word is (V,H). */
ember_status ember_cuda_gather(void *out, ember_dtype out_dt, const int32_t *ids, int64_t n,
                               const void *word, int H, int V, ember_dtype dt, int *err_flag,
                               cudaStream_t stream);

/* Twin of ember_ref_embed_layernorm: out (B*S,H) in dt. embeds (B*S,H) in embeds_dt (f32, f16
 * or bf16) is used when ids is NULL; word (V,H), pos (P,H), type (T,H) in dt; gamma, beta (H)
 * f32. The word value and the embeds are widened to f32 before any arithmetic, so ids and
 * embeds = ember_cuda_gather(ids) (in any out_dt that holds dt exactly) give bit-identical
 * outputs. */
ember_status ember_cuda_embed_layernorm(void *out, const int32_t *ids, const void *embeds,
                                        ember_dtype embeds_dt,
                                        const int32_t *type_ids, const int32_t *pos_ids,
                                        const void *word, const void *pos, const void *type,
                                        const float *gamma, const float *beta, int B, int S, int H,
                                        int V, int P, int T, double eps, ember_dtype dt,
                                        int *err_flag, cudaStream_t stream);

/* cuBLASLt handle + workspace + cache of chosen algorithms. Not thread-safe: one per model. */
typedef struct ember_cuda_gemm ember_cuda_gemm;
/* workspace: device memory of workspace_bytes, owned by the caller, outliving the object. */
ember_status ember_cuda_gemm_create(ember_cuda_gemm **out, void *workspace,
                                    size_t workspace_bytes);
void ember_cuda_gemm_destroy(ember_cuda_gemm *g);

/* Twin of ember_ref_linear: out (N,OUT) = in @ w^T + b, all dt. in is N rows of IN with row
 * stride ld_in elements (IN for a dense matrix; S*H to take the first token of each sequence);
 * w (OUT,IN); b (OUT) or NULL. fp32 is true fp32 (no TF32). */
ember_status ember_cuda_linear(void *out, const void *in, const void *w, const void *b, int N,
                               int IN, int OUT, int64_t ld_in, ember_dtype dt, ember_cuda_gemm *g,
                               cudaStream_t stream);

/* Twin of ember_ref_bias_act: in place x (N,C) = act(x + bias); bias (C) in dt or NULL.
 * act is an ember_activation or EMBER_CUDA_ACT_NONE (bias only). */
#define EMBER_CUDA_ACT_NONE (-1)
ember_status ember_cuda_bias_act(void *x, const void *bias, int64_t N, int C, int act,
                                 ember_dtype dt, cudaStream_t stream);

/* Twin of ember_ref_bias_residual_layernorm: out = LN(x + bias + residual) * gamma + beta, out,
 * x, residual (N,H) in dt; bias (H) in dt or NULL; gamma, beta f32. out may alias residual.
 * out_x (N,H) in out_x_dt, if not NULL, receives out converted (after rounding to dt). */
ember_status ember_cuda_bias_residual_layernorm(void *out, void *out_x, ember_dtype out_x_dt,
                                                const void *x,
                                                const void *bias, const void *residual,
                                                const float *gamma, const float *beta, int N,
                                                int H, double eps, ember_dtype dt,
                                                cudaStream_t stream);

/* Sets EMBER_BAD_NONFINITE in *err_flag if any of x[0..n) (in x_dt) is NaN or Inf
 * (kernels/embedding.cu). */
ember_status ember_cuda_check_finite(const void *x, ember_dtype x_dt, int64_t n, int *err_flag,
                                     cudaStream_t stream);

/* Sets EMBER_BAD_MASK in *err_flag if any of mask[0..n) is not 0 or 1. */
ember_status ember_cuda_check_mask(const int32_t *mask, int64_t n, int *err_flag,
                                   cudaStream_t stream);

/* Twin of ember_ref_attention (no scratch: online softmax, nothing of size S*S in memory).
 * qkv (B,S,3H), out (B,S,H) in dt; mask (B,S) or NULL, 0 = masked (any other value attends).
 * Head sizes up to 256. f16/bf16 with head size 32 or 64 and 16-byte aligned out and qkv run
 * on the tensor cores (compute capability >= 8.0), everything else on the SIMT kernel;
 * EMBER_ATTENTION=simt in the environment (read once) forces SIMT for every case. */
ember_status ember_cuda_attention(void *out, const void *qkv, const int32_t *mask, int B, int S,
                                  int NH, int HD, ember_dtype dt, cudaStream_t stream);
#define EMBER_CUDA_MAX_HEAD_SIZE 256

/* Twin of ember_ref_attention_packed: qkv (T,3H), out (T,H) in dt, T = cu_seqlens[B];
 * cu_seqlens (B+1) device int32, cu_seqlens[0] = 0, non-decreasing, empty sequences allowed;
 * max_len >= every sequence length (sizes the grid; a longer sequence is cut to max_len keys
 * and its later rows are not written). Same kernel choice as ember_cuda_attention. */
ember_status ember_cuda_attention_packed(void *out, const void *qkv, const int32_t *cu_seqlens,
                                         int B, int max_len, int NH, int HD, ember_dtype dt,
                                         cudaStream_t stream);

/* The two implementations behind the entries above, for tests and benchmarks. cu_seqlens NULL:
 * padded layout as ember_cuda_attention; else packed as ember_cuda_attention_packed with
 * S = max_len and mask ignored.
 *   _simt (kernels/attention.cu): any dt, head sizes 1..256.
 *   _mma (kernels/attention_mma.cu): mma.sync tensor cores; EMBER_ERR_UNSUPPORTED unless
 *   ember_cuda_attention_mma_supported (f16/bf16, head size 32 or 64, out and qkv 16-byte
 *   aligned, S * 3 * NH * HD < 2^31, current device of compute capability >= 8.0). */
ember_status ember_cuda_attention_simt(void *out, const void *qkv, const int32_t *mask,
                                       const int32_t *cu_seqlens, int B, int S, int NH, int HD,
                                       ember_dtype dt, cudaStream_t stream);
ember_status ember_cuda_attention_mma(void *out, const void *qkv, const int32_t *mask,
                                      const int32_t *cu_seqlens, int B, int S, int NH, int HD,
                                      ember_dtype dt, cudaStream_t stream);
int ember_cuda_attention_mma_supported(const void *out, const void *qkv, int S, int NH, int HD,
                                       ember_dtype dt);

/* ember_cuda_attention (padded) for the sequences b with only[b] != 0 (only: (B) device int32);
 * the rows of the others are not written. What completes cuDNN's attention where it cannot
 * follow HF's mask semantics (host/cuda_candidates.c). _mma_only: the tensor-core kernel alone. */
ember_status ember_cuda_attention_only(void *out, const void *qkv, const int32_t *mask,
                                       const int32_t *only, int B, int S, int NH, int HD,
                                       ember_dtype dt, cudaStream_t stream);
ember_status ember_cuda_attention_mma_only(void *out, const void *qkv, const int32_t *mask,
                                           const int32_t *only, int B, int S, int NH, int HD,
                                           ember_dtype dt, cudaStream_t stream);

/* The per-sequence tensors of cuDNN's attention (host/cuda_cudnn.c), on the device:
 *   padded (cu_seqlens NULL; mask (B,S) or NULL): seq_q[b] = S; seq_kv[b] = the length of row
 *     b when the row is 1..1 0..0 with at least one 1 (only[b] = 0), else S with only[b] = 1
 *     (holes, left padding, a fully masked row: HF semantics cuDNN's lengths cannot express,
 *     so ember_cuda_attention_only recomputes that sequence). No mask: S and 0 for all.
 *   packed (cu_seqlens (B+1)): seq_q[b] = seq_kv[b] = cu_seqlens[b+1] - cu_seqlens[b];
 *     off_qkv[b] = cu_seqlens[b] * 3H and off_o[b] = cu_seqlens[b] * H, b <= B (the element
 *     offsets of sequence b in qkv and out: cuDNN's ragged offsets); only untouched.
 * Arrays of B int32, and B+1 int64 for the offsets; those not needed may be NULL. */
ember_status ember_cuda_seq_info(const int32_t *mask, const int32_t *cu_seqlens, int B, int S,
                                 int H, int32_t *seq_q, int32_t *seq_kv, int32_t *only,
                                 int64_t *off_qkv, int64_t *off_o, cudaStream_t stream);

/* Twin of ember_ref_pooler: out (B,H) in out_dt = tanh(w @ hidden[b,0,:] + b). hidden (B,S,H),
 * w (H,H), b (H) in dt; scratch holds B*H elements of dt. */
ember_status ember_cuda_pooler(void *out, ember_dtype out_dt, const void *hidden, const void *w,
                               const void *b, int B, int S, int H, void *scratch, ember_dtype dt,
                               ember_cuda_gemm *g, cudaStream_t stream);

/* Twin of ember_ref_dense: out (N,OUT) in out_dt from in in in_dt (row n at in + n*ld_in), w
 * (OUT,IN) and b (OUT) or NULL in dt; f32 arithmetic, one warp per output element. */
ember_status ember_cuda_dense(void *out, ember_dtype out_dt, const void *in, ember_dtype in_dt,
                              int64_t ld_in, const void *w, const void *b, int N, int IN, int OUT,
                              ember_head_act act, ember_dtype dt, cudaStream_t stream);

/* Twin of ember_ref_position_ids: out (B,S) device int32 from ids (B,S) device int32 or NULL. */
ember_status ember_cuda_position_ids(int32_t *out, const int32_t *ids, int B, int S, int pad,
                                     cudaStream_t stream);

/* Twin of ember_ref_pool (kernels/pooling.cu): hidden (B,S,H) and out (B,H) f32, mask (B,S)
 * int32 or NULL, all device memory; f32 accumulation, one block per sequence. A mask value
 * other than 0 counts as 1 (the values are not checked on the device). */
ember_status ember_cuda_pool(float *out, const float *hidden, const int32_t *mask, int B, int S,
                             int H, ember_pooling mode, int normalize, cudaStream_t stream);

/* dst[i] = src[i] converted (round to nearest even), i < n; any pair of F32/F16/BF16. */
ember_status ember_cuda_convert(void *dst, ember_dtype dst_dt, const void *src,
                                ember_dtype src_dt, int64_t n, cudaStream_t stream);

/* Programmatic dependent launch (kernels/pdl.cuh). Kernel launches made by the calling thread
 * carry the PDL attribute while the setting is on; _set returns the previous setting. Only
 * for a device where ember_cuda_pdl_probe said yes. */
int ember_cuda_pdl_set(int on);
int ember_cuda_pdl_get(void);
/* *compiled = 1 when the kernels the current device runs have the grid-dependency wait
 * (code for sm_90+): one probe kernel writes what its compilation had into scratch (one
 * device int, left 0), waited for on the legacy stream. */
ember_status ember_cuda_pdl_probe(int *scratch, int *compiled);
#endif

/* ==== Padding removal, GEMM epilogues, input checks (performance work) =====================
 * kernels/packing.c + packing.cu, the packed embedding in embedding.c / embedding.cu,
 * ember_cuda_linear_act in linear.cu, ember_cuda_check_indices in embedding.cu.
 * Packed layout: the T valid tokens (mask != 0) of a (B,S) batch, sequence by sequence in
 * their original order; sequence b is rows cu_seqlens[b] .. cu_seqlens[b+1]-1. */

/* The plan. mask (B,S), nonzero = valid. cu_seqlens (B+1): cu_seqlens[0] = 0, cu_seqlens[b+1]
 * = cu_seqlens[b] + valid tokens of sequence b. index (>= T): packed row r is padded token
 * index[r] = b*S + s. inverse (B*S): packed row of padded token p, or -1 when p is masked.
 * Returns T = cu_seqlens[B]. */
int64_t ember_ref_pack_plan(const int32_t *mask, int B, int S, int32_t *cu_seqlens,
                            int32_t *index, int32_t *inverse);

/* out (T,C) = rows index[r] of in (N,C). */
void ember_ref_gather_rows(float *out, const float *in, const int32_t *index, int64_t T, int C);

/* out (N,C): row p = packed[inverse[p]] (packed is (T,C)), or zeros when inverse[p] < 0. */
void ember_ref_unpack_rows(float *out, const float *packed, const int32_t *inverse, int64_t N,
                           int C);

/* out (B,C): row b = the packed row of token (b,0), or zeros when that token is masked. */
void ember_ref_first_rows(float *out, const float *packed, const int32_t *inverse, int B, int S,
                          int C);

/* ember_ref_embed_layernorm for packed tokens: out row r (T,H) is the embedding of padded
 * token t = index[r] of a batch with rows of S tokens: word[ids[t]] or embeds[t,:], type
 * type_ids[t] (NULL = 0), position pos_ids[t] (NULL = t % S). */
void ember_ref_embed_layernorm_packed(float *out, const int32_t *index, int64_t T,
                                      const int32_t *ids, const float *embeds,
                                      const int32_t *type_ids, const int32_t *pos_ids,
                                      const float *word, const float *pos, const float *type,
                                      const float *gamma, const float *beta, int S, int H,
                                      double eps);

#ifdef EMBER_WITH_CUDA
/* Twin of ember_ref_pack_plan, on the device, nothing read back: mask (B,S), cu_seqlens
 * (B+1), index (B*S; the first T entries written), inverse (B*S), all device int32; T is
 * cu_seqlens[B] on the device. One block (B*S up to a few hundred thousand is fine).
 * expected_T: the caller's count (0 <= expected_T <= B*S), or -1 for none. When T differs
 * from it, EMBER_BAD_VALID_TOKENS is set in *err_flag, and index[T..expected_T) is filled
 * with 0 so that kernels sized for expected_T rows still read valid token positions. */
ember_status ember_cuda_pack_plan(const int32_t *mask, int B, int S, int expected_T,
                                  int32_t *cu_seqlens, int32_t *index, int32_t *inverse,
                                  int *err_flag, cudaStream_t stream);

/* Twin of ember_ref_gather_rows that also converts: out (T,C) in dt = rows index[r] of in
 * (N,C) in in_dt. */
ember_status ember_cuda_gather_rows(void *out, ember_dtype dt, const void *in, ember_dtype in_dt,
                                    const int32_t *index, int64_t T, int C, cudaStream_t stream);

/* Twin of ember_ref_unpack_rows: out (N,C) in out_dt from packed (T,C) in dt, zero rows where
 * inverse[p] < 0. */
ember_status ember_cuda_unpack_rows(void *out, ember_dtype out_dt, const void *packed,
                                    ember_dtype dt, const int32_t *inverse, int64_t N, int C,
                                    cudaStream_t stream);

/* Twin of ember_ref_first_rows: out (B,C) and packed (T,C) in dt. */
ember_status ember_cuda_first_rows(void *out, const void *packed, const int32_t *inverse, int B,
                                   int S, int C, ember_dtype dt, cudaStream_t stream);

/* Twin of ember_ref_embed_layernorm_packed: out (T,H) in dt, the rest as
 * ember_cuda_embed_layernorm; bad indices of the packed tokens are clamped and flagged. */
ember_status ember_cuda_embed_layernorm_packed(void *out, const int32_t *index, int64_t T,
                                               const int32_t *ids, const void *embeds,
                                               ember_dtype embeds_dt,
                                               const int32_t *type_ids, const int32_t *pos_ids,
                                               const void *word, const void *pos,
                                               const void *type, const float *gamma,
                                               const float *beta, int S, int H, int V, int P,
                                               int TV, double eps, ember_dtype dt, int *err_flag,
                                               cudaStream_t stream);

/* Sets EMBER_BAD_ID / EMBER_BAD_TOKEN_TYPE / EMBER_BAD_POSITION in *err_flag if any of
 * ids / type_ids / pos_ids [0..n) is outside [0,V) / [0,TV) / [0,P); NULL arrays are skipped.
 * The packed path uses it so that a bad value on a masked token is reported like without
 * padding removal. */
ember_status ember_cuda_check_indices(const int32_t *ids, int V, const int32_t *type_ids, int TV,
                                      const int32_t *pos_ids, int P, int64_t n, int *err_flag,
                                      cudaStream_t stream);

/* ember_cuda_linear followed by an activation: out (N,OUT) = act(in @ w^T + b), act an
 * ember_activation or EMBER_CUDA_ACT_NONE (= ember_cuda_linear). GELU_TANH runs in the GEMM's
 * epilogue (CUBLASLT_EPILOGUE_GELU_BIAS) when the device's cuBLASLt passed the probe of
 * ember_cuda_gemm_create; every other case adds the bias in the BIAS epilogue and applies the
 * activation with ember_cuda_bias_act. */
ember_status ember_cuda_linear_act(void *out, const void *in, const void *w, const void *b,
                                   int N, int IN, int OUT, int64_t ld_in, int act,
                                   ember_dtype dt, ember_cuda_gemm *g, cudaStream_t stream);

/* 1 if ember_cuda_linear_act(GELU_TANH) uses cuBLASLt's GELU epilogue (for tests). */
int ember_cuda_gemm_gelu_epilogue(const ember_cuda_gemm *g);

/* The tuning table the GEMMs consult (host/tune.h; NULL: cuBLASLt's first algorithm always).
 * Not owned; must outlive g or be unset first. */
struct ember_tuner;
void ember_cuda_gemm_set_tuner(ember_cuda_gemm *g, struct ember_tuner *t);
#endif

#ifdef __cplusplus
}
#endif

#endif
