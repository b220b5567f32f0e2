/* The two CPU backends. They share this file's driver (workspace, embeddings, padding removal,
 * hidden states, pooler, pooling, tables) and the encoder layer's order of ops; they differ in
 * how the heavy ops are computed (layer_ops):
 *   EMBER_BACKEND_REFERENCE: the encoder as HF BertModel computes it, op by op, with double
 *     accumulators (kernels/<op>.c): the oracle of every test, the CUDA backend's included.
 *   EMBER_BACKEND_CPU: float32; OpenBLAS sgemm for the projections and the FFN, fused bias +
 *     activation and bias + residual + LayerNorm, attention per (sequence, head), the latter
 *     three on the threads of kernels/cpu_pool.c (kernels/fast_cpu.c). The cheap stages stay the
 *     reference's (embeddings and the family's default positions, pooler, heads, pooling:
 *     O(tokens x H) next to the layers' O(tokens x H^2)); ELECTRA's embeddings_project, a GEMM
 *     like the layers', is the layer_ops' linear.
 * The family's architecture and head rules live once, in cpu_forward, for both.
 *
 * EMBER_FORWARD_SKIP_MASKED really packs (kernels/packing.c) rather than zeroing the rows of a
 * padded run: the CPU is the oracle of the CUDA packed path, so the plan, the packed
 * embedding and ember_ref_attention_packed are exercised by every CPU test. On the reference
 * the valid rows come out bit-identical to the padded run: the projections, FFN and LayerNorms
 * are per row, and in ember_ref_attention a masked key's weight is exp(-FLT_MAX - max) = 0
 * exactly in double, so dropping those keys changes no sum. The fast path's attention is as
 * exact about it (masked keys are skipped, sums run in key order), but sgemm's result for a
 * row depends on the row's place in the matrix, so its valid rows agree to float32 rounding. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kernels/cpu_pool.h"
#include "kernels/fast_cpu.h"
#include "kernels/ops.h"
#include "model.h"
#include "weights/arch.h"

typedef struct cpu_state {
    ember_weights w;
    /* workspace, sized for cap tokens */
    float *x;     /* (T,H) hidden state entering a layer        */
    float *x1;    /* (T,H) after attention + LayerNorm          */
    float *qkv;   /* (T,3H)                                     */
    float *ctx;   /* (T,H) attention output, heads merged       */
    float *tmp;   /* (T,H) projection before residual LayerNorm */
    float *inter; /* (T,max(I,E)): FFN; ELECTRA's embeddings before the projection */
    double *scores; /* (S) one attention row (reference)        */
    float *att;   /* fast: threads x ember_fast_attention_scratch(cap_seq, HD) */
    int32_t *cu_seqlens, *index, *inverse; /* packing plan: (T+1), (T), (T) */
    int32_t *positions; /* (T) RoBERTa's default position ids */
    float *logits;      /* (T,L) a half output's logits in f32, NULL without a head */
    int64_t cap_tokens;
    int cap_seq;
    size_t ws_bytes;
    int fast;    /* EMBER_BACKEND_CPU: the fast layers                          */
    int threads; /* fast: pool threads the attention scratch holds             */
} cpu_state;

static void free_workspace(cpu_state *s) {
    free(s->x);
    free(s->x1);
    free(s->qkv);
    free(s->ctx);
    free(s->tmp);
    free(s->inter);
    free(s->scores);
    free(s->att);
    free(s->cu_seqlens);
    free(s->index);
    free(s->inverse);
    free(s->positions);
    free(s->logits);
    s->x = s->x1 = s->qkv = s->ctx = s->tmp = s->inter = NULL;
    s->scores = NULL;
    s->att = NULL;
    s->cu_seqlens = s->index = s->inverse = s->positions = NULL;
    s->logits = NULL;
    s->cap_tokens = 0;
    s->ws_bytes = 0;
}

static ember_status cpu_init(ember_model *m, ember_weights *w) {
    cpu_state *s = calloc(1, sizeof *s);
    if (!s) return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "cannot allocate CPU backend state");
    s->w = *w; /* take the arena */
    memset(w, 0, sizeof *w);
    s->fast = m->backend == EMBER_BACKEND_CPU;
    m->impl = s;
    return EMBER_OK;
}

static void cpu_destroy(ember_model *m) {
    cpu_state *s = m->impl;
    if (!s) return;
    free_workspace(s);
    ember_weights_free(&s->w);
    free(s);
    m->impl = NULL;
}

static ember_status cpu_reserve(ember_model *m, int max_batch, int max_seq_len) {
    cpu_state *s = m->impl;
    const int64_t T = (int64_t)max_batch * max_seq_len;
    const size_t H = (size_t)m->cfg.hidden_size, E = (size_t)m->cfg.embedding_size;
    const size_t I = (size_t)m->cfg.intermediate_size > E ? (size_t)m->cfg.intermediate_size : E;
    cpu_state n = *s;
    n.x = malloc(sizeof(float) * T * H);
    n.x1 = malloc(sizeof(float) * T * H);
    n.qkv = malloc(sizeof(float) * T * 3 * H);
    n.ctx = malloc(sizeof(float) * T * H);
    n.tmp = malloc(sizeof(float) * T * (H > E ? H : E)); /* also a half inputs_embeds in f32 */
    n.inter = malloc(sizeof(float) * T * I);
    /* attention scratch: one double row (reference), or a block per thread (fast) */
    const int HD = m->cfg.hidden_size / m->cfg.num_attention_heads;
    const int threads = s->fast ? ember_pool_threads() : 1;
    const size_t att = s->fast ? (size_t)threads * ember_fast_attention_scratch(max_seq_len, HD) : 0;
    if (s->fast) n.att = malloc(sizeof(float) * att);
    else n.scores = malloc(sizeof(double) * (size_t)max_seq_len);
    /* a forward has at most T sequences (seq_len >= 1) and T tokens */
    n.cu_seqlens = malloc(sizeof(int32_t) * (size_t)(T + 1));
    n.index = malloc(sizeof(int32_t) * (size_t)T);
    n.inverse = malloc(sizeof(int32_t) * (size_t)T);
    n.positions = malloc(sizeof(int32_t) * (size_t)T);
    const size_t L = (size_t)m->cfg.num_labels; /* 0 without a head */
    n.logits = L ? malloc(sizeof(float) * T * L) : NULL;
    if (!n.x || !n.x1 || !n.qkv || !n.ctx || !n.tmp || !n.inter || !(n.scores || n.att) ||
        !n.cu_seqlens || !n.index || !n.inverse || !n.positions || (L && !n.logits)) {
        free_workspace(&n); /* the old workspace in *s stays valid */
        return ember_fail(EMBER_ERR_OUT_OF_MEMORY,
                          "cannot allocate the CPU workspace for %d x %d tokens", max_batch,
                          max_seq_len);
    }
    free_workspace(s);
    *s = n;
    s->cap_tokens = T;
    s->cap_seq = max_seq_len;
    s->threads = threads;
    s->ws_bytes = sizeof(float) * ((size_t)T * (6 * H + (H > E ? H : E) + I + L) + att) +
                  (s->fast ? 0 : sizeof(double) * (size_t)max_seq_len) +
                  sizeof(int32_t) * (size_t)(4 * T + 1);
    return EMBER_OK;
}

/* dst (N,H) in dt = the current hidden state in the padded layout; masked rows 0 when packed.
 * A half dst is staged in f32 in s->ctx (free between layers) and rounded once. */
static void emit(void *dst, ember_dtype dt, cpu_state *s, int packed, int N, int H) {
    float *f32 = dt == EMBER_DTYPE_F32 ? dst : s->ctx;
    if (packed) ember_ref_unpack_rows(f32, s->x, s->inverse, N, H);
    else memcpy(f32, s->x, sizeof(float) * (size_t)N * H);
    if (f32 != dst) ember_ref_convert(dst, dt, f32, EMBER_DTYPE_F32, (int64_t)N * H);
}

/* The caller's half inputs_embeds / embedding_output as f32, in s->tmp (free before layer 0). */
static const float *embeds_f32(cpu_state *s, const void *x, ember_dtype dt, int N, int H) {
    if (!x || dt == EMBER_DTYPE_F32) return x;
    ember_ref_convert(s->tmp, EMBER_DTYPE_F32, x, dt, (int64_t)N * H);
    return s->tmp;
}

/* The head after the encoder, from the f32 rows h (B,S,H) of last_hidden_state: logits (B,L) from
 * token 0 through the dense + activation of the family, or (B*S,L) for every token. scratch
 * holds B*H floats. */
static void head(const ember_model *m, float *logits, const float *h, float *scratch, int B,
                 int S) {
    const ember_config *c = &m->cfg;
    const ember_weights *w = &((const cpu_state *)m->impl)->w;
    const int H = c->hidden_size, L = c->num_labels;
    if (c->head == EMBER_HEAD_TOKEN_CLASSIFICATION) {
        ember_ref_dense(logits, h, H, w->head_out_w, w->head_out_b, B * S, H, L,
                        EMBER_HEAD_ACT_NONE);
        return;
    }
    ember_ref_dense(scratch, h, (int64_t)S * H, w->head_dense_w, w->head_dense_b, B, H, H,
                    ember_arch_get(c->arch)->seq_act);
    ember_ref_dense(logits, scratch, H, w->head_out_w, w->head_out_b, B, H, L, EMBER_HEAD_ACT_NONE);
}

/* What the two CPU backends compute differently: the heavy ops of an encoder layer. */
typedef struct layer_ops {
    void (*linear)(float *out, const float *in, const float *w, const float *b, int N, int IN,
                   int OUT);
    void (*bias_act)(float *x, const float *bias, int64_t N, int C, ember_activation act);
    void (*bias_residual_layernorm)(float *out, const float *x, const float *bias,
                                    const float *residual, const float *gamma, const float *beta,
                                    int N, int H, double eps);
    /* s->ctx = attention(s->qkv), on the padded batch (mask) or the packed one (s->cu_seqlens) */
    void (*attention)(cpu_state *s, const int32_t *mask, int packed, int B, int S, int NH, int HD);
} layer_ops;

static void ref_attention(cpu_state *s, const int32_t *mask, int packed, int B, int S, int NH,
                          int HD) {
    if (packed) ember_ref_attention_packed(s->ctx, s->qkv, s->cu_seqlens, B, NH, HD, s->scores);
    else ember_ref_attention(s->ctx, s->qkv, mask, B, S, NH, HD, s->scores);
}

static void fast_attention(cpu_state *s, const int32_t *mask, int packed, int B, int S, int NH,
                           int HD) {
    ember_fast_attention(s->ctx, s->qkv, mask, packed ? s->cu_seqlens : NULL, B, S, NH, HD,
                         s->att, s->threads);
}

static const layer_ops reference_ops = {ember_ref_linear, ember_ref_bias_act,
                                        ember_ref_bias_residual_layernorm, ref_attention};
static const layer_ops fast_ops = {ember_fast_linear, ember_fast_bias_act,
                                   ember_fast_bias_residual_layernorm, fast_attention};

/* One encoder layer, s->x -> s->x, on the T rows of the padded (B,S) batch or, when packed,
 * of its valid tokens (plan in s->cu_seqlens); mask is the caller's attention_mask or NULL. */
static void encoder_layer(cpu_state *s, const layer_ops *op, const ember_layer_weights *L,
                          const ember_config *c, const int32_t *mask, int packed, int B, int S,
                          int T) {
    const int H = c->hidden_size, I = c->intermediate_size, NH = c->num_attention_heads;
    op->linear(s->qkv, s->x, L->qkv_w, L->qkv_b, T, H, 3 * H);
    op->attention(s, mask, packed, B, S, NH, H / NH);
    op->linear(s->tmp, s->ctx, L->attn_out_w, NULL, T, H, H);
    op->bias_residual_layernorm(s->x1, s->tmp, L->attn_out_b, s->x, L->attn_ln_g, L->attn_ln_b, T,
                                H, c->layer_norm_eps);
    op->linear(s->inter, s->x1, L->inter_w, NULL, T, H, I);
    op->bias_act(s->inter, L->inter_b, T, I, c->hidden_act);
    op->linear(s->tmp, s->inter, L->out_w, NULL, T, I, H);
    op->bias_residual_layernorm(s->x, s->tmp, L->out_b, s->x1, L->out_ln_g, L->out_ln_b, T, H,
                                c->layer_norm_eps);
}

static ember_status cpu_forward(ember_model *m, const ember_inputs *in, const ember_outputs *out,
                                ember_stream stream) {
    cpu_state *s = m->impl;
    const ember_config *c = &m->cfg;
    const ember_weights *w = &s->w;
    const int B = in->batch, S = in->seq_len, H = c->hidden_size;
    const int N = B * S;
    const ember_dtype odt = out->dtype;
    const size_t osize = odt == EMBER_DTYPE_F32 ? 4 : 2;
    char *hs = (char *)out->hidden_states; /* (L+1,N,H) in odt, or NULL */
    /* Padding removal: the encoder runs on the T valid tokens only (T = N otherwise). */
    const int packed = (in->flags & EMBER_FORWARD_SKIP_MASKED) && in->attention_mask;
    const int T = packed ? (int)ember_ref_pack_plan(in->attention_mask, B, S, s->cu_seqlens,
                                                    s->index, s->inverse)
                         : N;

    const layer_ops *op = s->fast ? &fast_ops : &reference_ops;
    if (in->embedding_output) {
        const float *emb_out = embeds_f32(s, in->embedding_output, in->embeds_dtype, N, H);
        if (packed) ember_ref_gather_rows(s->x, emb_out, s->index, T, H);
        else memcpy(s->x, emb_out, sizeof(float) * (size_t)N * H);
    } else {
        /* The family's rules: default positions, then E-wide embeddings projected to H. */
        const int E = c->embedding_size;
        const float *embeds = embeds_f32(s, in->inputs_embeds, in->embeds_dtype, N, E);
        const int32_t *pos = in->position_ids;
        if (!pos && ember_arch_get(c->arch)->padding_positions) {
            ember_ref_position_ids(s->positions, in->input_ids, B, S, c->pad_token_id);
            pos = s->positions;
        }
        float *emb = E != H ? s->inter : s->x;
        if (packed)
            ember_ref_embed_layernorm_packed(emb, s->index, T, in->input_ids, embeds,
                                             in->token_type_ids, pos, w->word, w->position,
                                             w->token_type, w->emb_ln_g, w->emb_ln_b, S, E,
                                             c->layer_norm_eps);
        else
            ember_ref_embed_layernorm(emb, in->input_ids, embeds, in->token_type_ids, pos,
                                      w->word, w->position, w->token_type, w->emb_ln_g,
                                      w->emb_ln_b, B, S, E, c->layer_norm_eps);
        if (E != H) op->linear(s->x, emb, w->emb_proj_w, w->emb_proj_b, T, E, H);
    }
    if (hs) emit(hs, odt, s, packed, N, H);

    for (int l = 0; l < c->num_hidden_layers; l++) {
        encoder_layer(s, op, &w->layers[l], c, in->attention_mask, packed, B, S, T);
        if (hs) emit(hs + (size_t)(l + 1) * N * H * osize, odt, s, packed, N, H);
    }
    emit(out->last_hidden_state, odt, s, packed, N, H);
    /* From the f32 rows (s->ctx holds them for a half output): with padding removal a masked
     * first token reads a zero row. */
    const float *last = odt == EMBER_DTYPE_F32 ? out->last_hidden_state : s->ctx;
    if (out->pooler_output) {
        float *pool = odt == EMBER_DTYPE_F32 ? out->pooler_output : s->tmp;
        ember_ref_pooler(pool, last, w->pool_w, w->pool_b, B, S, H);
        if (odt != EMBER_DTYPE_F32)
            ember_ref_convert(out->pooler_output, odt, pool, EMBER_DTYPE_F32, (int64_t)B * H);
    }
    if (out->logits) {
        const int64_t n = (c->head == EMBER_HEAD_TOKEN_CLASSIFICATION ? N : B) * (int64_t)c->num_labels;
        float *logits = odt == EMBER_DTYPE_F32 ? out->logits : s->logits;
        head(m, logits, last, s->qkv, B, S);
        if (odt != EMBER_DTYPE_F32) ember_ref_convert(out->logits, odt, logits, EMBER_DTYPE_F32, n);
    }
    return EMBER_OK;
}

static ember_status cpu_embed(ember_model *m, const int32_t *ids, int64_t n, void *out,
                              ember_dtype out_dt, unsigned flags, ember_stream stream) {
    cpu_state *s = m->impl;
    const int E = m->cfg.embedding_size;
    if (out_dt == EMBER_DTYPE_F32) {
        ember_ref_gather(out, ids, n, s->w.word, E);
        return EMBER_OK;
    }
    for (int64_t t = 0; t < n; t++) /* row by row: no f32 staging of the caller's n rows */
        ember_ref_convert((uint16_t *)out + t * E, out_dt, s->w.word + (int64_t)ids[t] * E,
                          EMBER_DTYPE_F32, E);
    return EMBER_OK;
}

static ember_status cpu_table_copy(const ember_model *m, ember_table t, float *dst,
                                   ember_stream stream) {
    const cpu_state *s = m->impl;
    const ember_config *c = &m->cfg;
    const float *src = t == EMBER_TABLE_WORD ? s->w.word
                       : t == EMBER_TABLE_POSITION ? s->w.position : s->w.token_type;
    int64_t rows = t == EMBER_TABLE_WORD ? c->vocab_size
                   : t == EMBER_TABLE_POSITION ? c->max_position_embeddings : c->type_vocab_size;
    memcpy(dst, src, sizeof(float) * (size_t)(rows * c->embedding_size));
    return EMBER_OK;
}

static ember_status cpu_memory(const ember_model *m, size_t *weight_bytes, size_t *workspace_bytes) {
    const cpu_state *s = m->impl;
    *weight_bytes = s->w.arena_floats * sizeof(float);
    *workspace_bytes = s->ws_bytes;
    return EMBER_OK;
}

static ember_status cpu_pool(ember_model *m, const float *hidden, const int32_t *mask, int B,
                             int S, ember_pooling mode, int normalize, float *out,
                             ember_stream stream) {
    ember_ref_pool(out, hidden, mask, B, S, m->cfg.hidden_size, mode, normalize);
    return EMBER_OK;
}

/* Both CPU backends: cpu_init reads m->backend. */
const ember_backend_ops ember_cpu_backend = {
    .name = "cpu",
    .init = cpu_init,
    .destroy = cpu_destroy,
    .reserve = cpu_reserve,
    .forward = cpu_forward,
    .embed = cpu_embed,
    .table_copy = cpu_table_copy,
    .memory = cpu_memory,
    .pool = cpu_pool,
};
