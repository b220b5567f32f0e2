/* vocab.txt into a byte trie; tokenizer_config.json and special_tokens_map.json via Jansson.
 *
 * vocab.txt is read as tokenizers' WordPiece::read_file reads it (what transformers 5's
 * BertTokenizer uses): lines end at '\n', each line loses its trailing white space ("\r" of
 * CRLF, spaces, NBSP, ...), id = line number, and a duplicated token keeps its last id. The
 * slow 4.x BertTokenizer differs on lines with trailing spaces and on a lone '\r' (Python's
 * universal newlines end a line there); tests/data/tokenizer/README.md lists this. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "vocab.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "host/error.h"
#include "weights/file.h"

int ember_unicode_white_space(uint32_t cp) {
    if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x85) return 1;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

void ember_vocab_free(ember_vocab *v) {
    if (!v) return;
    free(v->blob);
    free(v->offsets);
    free(v->node_id);
    free(v->edge_key);
    free(v->edge_child);
    memset(v, 0, sizeof *v);
}

static size_t edge_slot(const ember_vocab *v, uint64_t key) {
    size_t h = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & v->edge_mask;
    while (v->edge_key[h] != key && v->edge_key[h] != UINT64_MAX) h = (h + 1) & v->edge_mask;
    return h;
}

/* Insert token `id` (bytes s[0..len)); a later line with the same token overwrites. The arrays
 * were sized for the worst case (one node and one edge per byte), so this cannot fail. */
static void trie_insert(ember_vocab *v, const char *s, size_t len, int32_t id) {
    int32_t node = EMBER_VOCAB_ROOT;
    if (len >= 2 && s[0] == '#' && s[1] == '#') {
        node = EMBER_VOCAB_ROOT_CONT;
        s += 2;
        len -= 2;
    }
    for (size_t i = 0; i < len; i++) {
        uint64_t key = ((uint64_t)(uint32_t)node << 8) | (uint8_t)s[i];
        size_t h = edge_slot(v, key);
        if (v->edge_key[h] == UINT64_MAX) {
            v->edge_key[h] = key;
            v->edge_child[h] = v->n_nodes;
            v->node_id[v->n_nodes++] = -1;
        }
        node = v->edge_child[h];
    }
    v->node_id[node] = id;
}

int32_t ember_vocab_find(const ember_vocab *v, const char *s, size_t len) {
    int32_t node = EMBER_VOCAB_ROOT;
    if (len >= 2 && s[0] == '#' && s[1] == '#') {
        node = EMBER_VOCAB_ROOT_CONT;
        s += 2;
        len -= 2;
    }
    for (size_t i = 0; i < len && node >= 0; i++) node = ember_vocab_child(v, node, (uint8_t)s[i]);
    return node >= 0 ? v->node_id[node] : -1;
}

ember_status ember_vocab_parse(const char *data, size_t len, const char *label, ember_vocab *v) {
    memset(v, 0, sizeof *v);
    if (len > EMBER_VOCAB_MAX_BYTES)
        return ember_fail(EMBER_ERR_FORMAT,
                          "%s: %zu bytes, more than the %u MiB limit of a vocabulary", label, len,
                          EMBER_VOCAB_MAX_BYTES >> 20);
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += data[i] == '\n';
    if (len > 0 && data[len - 1] != '\n') lines++;
    if (lines == 0) return ember_fail(EMBER_ERR_FORMAT, "%s: no tokens (empty file)", label);
    if (lines > EMBER_VOCAB_MAX_TOKENS)
        return ember_fail(EMBER_ERR_FORMAT, "%s: %zu lines, more than the limit of %d tokens",
                          label, lines, EMBER_VOCAB_MAX_TOKENS);

    /* Worst case: every byte is a new trie node and edge. Load factor <= 1/2. */
    size_t cap = 64;
    while (cap < 2 * (len + 2)) cap <<= 1;
    v->blob = malloc(len + lines);
    v->offsets = malloc(lines * sizeof *v->offsets);
    v->node_id = malloc((len + 2) * sizeof *v->node_id);
    v->edge_key = malloc(cap * sizeof *v->edge_key);
    v->edge_child = malloc(cap * sizeof *v->edge_child);
    if (!v->blob || !v->offsets || !v->node_id || !v->edge_key || !v->edge_child) {
        ember_vocab_free(v);
        return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "%s: cannot allocate the vocabulary (%zu bytes)",
                          label, len);
    }
    memset(v->edge_key, 0xFF, cap * sizeof *v->edge_key);
    v->edge_mask = cap - 1;
    v->node_id[EMBER_VOCAB_ROOT] = -1;
    v->node_id[EMBER_VOCAB_ROOT_CONT] = -1;
    v->n_nodes = 2;

    size_t pos = 0, out = 0;
    for (size_t line = 0; line < lines; line++) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        size_t keep = 0; /* bytes up to the end of the last non-white-space character */
        for (size_t i = pos; i < end;) {
            uint32_t cp;
            int n = ember_utf8_decode((const uint8_t *)data + i, end - i, &cp);
            if (n == 0 || cp == 0) {
                ember_vocab_free(v);
                return ember_fail(EMBER_ERR_FORMAT, "%s: line %zu: %s at byte %zu of the line",
                                  label, line + 1, n == 0 ? "invalid UTF-8" : "NUL byte", i - pos);
            }
            i += (size_t)n;
            if (!ember_unicode_white_space(cp)) keep = i - pos;
        }
        v->offsets[line] = out;
        memcpy(v->blob + out, data + pos, keep);
        v->blob[out + keep] = '\0';
        trie_insert(v, v->blob + out, keep, (int32_t)line);
        out += keep + 1;
        pos = end + 1;
    }
    v->n_tokens = (int32_t)lines;
    return EMBER_OK;
}

ember_status ember_vocab_load(const char *path, ember_vocab *v) {
    memset(v, 0, sizeof *v);
    char *buf;
    size_t len;
    EMBER_TRY(ember_file_read(path, EMBER_VOCAB_MAX_BYTES, &buf, &len)); /* non-blocking, regular */
    ember_status st = ember_vocab_parse(buf, len, path, v);
    free(buf);
    return st;
}

/* ---- tokenizer_config.json, special_tokens_map.json ------------------------------------ */

void ember_tokenizer_config_free(ember_tokenizer_config *c) {
    if (!c) return;
    free(c->unk_token);
    free(c->sep_token);
    free(c->pad_token);
    free(c->cls_token);
    free(c->mask_token);
    memset(c, 0, sizeof *c);
}

static ember_status get_bool(json_t *root, const char *path, const char *key, int *out) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return EMBER_OK;
    if (!json_is_boolean(v))
        return ember_fail(EMBER_ERR_FORMAT, "%s: \"%s\" must be true, false or null", path, key);
    *out = json_is_true(v);
    return EMBER_OK;
}

/* A special token: "[UNK]" or an AddedToken object {"content": "[UNK]", ...}. */
static ember_status get_token(json_t *root, const char *path, const char *key, char **out) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return EMBER_OK;
    json_t *s = json_is_object(v) ? json_object_get(v, "content") : v;
    if (!json_is_string(s) || json_string_length(s) == 0 ||
        strlen(json_string_value(s)) != json_string_length(s))
        return ember_fail(EMBER_ERR_FORMAT,
                          "%s: \"%s\" must be a non-empty string or an object with a \"content\" "
                          "string",
                          path, key);
    char *dup = strdup(json_string_value(s));
    if (!dup) return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    free(*out);
    *out = dup;
    return EMBER_OK;
}

static ember_status get_tokens(json_t *root, const char *path, ember_tokenizer_config *c) {
    EMBER_TRY(get_token(root, path, "unk_token", &c->unk_token));
    EMBER_TRY(get_token(root, path, "sep_token", &c->sep_token));
    EMBER_TRY(get_token(root, path, "pad_token", &c->pad_token));
    EMBER_TRY(get_token(root, path, "cls_token", &c->cls_token));
    EMBER_TRY(get_token(root, path, "mask_token", &c->mask_token));
    return EMBER_OK;
}

/* NULL (and EMBER_OK) when the file does not exist; a FIFO or directory in its place is an
 * error naming it (weights/file.c). */
static ember_status load_json(const char *path, json_t **out) {
    *out = NULL;
    int present;
    EMBER_TRY(ember_file_probe(path, &present));
    if (!present) return EMBER_OK;
    /* Integers as reals: HF writes model_max_length = 1e30 as an integer literal. */
    json_t *root;
    EMBER_TRY(ember_json_read(path, JSON_DECODE_INT_AS_REAL, &root));
    if (!json_is_object(root)) {
        json_decref(root);
        return ember_fail(EMBER_ERR_FORMAT, "%s: top level is not a JSON object", path);
    }
    *out = root;
    return EMBER_OK;
}

static ember_status parse_config(json_t *root, const char *path, ember_tokenizer_config *c) {
    EMBER_TRY(get_bool(root, path, "do_lower_case", &c->do_lower_case));
    EMBER_TRY(get_bool(root, path, "strip_accents", &c->strip_accents));
    EMBER_TRY(get_bool(root, path, "tokenize_chinese_chars", &c->tokenize_chinese_chars));
    EMBER_TRY(get_tokens(root, path, c));
    json_t *m = json_object_get(root, "model_max_length");
    if (m && !json_is_null(m)) {
        if (!json_is_number(m))
            return ember_fail(EMBER_ERR_FORMAT, "%s: \"model_max_length\" must be a number", path);
        double x = json_number_value(m);
        /* Larger values (1e30) are HF's way of saying "no limit". */
        if (x >= 1.0 && x <= 1e7 && x == (double)(int64_t)x) c->model_max_length = (int64_t)x;
    }
    return EMBER_OK;
}

ember_status ember_tokenizer_config_load(const char *dir, ember_tokenizer_config *c) {
    memset(c, 0, sizeof *c);
    c->do_lower_case = c->strip_accents = c->tokenize_chinese_chars = -1;
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (n < 0 || (size_t)n >= sizeof path)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "tokenizer path too long: %.200s...", dir);
    json_t *root;
    EMBER_TRY(load_json(path, &root));
    int has_decoder = 0;
    if (root) {
        ember_status st = parse_config(root, path, c);
        has_decoder = json_object_get(root, "added_tokens_decoder") != NULL;
        json_decref(root);
        if (st != EMBER_OK) {
            ember_tokenizer_config_free(c);
            return st;
        }
    }
    if (has_decoder) return EMBER_OK;
    snprintf(path, sizeof path, "%s/special_tokens_map.json", dir);
    ember_status st = load_json(path, &root);
    if (st == EMBER_OK && root) {
        st = get_tokens(root, path, c);
        json_decref(root);
    }
    if (st != EMBER_OK) ember_tokenizer_config_free(c);
    return st;
}
