/* sentence-transformers model directories (weights/st_config.c): ember_pooling_config_load is
 * in ember.h; this is the text side of sentence_bert_config.json's do_lower_case. */
#ifndef EMBER_ST_CONFIG_H
#define EMBER_ST_CONFIG_H

#include <stddef.h>

#include "ember.h"

#ifdef __cplusplus
extern "C" {
#endif

/* `text` (len bytes of UTF-8) lower-cased as Python's str.lower() does it, which is what
 * sentence-transformers applies before tokenizing when do_lower_case is set: the simple
 * lower-case mapping of each character, U+0130 to "i" U+0307, and a capital sigma at the end of
 * a word to the final form. *out is NUL-terminated and malloc'd (free it); *out_len excludes the
 * NUL. Invalid UTF-8: EMBER_ERR_INVALID_ARGUMENT naming the byte offset. */
ember_status ember_sbert_lower(const char *text, size_t len, char **out, size_t *out_len);

#ifdef __cplusplus
}
#endif

#endif
