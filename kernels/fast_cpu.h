/*
 * The fast CPU path (host/backend_cpu.c, EMBER_BACKEND_CPU): the heavy ops of the encoder in
 * float32. GEMMs are OpenBLAS sgemm; the elementwise ops are fused and written so that the
 * compiler vectorises them without reassociating any sum (fixed partial-sum lanes, sequential
 * sums where the order must not depend on the layout). Every op is a twin of an
 * ember_ref_* op in kernels/ops.h (the oracle) with the same shapes; the cheap stages
 * (embeddings, pooler, pooling, packing) are the reference's own functions.
 *
 * Threads: each op splits its work into tasks (blocks of rows; batch x heads for attention)
 * whose results do not depend on which thread runs them or how many threads there are, and
 * runs them on the pool of kernels/cpu_pool.h (small ops on the calling thread). sgemm runs
 * on OpenBLAS's own threads; its results depend on their number (README, CPU backends).
 */
#ifndef EMBER_FAST_CPU_H
#define EMBER_FAST_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "ember.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out (N,OUT) = in (N,IN) @ w^T + b: w is (OUT,IN) as torch.nn.Linear; b (OUT) or NULL. sgemm
 * with float accumulation; the bias is the GEMM's starting value. */
void ember_fast_linear(float *out, const float *in, const float *w, const float *b, int N, int IN,
                       int OUT);

/* In place: x = act(x + bias), x (N,C), bias (C) or NULL. GELU's erf is Abramowitz & Stegun
 * 7.1.26 (|error| <= 1.5e-7, the approximation PyTorch's vectorised CPU erf uses); exp is a
 * degree-7 polynomial after range reduction (about 1 ulp). */
void ember_fast_bias_act(float *x, const float *bias, int64_t N, int C, ember_activation act);

/* out = LN(x + bias + residual) * gamma + beta, (N,H), statistics in float; out may alias
 * residual. */
void ember_fast_bias_residual_layernorm(float *out, const float *x, const float *bias,
                                        const float *residual, const float *gamma,
                                        const float *beta, int N, int H, double eps);

/* Floats of attention scratch one thread needs for sequences up to S keys and head size HD;
 * ember_fast_attention takes `threads` such blocks. */
size_t ember_fast_attention_scratch(int S, int HD);

/* HF eager attention in float, one task per (sequence, head).
 *   cu_seqlens NULL: padded layout as ember_ref_attention: qkv (B,S,3H), out (B,S,H), mask
 *     (B,S) or NULL. Masked keys get weight exactly 0 (they are skipped); a sequence with no
 *     valid key attends uniformly over its S keys (HF's float32-min mask).
 *   cu_seqlens given: packed layout as ember_ref_attention_packed (mask ignored; S >= every
 *     sequence length).
 * Scores of valid keys, their order, and every sum are the same in both layouts, so the valid
 * rows of a padded run and of a packed run are bit-identical. scratch: `threads` blocks of
 * ember_fast_attention_scratch(S, HD) floats, one per pool thread (threads below
 * ember_pool_threads() run everything on the calling thread). */
void ember_fast_attention(float *out, const float *qkv, const int32_t *mask,
                          const int32_t *cu_seqlens, int B, int S, int NH, int HD, float *scratch,
                          int threads);

#ifdef __cplusplus
}
#endif

#endif
