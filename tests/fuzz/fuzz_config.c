/* libFuzzer target: the JSON configuration files ember reads, on arbitrary bytes:
 *   config.json                 (weights/config.c, from memory)
 *   tokenizer_config.json       (weights/vocab.c, ember_tokenizer_config_load)
 *   special_tokens_map.json     (same)
 *   modules.json                (weights/st_config.c, ember_pooling_config_load; with a valid
 *                                1_Pooling/config.json beside it)
 *   1_Pooling/config.json       (same; with a valid modules.json)
 *   2_Normalize/config.json     (same; modules.json lists Pooling then Normalize)
 *   sentence_bert_config.json   (same, beside a valid modules.json)
 *   0_BERT/sentence_bert_config.json  (same, modules.json naming the Transformer's folder)
 *   config.json as a Pooling config   (modules.json: Transformer in 0_BERT, Pooling at path "",
 *                                      which sentence-transformers reads from the model root)
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

enum {
    ROLE_TOK_CONFIG, ROLE_SPECIAL_MAP, ROLE_MODULES, ROLE_POOLING, ROLE_NORMALIZE, ROLE_SBERT,
    ROLE_SBERT_FOLDER, ROLE_ROOT_POOLING, N_ROLES
};
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
                                  "sentence_bert_config.json", "0_BERT/sentence_bert_config.json",
                                  "config.json", "1_Pooling", "2_Normalize", "0_BERT", ""};
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
    static const char *modules_folder =
        "[{\"idx\": 0, \"name\": \"0\", \"path\": \"0_BERT\", \"type\": \"sentence_transformers.models.Transformer\"},"
        " {\"idx\": 1, \"name\": \"1\", \"path\": \"1_Pooling\", \"type\": \"sentence_transformers.models.Pooling\"}]";
    static const char *modules_root_pooling =
        "[{\"idx\": 0, \"name\": \"0\", \"path\": \"0_BERT\", \"type\": \"sentence_transformers.models.Transformer\"},"
        " {\"idx\": 1, \"name\": \"1\", \"path\": \"\", \"type\": \"sentence_transformers.models.Pooling\"}]";
    for (int r = 0; r < N_ROLES; r++) {
        snprintf(g_dir[r], sizeof g_dir[r], "%s/ember_fuzz_cfg_%ld_%d", base, (long)getpid(), r);
        char sub[200];
        mkdir(g_dir[r], 0700);
        static const char *const subs[] = {"1_Pooling", "2_Normalize", "0_BERT"};
        for (int i = 0; i < 3; i++) {
            snprintf(sub, sizeof sub, "%s/%s", g_dir[r], subs[i]);
            mkdir(sub, 0700);
        }
        if (r == ROLE_MODULES || r == ROLE_NORMALIZE || r == ROLE_SBERT || r == ROLE_SBERT_FOLDER)
            put_str(r, "1_Pooling/config.json", pooling);
        if (r == ROLE_POOLING || r == ROLE_NORMALIZE || r == ROLE_SBERT) put_str(r, "modules.json", modules);
        if (r == ROLE_SBERT_FOLDER) put_str(r, "modules.json", modules_folder);
        if (r == ROLE_ROOT_POOLING) put_str(r, "modules.json", modules_root_pooling);
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

/* A relative path without a ".." component, '\\' or ':' (written independently of st_config.c). */
static int stays_inside(const char *p) {
    if (p[0] == '/' || strpbrk(p, "\\:")) return 0;
    for (const char *c = p; *c;) {
        size_t n = strcspn(c, "/");
        if (n == 2 && c[0] == '.' && c[1] == '.') return 0;
        c += n + (c[n] == '/');
    }
    return 1;
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
    FUZZ_CHECK(c.do_lower_case == 0 || c.do_lower_case == 1, "do_lower_case %d", c.do_lower_case);
    FUZZ_CHECK(memchr(c.transformer_path, 0, sizeof c.transformer_path), "transformer_path unterminated");
    FUZZ_CHECK(stays_inside(c.transformer_path), "transformer_path \"%.40s\" leaves the model directory",
               c.transformer_path);
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
        {ROLE_SBERT_FOLDER, "0_BERT/sentence_bert_config.json", fuzz_pooling_config},
        {ROLE_ROOT_POOLING, "config.json", fuzz_pooling_config},
    };
    for (int i = 0; i < N_ROLES; i++) {
        put(files[i].role, files[i].file, data, size);
        files[i].check(files[i].role);
    }
    return 0;
}
