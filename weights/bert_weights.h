/* Map a HuggingFace BERT checkpoint (one or several safetensors shards) onto ember_weights. */
#ifndef EMBER_BERT_WEIGHTS_H
#define EMBER_BERT_WEIGHTS_H

#include "ember.h"
#include "../host/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Load config.json and the weights of `dir` into fp32 host memory. Accepts names with or
 * without the "bert." prefix and legacy LayerNorm gamma/beta; ignores cls.* heads and
 * embeddings.position_ids. cfg->has_pooler is set from the checkpoint. */
ember_status ember_bert_load_dir(const char *dir, ember_config *cfg, ember_weights *w);

#ifdef __cplusplus
}
#endif

#endif
