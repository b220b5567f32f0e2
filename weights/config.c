/* config.json of a HuggingFace BERT checkpoint: parsed with Jansson, every field bounded. */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h> /* free */
#include <string.h>

#include "host/error.h"
#include "weights/file.h"

/* Generous bounds: anything larger is a corrupt or hostile config, not a BERT. */
#define MAX_VOCAB 10000000
#define MAX_HIDDEN 65536
#define MAX_LAYERS 512
#define MAX_INTERMEDIATE 262144
#define MAX_POSITIONS 1048576
#define MAX_TYPES 65536

const char *ember_activation_name(ember_activation act) {
    switch (act) {
    case EMBER_ACT_GELU: return "gelu";
    case EMBER_ACT_GELU_TANH: return "gelu_new";
    case EMBER_ACT_RELU: return "relu";
    }
    return "unknown";
}

static ember_status check_range(const char *label, const char *field, long long v, long long lo,
                                long long hi) {
    if (v < lo || v > hi)
        return ember_fail(EMBER_ERR_CONFIG, "%s: \"%s\" = %lld is outside [%lld, %lld]", label, field,
                          v, lo, hi);
    return EMBER_OK;
}

ember_status ember_config_check(const ember_config *c, const char *label) {
    EMBER_TRY(check_range(label, "vocab_size", c->vocab_size, 1, MAX_VOCAB));
    EMBER_TRY(check_range(label, "hidden_size", c->hidden_size, 1, MAX_HIDDEN));
    EMBER_TRY(check_range(label, "num_hidden_layers", c->num_hidden_layers, 1, MAX_LAYERS));
    EMBER_TRY(check_range(label, "num_attention_heads", c->num_attention_heads, 1, c->hidden_size));
    EMBER_TRY(check_range(label, "intermediate_size", c->intermediate_size, 1, MAX_INTERMEDIATE));
    EMBER_TRY(check_range(label, "max_position_embeddings", c->max_position_embeddings, 1,
                          MAX_POSITIONS));
    EMBER_TRY(check_range(label, "type_vocab_size", c->type_vocab_size, 1, MAX_TYPES));
    /* nn.Embedding(vocab_size, padding_idx=pad_token_id) asserts this (negative values count
     * from the end, as in Python) */
    if (c->pad_token_id >= c->vocab_size || c->pad_token_id < -c->vocab_size)
        return ember_fail(EMBER_ERR_CONFIG,
                          "%s: \"pad_token_id\" = %d is outside [-%d, %d): HuggingFace's "
                          "nn.Embedding(vocab_size, padding_idx=pad_token_id) rejects it",
                          label, c->pad_token_id, c->vocab_size, c->vocab_size);
    if (c->hidden_size % c->num_attention_heads != 0)
        return ember_fail(EMBER_ERR_CONFIG,
                          "%s: hidden_size %d is not a multiple of num_attention_heads %d", label,
                          c->hidden_size, c->num_attention_heads);
    if (!(c->layer_norm_eps > 0.0 && c->layer_norm_eps < 1.0))
        return ember_fail(EMBER_ERR_CONFIG, "%s: \"layer_norm_eps\" = %g must be in (0, 1)", label,
                          c->layer_norm_eps);
    if (c->hidden_act != EMBER_ACT_GELU && c->hidden_act != EMBER_ACT_GELU_TANH &&
        c->hidden_act != EMBER_ACT_RELU)
        return ember_fail(EMBER_ERR_CONFIG, "%s: hidden_act %d is not an ember_activation", label,
                          (int)c->hidden_act);
    return EMBER_OK;
}

/* A field present with JSON null. HF's BertConfig then holds None where it has a default
 * otherwise: None for vocab_size, type_vocab_size, layer_norm_eps or hidden_act fails in
 * BertModel (nn.Embedding(None), ACT2FN[None]), and None for position_embedding_type skips the
 * position embeddings. ember rejects each of those rather than read null as the default. */
static ember_status null_field(const char *label, const char *field) {
    return ember_fail(EMBER_ERR_CONFIG,
                      "%s: \"%s\" is null: HuggingFace would not read it as its default (BertModel "
                      "fails or computes something else); give a value or leave the key out",
                      label, field);
}

/* Integer field; required fields must be present, optional ones keep *out when absent. null is
 * an error (null_field). */
static ember_status get_int(json_t *root, const char *label, const char *field, int required,
                            int *out) {
    json_t *v = json_object_get(root, field);
    if (!v) {
        if (required)
            return ember_fail(EMBER_ERR_CONFIG, "%s: required field \"%s\" is missing", label, field);
        return EMBER_OK;
    }
    if (json_is_null(v))
        return required ? ember_fail(EMBER_ERR_CONFIG, "%s: required field \"%s\" is missing "
                                     "(null)", label, field)
                        : null_field(label, field);
    if (!json_is_integer(v))
        return ember_fail(EMBER_ERR_CONFIG, "%s: \"%s\" must be an integer", label, field);
    json_int_t x = json_integer_value(v);
    if (x < -2147483647LL || x > 2147483647LL)
        return ember_fail(EMBER_ERR_CONFIG, "%s: \"%s\" = %lld does not fit in 32 bits", label, field,
                          (long long)x);
    *out = (int)x;
    return EMBER_OK;
}

static ember_status parse_root(json_t *root, const char *label, ember_config *c) {
    if (!json_is_object(root))
        return ember_fail(EMBER_ERR_CONFIG, "%s: top level is not a JSON object", label);

    json_t *mt = json_object_get(root, "model_type");
    if (mt && !json_is_null(mt)) {
        if (!json_is_string(mt))
            return ember_fail(EMBER_ERR_CONFIG, "%s: \"model_type\" must be a string", label);
        if (strcmp(json_string_value(mt), "bert") != 0)
            return ember_fail(EMBER_ERR_UNSUPPORTED,
                              "%s: model_type \"%s\" is not supported (only \"bert\")", label,
                              json_string_value(mt));
    }

    memset(c, 0, sizeof *c);
    c->pad_token_id = 0;
    c->layer_norm_eps = 1e-12;
    c->hidden_act = EMBER_ACT_GELU;
    EMBER_TRY(get_int(root, label, "vocab_size", 1, &c->vocab_size));
    EMBER_TRY(get_int(root, label, "hidden_size", 1, &c->hidden_size));
    EMBER_TRY(get_int(root, label, "num_hidden_layers", 1, &c->num_hidden_layers));
    EMBER_TRY(get_int(root, label, "num_attention_heads", 1, &c->num_attention_heads));
    EMBER_TRY(get_int(root, label, "intermediate_size", 1, &c->intermediate_size));
    EMBER_TRY(get_int(root, label, "max_position_embeddings", 1, &c->max_position_embeddings));
    c->type_vocab_size = 2;
    EMBER_TRY(get_int(root, label, "type_vocab_size", 0, &c->type_vocab_size));
    /* pad_token_id: nn.Embedding's padding_idx, bounded in ember_config_check. null is "no
     * padding index", fine: it only matters for training. */
    json_t *pad = json_object_get(root, "pad_token_id");
    if (pad && !json_is_null(pad)) EMBER_TRY(get_int(root, label, "pad_token_id", 0, &c->pad_token_id));

    json_t *eps = json_object_get(root, "layer_norm_eps");
    if (eps && json_is_null(eps)) return null_field(label, "layer_norm_eps");
    if (eps) {
        if (!json_is_number(eps))
            return ember_fail(EMBER_ERR_CONFIG, "%s: \"layer_norm_eps\" must be a number", label);
        c->layer_norm_eps = json_number_value(eps);
    }

    json_t *act = json_object_get(root, "hidden_act");
    if (act && json_is_null(act)) return null_field(label, "hidden_act");
    if (act) {
        if (!json_is_string(act))
            return ember_fail(EMBER_ERR_UNSUPPORTED,
                              "%s: \"hidden_act\" must be a string (gelu, gelu_new, "
                              "gelu_pytorch_tanh, relu)", label);
        const char *a = json_string_value(act);
        if (strcmp(a, "gelu") == 0) c->hidden_act = EMBER_ACT_GELU;
        else if (strcmp(a, "gelu_new") == 0 || strcmp(a, "gelu_pytorch_tanh") == 0)
            c->hidden_act = EMBER_ACT_GELU_TANH;
        else if (strcmp(a, "relu") == 0) c->hidden_act = EMBER_ACT_RELU;
        else
            return ember_fail(EMBER_ERR_UNSUPPORTED,
                              "%s: hidden_act \"%s\" is not supported (gelu, gelu_new, "
                              "gelu_pytorch_tanh, relu)", label, a);
    }

    json_t *pet = json_object_get(root, "position_embedding_type");
    if (pet && json_is_null(pet)) return null_field(label, "position_embedding_type");
    if (pet) {
        if (!json_is_string(pet) || strcmp(json_string_value(pet), "absolute") != 0)
            return ember_fail(EMBER_ERR_UNSUPPORTED,
                              "%s: position_embedding_type %s%s%s is not supported (only "
                              "\"absolute\")", label, json_is_string(pet) ? "\"" : "",
                              json_is_string(pet) ? json_string_value(pet) : "(not a string)",
                              json_is_string(pet) ? "\"" : "");
    }
    /* HF tests these with Python's truth value: 1, "true", "no" or [0] are all true. A decoder
     * applies a causal mask; cross-attention makes BertModel raise unless it is a decoder. */
    static const char *const decoder_keys[] = {"is_decoder", "add_cross_attention"};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(root, decoder_keys[i]);
        if (v && ember_json_truthy(v)) {
            char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            ember_status st = ember_fail(EMBER_ERR_UNSUPPORTED,
                                         "%s: \"%s\" = %.60s is true for HuggingFace (a decoder: "
                                         "causal attention); ember runs encoders only",
                                         label, decoder_keys[i], text ? text : "(a value)");
            free(text);
            return st;
        }
    }

    return ember_config_check(c, label);
}

/* Malformed JSON (a duplicate key included) is EMBER_ERR_FORMAT, as ember.h assigns corrupt
 * files; a value out of bounds or inconsistent is EMBER_ERR_CONFIG. */
ember_status ember_config_parse(const char *json, const char *label, ember_config *cfg) {
    json_error_t err;
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return ember_fail(EMBER_ERR_FORMAT, "%s: invalid JSON at line %d column %d: %s", label,
                          err.line, err.column, err.text);
    ember_status st = parse_root(root, label, cfg);
    json_decref(root);
    return st;
}

ember_status ember_config_load(const char *path, ember_config *cfg) {
    json_t *root;
    /* non-blocking and checked to be a regular file (weights/file.c) */
    EMBER_TRY(ember_json_read(path, JSON_REJECT_DUPLICATES, &root));
    ember_status st = parse_root(root, path, cfg);
    json_decref(root);
    return st;
}

int64_t ember_config_param_count(const ember_config *c) {
    int64_t H = c->hidden_size, I = c->intermediate_size;
    int64_t emb = ((int64_t)c->vocab_size + c->max_position_embeddings + c->type_vocab_size) * H +
                  2 * H;
    int64_t layer = 3 * H * H + 3 * H + H * H + H + 2 * H + I * H + I + H * I + H + 2 * H;
    int64_t pool = c->has_pooler ? H * H + H : 0;
    return emb + c->num_hidden_layers * layer + pool;
}
