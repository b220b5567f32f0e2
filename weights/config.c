/* config.json of a HuggingFace checkpoint of the BERT family: parsed with Jansson, every field
 * bounded. The key names and defaults of each family come from weights/arch.c. */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "host/error.h"
#include "weights/file.h"

/* Generous bounds: anything larger is a corrupt or hostile config, not a BERT. */
#define MAX_VOCAB 10000000
#define MAX_HIDDEN 65536
#define MAX_LAYERS 512
#define MAX_INTERMEDIATE 262144
#define MAX_POSITIONS 1048576
#define MAX_TYPES 65536
#define MAX_LABELS 1048576

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
    const ember_arch_info *a = ember_arch_get(c->arch);
    if (!a)
        return ember_fail(EMBER_ERR_CONFIG, "%s: arch %d is not an ember_arch", label, (int)c->arch);
    if (a->has_token_types)
        EMBER_TRY(check_range(label, "type_vocab_size", c->type_vocab_size, 1, MAX_TYPES));
    else if (c->type_vocab_size != 0)
        return ember_fail(EMBER_ERR_CONFIG, "%s: type_vocab_size = %d but %s has no token types "
                          "(must be 0)", label, c->type_vocab_size, a->model_type);
    /* nn.Embedding(vocab_size, padding_idx=pad_token_id) asserts this (negative values count
     * from the end, as in Python) */
    if (c->pad_token_id >= c->vocab_size || c->pad_token_id < -c->vocab_size)
        return ember_fail(EMBER_ERR_CONFIG,
                          "%s: \"pad_token_id\" = %d is outside [-%d, %d): HuggingFace's "
                          "nn.Embedding(vocab_size, padding_idx=pad_token_id) rejects it",
                          label, c->pad_token_id, c->vocab_size, c->vocab_size);
    EMBER_TRY(check_range(label, "embedding_size", c->embedding_size, 1, MAX_HIDDEN));
    if (!a->has_embedding_size && c->embedding_size != c->hidden_size)
        return ember_fail(EMBER_ERR_CONFIG, "%s: embedding_size %d differs from hidden_size %d, "
                          "which only ELECTRA's embeddings_project bridges", label,
                          c->embedding_size, c->hidden_size);
    if (a->padding_positions &&
        (c->pad_token_id < 0 || c->pad_token_id >= c->vocab_size ||
         c->pad_token_id > c->max_position_embeddings - 2))
        return ember_fail(EMBER_ERR_CONFIG,
                          "%s: \"pad_token_id\" = %d: %s counts positions from it, so it must be "
                          "in [0, vocab_size = %d) and leave a position below "
                          "max_position_embeddings = %d", label, c->pad_token_id, a->model_type,
                          c->vocab_size, c->max_position_embeddings);
    if (c->head != EMBER_HEAD_NONE && c->head != EMBER_HEAD_SEQUENCE_CLASSIFICATION &&
        c->head != EMBER_HEAD_TOKEN_CLASSIFICATION)
        return ember_fail(EMBER_ERR_CONFIG, "%s: head %d is not an ember_head", label, (int)c->head);
    if (c->head == EMBER_HEAD_NONE && c->num_labels != 0)
        return ember_fail(EMBER_ERR_CONFIG, "%s: num_labels = %d without a head (must be 0)",
                          label, c->num_labels);
    if (c->head != EMBER_HEAD_NONE)
        EMBER_TRY(check_range(label, "num_labels", c->num_labels, 1, MAX_LABELS));
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

/* A field present with JSON null. HF's config then holds None where it has a default
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

/* HF maps hidden_size -> dim (and the like) for DistilBERT: a config.json holding both names with
 * different values would make HF use one of them; ember refuses rather than guess. */
static ember_status check_alias(json_t *root, const char *label, const char *hf_name,
                                const char *key, int value) {
    if (strcmp(hf_name, key) == 0) return EMBER_OK;
    int alias = value;
    EMBER_TRY(get_int(root, label, hf_name, 0, &alias));
    if (alias != value)
        return ember_fail(EMBER_ERR_CONFIG, "%s: \"%s\" = %d disagrees with \"%s\" = %d", label,
                          hf_name, alias, key, value);
    return EMBER_OK;
}

static ember_status parse_activation(json_t *root, const char *label, const char *key,
                                     ember_activation *out) {
    json_t *act = json_object_get(root, key);
    if (!act) return EMBER_OK;
    if (json_is_null(act)) return null_field(label, key);
    if (!json_is_string(act))
        return ember_fail(EMBER_ERR_UNSUPPORTED,
                          "%s: \"%s\" must be a string (gelu, gelu_new, gelu_pytorch_tanh, relu)",
                          label, key);
    const char *a = json_string_value(act);
    if (strcmp(a, "gelu") == 0) *out = EMBER_ACT_GELU;
    else if (strcmp(a, "gelu_new") == 0 || strcmp(a, "gelu_pytorch_tanh") == 0)
        *out = EMBER_ACT_GELU_TANH;
    else if (strcmp(a, "relu") == 0) *out = EMBER_ACT_RELU;
    else
        return ember_fail(EMBER_ERR_UNSUPPORTED,
                          "%s: %s \"%s\" is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu)",
                          label, key, a);
    return EMBER_OK;
}

/* "architectures": the head, and the class name for messages. Every entry must belong to the
 * family and ask for the same head. */
static ember_status parse_architectures(json_t *root, const char *label, const ember_arch_info *a,
                                        ember_config *c, ember_model_meta *meta) {
    json_t *arr = json_object_get(root, "architectures");
    c->head = EMBER_HEAD_NONE;
    if (!arr || json_is_null(arr)) return EMBER_OK;
    if (!json_is_array(arr))
        return ember_fail(EMBER_ERR_CONFIG, "%s: \"architectures\" must be a list of strings", label);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (!json_is_string(v))
            return ember_fail(EMBER_ERR_CONFIG, "%s: \"architectures\"[%zu] is not a string", label, i);
        const char *name = json_string_value(v);
        ember_head head;
        if (!ember_arch_class_head(a, name, &head))
            return ember_fail(EMBER_ERR_UNSUPPORTED,
                              "%s: architecture \"%s\" is not a %s model (model_type \"%s\"): "
                              "ember cannot reproduce it", label, name, a->class_prefix,
                              a->model_type);
        if (i > 0 && head != c->head)
            return ember_fail(EMBER_ERR_UNSUPPORTED,
                              "%s: \"architectures\" lists \"%s\" and \"%s\", which have different "
                              "heads", label, meta ? meta->architecture : "(first)", name);
        c->head = head;
        if (i == 0 && meta) snprintf(meta->architecture, sizeof meta->architecture, "%s", name);
    }
    return EMBER_OK;
}

/* id2label (HF: it wins over num_labels; without it, num_labels or 2 labels "LABEL_<i>"). Keys
 * must be exactly "0" .. "n-1". The labels are kept only for a head. */
static ember_status parse_labels(json_t *root, const char *label, ember_config *c,
                                 ember_model_meta *meta) {
    json_t *map = json_object_get(root, "id2label");
    int n = 2;
    if (map && !json_is_null(map)) {
        if (!json_is_object(map))
            return ember_fail(EMBER_ERR_CONFIG, "%s: \"id2label\" must be an object", label);
        if (json_object_size(map) > MAX_LABELS)
            return ember_fail(EMBER_ERR_CONFIG, "%s: \"id2label\" has %zu labels, more than %d",
                              label, json_object_size(map), MAX_LABELS);
        n = (int)json_object_size(map);
        const char *key;
        json_t *v;
        json_object_foreach(map, key, v) {
            char *end = NULL;
            const long id = strtol(key, &end, 10);
            char canon[32];
            snprintf(canon, sizeof canon, "%ld", id);
            if (!*key || *end || id < 0 || id >= n || strcmp(canon, key) != 0)
                return ember_fail(EMBER_ERR_CONFIG,
                                  "%s: \"id2label\" key \"%s\" is not a class index in [0, %d)",
                                  label, key, n);
            if (!json_is_string(v))
                return ember_fail(EMBER_ERR_CONFIG, "%s: \"id2label\"[\"%s\"] must be a string",
                                  label, key);
        }
        if (n == 0)
            return ember_fail(EMBER_ERR_CONFIG, "%s: \"id2label\" is empty", label);
    } else {
        map = NULL;
        if (c->head == EMBER_HEAD_NONE) return EMBER_OK;
        EMBER_TRY(get_int(root, label, "num_labels", 0, &n));
        EMBER_TRY(check_range(label, "num_labels", n, 1, MAX_LABELS));
    }
    if (c->head == EMBER_HEAD_NONE) return EMBER_OK;
    c->num_labels = n;
    if (!meta) return EMBER_OK;
    meta->labels = calloc((size_t)n, sizeof *meta->labels);
    if (!meta->labels) return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "cannot allocate %d labels", n);
    meta->n_labels = n;
    for (int i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "%d", i);
        json_t *v = map ? json_object_get(map, key) : NULL;
        char fallback[32];
        snprintf(fallback, sizeof fallback, "LABEL_%d", i);
        const char *name = v ? json_string_value(v) : fallback;
        const size_t len = strlen(name) + 1;
        meta->labels[i] = malloc(len);
        if (!meta->labels[i]) return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "cannot copy label %d", i);
        memcpy(meta->labels[i], name, len);
    }
    return EMBER_OK;
}

static ember_status parse_root(json_t *root, const char *label, ember_config *c,
                               ember_model_meta *meta) {
    if (!json_is_object(root))
        return ember_fail(EMBER_ERR_CONFIG, "%s: top level is not a JSON object", label);

    const ember_arch_info *a = ember_arch_get(EMBER_ARCH_BERT);
    json_t *mt = json_object_get(root, "model_type");
    if (mt && !json_is_null(mt)) {
        if (!json_is_string(mt))
            return ember_fail(EMBER_ERR_CONFIG, "%s: \"model_type\" must be a string", label);
        a = ember_arch_by_model_type(json_string_value(mt));
        if (!a)
            return ember_fail(EMBER_ERR_UNSUPPORTED,
                              "%s: model_type \"%s\" is not supported (ember runs %s)", label,
                              json_string_value(mt), ember_arch_list());
    }

    memset(c, 0, sizeof *c);
    c->arch = a->arch;
    c->pad_token_id = a->default_pad;
    c->layer_norm_eps = 1e-12;
    c->hidden_act = EMBER_ACT_GELU;
    EMBER_TRY(get_int(root, label, "vocab_size", 1, &c->vocab_size));
    EMBER_TRY(get_int(root, label, a->k_hidden, 1, &c->hidden_size));
    EMBER_TRY(get_int(root, label, a->k_layers, 1, &c->num_hidden_layers));
    EMBER_TRY(get_int(root, label, a->k_heads, 1, &c->num_attention_heads));
    EMBER_TRY(get_int(root, label, a->k_inter, 1, &c->intermediate_size));
    EMBER_TRY(get_int(root, label, "max_position_embeddings", 1, &c->max_position_embeddings));
    EMBER_TRY(check_alias(root, label, "hidden_size", a->k_hidden, c->hidden_size));
    EMBER_TRY(check_alias(root, label, "num_hidden_layers", a->k_layers, c->num_hidden_layers));
    EMBER_TRY(check_alias(root, label, "num_attention_heads", a->k_heads, c->num_attention_heads));
    if (a->has_token_types) {
        c->type_vocab_size = 2;
        EMBER_TRY(get_int(root, label, "type_vocab_size", 0, &c->type_vocab_size));
    }
    /* pad_token_id: nn.Embedding's padding_idx, bounded in ember_config_check. null is "no
     * padding index", fine for BERT: it only matters for training; RoBERTa counts positions
     * from it. */
    json_t *pad = json_object_get(root, "pad_token_id");
    if (a->padding_positions && json_is_null(pad))
        return ember_fail(EMBER_ERR_CONFIG, "%s: \"pad_token_id\" is null but %s counts positions "
                          "from it", label, a->model_type);
    if (pad && !json_is_null(pad)) EMBER_TRY(get_int(root, label, "pad_token_id", 0, &c->pad_token_id));
    c->embedding_size = c->hidden_size;
    if (a->has_embedding_size)
        EMBER_TRY(get_int(root, label, "embedding_size", 1, &c->embedding_size));

    json_t *eps = json_object_get(root, "layer_norm_eps");
    if (a->has_layer_norm_eps && eps && json_is_null(eps)) return null_field(label, "layer_norm_eps");
    if (a->has_layer_norm_eps && eps) {
        if (!json_is_number(eps))
            return ember_fail(EMBER_ERR_CONFIG, "%s: \"layer_norm_eps\" must be a number", label);
        c->layer_norm_eps = json_number_value(eps);
    }
    EMBER_TRY(parse_activation(root, label, a->k_act, &c->hidden_act));

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
    if (a->sinusoidal_key) {
        json_t *sin = json_object_get(root, a->sinusoidal_key);
        if (sin && !json_is_null(sin) && !json_is_boolean(sin))
            return ember_fail(EMBER_ERR_CONFIG, "%s: \"%s\" must be true or false", label,
                              a->sinusoidal_key);
        if (meta) meta->sinusoidal_positions = json_is_true(sin);
    }
    EMBER_TRY(parse_architectures(root, label, a, c, meta));
    EMBER_TRY(parse_labels(root, label, c, meta));
    return ember_config_check(c, label);
}

void ember_model_meta_free(ember_model_meta *meta) {
    if (!meta) return;
    for (int i = 0; i < meta->n_labels && meta->labels; i++) free(meta->labels[i]);
    free(meta->labels);
    memset(meta, 0, sizeof *meta);
}

ember_status ember_model_meta_default_labels(int n, ember_model_meta *meta) {
    ember_model_meta_free(meta);
    if (n <= 0) return EMBER_OK;
    json_t *root = json_pack("{s:i}", "num_labels", n);
    ember_config c = {.head = EMBER_HEAD_SEQUENCE_CLASSIFICATION};
    ember_status st = root ? parse_labels(root, "ember_config", &c, meta)
                           : ember_fail(EMBER_ERR_OUT_OF_MEMORY, "cannot build the labels");
    json_decref(root);
    if (st != EMBER_OK) ember_model_meta_free(meta);
    return st;
}

static ember_status parse_with_meta(json_t *root, const char *label, ember_config *cfg,
                                    ember_model_meta *meta) {
    if (meta) memset(meta, 0, sizeof *meta);
    ember_status st = parse_root(root, label, cfg, meta);
    json_decref(root);
    if (st != EMBER_OK) ember_model_meta_free(meta);
    return st;
}

/* Malformed JSON (a duplicate key included) is EMBER_ERR_FORMAT, as ember.h assigns corrupt
 * files; a value out of bounds or inconsistent is EMBER_ERR_CONFIG. */
ember_status ember_config_parse_meta(const char *json, const char *label, ember_config *cfg,
                                     ember_model_meta *meta) {
    if (meta) memset(meta, 0, sizeof *meta);
    json_error_t err;
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return ember_fail(EMBER_ERR_FORMAT, "%s: invalid JSON at line %d column %d: %s", label,
                          err.line, err.column, err.text);
    return parse_with_meta(root, label, cfg, meta);
}

ember_status ember_config_parse(const char *json, const char *label, ember_config *cfg) {
    return ember_config_parse_meta(json, label, cfg, NULL);
}

ember_status ember_config_load_meta(const char *path, ember_config *cfg, ember_model_meta *meta) {
    if (meta) memset(meta, 0, sizeof *meta);
    json_t *root;
    /* non-blocking and checked to be a regular file (weights/file.c) */
    EMBER_TRY(ember_json_read(path, JSON_REJECT_DUPLICATES, &root));
    return parse_with_meta(root, path, cfg, meta);
}

ember_status ember_config_load(const char *path, ember_config *cfg) {
    return ember_config_load_meta(path, cfg, NULL);
}

int64_t ember_config_param_count(const ember_config *c) {
    /* embedding_size 0 means hidden_size, as for ember_model_init_random */
    int64_t H = c->hidden_size, I = c->intermediate_size;
    int64_t E = c->embedding_size ? c->embedding_size : H;
    int64_t L = c->num_labels;
    int64_t emb = ((int64_t)c->vocab_size + c->max_position_embeddings + c->type_vocab_size) * E +
                  2 * E + (E != H ? H * E + H : 0);
    int64_t layer = 3 * H * H + 3 * H + H * H + H + 2 * H + I * H + I + H * I + H + 2 * H;
    int64_t pool = c->has_pooler ? H * H + H : 0;
    int64_t head = c->head == EMBER_HEAD_NONE ? 0 : L * H + L;
    if (c->head == EMBER_HEAD_SEQUENCE_CLASSIFICATION && c->arch != EMBER_ARCH_BERT)
        head += H * H + H;
    return emb + c->num_hidden_layers * layer + pool + head;
}
