/* cuDNN's candidates (host/cuda_cudnn.c): the FFN input layer as one fused graph, and fused
 * attention (SDPA). cuDNN is optional twice: its headers decide at build time whether this code
 * is compiled in (EMBER_WITH_CUDNN), and the library is loaded at run time when present. Every
 * entry returns EMBER_ERR_UNSUPPORTED, with the reason in the message, when cuDNN is absent,
 * too old, or refuses the graph; the caller then runs ember's own path. Internal. */
#ifndef EMBER_CUDA_CUDNN_H
#define EMBER_CUDA_CUDNN_H

#include <cuda_runtime_api.h>

#include "ember.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The process's cuDNN: its version (e.g. 91900) once loaded, 0 when absent; *why (may be
 * NULL) then says why. Loaded once per process, on first use: libcudnn.so.9, or the file named
 * by EMBER_CUDNN_LIB; EMBER_CUDNN=off in the environment never loads it. */
long ember_cudnn_version(const char **why);

typedef struct ember_cudnn ember_cudnn;

/* Per model: a handle (created on first use) and a cache of execution plans. workspace is
 * device memory the plans may use, shared with cuBLASLt (both run in stream order). */
ember_status ember_cudnn_create(ember_cudnn **out, void *workspace, size_t workspace_bytes);
void ember_cudnn_destroy(ember_cudnn *d);

/* out (N,OUT) = act(in (N,IN) @ w^T + b): matmul -> bias add -> GELU (erf for EMBER_ACT_GELU,
 * tanh for EMBER_ACT_GELU_TANH) as one graph, f32 accumulation and activation, one rounding
 * to dt at the end; f16 and bf16 only. in, w, b, out as ember_cuda_linear_act. */
ember_status ember_cudnn_linear_act(ember_cudnn *d, void *out, const void *in, const void *w,
                                    const void *b, int N, int IN, int OUT, int act,
                                    ember_dtype dt, cudaStream_t stream);

/* Fused attention of B sequences, NH heads of HD, f16 / bf16, softmax(q k^T / sqrt(HD)) v:
 *   padded (off_qkv NULL): qkv (B,S,3H), out (B,S,H); with seq_kv (B) device int32, sequence
 *     b attends only its first seq_kv[b] keys (all its S queries computed: seq_q (B) all S),
 *     without (both NULL) every key;
 *   ragged (off_qkv, off_o (B+1) device int64, the element offsets of each sequence in qkv
 *     and out; seq_q = seq_kv (B) its lengths, <= S): the packed rows of padding removal.
 * The tensors are as kernels/ops.h's ember_cuda_seq_info writes them. */
ember_status ember_cudnn_attention(ember_cudnn *d, void *out, const void *qkv,
                                   const int32_t *seq_q, const int32_t *seq_kv,
                                   const int64_t *off_qkv, const int64_t *off_o, int B, int S,
                                   int NH, int HD, ember_dtype dt, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
