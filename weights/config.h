/* config.json of a HuggingFace BERT checkpoint, parsed with Jansson and bounded. */
#ifndef EMBER_CONFIG_H
#define EMBER_CONFIG_H

#include "ember.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Parse and bound-check config.json at `path`. has_pooler is left 0 (the weights decide).
 * Unreadable: EMBER_ERR_IO; not JSON (or a duplicate key): EMBER_ERR_FORMAT; a value out of
 * bounds, of the wrong type or inconsistent: EMBER_ERR_CONFIG (unsupported: _UNSUPPORTED). */
ember_status ember_config_load(const char *path, ember_config *cfg);
/* Same from a string (for tests); `label` names the source in errors. */
ember_status ember_config_parse(const char *json, const char *label, ember_config *cfg);
/* Bounds shared by config.json and ember_model_init_random. */
ember_status ember_config_check(const ember_config *cfg, const char *label);
/* Parameter count of the encoder (embeddings, layers, pooler if present). */
int64_t ember_config_param_count(const ember_config *cfg);
const char *ember_activation_name(ember_activation act);

#ifdef __cplusplus
}
#endif

#endif
