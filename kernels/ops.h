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

/* out is (B,H) = tanh(w @ hidden[b,0,:] + b); hidden (B,S,H); w (H,H). */
void ember_ref_pooler(float *out, const float *hidden, const float *w, const float *b, int B,
                      int S, int H);

/* ---- CUDA twins (kernels/*.cu), device pointers, enqueued on `stream` --------------- */
#ifdef EMBER_WITH_CUDA
/* Activations in the compute dtype `dt` (F32, F16 or BF16) unless named f32. Kernels that
 * read caller indices clamp them in-bounds and set *err_flag (device int) on violation:
 * bit 0 = id, bit 1 = token type, bit 2 = position, bit 3 = mask value not 0/1. */
#endif

#ifdef __cplusplus
}
#endif

#endif
