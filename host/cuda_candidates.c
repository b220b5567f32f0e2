/* The FFN input layer and attention with their candidates (see host/cuda_candidates.h).
 *
 * Candidate 1 of both is cuDNN (host/cuda_cudnn.c), which has never run on a GPU (see that
 * file): it is offered to the tuner, which uses it only after it matched candidate 0 on the
 * tuning call's data on the user's GPU; absent or refused, it is reported as unavailable.
 *
 * Attention with a mask: cuDNN takes per-sequence lengths, so it can follow HF's mask exactly
 * only for a row of ones followed by zeros with at least one 1 (the keys past the length get
 * weight 0 in both). Holes, left padding and fully masked rows (which HF attends uniformly)
 * it cannot express: ember_cuda_seq_info flags those sequences and ember's kernel rewrites
 * them after cuDNN (ember_cuda_attention_only), so the candidate computes HF's function for
 * any mask; a batch of right-padded rows costs one extra launch whose blocks all exit. */
#include "cuda_candidates.h"

#include <string.h>

#include "cuda_tune.h"
#include "error.h"

/* ---- FFN input -------------------------------------------------------------------------- */

typedef struct ffn_call {
    ember_cudnn *dnn;
    ember_cuda_gemm *g;
    void *out;
    const void *in, *w, *b;
    int N, IN, OUT, act;
    ember_dtype dt;
} ffn_call;

static ember_status ffn_candidate(void *ctx, int cand, cudaStream_t stream) {
    const ffn_call *c = ctx;
    if (cand == 0)
        return ember_cuda_linear_act(c->out, c->in, c->w, c->b, c->N, c->IN, c->OUT, c->IN, c->act,
                                     c->dt, c->g, stream);
    return ember_cudnn_linear_act(c->dnn, c->out, c->in, c->w, c->b, c->N, c->IN, c->OUT, c->act,
                                  c->dt, stream);
}

ember_status ember_ffn_in(ember_tuner *t, ember_cudnn *dnn, ember_cuda_gemm *g, void *out,
                          const void *in, const void *w, const void *b, int N, int IN, int OUT,
                          int act, ember_dtype dt, cudaStream_t stream) {
    ffn_call c = {dnn, g, out, in, w, b, N, IN, OUT, act, dt};
    if (!t || dt == EMBER_DTYPE_F32 || (act != EMBER_ACT_GELU && act != EMBER_ACT_GELU_TANH) ||
        !b || N <= 0)
        return ffn_candidate(&c, 0, stream);
    const int64_t shape[4] = {N, IN, OUT, act + 1};
    const ember_tune_job job = ember_tune_job_of(EMBER_TUNE_FFN_IN, dt, shape, 4, 2, ffn_candidate,
                                                 &c, out, (size_t)N * (size_t)OUT);
    return ember_tune_run(t, &job, stream, NULL);
}

/* ---- attention ---------------------------------------------------------------------------- */

typedef struct attn_call {
    ember_cudnn *dnn;
    const ember_attn_scratch *sc;
    void *out;
    const void *qkv;
    const int32_t *mask, *cu_seqlens;
    int B, S, NH, HD;
    ember_dtype dt;
} attn_call;

static ember_status attn_candidate(void *ctx, int cand, cudaStream_t stream) {
    const attn_call *c = ctx;
    const ember_attn_scratch *sc = c->sc;
    const int H = c->NH * c->HD;
    if (cand == 0)
        return c->cu_seqlens ? ember_cuda_attention_packed(c->out, c->qkv, c->cu_seqlens, c->B,
                                                           c->S, c->NH, c->HD, c->dt, stream)
                             : ember_cuda_attention(c->out, c->qkv, c->mask, c->B, c->S, c->NH,
                                                    c->HD, c->dt, stream);
    /* cuDNN: lengths (and offsets) first; the checks cuDNN's entry makes come before any launch */
    if (!c->dnn) return ember_cudnn_attention(NULL, c->out, c->qkv, NULL, NULL, NULL, NULL, c->B,
                                              c->S, c->NH, c->HD, c->dt, stream);
    if (c->cu_seqlens) {
        EMBER_TRY(ember_cuda_seq_info(NULL, c->cu_seqlens, c->B, c->S, H, sc->seq_q, sc->seq_kv,
                                      NULL, sc->off_qkv, sc->off_o, stream));
        return ember_cudnn_attention(c->dnn, c->out, c->qkv, sc->seq_q, sc->seq_kv, sc->off_qkv,
                                     sc->off_o, c->B, c->S, c->NH, c->HD, c->dt, stream);
    }
    if (!c->mask)
        return ember_cudnn_attention(c->dnn, c->out, c->qkv, NULL, NULL, NULL, NULL, c->B, c->S,
                                     c->NH, c->HD, c->dt, stream);
    EMBER_TRY(ember_cuda_seq_info(c->mask, NULL, c->B, c->S, H, sc->seq_q, sc->seq_kv, sc->only,
                                  NULL, NULL, stream));
    EMBER_TRY(ember_cudnn_attention(c->dnn, c->out, c->qkv, sc->seq_q, sc->seq_kv, NULL, NULL,
                                    c->B, c->S, c->NH, c->HD, c->dt, stream));
    return ember_cuda_attention_only(c->out, c->qkv, c->mask, sc->only, c->B, c->S, c->NH, c->HD,
                                     c->dt, stream);
}

ember_status ember_attention(ember_tuner *t, ember_cudnn *dnn, const ember_attn_scratch *sc,
                             void *out, const void *qkv, const int32_t *mask,
                             const int32_t *cu_seqlens, int B, int S, int rows, int NH,
                             int HD, ember_dtype dt, cudaStream_t stream) {
    attn_call c = {dnn, sc, out, qkv, mask, cu_seqlens, B, S, NH, HD, dt};
    if (!t || dt == EMBER_DTYPE_F32 || B <= 0 || S <= 0) return attn_candidate(&c, 0, stream);
    const int64_t shape[5] = {B, S, NH, HD,
                              cu_seqlens ? EMBER_TUNE_ATTN_PACKED
                              : mask     ? EMBER_TUNE_ATTN_MASKED
                                         : EMBER_TUNE_ATTN_PADDED};
    /* the check compares the rows every candidate writes */
    const ember_tune_job job = ember_tune_job_of(EMBER_TUNE_ATTENTION, dt, shape, 5, 2,
                                                 attn_candidate, &c, out,
                                                 (size_t)rows * (size_t)NH * (size_t)HD);
    /* a packed call's attention is keyed by (B, S): stable, so it may be tuned like a padded one */
    const int allow = t->allow;
    if (cu_seqlens) t->allow = 1;
    const ember_status st = ember_tune_run(t, &job, stream, NULL);
    t->allow = allow;
    return st;
}
