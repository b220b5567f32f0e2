/* BERT WordPiece tokenizer: what transformers 5's BertTokenizer does (the `tokenizers` library's
 * BertNormalizer, BertPreTokenizer, WordPiece and BERT post-processing), with Unicode data
 * from utf8proc.
 *
 * One pass over the text, no intermediate normalized copy:
 *
 *   raw UTF-8 ──split on special tokens ("[SEP]" in the text is the [SEP] id)──┐
 *   clean (drop NUL, U+FFFD, Cc/Cf/Co except \t\n\r; White_Space -> ' ')       │ per segment
 *   ' ' around CJK ideographs                                                    │
 *   strip accents: NFD, canonical order, drop Mn                                 │
 *   lower-case (full mapping: U+0130 -> i + U+0307)                              │
 *   split on white space and punctuation (P* and ASCII symbols) ─> words ─> WordPiece
 *
 * A word keeps at most 101 characters (more is [UNK] anyway), so memory does not grow with
 * the text except for the output ids and for runs of combining marks that are reordered
 * (counting sort, linear). Where utf8proc (Unicode 15) and tokenizers' own tables (Unicode 8
 * categories) disagree on a code point, ember follows utf8proc; tests/data/tokenizer/README.md
 * lists those code points. */
#define _POSIX_C_SOURCE 200809L /* strdup, stat */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <utf8proc.h>

#include "error.h"
#include "weights/vocab.h"

#define MAX_WORD_CHARS 100 /* max_input_chars_per_word: a longer word is [UNK] */
#define WORD_BYTES (4 * (MAX_WORD_CHARS + 1))
#define N_SPECIAL 5

struct ember_tokenizer {
    ember_vocab vocab;
    int lower, strip, chinese;
    ember_special_tokens ids;
    char *names[N_SPECIAL]; /* unk, sep, pad, cls, mask */
    /* Special tokens found in the vocabulary, matched in the raw text like HF's added tokens. */
    int n_split;
    const char *split[N_SPECIAL];
    size_t split_len[N_SPECIAL];
    int32_t split_id[N_SPECIAL];
    uint8_t split_first[256]; /* 1 for a first byte of some special token */
    int64_t model_max_length;
};

void ember_tokenizer_options_init(ember_tokenizer_options *opt) {
    if (!opt) return;
    opt->do_lower_case = -1;
    opt->strip_accents = -1;
    opt->tokenize_chinese_chars = -1;
}

void ember_tokenizer_free(ember_tokenizer *tok) {
    if (!tok) return;
    ember_vocab_free(&tok->vocab);
    for (int i = 0; i < N_SPECIAL; i++) free(tok->names[i]);
    free(tok);
}

static ember_status check_flag(const char *name, int v) {
    if (v < -1 || v > 1)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "ember_tokenizer_load: options.%s = %d (must be -1, 0 or 1)", name, v);
    return EMBER_OK;
}

static int pick(int opt, int cfg, int dflt) {
    return opt >= 0 ? opt : cfg >= 0 ? cfg : dflt;
}

static ember_status setup(ember_tokenizer *t, const ember_tokenizer_options *opt,
                          ember_tokenizer_config *cfg, const char *vocab_path) {
    t->lower = pick(opt->do_lower_case, cfg->do_lower_case, 1);
    t->strip = pick(opt->strip_accents, cfg->strip_accents, t->lower);
    t->chinese = pick(opt->tokenize_chinese_chars, cfg->tokenize_chinese_chars, 1);
    t->model_max_length = cfg->model_max_length;

    char **given[N_SPECIAL] = {&cfg->unk_token, &cfg->sep_token, &cfg->pad_token, &cfg->cls_token,
                               &cfg->mask_token};
    static const char *dflt[N_SPECIAL] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"};
    int32_t *id[N_SPECIAL] = {&t->ids.unk, &t->ids.sep, &t->ids.pad, &t->ids.cls, &t->ids.mask};
    for (int i = 0; i < N_SPECIAL; i++) {
        if (*given[i]) {
            t->names[i] = *given[i]; /* take ownership */
            *given[i] = NULL;
        } else if (!(t->names[i] = strdup(dflt[i]))) {
            return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "ember_tokenizer_load: out of memory");
        }
        *id[i] = ember_vocab_find(&t->vocab, t->names[i], strlen(t->names[i]));
        if (*id[i] < 0) continue;
        int dup = 0;
        for (int k = 0; k < t->n_split; k++) dup |= strcmp(t->split[k], t->names[i]) == 0;
        if (dup) continue;
        t->split[t->n_split] = t->names[i];
        t->split_len[t->n_split] = strlen(t->names[i]);
        t->split_id[t->n_split++] = *id[i];
        t->split_first[(uint8_t)t->names[i][0]] = 1;
    }
    if (t->ids.unk < 0)
        return ember_fail(EMBER_ERR_FORMAT, "%s: the unknown token \"%s\" is not in the vocabulary",
                          vocab_path, t->names[0]);
    return EMBER_OK;
}

/* A model directory without vocab.txt: say which tokenizer it has instead (RoBERTa's byte-level
 * BPE, XLM-R's SentencePiece, ...) rather than only that a file is missing. */
static ember_status not_wordpiece(const char *dir) {
    static const struct {
        const char *file, *kind;
    } kinds[] = {{"merges.txt", "byte-level BPE (merges.txt, as RoBERTa and GPT-2)"},
                 {"sentencepiece.bpe.model", "SentencePiece (sentencepiece.bpe.model, as XLM-R)"},
                 {"spiece.model", "SentencePiece (spiece.model)"},
                 {"tokenizer.model", "SentencePiece (tokenizer.model)"}};
    char p[4352], vocab[4352];
    struct stat sb;
    snprintf(vocab, sizeof vocab, "%s/vocab.txt", dir);
    if (stat(vocab, &sb) == 0) return EMBER_OK;
    const char *kind = NULL;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0] && !kind; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, kinds[i].file);
        if (stat(p, &sb) == 0) kind = kinds[i].kind;
    }
    char from_json[160];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    json_t *tj = kind ? NULL : json_load_file(p, 0, NULL);
    const char *type = json_string_value(json_object_get(json_object_get(tj, "model"), "type"));
    if (type) {
        snprintf(from_json, sizeof from_json, "%s (tokenizer.json)", type);
        kind = from_json;
    }
    json_decref(tj);
    if (!kind) return EMBER_OK; /* nothing to say beyond vocab.txt's absence */
    return ember_fail(EMBER_ERR_UNSUPPORTED,
                      "ember_tokenizer_load: %s has no vocab.txt; its tokenizer is %s, and "
                      "ember's tokenizer is WordPiece (vocab.txt) only: tokenize elsewhere and "
                      "pass input_ids", dir, kind);
}

ember_status ember_tokenizer_load(const char *path, const ember_tokenizer_options *opt,
                                  ember_tokenizer **out) {
    if (out) *out = NULL;
    if (!path || !out)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "ember_tokenizer_load: %s is NULL",
                          !path ? "path" : "out");
    ember_tokenizer_options dflt;
    ember_tokenizer_options_init(&dflt);
    if (!opt) opt = &dflt;
    EMBER_TRY(check_flag("do_lower_case", opt->do_lower_case));
    EMBER_TRY(check_flag("strip_accents", opt->strip_accents));
    EMBER_TRY(check_flag("tokenize_chinese_chars", opt->tokenize_chinese_chars));

    struct stat sb;
    if (stat(path, &sb) != 0)
        return ember_fail(EMBER_ERR_IO, "ember_tokenizer_load: %s does not exist", path);
    int is_dir = S_ISDIR(sb.st_mode);
    char vocab_path[4096];
    int n = snprintf(vocab_path, sizeof vocab_path, is_dir ? "%s/vocab.txt" : "%s", path);
    if (n < 0 || (size_t)n >= sizeof vocab_path)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "ember_tokenizer_load: path too long");
    if (is_dir) EMBER_TRY(not_wordpiece(path));

    ember_tokenizer_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.do_lower_case = cfg.strip_accents = cfg.tokenize_chinese_chars = -1;
    if (is_dir) EMBER_TRY(ember_tokenizer_config_load(path, &cfg));

    ember_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        ember_tokenizer_config_free(&cfg);
        return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "ember_tokenizer_load: out of memory");
    }
    ember_status st = ember_vocab_load(vocab_path, &t->vocab);
    if (st == EMBER_OK) st = setup(t, opt, &cfg, vocab_path);
    ember_tokenizer_config_free(&cfg);
    if (st != EMBER_OK) {
        ember_tokenizer_free(t);
        return st;
    }
    *out = t;
    return EMBER_OK;
}

int32_t ember_tokenizer_vocab_size(const ember_tokenizer *tok) {
    return tok ? tok->vocab.n_tokens : 0;
}

ember_status ember_tokenizer_special(const ember_tokenizer *tok, ember_special_tokens *out) {
    if (!tok || !out)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "ember_tokenizer_special: %s is NULL",
                          !tok ? "tok" : "out");
    *out = tok->ids;
    return EMBER_OK;
}

const char *ember_tokenizer_token(const ember_tokenizer *tok, int32_t id) {
    if (!tok || id < 0 || id >= tok->vocab.n_tokens) return NULL;
    return tok->vocab.blob + tok->vocab.offsets[id];
}

/* ---- character classes (BertNormalizer / BertPreTokenizer) ------------------------------- */

static int is_control(uint32_t cp) {
    if (cp == '\t' || cp == '\n' || cp == '\r') return 0;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    /* Not Cn: tokenizers keeps unassigned code points (they end up in an [UNK] word). */
    return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CO ||
           c == UTF8PROC_CATEGORY_CS;
}

static int is_punct(uint32_t cp) {
    if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
        (cp >= 123 && cp <= 126))
        return 1;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

/* BERT's "Chinese character": the CJK Unified Ideograph blocks as tokenizers lists them
 * (the slow tokenizer has 0x2B820 where this has 0x2B920). */
static int is_cjk(uint32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/* ---- output ids --------------------------------------------------------------------------- */

/* Ids land in ids[0..cap); with `grow` the buffer is enlarged instead, otherwise ids past cap
 * are only counted. */
typedef struct idbuf {
    int32_t *ids;
    int64_t cap, n;
    int grow;
} idbuf;

static int push_id(idbuf *b, int32_t id) {
    if (b->n >= b->cap && b->grow) {
        int64_t cap = b->cap ? 2 * b->cap : 64;
        int32_t *p = realloc(b->ids, (size_t)cap * sizeof *p);
        if (!p) return 0;
        b->ids = p;
        b->cap = cap;
    }
    if (b->n < b->cap) b->ids[b->n] = id;
    b->n++;
    return 1;
}

/* ---- the streaming pipeline ---------------------------------------------------------------- */

typedef struct mark {
    uint32_t cp;
    uint8_t ccc;
} mark;

typedef struct walker {
    const ember_tokenizer *t;
    idbuf *out;
    int oom;
    char word[WORD_BYTES]; /* the current word's UTF-8, while it has <= 101 characters */
    size_t word_len;
    int64_t word_chars;
    mark *run; /* combining marks (ccc != 0, not Mn) awaiting canonical ordering */
    size_t run_n, run_cap;
} walker;

static void emit(walker *w, int32_t id) {
    if (!push_id(w->out, id)) w->oom = 1;
}

/* Greedy longest-match-first WordPiece; any piece missing makes the whole word [UNK]. */
static void wordpiece(walker *w) {
    const ember_vocab *v = &w->t->vocab;
    const uint8_t *s = (const uint8_t *)w->word;
    size_t len = w->word_len;
    if (w->word_chars == 0) return;
    if (w->word_chars > MAX_WORD_CHARS) {
        emit(w, w->t->ids.unk);
        return;
    }
    int32_t pieces[MAX_WORD_CHARS];
    int n = 0;
    for (size_t pos = 0; pos < len;) {
        int32_t node = pos == 0 ? EMBER_VOCAB_ROOT : EMBER_VOCAB_ROOT_CONT, best = -1;
        size_t best_end = pos;
        for (size_t i = pos; i < len; i++) {
            node = ember_vocab_child(v, node, s[i]);
            if (node < 0) break;
            if (v->node_id[node] >= 0) {
                best = v->node_id[node];
                best_end = i + 1;
            }
        }
        if (best < 0) {
            emit(w, w->t->ids.unk);
            return;
        }
        pieces[n++] = best;
        pos = best_end;
    }
    for (int i = 0; i < n; i++) emit(w, pieces[i]);
}

static void end_word(walker *w) {
    wordpiece(w);
    w->word_len = 0;
    w->word_chars = 0;
}

/* A character of the final normalized text. */
static void put_final(walker *w, uint32_t cp) {
    if (ember_unicode_white_space(cp)) {
        end_word(w);
    } else if (is_punct(cp)) {
        end_word(w);
        w->word_len =
            (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)w->word);
        w->word_chars = 1;
        end_word(w);
    } else {
        if (w->word_chars <= MAX_WORD_CHARS)
            w->word_len += (size_t)utf8proc_encode_char((utf8proc_int32_t)cp,
                                                        (utf8proc_uint8_t *)w->word + w->word_len);
        w->word_chars++;
    }
}

static void put_cased(walker *w, uint32_t cp) {
    if (!w->t->lower) {
        put_final(w, cp);
    } else if (cp == 0x130) { /* the one unconditional multi-character lower-case mapping */
        put_final(w, 'i');
        put_final(w, 0x307);
    } else {
        put_final(w, (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp));
    }
}

/* Canonical ordering of the pending marks: a stable sort by combining class. */
static void flush_run(walker *w) {
    mark *r = w->run;
    size_t n = w->run_n;
    if (n > 32) {
        size_t count[257] = {0};
        mark *tmp = malloc(n * sizeof *tmp);
        if (!tmp) {
            w->oom = 1;
            w->run_n = 0;
            return;
        }
        for (size_t i = 0; i < n; i++) count[r[i].ccc + 1]++;
        for (int c = 0; c < 256; c++) count[c + 1] += count[c];
        for (size_t i = 0; i < n; i++) tmp[count[r[i].ccc]++] = r[i];
        memcpy(r, tmp, n * sizeof *r);
        free(tmp);
    } else {
        for (size_t i = 1; i < n; i++) {
            mark m = r[i];
            size_t j = i;
            for (; j > 0 && r[j - 1].ccc > m.ccc; j--) r[j] = r[j - 1];
            r[j] = m;
        }
    }
    for (size_t i = 0; i < n; i++) put_cased(w, r[i].cp);
    w->run_n = 0;
}

/* One character of the NFD text. Runs of ccc != 0 are reordered; Mn characters are dropped
 * (but still belong to the run they sit in, as in NFD-then-filter). */
static void put_decomposed(walker *w, uint32_t cp) {
    const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
    int mn = p->category == UTF8PROC_CATEGORY_MN;
    if (p->combining_class == 0) {
        if (w->run_n) flush_run(w);
        if (!mn) put_cased(w, cp);
    } else if (!mn) {
        if (w->run_n == w->run_cap) {
            size_t cap = w->run_cap ? 2 * w->run_cap : 16;
            mark *r = realloc(w->run, cap * sizeof *r);
            if (!r) {
                w->oom = 1;
                return;
            }
            w->run = r;
            w->run_cap = cap;
        }
        w->run[w->run_n++] = (mark){cp, (uint8_t)p->combining_class};
    }
}

static void put_spaced(walker *w, uint32_t cp) {
    if (!w->t->strip) {
        put_cased(w, cp);
        return;
    }
    utf8proc_int32_t d[32];
    int boundclass = 0;
    utf8proc_ssize_t n =
        utf8proc_decompose_char((utf8proc_int32_t)cp, d, 32, UTF8PROC_DECOMPOSE, &boundclass);
    if (n < 1 || n > 32) { /* cannot happen for a valid code point; keep it as is */
        d[0] = (utf8proc_int32_t)cp;
        n = 1;
    }
    for (utf8proc_ssize_t i = 0; i < n; i++) put_decomposed(w, (uint32_t)d[i]);
}

static void put_raw(walker *w, uint32_t cp) {
    if (cp == 0 || cp == 0xFFFD || is_control(cp)) return;
    if (ember_unicode_white_space(cp)) cp = ' ';
    if (w->t->chinese && is_cjk(cp)) {
        put_spaced(w, ' ');
        put_spaced(w, cp);
        put_spaced(w, ' ');
    } else {
        put_spaced(w, cp);
    }
}

static void end_segment(walker *w) {
    if (w->run_n) flush_run(w);
    end_word(w);
}

/* Length of the longest special token at s (0 if none) and its id. */
static size_t match_special(const ember_tokenizer *t, const char *s, size_t n, int32_t *id) {
    size_t best = 0;
    for (int k = 0; k < t->n_split; k++) {
        size_t l = t->split_len[k];
        if (l > best && l <= n && memcmp(s, t->split[k], l) == 0) {
            best = l;
            *id = t->split_id[k];
        }
    }
    return best;
}

static ember_status tokenize(const ember_tokenizer *t, const char *text, size_t len, idbuf *out) {
    const uint8_t *s = (const uint8_t *)text;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int n = ember_utf8_decode(s + i, len - i, &cp);
        if (n == 0)
            return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                              "text is not valid UTF-8 at byte offset %zu (byte 0x%02X)", i, s[i]);
        i += (size_t)n;
    }
    walker wk = {.t = t, .out = out}, *w = &wk;
    for (size_t i = 0; i < len && !w->oom;) {
        int32_t id;
        size_t m = t->split_first[s[i]] ? match_special(t, text + i, len - i, &id) : 0;
        if (m) {
            end_segment(w);
            emit(w, id);
            i += m;
            continue;
        }
        uint32_t cp = 0;
        i += (size_t)ember_utf8_decode(s + i, len - i, &cp); /* validated above */
        put_raw(w, cp);
    }
    end_segment(w);
    int oom = w->oom;
    free(w->run);
    if (oom) return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "tokenize: out of memory");
    return EMBER_OK;
}

ember_status ember_tokenize(const ember_tokenizer *tok, const char *text, size_t len, int32_t *ids,
                            int64_t cap, int64_t *n_ids) {
    if (n_ids) *n_ids = 0;
    if (!tok || !n_ids || (!text && len > 0) || cap < 0 || (!ids && cap > 0))
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "ember_tokenize: %s",
                          !tok                 ? "tok is NULL"
                          : !n_ids             ? "n_ids is NULL"
                          : (!text && len > 0) ? "text is NULL"
                          : cap < 0            ? "cap < 0"
                                               : "ids is NULL with cap > 0");
    idbuf out = {ids, cap, 0, 0};
    ember_status st = tokenize(tok, text ? text : "", len, &out);
    if (st != EMBER_OK) return ember_fail_context(st, "ember_tokenize");
    *n_ids = out.n;
    return EMBER_OK;
}

/* ---- batches ------------------------------------------------------------------------------- */

void ember_encoding_free(ember_encoding *enc) {
    if (!enc) return;
    free(enc->input_ids);
    free(enc->attention_mask);
    free(enc->token_type_ids);
    free(enc->lengths);
    free(enc->truncated);
    memset(enc, 0, sizeof *enc);
}

/* tokenizers' LongestFirst for a pair with `budget` pieces (max_length minus 3 specials): the
 * longer side is cut to the budget left by the shorter; if the shorter alone takes more than
 * half, both get half (the longer one, or on a tie the second, gets the odd piece). */
static void truncate_pair(int64_t budget, int64_t *na, int64_t *nb) {
    int64_t n1 = *na, n2 = *nb;
    if (n1 + n2 <= budget) return;
    int swap = n1 > n2;
    if (swap) n1 = *nb, n2 = *na;
    n2 = n1 > budget ? n1 : (n1 > budget - n1 ? n1 : budget - n1);
    if (n1 + n2 > budget) {
        n1 = budget / 2;
        n2 = n1 + budget % 2;
    }
    if (swap) {
        int64_t x = n1;
        n1 = n2;
        n2 = x;
    }
    if (*na > n1) *na = n1;
    if (*nb > n2) *nb = n2;
}

ember_status ember_tokenizer_encode(const ember_tokenizer *tok, int n, const char *const *texts,
                                    const char *const *texts_pair, int max_length,
                                    ember_encoding *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!tok || !texts || !out || n < 1 || max_length < 0)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "ember_tokenizer_encode: %s",
                          !tok     ? "tok is NULL"
                          : !texts ? "texts is NULL"
                          : !out   ? "out is NULL"
                          : n < 1  ? "n < 1"
                                   : "max_length < 0");
    const int pair = texts_pair != NULL;
    const int64_t specials = pair ? 3 : 2;
    int64_t limit = max_length > 0 ? max_length : tok->model_max_length;
    if (limit > 0 && limit < specials)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "ember_tokenizer_encode: max_length %lld is too small: %s needs %lld "
                          "special tokens",
                          (long long)limit, pair ? "a pair" : "a text", (long long)specials);
    if (tok->ids.cls < 0 || tok->ids.sep < 0)
        return ember_fail(
            EMBER_ERR_UNSUPPORTED, "ember_tokenizer_encode: the vocabulary has no %s token \"%s\"",
            tok->ids.cls < 0 ? "cls" : "sep", tok->ids.cls < 0 ? tok->names[3] : tok->names[1]);
    for (int i = 0; i < n; i++)
        if (!texts[i] || (pair && !texts_pair[i]))
            return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "ember_tokenizer_encode: %s[%d] is NULL",
                              !texts[i] ? "texts" : "texts_pair", i);

    /* Every text's pieces, then the layout. */
    idbuf *pieces = calloc((size_t)n * 2, sizeof *pieces);
    int64_t *keep = calloc((size_t)n * 2, sizeof *keep);
    ember_status st = EMBER_OK;
    if (!pieces || !keep)
        st = ember_fail(EMBER_ERR_OUT_OF_MEMORY, "ember_tokenizer_encode: out of memory");
    int64_t seq_len = 0;
    for (int i = 0; i < n && st == EMBER_OK; i++) {
        for (int side = 0; side < 1 + pair && st == EMBER_OK; side++) {
            const char *text = side ? texts_pair[i] : texts[i];
            idbuf *b = &pieces[2 * i + side];
            b->grow = 1;
            st = tokenize(tok, text, strlen(text), b);
            if (st != EMBER_OK)
                ember_fail_context(st, "ember_tokenizer_encode: %s[%d]",
                                   side ? "texts_pair" : "texts", i);
            keep[2 * i + side] = b->n;
        }
        if (st != EMBER_OK) break;
        if (limit > 0) {
            int64_t budget = limit - specials;
            if (pair)
                truncate_pair(budget, &keep[2 * i], &keep[2 * i + 1]);
            else if (keep[2 * i] > budget)
                keep[2 * i] = budget;
        }
        int64_t len = keep[2 * i] + keep[2 * i + 1] + specials;
        if (len > seq_len) seq_len = len;
    }
    if (st == EMBER_OK && seq_len > INT32_MAX / 2)
        st = ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                        "ember_tokenizer_encode: a sequence of %lld tokens is too long",
                        (long long)seq_len);
    for (int i = 0; i < n && st == EMBER_OK; i++)
        if (keep[2 * i] + keep[2 * i + 1] + specials < seq_len && tok->ids.pad < 0)
            st = ember_fail(
                EMBER_ERR_UNSUPPORTED,
                "ember_tokenizer_encode: texts of different lengths need padding but the "
                "vocabulary has no pad token \"%s\"",
                tok->names[2]);
    size_t cells = (size_t)n * (size_t)seq_len;
    if (st == EMBER_OK) {
        out->input_ids = malloc(cells * sizeof(int32_t));
        out->attention_mask = calloc(cells, sizeof(int32_t));
        out->token_type_ids = calloc(cells, sizeof(int32_t));
        out->lengths = malloc((size_t)n * sizeof(int32_t));
        out->truncated = malloc((size_t)n * sizeof(int32_t));
        if (!out->input_ids || !out->attention_mask || !out->token_type_ids || !out->lengths ||
            !out->truncated)
            st = ember_fail(EMBER_ERR_OUT_OF_MEMORY,
                            "ember_tokenizer_encode: cannot allocate a %d x %lld batch", n,
                            (long long)seq_len);
    }
    for (int i = 0; i < n && st == EMBER_OK; i++) {
        int32_t *ids = out->input_ids + (size_t)i * seq_len;
        int32_t *mask = out->attention_mask + (size_t)i * seq_len;
        int32_t *types = out->token_type_ids + (size_t)i * seq_len;
        int64_t k = 0;
        ids[k++] = tok->ids.cls;
        for (int64_t j = 0; j < keep[2 * i]; j++) ids[k++] = pieces[2 * i].ids[j];
        ids[k++] = tok->ids.sep;
        if (pair) {
            int64_t b0 = k;
            for (int64_t j = 0; j < keep[2 * i + 1]; j++) ids[k++] = pieces[2 * i + 1].ids[j];
            ids[k++] = tok->ids.sep;
            for (int64_t j = b0; j < k; j++) types[j] = 1;
        }
        for (int64_t j = 0; j < k; j++) mask[j] = 1;
        for (int64_t j = k; j < seq_len; j++) ids[j] = tok->ids.pad;
        out->lengths[i] = (int32_t)k;
        int64_t cut = pieces[2 * i].n - keep[2 * i] + pieces[2 * i + 1].n - keep[2 * i + 1];
        out->truncated[i] = cut > INT32_MAX ? INT32_MAX : (int32_t)cut;
    }
    if (pieces)
        for (int i = 0; i < 2 * n; i++) free(pieces[i].ids);
    free(pieces);
    free(keep);
    if (st != EMBER_OK) {
        ember_encoding_free(out);
        return st;
    }
    out->batch = n;
    out->seq_len = (int)seq_len;
    return EMBER_OK;
}
