/* What a sentence-transformers model directory asks of the embedding, read as
 * sentence-transformers reads it (SentenceTransformer._load_sbert_model and the modules' load):
 *
 *   modules.json        a list of modules run in order, each {"name", "path", "type"}; paths are
 *                       relative to the model directory and must stay inside it. ember runs one
 *                       Transformer (first), one Pooling, then optional Normalize modules.
 *   Transformer         its path is the directory of the BERT model, its tokenizer and its
 *                       sentence_bert_config.json (max_seq_length, do_lower_case); "" is the
 *                       model directory itself.
 *   Pooling             <path>/config.json passed to Pooling(**config): its keys must be
 *                       Pooling's (the model root's config.json, which a path "" names, is not).
 *   Normalize           <path>/config.json when present.
 *
 * Without modules.json sentence-transformers loads a plain HF model with mean pooling and no
 * sentence_bert_config.json; so does ember. Where sentence-transformers versions read a file
 * differently, ember accepts what every version that accepts it reads the same way, and
 * rejects the rest. Anything ember would have to ignore to give an embedding (a Dense module,
 * mean_sqrt_len pooling, two pooling modes concatenated, tokenizer_args) is
 * EMBER_ERR_UNSUPPORTED naming it, rather than a silently different vector. */
#define _POSIX_C_SOURCE 200809L /* PATH_MAX in <limits.h> under -std=c11 without -fopenmp */

#include "weights/st_config.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include "host/error.h"
#include "weights/file.h"
#include "weights/vocab.h"

#define MAX_SEQ_LENGTH (1 << 20)

/* dir + "/" + a [+ "/" + b] into buf, or EMBER_ERR_IO when it does not fit. */
static ember_status join(char *buf, size_t cap, const char *dir, const char *a, const char *b) {
    int n = b && *a ? snprintf(buf, cap, "%s/%s/%s", dir, a, b)
            : b     ? snprintf(buf, cap, "%s/%s", dir, b)
                    : *a ? snprintf(buf, cap, "%s/%s", dir, a)
                         : snprintf(buf, cap, "%s", dir);
    if (n < 0 || (size_t)n >= cap)
        return ember_fail(EMBER_ERR_IO, "%s: path of '%s' too long", dir, b ? b : a);
    return EMBER_OK;
}

/* A JSON file that is present (non-blocking, checked to be a regular file: weights/file.c);
 * malformed JSON is EMBER_ERR_FORMAT naming the file. Duplicate keys: the last one wins, as in
 * Python's json.load. */
static ember_status load_json(const char *path, json_t **out) { return ember_json_read(path, 0, out); }

/* sentence-transformers refuses module paths that leave the model directory; so does ember. */
static ember_status check_module_path(const char *file, size_t idx, const char *p) {
    if (p[0] == '/' || p[0] == '\\' || strchr(p, '\\') || strchr(p, ':'))
        return ember_fail(EMBER_ERR_FORMAT,
                          "%s: module %zu has path \"%s\": module paths must be relative, without "
                          "'\\' or ':'", file, idx, p);
    for (const char *s = p; *s;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 2 && s[0] == '.' && s[1] == '.')
            return ember_fail(EMBER_ERR_FORMAT,
                              "%s: module %zu has path \"%s\": '..' would leave the model "
                              "directory", file, idx, p);
        s += n + (e ? 1 : 0);
    }
    return EMBER_OK;
}

/* "sentence_transformers.models.Pooling" (1.x-5.x) or any later sentence_transformers.*.Pooling
 * -> "Pooling"; NULL for a class from elsewhere (custom code). */
static const char *st_class(const char *type) {
    if (strncmp(type, "sentence_transformers.", 22) != 0) return NULL;
    const char *dot = strrchr(type, '.');
    return dot + 1;
}

/* ---- the Pooling module's config.json ------------------------------------------------------ */

/* Pooling's modes in the order sentence-transformers concatenates them. */
static const struct {
    const char *name, *flag;
    int ember; /* ember_pooling, or -1 when ember does not pool that way */
} k_modes[] = {
    {"cls", "pooling_mode_cls_token", EMBER_POOL_CLS},
    {"max", "pooling_mode_max_tokens", EMBER_POOL_MAX},
    {"mean", "pooling_mode_mean_tokens", EMBER_POOL_MEAN},
    {"mean_sqrt_len_tokens", "pooling_mode_mean_sqrt_len_tokens", -1},
    {"weightedmean", "pooling_mode_weightedmean_tokens", -1},
    {"lasttoken", "pooling_mode_lasttoken", -1},
};
#define N_MODES 6

static ember_status use_mode(const char *file, const char *what, int m, ember_pooling *mode) {
    if (k_modes[m].ember < 0)
        return ember_fail(EMBER_ERR_UNSUPPORTED,
                          "%s: %s (\"%s\" pooling): ember pools with mean, cls or max only", file,
                          what, k_modes[m].name);
    *mode = (ember_pooling)k_modes[m].ember;
    return EMBER_OK;
}

/* "pooling_mode": a name, or a list of names (sentence-transformers 6). Before 6 a string was
 * lower-cased first ("MEAN" is mean); 6 takes it as written and rejects "MEAN": ember accepts
 * what either accepts, since both read it the same way. */
static ember_status parse_mode_name(json_t *pm, const char *file, ember_pooling *mode) {
    json_t *one = pm;
    if (json_is_array(pm)) {
        if (json_array_size(pm) != 1)
            return ember_fail(json_array_size(pm) ? EMBER_ERR_UNSUPPORTED : EMBER_ERR_FORMAT,
                              "%s: \"pooling_mode\" lists %zu modes; ember pools one way (mean, "
                              "cls or max), not a concatenation", file, json_array_size(pm));
        one = json_array_get(pm, 0);
    }
    if (!json_is_string(one))
        return ember_fail(EMBER_ERR_FORMAT, "%s: \"pooling_mode\" must be a mode name or a list of "
                          "one", file);
    const char *name = json_string_value(one);
    char *lower = NULL; /* Python's str.lower(), as sentence-transformers before 6 applied it */
    size_t lower_len;
    if (one == pm) EMBER_TRY(ember_sbert_lower(name, json_string_length(one), &lower, &lower_len));
    int found = -1;
    for (int m = 0; m < N_MODES && found < 0; m++)
        if (!strcmp(name, k_modes[m].name) || (lower && !strcmp(lower, k_modes[m].name))) found = m;
    free(lower);
    if (found >= 0) return use_mode(file, "\"pooling_mode\"", found, mode);
    return ember_fail(EMBER_ERR_FORMAT,
                      "%s: \"pooling_mode\" = \"%s\" is not a sentence-transformers pooling mode "
                      "(cls, lasttoken, max, mean, mean_sqrt_len_tokens, weightedmean)", file, name);
}

/* The legacy pooling_mode_* flags, each read with Python's truth value (1 and "yes" are true).
 * An absent pooling_mode_mean_tokens is true before sentence-transformers 6 and false in 6 (no
 * flag true there means mean): they agree unless another flag is true, and then ember cannot
 * tell which was meant. */
static ember_status parse_mode_flags(json_t *cfg, const char *file, ember_pooling *mode) {
    int on[N_MODES], n_on = 0, first = -1;
    for (int m = 0; m < N_MODES; m++) {
        json_t *v = json_object_get(cfg, k_modes[m].flag);
        on[m] = v && ember_json_truthy(v);
        if (on[m] && first < 0) first = m;
        n_on += on[m];
    }
    if (n_on == 0) {
        *mode = EMBER_POOL_MEAN;
        return EMBER_OK;
    }
    if (!json_object_get(cfg, "pooling_mode_mean_tokens"))
        return ember_fail(EMBER_ERR_UNSUPPORTED,
                          "%s: \"%s\" is true and \"pooling_mode_mean_tokens\" is absent: "
                          "sentence-transformers before 6 defaults it to true (the two "
                          "concatenated), 6 to false; give it explicitly", file,
                          k_modes[first].flag);
    if (n_on > 1) {
        char names[256] = "";
        for (int m = 0; m < N_MODES; m++)
            if (on[m]) {
                strncat(names, *names ? " and \"" : "\"", sizeof names - strlen(names) - 1);
                strncat(names, k_modes[m].flag, sizeof names - strlen(names) - 1);
                strncat(names, "\"", sizeof names - strlen(names) - 1);
            }
        return ember_fail(EMBER_ERR_UNSUPPORTED,
                          "%s: %s are all true; sentence-transformers would concatenate them, "
                          "ember pools one way", file, names);
    }
    char what[96];
    snprintf(what, sizeof what, "\"%s\" is true", k_modes[first].flag);
    return use_mode(file, what, first, mode);
}

/* Pooling(**config): every key must be one of Pooling's (anything else is a TypeError there),
 * and the embedding dimension must be given. `path` is the module's path, for the message. */
static ember_status parse_pooling(json_t *cfg, const char *file, const char *path,
                                  ember_pooling *mode) {
    if (!json_is_object(cfg))
        return ember_fail(EMBER_ERR_FORMAT, "%s: top level is not a JSON object", file);
    const char *key;
    json_t *v;
    json_object_foreach(cfg, key, v) {
        int known = !strcmp(key, "word_embedding_dimension") || !strcmp(key, "embedding_dimension") ||
                    !strcmp(key, "pooling_mode") || !strcmp(key, "include_prompt");
        for (int m = 0; m < N_MODES; m++) known |= !strcmp(key, k_modes[m].flag);
        if (!known)
            return ember_fail(EMBER_ERR_FORMAT,
                              "%s: \"%s\" is not a Pooling setting (sentence-transformers' "
                              "Pooling(**config) raises TypeError)%s", file, key,
                              *path ? "" : "; the module's path is \"\", so this is the model's own "
                                           "config.json");
    }
    if (!json_object_get(cfg, "word_embedding_dimension") && !json_object_get(cfg, "embedding_dimension"))
        return ember_fail(EMBER_ERR_FORMAT,
                          "%s: no \"word_embedding_dimension\" (sentence-transformers' Pooling "
                          "requires it)", file);
    json_t *pm = json_object_get(cfg, "pooling_mode");
    /* include_prompt only drops prompt tokens, and ember adds no prompt */
    return pm && !json_is_null(pm) ? parse_mode_name(pm, file, mode)
                                   : parse_mode_flags(cfg, file, mode);
}

/* A Normalize module normalises the sentence embedding unless its config says otherwise. */
static ember_status check_normalize(const char *dir, const char *path) {
    char file[PATH_MAX];
    EMBER_TRY(join(file, sizeof file, dir, path, "config.json"));
    int present;
    EMBER_TRY(ember_file_probe(file, &present));
    if (!present) return EMBER_OK; /* no config: the defaults, as sentence-transformers */
    json_t *cfg;
    EMBER_TRY(load_json(file, &cfg));
    ember_status st = EMBER_OK;
    json_t *in = json_is_object(cfg) ? json_object_get(cfg, "module_input_name") : NULL;
    if (!json_is_object(cfg))
        st = ember_fail(EMBER_ERR_FORMAT, "%s: top level is not a JSON object", file);
    else if (in && !json_is_null(in) &&
             !(json_is_string(in) && !strcmp(json_string_value(in), "sentence_embedding")))
        st = ember_fail(EMBER_ERR_UNSUPPORTED,
                        "%s: Normalize of \"module_input_name\" other than \"sentence_embedding\" "
                        "is not supported", file);
    json_decref(cfg);
    return st;
}

/* ---- modules.json --------------------------------------------------------------------------- */

static ember_status parse_modules(const char *dir, const char *file, json_t *root,
                                  ember_pooling_config *out) {
    if (!json_is_array(root))
        return ember_fail(EMBER_ERR_FORMAT, "%s: top level is not a JSON array", file);
    int have_transformer = 0, have_pooling = 0;
    size_t i;
    json_t *mod;
    json_array_foreach(root, i, mod) {
        json_t *jt = json_object_get(mod, "type"), *jp = json_object_get(mod, "path");
        json_t *jn = json_object_get(mod, "name");
        if (!json_is_object(mod) || !json_is_string(jt) || !json_is_string(jp) || !jn)
            return ember_fail(EMBER_ERR_FORMAT,
                              "%s: module %zu must be an object with \"name\" and string \"type\" "
                              "and \"path\"", file, i);
        /* the modules live in a dict keyed by name: a repeated name replaces the earlier module
         * in its place */
        for (size_t k = 0; k < i; k++)
            if (json_equal(json_object_get(json_array_get(root, k), "name"), jn))
                return ember_fail(EMBER_ERR_UNSUPPORTED,
                                  "%s: modules %zu and %zu have the same \"name\": "
                                  "sentence-transformers keeps only the later one, in the "
                                  "earlier one's place", file, k, i);
        const char *type = json_string_value(jt), *path = json_string_value(jp);
        EMBER_TRY(check_module_path(file, i, path));
        const char *cls = st_class(type);
        if (cls && !strcmp(cls, "Transformer")) {
            if (i != 0)
                return ember_fail(EMBER_ERR_UNSUPPORTED,
                                  "%s: module %zu is a Transformer; ember runs one, as the first "
                                  "module", file, i);
            if (strlen(path) >= sizeof out->transformer_path)
                return ember_fail(EMBER_ERR_UNSUPPORTED, "%s: module %zu: path \"%.60s...\" is longer "
                                  "than %zu bytes", file, i, path, sizeof out->transformer_path - 1);
            strcpy(out->transformer_path, path);
            have_transformer = 1;
        } else if (!have_transformer) {
            return ember_fail(EMBER_ERR_UNSUPPORTED,
                              "%s: module 0 is a \"%s\", not a sentence_transformers Transformer: "
                              "ember runs a BERT Transformer first", file, type);
        } else if (cls && !strcmp(cls, "Pooling")) {
            if (have_pooling)
                return ember_fail(EMBER_ERR_UNSUPPORTED,
                                  "%s: more than one Pooling module (module %zu)", file, i);
            char cfg_path[PATH_MAX];
            EMBER_TRY(join(cfg_path, sizeof cfg_path, dir, path, "config.json"));
            json_t *cfg;
            EMBER_TRY(load_json(cfg_path, &cfg));
            ember_status st = parse_pooling(cfg, cfg_path, path, &out->mode);
            json_decref(cfg);
            EMBER_TRY(st);
            have_pooling = 1;
        } else if (cls && !strcmp(cls, "Normalize")) {
            if (!have_pooling)
                return ember_fail(EMBER_ERR_UNSUPPORTED,
                                  "%s: a Normalize module before the Pooling module (module %zu, "
                                  "token-level normalisation) is not supported", file, i);
            EMBER_TRY(check_normalize(dir, path));
            out->normalize = 1;
        } else {
            return ember_fail(EMBER_ERR_UNSUPPORTED,
                              "%s: module %zu is a \"%s\"; ember supports Transformer, Pooling "
                              "and Normalize modules only", file, i, type);
        }
    }
    if (!have_pooling)
        return ember_fail(EMBER_ERR_UNSUPPORTED,
                          "%s: no sentence_transformers Pooling module: the model gives no "
                          "sentence embedding", file);
    return EMBER_OK;
}

/* ---- the Transformer's sentence_bert_config.json -------------------------------------------- */

static ember_status parse_sbert(json_t *root, const char *file, ember_pooling_config *out) {
    if (!json_is_object(root))
        return ember_fail(EMBER_ERR_FORMAT, "%s: top level is not a JSON object", file);
    /* arguments for the model, tokenizer or config, or another tokenizer: ember cannot apply
     * them, and they can change every vector */
    static const char *const args[] = {"model_args", "tokenizer_args", "config_args"};
    for (int i = 0; i < 3; i++) {
        json_t *a = json_object_get(root, args[i]);
        if (a && !json_is_null(a) && !(json_is_object(a) && json_object_size(a) == 0))
            return ember_fail(EMBER_ERR_UNSUPPORTED, "%s: \"%s\" is given; ember cannot pass "
                              "arguments to the model or its tokenizer", file, args[i]);
    }
    json_t *tok = json_object_get(root, "tokenizer_name_or_path");
    if (tok && !json_is_null(tok))
        return ember_fail(EMBER_ERR_UNSUPPORTED, "%s: \"tokenizer_name_or_path\" names another "
                          "tokenizer; ember uses the model directory's", file);
    json_t *lower = json_object_get(root, "do_lower_case");
    out->do_lower_case = lower && ember_json_truthy(lower); /* `if self.do_lower_case:` */
    json_t *v = json_object_get(root, "max_seq_length");
    if (!v || json_is_null(v)) return EMBER_OK;
    if (!json_is_integer(v))
        return ember_fail(EMBER_ERR_FORMAT, "%s: \"max_seq_length\" must be an integer", file);
    json_int_t x = json_integer_value(v);
    if (x < 1 || x > MAX_SEQ_LENGTH)
        return ember_fail(EMBER_ERR_CONFIG, "%s: \"max_seq_length\" = %lld is outside [1, %d]",
                          file, (long long)x, MAX_SEQ_LENGTH);
    out->max_seq_length = (int)x;
    return EMBER_OK;
}

/* The first of sentence-transformers' configuration names present in the Transformer's
 * directory (older versions wrote one per model type). */
static ember_status load_sbert(const char *dir, ember_pooling_config *out) {
    static const char *const names[] = {
        "sentence_bert_config.json",      "sentence_roberta_config.json",
        "sentence_distilbert_config.json", "sentence_camembert_config.json",
        "sentence_albert_config.json",    "sentence_xlm-roberta_config.json",
        "sentence_xlnet_config.json"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char file[PATH_MAX];
        int present;
        EMBER_TRY(join(file, sizeof file, dir, names[i], NULL));
        EMBER_TRY(ember_file_probe(file, &present)); /* a FIFO there is an error, not absent */
        if (!present) continue;
        json_t *root;
        EMBER_TRY(load_json(file, &root));
        ember_status st = parse_sbert(root, file, out);
        json_decref(root);
        return st;
    }
    return EMBER_OK;
}

ember_status ember_pooling_config_load(const char *model_dir, ember_pooling_config *out) {
    ember_clear_error();
    if (!model_dir || !out)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "ember_pooling_config_load: %s is NULL",
                          model_dir ? "out" : "model_dir");
    ember_pooling_config c;
    memset(&c, 0, sizeof c);
    c.mode = EMBER_POOL_MEAN;
    *out = c;
    struct stat sd;
    if (stat(model_dir, &sd) != 0)
        return ember_fail(EMBER_ERR_IO, "%s: the model directory does not exist", model_dir);
    if (!S_ISDIR(sd.st_mode)) return ember_fail(EMBER_ERR_IO, "%s: not a directory", model_dir);

    char file[PATH_MAX];
    int present;
    EMBER_TRY(join(file, sizeof file, model_dir, "modules.json", NULL));
    EMBER_TRY(ember_file_probe(file, &present)); /* a FIFO there is an error, not "absent" */
    if (!present) return EMBER_OK; /* a plain HF model: mean pooling, as sentence-transformers */
    json_t *root;
    EMBER_TRY(load_json(file, &root));
    ember_status st = parse_modules(model_dir, file, root, &c);
    json_decref(root);
    EMBER_TRY(st);
    char tdir[PATH_MAX];
    EMBER_TRY(join(tdir, sizeof tdir, model_dir, c.transformer_path, NULL));
    EMBER_TRY(load_sbert(tdir, &c));
    *out = c;
    return EMBER_OK;
}

/* ---- do_lower_case: Python's str.lower() ----------------------------------------------------- */

/* Unicode Case_Ignorable (Mn, Me, Cf, Lm, Sk and the Word_Break MidLetter, MidNumLet and
 * Single_Quote characters) and Cased (Lu, Ll, Lt, Other_Lowercase, Other_Uppercase; the Other_*
 * approximated by "has a case mapping" plus U+00AA, U+00BA), from utf8proc's tables. */
static int case_ignorable(uint32_t c) {
    switch (c) {
    case 0x27: case 0x2E: case 0x3A: case 0xB7: case 0x387: case 0x55F: case 0x5F4: case 0x2018:
    case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55: case 0xFF07:
    case 0xFF0E: case 0xFF1A:
        return 1;
    }
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_ME || k == UTF8PROC_CATEGORY_CF ||
           k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_SK;
}

static int cased(uint32_t c) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    if (k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT ||
        c == 0xAA || c == 0xBA)
        return 1;
    return utf8proc_tolower((utf8proc_int32_t)c) != (utf8proc_int32_t)c ||
           utf8proc_toupper((utf8proc_int32_t)c) != (utf8proc_int32_t)c;
}

/* The code point before byte i (which starts a character), or -1 at the start. */
static long cp_before(const uint8_t *s, size_t *i) {
    if (*i == 0) return -1;
    size_t j = *i - 1;
    while (j > 0 && (s[j] & 0xC0) == 0x80) j--;
    uint32_t cp = 0;
    ember_utf8_decode(s + j, *i - j, &cp);
    *i = j;
    return (long)cp;
}

ember_status ember_sbert_lower(const char *text, size_t len, char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    const uint8_t *s = (const uint8_t *)text;
    /* a character's lower case takes at most 3/2 of its bytes (U+0130 -> "i" U+0307: 2 -> 3) */
    char *o = malloc(len + len / 2 + 4);
    if (!o) return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "lower-casing a text of %zu bytes", len);
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int k = ember_utf8_decode(s + i, len - i, &cp);
        if (k == 0) {
            free(o);
            return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "text is not valid UTF-8 at byte offset %zu",
                              i);
        }
        uint32_t lo;
        if (cp == 0x130) { /* SpecialCasing: the one unconditional multi-character lower case */
            o[n++] = 'i';
            lo = 0x307;
        } else if (cp == 0x3A3) {
            /* Final_Sigma: a cased letter (case-ignorable ones between) before it, and none after */
            size_t b = i;
            long c = -1;
            while ((c = cp_before(s, &b)) >= 0 && case_ignorable((uint32_t)c)) {}
            int final = c >= 0 && cased((uint32_t)c);
            for (size_t a = i + (size_t)k; final && a < len;) {
                uint32_t nx;
                int kk = ember_utf8_decode(s + a, len - a, &nx);
                if (kk == 0) break;
                a += (size_t)kk;
                if (case_ignorable(nx)) continue;
                final = !cased(nx);
                break;
            }
            lo = final ? 0x3C2 : 0x3C3;
        } else {
            lo = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
        }
        n += (size_t)utf8proc_encode_char((utf8proc_int32_t)lo, (utf8proc_uint8_t *)o + n);
        i += (size_t)k;
    }
    o[n] = '\0';
    *out = o;
    *out_len = n;
    return EMBER_OK;
}
