/* libFuzzer target: the JSON configuration files ember reads, on arbitrary bytes:
 *   config.json                 (weights/config.c, from memory)
 *   tokenizer_config.json       (weights/vocab.c, ember_tokenizer_config_load)
 *   special_tokens_map.json     (same)
 *   modules.json                (weights/st_config.c, ember_pooling_config_load; with a valid
 *                                1_Pooling/config.json beside it)
 *   1_Pooling/config.json       (same; with a valid modules.json)
 *   2_Normalize/config.json     (same; modules.json lists Pooling then Normalize)
 *   sentence_bert_config.json   (same, without modules.json)
 * Every input is tried in every role; the file readers get it through per-process
 * directories in /dev/shm.
 *
 * Checks: a status and a message on every failure; an accepted config.json passes
 * ember_config_check again and stays inside ember's bounds (so that allocations sized from it
 * cannot overflow); accepted tokenizer and pooling configs hold in-range values. */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_util.h"
#include "weights/config.h"
#include "weights/vocab.h"

static void fuzz_bert_config(const char *json) {
    ember_config cfg;
    ember_status st = ember_config_parse(json, "fuzz/config.json", &cfg);
    fuzz_check_status(st, "ember_config_parse");
    if (st != EMBER_OK) return;
    FUZZ_CHECK(ember_config_check(&cfg, "reparsed") == EMBER_OK, "accepted config fails its check: %s",
               ember_last_error());
    FUZZ_CHECK(cfg.hidden_size % cfg.num_attention_heads == 0, "heads do not divide hidden");
    FUZZ_CHECK(cfg.layer_norm_eps > 0.0 && cfg.layer_norm_eps < 1.0, "eps %g", cfg.layer_norm_eps);
    FUZZ_CHECK(cfg.has_pooler == 0, "parse must leave has_pooler 0");
    FUZZ_CHECK(ember_config_param_count(&cfg) > 0, "parameter count overflows");
    FUZZ_CHECK(strcmp(ember_activation_name(cfg.hidden_act), "unknown") != 0, "bad activation");
}

/* ---- the file-based readers ------------------------------------------------------------- */

enum { ROLE_TOK_CONFIG, ROLE_SPECIAL_MAP, ROLE_MODULES, ROLE_POOLING, ROLE_NORMALIZE, ROLE_SBERT, N_ROLES };
static char g_dir[N_ROLES][128];

static void put(int role, const char *name, const void *p, size_t n) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", g_dir[role], name);
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f && fwrite(p, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

static void put_str(int role, const char *name, const char *s) { put(role, name, s, strlen(s)); }

/* Remove the directories at exit (a crash leaves them for the reproducer's inspection). */
static void cleanup(void) {
    static const char *files[] = {"tokenizer_config.json", "special_tokens_map.json", "modules.json",
                                  "1_Pooling/config.json", "2_Normalize/config.json",
                                  "sentence_bert_config.json", "1_Pooling", "2_Normalize", ""};
    char path[256];
    for (int r = 0; r < N_ROLES; r++)
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            snprintf(path, sizeof path, "%s/%s", g_dir[r], files[i]);
            if (unlink(path) != 0) rmdir(path);
        }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    atexit(cleanup);
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    static const char *pooling = "{\"word_embedding_dimension\": 8, \"pooling_mode_mean_tokens\": true}";
    static const char *modules =
        "[{\"idx\": 0, \"name\": \"0\", \"path\": \"\", \"type\": \"sentence_transformers.models.Transformer\"},"
        " {\"idx\": 1, \"name\": \"1\", \"path\": \"1_Pooling\", \"type\": \"sentence_transformers.models.Pooling\"},"
        " {\"idx\": 2, \"name\": \"2\", \"path\": \"2_Normalize\", \"type\": \"sentence_transformers.models.Normalize\"}]";
    for (int r = 0; r < N_ROLES; r++) {
        snprintf(g_dir[r], sizeof g_dir[r], "%s/ember_fuzz_cfg_%ld_%d", base, (long)getpid(), r);
        char sub[200];
        mkdir(g_dir[r], 0700);
        snprintf(sub, sizeof sub, "%s/1_Pooling", g_dir[r]);
        mkdir(sub, 0700);
        snprintf(sub, sizeof sub, "%s/2_Normalize", g_dir[r]);
        mkdir(sub, 0700);
        if (r == ROLE_MODULES || r == ROLE_NORMALIZE) put_str(r, "1_Pooling/config.json", pooling);
        if (r == ROLE_POOLING || r == ROLE_NORMALIZE) put_str(r, "modules.json", modules);
    }
    return 0;
}

static void fuzz_tokenizer_config(int role) {
    ember_tokenizer_config c;
    ember_status st = ember_tokenizer_config_load(g_dir[role], &c);
    fuzz_check_status(st, "ember_tokenizer_config_load");
    if (st != EMBER_OK) return;
    const int flags[3] = {c.do_lower_case, c.strip_accents, c.tokenize_chinese_chars};
    for (int i = 0; i < 3; i++) FUZZ_CHECK(flags[i] >= -1 && flags[i] <= 1, "flag %d = %d", i, flags[i]);
    FUZZ_CHECK(c.model_max_length >= 0, "model_max_length %lld", (long long)c.model_max_length);
    ember_tokenizer_config_free(&c);
}

static void fuzz_pooling_config(int role) {
    ember_pooling_config c;
    ember_status st = ember_pooling_config_load(g_dir[role], &c);
    fuzz_check_status(st, "ember_pooling_config_load");
    if (st != EMBER_OK) return;
    FUZZ_CHECK(c.mode == EMBER_POOL_MEAN || c.mode == EMBER_POOL_CLS || c.mode == EMBER_POOL_MAX,
               "mode %d", (int)c.mode);
    FUZZ_CHECK(c.normalize == 0 || c.normalize == 1, "normalize %d", c.normalize);
    FUZZ_CHECK(c.max_seq_length >= 0 && c.max_seq_length <= (1 << 20), "max_seq_length %d",
               c.max_seq_length);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *json = malloc(size + 1); /* config.json is parsed from a NUL-terminated string */
    FUZZ_CHECK(json, "out of memory");
    memcpy(json, data, size);
    json[size] = '\0';
    fuzz_bert_config(json);
    free(json);

    /* the same bytes as each of the other JSON files ember reads */
    static const struct {
        int role;
        const char *file;
        void (*check)(int role);
    } files[N_ROLES] = {
        {ROLE_TOK_CONFIG, "tokenizer_config.json", fuzz_tokenizer_config},
        {ROLE_SPECIAL_MAP, "special_tokens_map.json", fuzz_tokenizer_config},
        {ROLE_MODULES, "modules.json", fuzz_pooling_config},
        {ROLE_POOLING, "1_Pooling/config.json", fuzz_pooling_config},
        {ROLE_NORMALIZE, "2_Normalize/config.json", fuzz_pooling_config},
        {ROLE_SBERT, "sentence_bert_config.json", fuzz_pooling_config},
    };
    for (int i = 0; i < N_ROLES; i++) {
        put(files[i].role, files[i].file, data, size);
        files[i].check(files[i].role);
    }
    return 0;
}
