/* The BERT family as data: per architecture, the config.json key names, the checkpoint's tensor
 * names, and the few rules in which the families differ (position ids, token types, the
 * embedding projection, the heads). The loader (weights/checkpoint.c), the config parser and
 * the backends read these tables; no family has its own loader or forward. */
#ifndef EMBER_ARCH_H
#define EMBER_ARCH_H

#include "ember.h"
#include "weights.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ember_arch_info {
    ember_arch arch;
    const char *model_type;   /* config.json "model_type"                                     */
    const char *class_prefix; /* of config.json "architectures": "Bert" in "BertModel"          */
    const char *alt_prefix;   /* a second accepted class prefix, or NULL                        */
    const char *base_prefix;  /* the base model's module name in task checkpoints: "bert."      */

    /* config.json keys (DistilBERT names its own) */
    const char *k_hidden, *k_layers, *k_heads, *k_inter, *k_act;
    int default_pad;          /* pad_token_id when config.json has none (HF's config default)   */
    int has_token_types;      /* 0: no token_type_embeddings, type_vocab_size is 0             */
    int has_layer_norm_eps;   /* 0: LayerNorm eps fixed at 1e-12 (DistilBERT)                  */
    int has_embedding_size;   /* 1: embedding_size may differ from hidden_size (ELECTRA)        */
    int padding_positions;    /* 1: default positions from padding_idx (RoBERTa rule)          */
    const char *sinusoidal_key; /* config flag for a generated position table, or NULL         */

    /* tensor names without ".weight"/".bias" and without base_prefix; layer names take %d */
    const char *word, *position, *token_type, *emb_ln, *emb_proj;
    const char *query, *key, *value, *attn_out, *attn_ln, *inter, *out, *out_ln;
    const char *pooler;       /* NULL: the family has no pooler                                 */
    const char *roots[4];     /* name roots of the base model: a leftover under one is an error */

    /* heads (top-level names, not under base_prefix, except BERT's pooler) */
    const char *seq_dense, *seq_out; /* sequence classification: dense on token 0, then out    */
    ember_head_act seq_act;
    const char *tok_out;             /* token classification                                   */
    const char *head_roots[3];       /* name roots of the heads                                */
} ember_arch_info;

/* The family of a model_type string, or NULL. */
const ember_arch_info *ember_arch_by_model_type(const char *model_type);
/* The family of an ember_arch, or NULL when out of range. */
const ember_arch_info *ember_arch_get(ember_arch arch);
/* "bert, roberta, xlm-roberta, distilbert, electra" (for messages). */
const char *ember_arch_list(void);

/* The head that an "architectures" class name asks for: a *Model class or one whose head
 * ember does not run (masked LM, pre-training, QA, ...) is EMBER_HEAD_NONE. Returns 0 when the
 * name does not belong to the family (another class prefix). */
int ember_arch_class_head(const ember_arch_info *a, const char *class_name, ember_head *head);

#ifdef __cplusplus
}
#endif

#endif
