/* libFuzzer target: whole-model loading, ember_model_load on the CPU backend
 * (weights/checkpoint.c and the family tables of weights/arch.c: tensor-name mapping, base-model
 * prefixes and gamma/beta spellings, shapes against config.json, dtype conversion, leftover
 * tensors, heads, the sharded index; then host/model.c and the CPU backend's workspace).
 *
 * Input: parts separated by the 8 bytes "#@PART@#" (a binary file may hold any byte, so a
 * separator that random weights do not contain):
 *   config.json #@PART@# shard 1 [#@PART@# model.safetensors.index.json [#@PART@# shard 2 ...]]
 * With two parts or fewer, shard 1 is written as model.safetensors. With an index (three
 * parts or more) there is no model.safetensors: shard k of n (n <= 4) is written as
 * model-0000k-of-0000n.safetensors, the names the index is expected to use. Every file is
 * written into a per-process directory in /dev/shm, rewritten (or removed) for each input;
 * the directory is removed at exit.
 * Workspace: max_batch 2, max_seq_len 8.
 *
 * Checks: on failure a load status (IO, FORMAT, UNSUPPORTED, MISSING_TENSOR, SHAPE, CONFIG,
 * OUT_OF_MEMORY), a message, *out NULL. On success: the model's config passes
 * ember_config_check, has_pooler is 0/1, and it equals config.json parsed alone (has_pooler
 * aside); the word / position / token-type tables are the checkpoint's tensors converted to
 * f32, bit for bit (when the tensor's name is unambiguous among the shards); a forward on fixed
 * valid ids (clamped to vocab / positions / types, with a padded token; no token types for a
 * family without them; RoBERTa lengths within its default positions) returns EMBER_OK, and
 * when every float tensor of the checkpoint is finite with |x| <= 16, every output element
 * (last_hidden_state, hidden_states, pooler_output, logits; NaN-poisoned before) is finite.
 * Huge models: config.json may claim one (within weights/config.c's bounds) with a tiny file;
 * the loader must reject it before allocating, which -rss_limit_mb / malloc_limit_mb
 * (tools/fuzz.sh: 2048) enforce. */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_util.h"
#include "weights/config.h"
#include "weights/safetensors.h"

#define SEP "#@PART@#"
#define SEP_LEN 8
enum { MAX_PARTS = 6, MAX_SHARDS = 4, FWD_BATCH = 2, FWD_SEQ = 4 };
#define TAME_ABS 16.0f

typedef struct part {
    const uint8_t *p;
    size_t n;
} part;

static char g_dir[128];

static void path_of(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", g_dir, name);
}

static void shard_name(char *out, size_t cap, int k, int n) {
    snprintf(out, cap, "model-%05d-of-%05d.safetensors", k, n);
}

static void put(const char *name, const part *pt) {
    char path[256];
    path_of(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f && (pt->n == 0 || fwrite(pt->p, 1, pt->n, f) == pt->n) && fclose(f) == 0,
               "cannot write %s", path);
}

static void remove_files(void) {
    char path[256], name[64];
    static const char *fixed[] = {"config.json", "model.safetensors", "model.safetensors.index.json"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        path_of(path, sizeof path, fixed[i]);
        unlink(path);
    }
    for (int n = 1; n <= MAX_SHARDS; n++)
        for (int k = 1; k <= n; k++) {
            shard_name(name, sizeof name, k, n);
            path_of(path, sizeof path, name);
            unlink(path);
        }
}

/* Remove the directory at exit (a crash leaves it for the reproducer's inspection). */
static void cleanup(void) {
    remove_files();
    rmdir(g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    atexit(cleanup);
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/ember_fuzz_load_%ld", base, (long)getpid());
    mkdir(g_dir, 0700);
    return 0;
}

static int split(const uint8_t *data, size_t size, part *parts) {
    int n = 0;
    size_t at = 0;
    while (n < MAX_PARTS - 1) {
        const uint8_t *s = memmem(data + at, size - at, SEP, SEP_LEN);
        if (!s) break;
        parts[n].p = data + at;
        parts[n].n = (size_t)(s - (data + at));
        n++;
        at = (size_t)(s - data) + SEP_LEN;
    }
    parts[n].p = data + at;
    parts[n].n = size - at;
    return n + 1;
}

/* ---- what the checkpoint holds, read independently of the loader (from memory) ----------- */

typedef struct shards {
    ember_st_file *f[MAX_SHARDS];
    int n;
    int tame; /* every float tensor of every shard finite with |x| <= TAME_ABS */
} shards;

static void shards_open(shards *s, const part *files, int n) {
    memset(s, 0, sizeof *s);
    s->tame = 1;
    for (int i = 0; i < n; i++) {
        ember_st_file *f = NULL;
        if (ember_st_open_memory(files[i].p, files[i].n, "fuzz shard", &f) != EMBER_OK) {
            s->tame = 0; /* unread by the loader, or the load fails */
            continue;
        }
        s->f[s->n++] = f;
        for (size_t t = 0; t < ember_st_count(f) && s->tame; t++) {
            const ember_st_tensor *x = ember_st_at(f, t);
            if (x->dtype != EMBER_ST_F32 && x->dtype != EMBER_ST_F16 && x->dtype != EMBER_ST_BF16 &&
                x->dtype != EMBER_ST_F64)
                continue;
            int64_t k = ember_st_numel(x);
            float *v = malloc(sizeof *v * (size_t)(k ? k : 1));
            FUZZ_CHECK(v, "out of memory");
            FUZZ_CHECK(ember_st_to_f32(x, v) == EMBER_OK, "to_f32 of a validated tensor: %s",
                       ember_last_error());
            for (int64_t j = 0; j < k; j++)
                if (!(fabsf(v[j]) <= TAME_ABS)) s->tame = 0;
            free(v);
        }
    }
}

static void shards_close(shards *s) {
    for (int i = 0; i < s->n; i++) ember_st_close(s->f[i]);
}

/* The one tensor named canon or "bert." canon among the shards; NULL if none or several. */
static const ember_st_tensor *unique_tensor(const shards *s, const char *canon) {
    char prefixed[256];
    snprintf(prefixed, sizeof prefixed, "bert.%s", canon);
    const ember_st_tensor *found = NULL;
    int count = 0;
    for (int i = 0; i < s->n; i++) {
        const ember_st_tensor *a = ember_st_find(s->f[i], canon), *b = ember_st_find(s->f[i], prefixed);
        if (a) found = a, count++;
        if (b) found = b, count++;
    }
    return count == 1 ? found : NULL;
}

/* ---- checks on a loaded model ----------------------------------------------------------- */

static void check_table(ember_model *m, const shards *s, ember_table table, const char *canon) {
    int64_t rows = 0, cols = 0;
    FUZZ_CHECK(ember_table_shape(m, table, &rows, &cols) == EMBER_OK, "table_shape");
    const ember_st_tensor *t = unique_tensor(s, canon);
    if (!t) return;
    FUZZ_CHECK(t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols,
               "%s: loaded [%lld, %lld] from a tensor of another shape", canon, (long long)rows,
               (long long)cols);
    const size_t n = (size_t)(rows * cols);
    float *got = malloc(sizeof *got * n), *want = malloc(sizeof *want * n);
    FUZZ_CHECK(got && want, "out of memory");
    FUZZ_CHECK(ember_table_copy(m, table, got, n, NULL) == EMBER_OK, "table_copy: %s",
               ember_last_error());
    FUZZ_CHECK(ember_st_to_f32(t, want) == EMBER_OK, "to_f32: %s", ember_last_error());
    FUZZ_CHECK(memcmp(got, want, sizeof *got * n) == 0, "%s: loaded values differ from '%s'",
               canon, t->name);
    free(got);
    free(want);
}

static void check_config(const ember_config *c, const part *config_json) {
    FUZZ_CHECK(ember_config_check(c, "loaded") == EMBER_OK, "loaded config fails its check: %s",
               ember_last_error());
    FUZZ_CHECK(c->has_pooler == 0 || c->has_pooler == 1, "has_pooler %d", c->has_pooler);
    FUZZ_CHECK(ember_config_param_count(c) > 0, "parameter count overflows");
    if (memchr(config_json->p, 0, config_json->n)) return; /* a C string would stop early */
    char *json = malloc(config_json->n + 1);
    FUZZ_CHECK(json, "out of memory");
    memcpy(json, config_json->p, config_json->n);
    json[config_json->n] = '\0';
    ember_config p;
    ember_status st = ember_config_parse(json, "fuzz/config.json", &p);
    free(json);
    FUZZ_CHECK(st == EMBER_OK, "the loader accepted a config.json that the parser rejects: %s",
               ember_last_error());
    p.has_pooler = c->has_pooler;
    FUZZ_CHECK(p.vocab_size == c->vocab_size && p.hidden_size == c->hidden_size &&
                   p.num_hidden_layers == c->num_hidden_layers &&
                   p.num_attention_heads == c->num_attention_heads &&
                   p.intermediate_size == c->intermediate_size &&
                   p.max_position_embeddings == c->max_position_embeddings &&
                   p.type_vocab_size == c->type_vocab_size && p.pad_token_id == c->pad_token_id &&
                   p.layer_norm_eps == c->layer_norm_eps && p.hidden_act == c->hidden_act &&
                   p.arch == c->arch && p.embedding_size == c->embedding_size &&
                   p.head == c->head && p.num_labels == c->num_labels,
               "the model's config differs from config.json");
}

static void check_forward(ember_model *m, const ember_config *c, int tame) {
    /* RoBERTa's default positions start at pad_token_id + 1 */
    const int roberta = c->arch == EMBER_ARCH_ROBERTA || c->arch == EMBER_ARCH_XLM_ROBERTA;
    const int P = roberta ? c->max_position_embeddings - c->pad_token_id - 1
                          : c->max_position_embeddings;
    const int B = FWD_BATCH, S = P < FWD_SEQ ? P : FWD_SEQ;
    const size_t H = (size_t)c->hidden_size, L = (size_t)c->num_hidden_layers;
    int32_t ids[FWD_BATCH * FWD_SEQ], mask[FWD_BATCH * FWD_SEQ], types[FWD_BATCH * FWD_SEQ];
    for (int i = 0; i < B * S; i++) {
        ids[i] = (int32_t)((i * 7 + 1) % c->vocab_size);
        types[i] = c->type_vocab_size > 0 ? (int32_t)(i % c->type_vocab_size) : 0;
        mask[i] = !(i == B * S - 1 && S > 1); /* the last token of row 1 is padding */
    }
    const size_t n_last = (size_t)B * S * H, n_hs = (L + 1) * n_last, n_pool = (size_t)B * H;
    const size_t n_logits = (c->head == EMBER_HEAD_TOKEN_CLASSIFICATION ? (size_t)B * S : (size_t)B) *
                            (size_t)c->num_labels;
    float *last = malloc(sizeof(float) * n_last), *hs = malloc(sizeof(float) * n_hs);
    float *pool = malloc(sizeof(float) * n_pool), *logits = malloc(sizeof(float) * (n_logits + 1));
    FUZZ_CHECK(last && hs && pool && logits, "out of memory");
    for (size_t i = 0; i < n_last; i++) last[i] = NAN;
    for (size_t i = 0; i < n_hs; i++) hs[i] = NAN;
    for (size_t i = 0; i < n_pool; i++) pool[i] = NAN;
    for (size_t i = 0; i < n_logits; i++) logits[i] = NAN;
    ember_inputs in = {.batch = B, .seq_len = S, .input_ids = ids, .attention_mask = mask,
                       .token_type_ids = c->type_vocab_size > 0 ? types : NULL};
    ember_outputs out = {.last_hidden_state = last, .hidden_states = hs,
                         .pooler_output = c->has_pooler ? pool : NULL,
                         .logits = c->head != EMBER_HEAD_NONE ? logits : NULL};
    ember_status st = ember_forward(m, &in, &out, NULL);
    FUZZ_CHECK(st == EMBER_OK, "forward on a loaded model: %s: %s", ember_status_string(st),
               ember_last_error());
    if (tame) {
        for (size_t i = 0; i < n_last; i++)
            FUZZ_CHECK(isfinite(last[i]), "last_hidden_state[%zu] = %g", i, (double)last[i]);
        for (size_t i = 0; i < n_hs; i++)
            FUZZ_CHECK(isfinite(hs[i]), "hidden_states[%zu] = %g", i, (double)hs[i]);
        if (c->has_pooler)
            for (size_t i = 0; i < n_pool; i++)
                FUZZ_CHECK(isfinite(pool[i]), "pooler_output[%zu] = %g", i, (double)pool[i]);
        for (size_t i = 0; i < n_logits; i++)
            FUZZ_CHECK(isfinite(logits[i]), "logits[%zu] = %g", i, (double)logits[i]);
    }
    free(logits);
    free(last);
    free(hs);
    free(pool);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    part parts[MAX_PARTS];
    const int np = split(data, size, parts);
    remove_files();
    put("config.json", &parts[0]);
    part files[MAX_SHARDS];
    int nf = 0;
    const part empty = {data, 0};
    if (np <= 2) {
        files[nf++] = np == 2 ? parts[1] : empty;
        put("model.safetensors", &files[0]);
    } else {
        put("model.safetensors.index.json", &parts[2]);
        files[nf++] = parts[1];
        for (int i = 3; i < np && nf < MAX_SHARDS; i++) files[nf++] = parts[i];
        for (int k = 0; k < nf; k++) {
            char name[64];
            shard_name(name, sizeof name, k + 1, nf);
            put(name, &files[k]);
        }
    }

    ember_load_options opt;
    ember_load_options_init(&opt);
    opt.max_batch = 2;
    opt.max_seq_len = 8;
    ember_model *m = (ember_model *)&opt; /* poison: must come back NULL on failure */
    ember_status st = ember_model_load(g_dir, &opt, &m);
    fuzz_check_status(st, "ember_model_load");
    if (st != EMBER_OK) {
        FUZZ_CHECK(m == NULL, "*out not NULL after failure");
        FUZZ_CHECK(st == EMBER_ERR_IO || st == EMBER_ERR_FORMAT || st == EMBER_ERR_UNSUPPORTED ||
                       st == EMBER_ERR_MISSING_TENSOR || st == EMBER_ERR_SHAPE ||
                       st == EMBER_ERR_CONFIG || st == EMBER_ERR_OUT_OF_MEMORY,
                   "ember_model_load: %s is not a loading status: %s", ember_status_string(st),
                   ember_last_error());
        return 0;
    }
    FUZZ_CHECK(m != NULL, "EMBER_OK without a model");
    FUZZ_CHECK(ember_model_backend(m) == EMBER_BACKEND_CPU && ember_model_dtype(m) == EMBER_DTYPE_F32,
               "backend / dtype");
    ember_config c;
    FUZZ_CHECK(ember_model_config(m, &c) == EMBER_OK, "ember_model_config");
    check_config(&c, &parts[0]);

    shards s;
    shards_open(&s, files, nf);
    check_table(m, &s, EMBER_TABLE_WORD, "embeddings.word_embeddings.weight");
    check_table(m, &s, EMBER_TABLE_POSITION, "embeddings.position_embeddings.weight");
    check_table(m, &s, EMBER_TABLE_TOKEN_TYPE, "embeddings.token_type_embeddings.weight");
    check_forward(m, &c, s.tame);
    shards_close(&s);
    ember_model_free(m);
    return 0;
}
