/* The BERT family's tables (see arch.h). Each row was checked against transformers 5.24's
 * modeling_<family>.py and configuration_<family>.py (tools/make_goldens.py builds one model
 * of every row and head with those classes). */
#include "arch.h"

#include <string.h>

#define BERT_LAYER_NAMES                                                                        \
    .query = "encoder.layer.%d.attention.self.query", .key = "encoder.layer.%d.attention.self.key", \
    .value = "encoder.layer.%d.attention.self.value",                                          \
    .attn_out = "encoder.layer.%d.attention.output.dense",                                     \
    .attn_ln = "encoder.layer.%d.attention.output.LayerNorm",                                  \
    .inter = "encoder.layer.%d.intermediate.dense", .out = "encoder.layer.%d.output.dense",    \
    .out_ln = "encoder.layer.%d.output.LayerNorm"

#define BERT_CONFIG_KEYS                                                                       \
    .k_hidden = "hidden_size", .k_layers = "num_hidden_layers", .k_heads = "num_attention_heads", \
    .k_inter = "intermediate_size", .k_act = "hidden_act", .has_token_types = 1,               \
    .has_layer_norm_eps = 1

#define BERT_EMBEDDINGS                                                                        \
    .word = "embeddings.word_embeddings", .position = "embeddings.position_embeddings",         \
    .token_type = "embeddings.token_type_embeddings", .emb_ln = "embeddings.LayerNorm"

/* RobertaForSequenceClassification / XLMRoberta...: RobertaClassificationHead (dense, tanh,
 * out_proj on token 0); *ForTokenClassification: classifier on every token. */
#define ROBERTA_ROW(ARCH, TYPE, PREFIX, ALT)                                                   \
    {.arch = ARCH, .model_type = TYPE, .class_prefix = PREFIX, .alt_prefix = ALT,              \
     .base_prefix = "roberta.", BERT_CONFIG_KEYS, .default_pad = 1, .padding_positions = 1,    \
     BERT_EMBEDDINGS, BERT_LAYER_NAMES, .pooler = "pooler.dense",                              \
     .roots = {"embeddings.", "encoder.", "pooler."}, .seq_dense = "classifier.dense",         \
     .seq_out = "classifier.out_proj", .seq_act = EMBER_HEAD_ACT_TANH, .tok_out = "classifier", \
     .head_roots = {"classifier."}}

static const ember_arch_info k_archs[] = {
    /* BertForSequenceClassification: classifier(pooler(h0)), the pooler being tanh(dense). */
    {.arch = EMBER_ARCH_BERT, .model_type = "bert", .class_prefix = "Bert", .base_prefix = "bert.",
     BERT_CONFIG_KEYS, .default_pad = 0, BERT_EMBEDDINGS, BERT_LAYER_NAMES,
     .pooler = "pooler.dense", .roots = {"embeddings.", "encoder.", "pooler."},
     .seq_dense = "pooler.dense", .seq_out = "classifier", .seq_act = EMBER_HEAD_ACT_TANH,
     .tok_out = "classifier", .head_roots = {"classifier."}},
    ROBERTA_ROW(EMBER_ARCH_ROBERTA, "roberta", "Roberta", NULL),
    /* XLMRobertaModel's base_model_prefix is "roberta" too. */
    ROBERTA_ROW(EMBER_ARCH_XLM_ROBERTA, "xlm-roberta", "XLMRoberta", "Roberta"),
    /* DistilBERT: config dim / hidden_dim / n_layers / n_heads / activation; LayerNorms at eps
     * 1e-12; no token types, no pooler; DistilBertForSequenceClassification:
     * classifier(relu(pre_classifier(h0))). */
    {.arch = EMBER_ARCH_DISTILBERT, .model_type = "distilbert", .class_prefix = "DistilBert",
     .base_prefix = "distilbert.", .k_hidden = "dim", .k_layers = "n_layers", .k_heads = "n_heads",
     .k_inter = "hidden_dim", .k_act = "activation", .default_pad = 0,
     .sinusoidal_key = "sinusoidal_pos_embds", .word = "embeddings.word_embeddings",
     .position = "embeddings.position_embeddings", .emb_ln = "embeddings.LayerNorm",
     .query = "transformer.layer.%d.attention.q_lin", .key = "transformer.layer.%d.attention.k_lin",
     .value = "transformer.layer.%d.attention.v_lin",
     .attn_out = "transformer.layer.%d.attention.out_lin",
     .attn_ln = "transformer.layer.%d.sa_layer_norm", .inter = "transformer.layer.%d.ffn.lin1",
     .out = "transformer.layer.%d.ffn.lin2", .out_ln = "transformer.layer.%d.output_layer_norm",
     .roots = {"embeddings.", "transformer."}, .seq_dense = "pre_classifier",
     .seq_out = "classifier", .seq_act = EMBER_HEAD_ACT_RELU, .tok_out = "classifier",
     .head_roots = {"pre_classifier.", "classifier."}},
    /* ELECTRA: embedding_size-wide embeddings, embeddings_project to hidden_size when they
     * differ; no pooler; ElectraClassificationHead: out_proj(gelu(dense(h0))) with the exact
     * GELU whatever hidden_act says. */
    {.arch = EMBER_ARCH_ELECTRA, .model_type = "electra", .class_prefix = "Electra",
     .base_prefix = "electra.", BERT_CONFIG_KEYS, .default_pad = 0, .has_embedding_size = 1,
     BERT_EMBEDDINGS, .emb_proj = "embeddings_project", BERT_LAYER_NAMES,
     .roots = {"embeddings.", "encoder.", "embeddings_project."}, .seq_dense = "classifier.dense",
     .seq_out = "classifier.out_proj", .seq_act = EMBER_HEAD_ACT_GELU, .tok_out = "classifier",
     .head_roots = {"classifier."}},
};

#define N_ARCHS (sizeof k_archs / sizeof k_archs[0])

const ember_arch_info *ember_arch_by_model_type(const char *model_type) {
    for (size_t i = 0; i < N_ARCHS; i++)
        if (strcmp(k_archs[i].model_type, model_type) == 0) return &k_archs[i];
    return NULL;
}

const ember_arch_info *ember_arch_get(ember_arch arch) {
    for (size_t i = 0; i < N_ARCHS; i++)
        if (k_archs[i].arch == arch) return &k_archs[i];
    return NULL;
}

const char *ember_arch_list(void) { return "bert, roberta, xlm-roberta, distilbert, electra"; }

const char *ember_arch_name(ember_arch arch) {
    const ember_arch_info *a = ember_arch_get(arch);
    return a ? a->model_type : "unknown";
}

static int has_prefix(const char *s, const char *prefix, const char **rest) {
    const size_t n = strlen(prefix);
    if (strncmp(s, prefix, n) != 0) return 0;
    *rest = s + n;
    return 1;
}

int ember_arch_class_head(const ember_arch_info *a, const char *class_name, ember_head *head) {
    const char *rest = NULL;
    if (!has_prefix(class_name, a->class_prefix, &rest) &&
        !(a->alt_prefix && has_prefix(class_name, a->alt_prefix, &rest)))
        return 0;
    /* "BertModel" but not "BertModelX"; every other suffix names a head */
    if (strcmp(rest, "ForSequenceClassification") == 0)
        *head = EMBER_HEAD_SEQUENCE_CLASSIFICATION;
    else if (strcmp(rest, "ForTokenClassification") == 0)
        *head = EMBER_HEAD_TOKEN_CLASSIFICATION;
    else
        *head = EMBER_HEAD_NONE;
    return 1;
}
