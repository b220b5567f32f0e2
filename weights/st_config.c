/* What a sentence-transformers model directory asks of the pooling: modules.json, the Pooling
 * module's config.json, the presence of a Normalize module, sentence_bert_config.json's
 * max_seq_length. Read with Jansson, as sentence-transformers reads them (module paths are
 * relative to the model directory and must stay inside it). Anything ember would have to
 * ignore to give an embedding (a Dense module, mean_sqrt_len pooling, two pooling modes
 * concatenated) is EMBER_ERR_UNSUPPORTED rather than a silently different vector. */
#define _POSIX_C_SOURCE 200809L /* PATH_MAX in <limits.h> under -std=c11 without -fopenmp */

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "host/error.h"
#include "weights/file.h"

#define MAX_SEQ_LENGTH (1 << 20)

/* dir + "/" + a [+ "/" + b] into buf, or EMBER_ERR_IO when it does not fit. */
static ember_status join(char *buf, size_t cap, const char *dir, const char *a, const char *b) {
    int n = b && *a ? snprintf(buf, cap, "%s/%s/%s", dir, a, b)
            : b     ? snprintf(buf, cap, "%s/%s", dir, b)
                    : snprintf(buf, cap, "%s/%s", dir, a);
    if (n < 0 || (size_t)n >= cap)
        return ember_fail(EMBER_ERR_IO, "%s: path of '%s' too long", dir, b ? b : a);
    return EMBER_OK;
}

/* Parse a JSON file that exists (non-blocking, checked to be a regular file: weights/file.c);
 * malformed JSON is EMBER_ERR_FORMAT naming the file. Duplicate keys: the last one wins, as in
 * Python's json.load. */
static ember_status load_json(const char *path, json_t **out) {
    return ember_json_read(path, 0, out);
}

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

/* A legacy pooling_mode_* flag: absent = false; anything but a JSON boolean is malformed. */
static ember_status get_flag(json_t *cfg, const char *file, const char *key, int *out) {
    json_t *v = json_object_get(cfg, key);
    *out = 0;
    if (!v || json_is_null(v)) return EMBER_OK;
    if (!json_is_boolean(v))
        return ember_fail(EMBER_ERR_FORMAT, "%s: \"%s\" must be true or false", file, key);
    *out = json_is_true(v);
    return EMBER_OK;
}

static ember_status mode_from_name(const char *file, const char *name, ember_pooling *mode) {
    if (!strcmp(name, "mean")) *mode = EMBER_POOL_MEAN;
    else if (!strcmp(name, "cls")) *mode = EMBER_POOL_CLS;
    else if (!strcmp(name, "max")) *mode = EMBER_POOL_MAX;
    else
        return ember_fail(EMBER_ERR_UNSUPPORTED,
                          "%s: \"pooling_mode\" = \"%s\" is not supported (ember pools with "
                          "\"mean\", \"cls\" or \"max\")", file, name);
    return EMBER_OK;
}

/* The Pooling module's config.json: the newer "pooling_mode" ("mean" or ["mean"]) or the
 * pooling_mode_*_tokens flags; all flags false means mean, as sentence-transformers does. */
static ember_status parse_pooling(json_t *cfg, const char *file, ember_pooling *mode) {
    if (!json_is_object(cfg))
        return ember_fail(EMBER_ERR_FORMAT, "%s: top level is not a JSON object", file);
    json_t *pm = json_object_get(cfg, "pooling_mode");
    if (pm && json_is_array(pm) && json_array_size(pm) == 1) pm = json_array_get(pm, 0);
    if (pm && json_is_array(pm))
        return ember_fail(EMBER_ERR_UNSUPPORTED,
                          "%s: \"pooling_mode\" lists %zu modes; ember pools one way (mean, cls "
                          "or max), not a concatenation", file, json_array_size(pm));
    if (pm && !json_is_null(pm)) {
        if (!json_is_string(pm))
            return ember_fail(EMBER_ERR_FORMAT, "%s: \"pooling_mode\" must be a string", file);
        return mode_from_name(file, json_string_value(pm), mode);
    }
    static const char *const unsupported[] = {"pooling_mode_mean_sqrt_len_tokens",
                                              "pooling_mode_weightedmean_tokens",
                                              "pooling_mode_lasttoken"};
    for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++) {
        int on;
        EMBER_TRY(get_flag(cfg, file, unsupported[i], &on));
        if (on)
            return ember_fail(EMBER_ERR_UNSUPPORTED,
                              "%s: \"%s\" is true; ember pools with mean, cls or max only", file,
                              unsupported[i]);
    }
    static const char *const keys[] = {"pooling_mode_mean_tokens", "pooling_mode_cls_token",
                                       "pooling_mode_max_tokens"};
    static const ember_pooling modes[] = {EMBER_POOL_MEAN, EMBER_POOL_CLS, EMBER_POOL_MAX};
    const char *first = NULL;
    *mode = EMBER_POOL_MEAN;
    for (size_t i = 0; i < 3; i++) {
        int on;
        EMBER_TRY(get_flag(cfg, file, keys[i], &on));
        if (!on) continue;
        if (first)
            return ember_fail(EMBER_ERR_UNSUPPORTED,
                              "%s: both \"%s\" and \"%s\" are true; sentence-transformers would "
                              "concatenate the two, ember pools one way", file, first, keys[i]);
        first = keys[i];
        *mode = modes[i];
    }
    return EMBER_OK;
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

static ember_status parse_modules(const char *dir, const char *file, json_t *root,
                                  ember_pooling_config *out) {
    if (!json_is_array(root))
        return ember_fail(EMBER_ERR_FORMAT, "%s: top level is not a JSON array", file);
    int have_pooling = 0;
    size_t i;
    json_t *mod;
    json_array_foreach(root, i, mod) {
        json_t *jt = json_object_get(mod, "type"), *jp = json_object_get(mod, "path");
        if (!json_is_object(mod) || !json_is_string(jt) || !json_is_string(jp))
            return ember_fail(EMBER_ERR_FORMAT,
                              "%s: module %zu must be an object with string \"type\" and \"path\"",
                              file, i);
        const char *type = json_string_value(jt), *path = json_string_value(jp);
        EMBER_TRY(check_module_path(file, i, path));
        const char *cls = st_class(type);
        if (cls && !strcmp(cls, "Transformer")) {
            if (have_pooling)
                return ember_fail(EMBER_ERR_UNSUPPORTED, "%s: a Transformer after the Pooling "
                                  "module (module %zu) is not supported", file, i);
        } else if (cls && !strcmp(cls, "Pooling")) {
            if (have_pooling)
                return ember_fail(EMBER_ERR_UNSUPPORTED,
                                  "%s: more than one Pooling module (module %zu)", file, i);
            char cfg_path[PATH_MAX];
            EMBER_TRY(join(cfg_path, sizeof cfg_path, dir, path, "config.json"));
            json_t *cfg;
            EMBER_TRY(load_json(cfg_path, &cfg));
            ember_status st = parse_pooling(cfg, cfg_path, &out->mode);
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

static ember_status parse_sbert(json_t *root, const char *file, int *max_seq_length) {
    if (!json_is_object(root))
        return ember_fail(EMBER_ERR_FORMAT, "%s: top level is not a JSON object", file);
    json_t *v = json_object_get(root, "max_seq_length");
    if (!v || json_is_null(v)) return EMBER_OK;
    if (!json_is_integer(v))
        return ember_fail(EMBER_ERR_FORMAT, "%s: \"max_seq_length\" must be an integer", file);
    json_int_t x = json_integer_value(v);
    if (x < 1 || x > MAX_SEQ_LENGTH)
        return ember_fail(EMBER_ERR_CONFIG, "%s: \"max_seq_length\" = %lld is outside [1, %d]",
                          file, (long long)x, MAX_SEQ_LENGTH);
    *max_seq_length = (int)x;
    return EMBER_OK;
}

ember_status ember_pooling_config_load(const char *model_dir, ember_pooling_config *out) {
    ember_clear_error();
    if (!model_dir || !out)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "ember_pooling_config_load: %s is NULL",
                          model_dir ? "out" : "model_dir");
    ember_pooling_config c = {.mode = EMBER_POOL_MEAN, .normalize = 0, .max_seq_length = 0};
    *out = c;
    struct stat sd;
    if (stat(model_dir, &sd) != 0 || !S_ISDIR(sd.st_mode))
        return ember_fail(EMBER_ERR_IO, "%s: not a directory", model_dir);

    char file[PATH_MAX];
    int present;
    EMBER_TRY(join(file, sizeof file, model_dir, "modules.json", NULL));
    EMBER_TRY(ember_file_probe(file, &present)); /* a FIFO there is an error, not "absent" */
    if (present) {
        json_t *root;
        EMBER_TRY(load_json(file, &root));
        ember_status st = parse_modules(model_dir, file, root, &c);
        json_decref(root);
        EMBER_TRY(st);
    }
    EMBER_TRY(join(file, sizeof file, model_dir, "sentence_bert_config.json", NULL));
    EMBER_TRY(ember_file_probe(file, &present));
    if (present) {
        json_t *root;
        EMBER_TRY(load_json(file, &root));
        ember_status st = parse_sbert(root, file, &c.max_seq_length);
        json_decref(root);
        EMBER_TRY(st);
    }
    *out = c;
    return EMBER_OK;
}
