/* Map a HuggingFace checkpoint of the BERT family (one or several safetensors shards) onto
 * ember_weights, by the family's table of tensor names (weights/arch.c). */
#ifndef EMBER_CHECKPOINT_H
#define EMBER_CHECKPOINT_H

#include "config.h"
#include "ember.h"
#include "weights.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Load config.json and the weights of `dir` into fp32 host memory. Accepts names with or
 * without the family's base-model prefix ("bert.", "roberta.", ...) and legacy LayerNorm
 * gamma/beta; ignores heads ember does not run (cls.*, lm_head.*, ...) and the
 * embeddings.position_ids buffer. cfg->has_pooler is set from the checkpoint. On success the
 * caller owns *w and *meta (ember_weights_free, ember_model_meta_free); on failure both are
 * empty. */
ember_status ember_checkpoint_load_dir(const char *dir, ember_config *cfg, ember_model_meta *meta,
                                       ember_weights *w);

#ifdef __cplusplus
}
#endif

#endif
