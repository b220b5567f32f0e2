/* vocab.txt and tokenizer_config.json / special_tokens_map.json of a HuggingFace BERT
 * tokenizer: the token table (a byte trie for greedy longest-match WordPiece) and the
 * options. Read the way transformers 5 / the `tokenizers` library reads them. */
#ifndef EMBER_VOCAB_H
#define EMBER_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "ember.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One UTF-8 character at s (n > 0 bytes left): its length 1..4 and *cp, or 0 when the bytes
 * are not valid UTF-8 (overlong forms, surrogates, > U+10FFFF, a truncated sequence). */
static inline int ember_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    uint32_t b = s[0], c, min;
    int len;
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    if (b >= 0xC2 && b <= 0xDF)
        len = 2, c = b & 0x1F, min = 0x80;
    else if (b >= 0xE0 && b <= 0xEF)
        len = 3, c = b & 0x0F, min = 0x800;
    else if (b >= 0xF0 && b <= 0xF4)
        len = 4, c = b & 0x07, min = 0x10000;
    else
        return 0;
    if (n < (size_t)len) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return len;
}

/* Unicode White_Space (what Rust's char::is_whitespace tests): Zs, Zl, Zp, U+0009..U+000D,
 * U+0085. */
int ember_unicode_white_space(uint32_t cp);

/* Limits: anything larger is a corrupt or hostile file, not a WordPiece vocabulary. */
#define EMBER_VOCAB_MAX_BYTES (64u << 20)
#define EMBER_VOCAB_MAX_TOKENS 10000000

/* Trie roots: word-initial tokens hang under ROOT, "##" continuations (without the "##")
 * under ROOT_CONT. */
#define EMBER_VOCAB_ROOT 0
#define EMBER_VOCAB_ROOT_CONT 1

/* Token id i is line i of vocab.txt (lines split on '\n', trailing Unicode white space of a
 * line dropped, as tokenizers' WordPiece::read_file). A token on several lines maps to its
 * last line; the earlier ids are never produced. Immutable after load. */
typedef struct ember_vocab {
    int32_t n_tokens; /* lines = ids 0..n_tokens-1                       */
    char *blob;       /* token strings, each NUL-terminated              */
    size_t *offsets;  /* [n_tokens] start of token i in blob             */
    int32_t *node_id; /* [n_nodes] id of the token ending at a node, -1  */
    int32_t n_nodes;
    uint64_t *edge_key; /* open addressing: (node << 8 | byte), UINT64_MAX = empty */
    int32_t *edge_child;
    size_t edge_mask; /* capacity - 1 (capacity a power of two)          */
} ember_vocab;

/* Read vocab.txt. EMBER_ERR_IO when unreadable; EMBER_ERR_FORMAT (naming path and line) for
 * invalid UTF-8, a NUL byte, no tokens or a file over the limits. */
ember_status ember_vocab_load(const char *path, ember_vocab *v);
/* Same from memory; `label` names the source in errors. */
ember_status ember_vocab_parse(const char *data, size_t len, const char *label, ember_vocab *v);
void ember_vocab_free(ember_vocab *v);

/* Id of the exact token string s[0..len), -1 if absent. */
int32_t ember_vocab_find(const ember_vocab *v, const char *s, size_t len);

/* Trie step: the child of `node` over `byte`, -1 if none. */
static inline int32_t ember_vocab_child(const ember_vocab *v, int32_t node, uint8_t byte) {
    uint64_t key = ((uint64_t)(uint32_t)node << 8) | byte;
    size_t h = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & v->edge_mask;
    for (;;) {
        uint64_t k = v->edge_key[h];
        if (k == key) return v->edge_child[h];
        if (k == UINT64_MAX) return -1;
        h = (h + 1) & v->edge_mask;
    }
}

/* What tokenizer_config.json and special_tokens_map.json say. Booleans are -1 when absent
 * or null; token strings NULL when absent; model_max_length 0 when absent or not a sane
 * limit (HF writes 1e30 for "none"). */
typedef struct ember_tokenizer_config {
    int do_lower_case;
    int strip_accents;
    int tokenize_chinese_chars;
    char *unk_token, *sep_token, *pad_token, *cls_token, *mask_token;
    int64_t model_max_length;
} ember_tokenizer_config;

/* Read `dir`/tokenizer_config.json and `dir`/special_tokens_map.json when present (a missing
 * file is not an error). special_tokens_map.json overrides the config's special tokens unless
 * the config has "added_tokens_decoder" (transformers 5's rule). Malformed JSON or a field of
 * the wrong type is EMBER_ERR_FORMAT naming the file and the field or line. */
ember_status ember_tokenizer_config_load(const char *dir, ember_tokenizer_config *c);
void ember_tokenizer_config_free(ember_tokenizer_config *c);

#ifdef __cplusplus
}
#endif

#endif
