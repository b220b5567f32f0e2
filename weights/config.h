/* config.json of a HuggingFace checkpoint of the BERT family, parsed with Jansson and bounded. */
#ifndef EMBER_CONFIG_H
#define EMBER_CONFIG_H

#include "ember.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What config.json says beyond ember_config: the loader's and the model's part. */
typedef struct ember_model_meta {
    char architecture[128];   /* config.json "architectures"[0], "" when absent              */
    int sinusoidal_positions; /* DistilBERT sinusoidal_pos_embds                             */
    int n_labels;             /* = cfg->num_labels                                           */
    char **labels;            /* id2label[0..n_labels), NULL without a head                  */
} ember_model_meta;

/* Parse and bound-check config.json at `path`. has_pooler is left 0 (the weights decide).
 * Unreadable: EMBER_ERR_IO; not JSON (or a duplicate key): EMBER_ERR_FORMAT; a value out of
 * bounds, of the wrong type or inconsistent: EMBER_ERR_CONFIG (unsupported: _UNSUPPORTED).
 * `meta` may be NULL; otherwise it receives what ember_model_meta holds (free it with
 * ember_model_meta_free, also after a failure). */
ember_status ember_config_load(const char *path, ember_config *cfg);
ember_status ember_config_load_meta(const char *path, ember_config *cfg, ember_model_meta *meta);
/* Same from a string (for tests); `label` names the source in errors. */
ember_status ember_config_parse(const char *json, const char *label, ember_config *cfg);
ember_status ember_config_parse_meta(const char *json, const char *label, ember_config *cfg,
                                     ember_model_meta *meta);
void ember_model_meta_free(ember_model_meta *meta);
/* HF's default labels "LABEL_0".. for a config without id2label (ember_model_init_random). */
ember_status ember_model_meta_default_labels(int n, ember_model_meta *meta);
/* Bounds shared by config.json and ember_model_init_random. */
ember_status ember_config_check(const ember_config *cfg, const char *label);
/* Parameter count of the model (embeddings, projection, layers, pooler and head if present). */
int64_t ember_config_param_count(const ember_config *cfg);
const char *ember_activation_name(ember_activation act);

#ifdef __cplusplus
}
#endif

#endif
