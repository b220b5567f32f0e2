/* The host copy of a model's weights (fp32, one arena), shared by the loader and the backends.
 * Names follow HF BertModel; weights/arch.c maps each family's tensor names onto them. */
#ifndef EMBER_WEIGHTS_H
#define EMBER_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "ember.h"
#include "kernels/ops.h" /* ember_head_act */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ember_layer_weights {
    float *qkv_w;      /* (3H,H): query, key, value weights stacked          */
    float *qkv_b;      /* (3H)                                                */
    float *attn_out_w; /* (H,H) attention.output.dense                        */
    float *attn_out_b; /* (H)                                                 */
    float *attn_ln_g;  /* (H) attention.output.LayerNorm                      */
    float *attn_ln_b;  /* (H)                                                 */
    float *inter_w;    /* (I,H) intermediate.dense                            */
    float *inter_b;    /* (I)                                                 */
    float *out_w;      /* (H,I) output.dense                                  */
    float *out_b;      /* (H)                                                 */
    float *out_ln_g;   /* (H) output.LayerNorm                                */
    float *out_ln_b;   /* (H)                                                 */
} ember_layer_weights;

/* E = embedding_size, L = num_labels. */
typedef struct ember_weights {
    float *word;       /* (V,E) */
    float *position;   /* (P,E) */
    float *token_type; /* (ember_type_rows,E): DistilBERT's one row is zeros */
    float *emb_ln_g;   /* (E)   */
    float *emb_ln_b;   /* (E)   */
    float *emb_proj_w; /* (H,E) ELECTRA's embeddings_project, NULL when E == H */
    float *emb_proj_b; /* (H)   or NULL */
    ember_layer_weights *layers; /* (num_hidden_layers) */
    float *pool_w;     /* (H,H) or NULL when the checkpoint has no pooler */
    float *pool_b;     /* (H)   or NULL */
    /* The head (ember_head). Sequence classification: dense on token 0 (H,H) + activation
     * (ember_head_act of the family; BERT's dense is its pooler: head_dense_w == pool_w), then
     * head_out. Token classification: head_out on every token, head_dense NULL. */
    float *head_dense_w; /* (H,H) or NULL */
    float *head_dense_b; /* (H)   or NULL */
    float *head_out_w;   /* (L,H) or NULL without a head */
    float *head_out_b;   /* (L)   or NULL */
    float *arena;
    size_t arena_floats;
} ember_weights;

/* Rows of the token-type table a backend holds: type_vocab_size, or 1 (zeros) without types. */
static inline int ember_type_rows(const ember_config *c) {
    return c->type_vocab_size > 0 ? c->type_vocab_size : 1;
}

/* Allocate the arena for cfg (pooler iff cfg->has_pooler, projection iff E != H, head per
 * cfg->head); everything uninitialised except the zero token-type row of a family without
 * types. The head's dense aliases the pooler for BERT. */
ember_status ember_weights_alloc(const ember_config *cfg, ember_weights *w);
void ember_weights_free(ember_weights *w);

/* Uniform random weights fixed by `seed` (ember_model_init_random). */
void ember_weights_fill_random(const ember_config *cfg, uint64_t seed, ember_weights *w);

#ifdef __cplusplus
}
#endif

#endif
