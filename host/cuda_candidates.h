/* The ops whose candidates go beyond cuBLASLt's algorithms (ember.h, "Tuning"): the FFN input
 * layer (cuBLASLt + ember's activation kernel, or cuDNN's fused graph) and attention (ember's
 * kernel, or cuDNN's SDPA). host/cuda_candidates.c; internal. */
#ifndef EMBER_CUDA_CANDIDATES_H
#define EMBER_CUDA_CANDIDATES_H

#include <cuda_runtime_api.h>

#include "cuda_cudnn.h"
#include "kernels/ops.h"
#include "tune.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Device scratch for cuDNN's per-sequence tensors, for up to B sequences. */
typedef struct ember_attn_scratch {
    int32_t *seq_q, *seq_kv, *only; /* (B)   */
    int64_t *off_qkv, *off_o;       /* (B+1) */
} ember_attn_scratch;

/* ember_cuda_linear_act of the FFN's input layer, with cuDNN's fused graph as candidate 1
 * (f16 / bf16 with a GELU; otherwise the plain call). t and dnn may be NULL. */
ember_status ember_ffn_in(ember_tuner *t, ember_cudnn *dnn, ember_cuda_gemm *g, void *out,
                          const void *in, const void *w, const void *b, int N, int IN, int OUT,
                          int act, ember_dtype dt, cudaStream_t stream);

/* ember_cuda_attention (padded: mask or NULL, cu_seqlens NULL) or ember_cuda_attention_packed
 * (cu_seqlens (B+1), S = the longest sequence), with cuDNN's SDPA as candidate 1 (f16 / bf16).
 * rows: the rows of out written (B*S padded, the number of valid tokens packed). A packed
 * call's key is (B, S), not its number of tokens: its choice may be made and kept. */
ember_status ember_attention(ember_tuner *t, ember_cudnn *dnn, const ember_attn_scratch *sc,
                             void *out, const void *qkv, const int32_t *mask,
                             const int32_t *cu_seqlens, int B, int S, int rows, int NH, int HD,
                             ember_dtype dt, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
