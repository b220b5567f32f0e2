/* HuggingFace BERT tensor names -> ember_weights, from one or several safetensors shards. */
#include "bert_weights.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "host/error.h"
#include "safetensors.h"
#include "weights/file.h"

#define MAX_SHARDS 256
#define NAME_MAX_LEN 256

typedef struct checkpoint {
    ember_st_file *shards[MAX_SHARDS];
    int n_shards;
    json_t *weight_map; /* sharded: name -> file name; NULL for one file */
    char dir[4096];
    /* per shard, per tensor: consumed by the mapping (to find unexpected tensors) */
    unsigned char *used[MAX_SHARDS];
} checkpoint;

static void checkpoint_close(checkpoint *ck) {
    for (int i = 0; i < ck->n_shards; i++) {
        ember_st_close(ck->shards[i]);
        free(ck->used[i]);
    }
    if (ck->weight_map) json_decref(ck->weight_map);
    memset(ck, 0, sizeof *ck);
}

static ember_status add_shard(checkpoint *ck, const char *file) {
    char path[4352];
    snprintf(path, sizeof path, "%s/%s", ck->dir, file);
    for (int i = 0; i < ck->n_shards; i++)
        if (strcmp(ember_st_path(ck->shards[i]), path) == 0) return EMBER_OK;
    if (ck->n_shards == MAX_SHARDS)
        return ember_fail(EMBER_ERR_FORMAT, "%s: more than %d shards", ck->dir, MAX_SHARDS);
    ember_st_file *f = NULL;
    EMBER_TRY(ember_st_open(path, &f));
    ck->used[ck->n_shards] = calloc(ember_st_count(f) + 1, 1);
    if (!ck->used[ck->n_shards]) {
        ember_st_close(f);
        return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    ck->shards[ck->n_shards++] = f;
    return EMBER_OK;
}

static ember_status checkpoint_open(checkpoint *ck, const char *dir) {
    memset(ck, 0, sizeof *ck);
    if (strlen(dir) >= sizeof ck->dir)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "model directory path is too long");
    strcpy(ck->dir, dir);
    char single[4352], index[4352];
    snprintf(single, sizeof single, "%s/model.safetensors", dir);
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", dir);
    /* a model.safetensors or index that is there but not a regular file (a FIFO, a directory)
     * is an error naming it, not a reason to look for the other one */
    int have_single, have_index;
    EMBER_TRY(ember_file_probe(single, &have_single));
    if (have_single) return add_shard(ck, "model.safetensors");
    EMBER_TRY(ember_file_probe(index, &have_index));
    if (!have_index)
        return ember_fail(EMBER_ERR_IO,
                          "%s: neither model.safetensors nor model.safetensors.index.json found",
                          dir);

    json_t *root;
    EMBER_TRY(ember_json_read(index, JSON_REJECT_DUPLICATES, &root));
    json_t *map = json_object_get(root, "weight_map");
    if (!json_is_object(map)) {
        json_decref(root);
        return ember_fail(EMBER_ERR_FORMAT, "%s: \"weight_map\" is missing or not an object", index);
    }
    ck->weight_map = json_incref(map);
    json_decref(root);
    const char *name;
    json_t *file;
    json_object_foreach(ck->weight_map, name, file) {
        const char *fn = json_is_string(file) ? json_string_value(file) : NULL;
        /* A shard is a plain file name in the model directory: no paths, no traversal. */
        if (!fn || !*fn || strchr(fn, '/') || strchr(fn, '\\') || strcmp(fn, "..") == 0 ||
            strcmp(fn, ".") == 0)
            return ember_fail(EMBER_ERR_FORMAT, "%s: weight_map[\"%s\"] is not a plain file name",
                              index, name);
        EMBER_TRY(add_shard(ck, fn));
    }
    if (ck->n_shards == 0)
        return ember_fail(EMBER_ERR_FORMAT, "%s: weight_map is empty", index);
    return EMBER_OK;
}

/* Find `name` in the checkpoint; marks it used. Returns NULL if absent. With an index, the
 * tensor must be in the shard the index names. */
static ember_status find_exact(checkpoint *ck, const char *name, const ember_st_tensor **out) {
    *out = NULL;
    for (int s = 0; s < ck->n_shards; s++) {
        for (size_t i = 0; i < ember_st_count(ck->shards[s]); i++) {
            const ember_st_tensor *t = ember_st_at(ck->shards[s], i);
            if (strcmp(t->name, name) != 0) continue;
            if (*out)
                return ember_fail(EMBER_ERR_FORMAT, "tensor '%s' appears in more than one shard",
                                  name);
            if (ck->weight_map) {
                json_t *f = json_object_get(ck->weight_map, name);
                const char *path = ember_st_path(ck->shards[s]);
                const char *base = strrchr(path, '/');
                base = base ? base + 1 : path;
                if (!f || strcmp(json_string_value(f), base) != 0)
                    return ember_fail(EMBER_ERR_FORMAT,
                                      "tensor '%s' is in %s but the index maps it to %s", name,
                                      base, f ? json_string_value(f) : "nothing");
            }
            ck->used[s][i] = 1;
            *out = t;
        }
    }
    return EMBER_OK;
}

/* Look up a BERT tensor by its canonical name (no prefix), trying "bert." and, for
 * LayerNorm, the legacy gamma/beta spellings. */
static ember_status find_bert(checkpoint *ck, const char *canon, const ember_st_tensor **out) {
    char alts[4][NAME_MAX_LEN];
    int n = 0;
    if (strlen(canon) + 8 >= NAME_MAX_LEN)
        return ember_fail(EMBER_ERR_INTERNAL, "tensor name '%s' too long", canon);
    strcpy(alts[n++], canon);
    const char *ln = strstr(canon, "LayerNorm.");
    if (ln) {
        size_t head = (size_t)(ln - canon) + strlen("LayerNorm.");
        const char *leaf = canon + head;
        const char *legacy = strcmp(leaf, "weight") == 0 ? "gamma" : strcmp(leaf, "bias") == 0 ? "beta" : NULL;
        if (legacy) {
            memcpy(alts[n], canon, head);
            strcpy(alts[n] + head, legacy);
            n++;
        }
    }
    int base = n;
    for (int i = 0; i < base; i++) {
        strcpy(alts[n], "bert.");
        strcat(alts[n], alts[i]);
        n++;
    }

    const ember_st_tensor *found = NULL;
    const char *found_name = NULL;
    for (int i = 0; i < n; i++) {
        const ember_st_tensor *t = NULL;
        EMBER_TRY(find_exact(ck, alts[i], &t));
        if (!t) continue;
        if (found)
            return ember_fail(EMBER_ERR_FORMAT, "checkpoint holds both '%s' and '%s'", found_name,
                              t->name);
        found = t;
        found_name = t->name;
    }
    *out = found;
    return EMBER_OK;
}

/* Check the tensor's shape and dtype, then convert it into dst (nothing when dst is NULL). */
static ember_status load_tensor(checkpoint *ck, const char *canon, int64_t d0, int64_t d1,
                                float *dst) {
    const ember_st_tensor *t = NULL;
    EMBER_TRY(find_bert(ck, canon, &t));
    char want[64];
    if (d1) snprintf(want, sizeof want, "[%lld, %lld]", (long long)d0, (long long)d1);
    else snprintf(want, sizeof want, "[%lld]", (long long)d0);
    if (!t)
        return ember_fail(EMBER_ERR_MISSING_TENSOR,
                          "%s: tensor '%s' (or 'bert.%s') is missing; expected shape %s", ck->dir,
                          canon, canon, want);
    int want_ndim = d1 ? 2 : 1;
    if (t->ndim != want_ndim || t->shape[0] != d0 || (d1 && t->shape[1] != d1)) {
        char got[128] = "[";
        for (int i = 0; i < t->ndim; i++) {
            char dim[32];
            snprintf(dim, sizeof dim, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
            strncat(got, dim, sizeof got - strlen(got) - 2);
        }
        strcat(got, "]");
        return ember_fail(EMBER_ERR_SHAPE, "tensor '%s' has shape %s, expected %s", t->name, got,
                          want);
    }
    if (t->dtype != EMBER_ST_F32 && t->dtype != EMBER_ST_F16 && t->dtype != EMBER_ST_BF16 &&
        t->dtype != EMBER_ST_F64)
        return ember_fail(EMBER_ERR_UNSUPPORTED, "tensor '%s' has dtype %s (F32, F16, BF16, F64 only)",
                          t->name, ember_st_dtype_name(t->dtype));
    return dst ? ember_st_to_f32(t, dst) : EMBER_OK;
}

/* Every tensor that looks like part of BertModel must have been consumed. */
static ember_status check_leftovers(checkpoint *ck, const ember_config *cfg) {
    for (int s = 0; s < ck->n_shards; s++) {
        for (size_t i = 0; i < ember_st_count(ck->shards[s]); i++) {
            if (ck->used[s][i]) continue;
            const char *name = ember_st_at(ck->shards[s], i)->name;
            const char *n = strncmp(name, "bert.", 5) == 0 ? name + 5 : name;
            if (strcmp(n, "embeddings.position_ids") == 0 ||
                strcmp(n, "embeddings.token_type_ids") == 0)
                continue; /* buffers, not weights */
            if (strncmp(n, "embeddings.", 11) == 0 || strncmp(n, "encoder.", 8) == 0 ||
                strncmp(n, "pooler.", 7) == 0)
                return ember_fail(EMBER_ERR_CONFIG,
                                  "%s: unexpected tensor '%s' (config.json: %d layers); the "
                                  "checkpoint and config.json disagree",
                                  ember_st_path(ck->shards[s]), name, cfg->num_hidden_layers);
            /* cls.*, classifier.*, qa_outputs.* ... : heads ember does not run. */
        }
    }
    return EMBER_OK;
}

/* Every BertModel tensor with its expected shape, converted into w; with w NULL only checked.
 * DST(x) is NULL in the checking pass and does not evaluate x (no arithmetic on NULL). */
static ember_status visit_all(checkpoint *ck, const ember_config *cfg, ember_weights *w) {
    const int64_t H = cfg->hidden_size, I = cfg->intermediate_size;
    char name[NAME_MAX_LEN];
#define DST(x) (w ? (x) : NULL)
    EMBER_TRY(load_tensor(ck, "embeddings.word_embeddings.weight", cfg->vocab_size, H,
                          DST(w->word)));
    EMBER_TRY(load_tensor(ck, "embeddings.position_embeddings.weight",
                          cfg->max_position_embeddings, H, DST(w->position)));
    EMBER_TRY(load_tensor(ck, "embeddings.token_type_embeddings.weight", cfg->type_vocab_size, H,
                          DST(w->token_type)));
    EMBER_TRY(load_tensor(ck, "embeddings.LayerNorm.weight", H, 0, DST(w->emb_ln_g)));
    EMBER_TRY(load_tensor(ck, "embeddings.LayerNorm.bias", H, 0, DST(w->emb_ln_b)));

    for (int l = 0; l < cfg->num_hidden_layers; l++) {
        ember_layer_weights *L = w ? &w->layers[l] : NULL;
        static const char *qkv[3] = {"query", "key", "value"};
        for (int p = 0; p < 3; p++) {
            snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.weight", l, qkv[p]);
            EMBER_TRY(load_tensor(ck, name, H, H, DST(L->qkv_w + p * H * H)));
            snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.bias", l, qkv[p]);
            EMBER_TRY(load_tensor(ck, name, H, 0, DST(L->qkv_b + p * H)));
        }
#define LOAD(fmt, d0, d1, dst)                            \
    snprintf(name, sizeof name, fmt, l);                  \
    EMBER_TRY(load_tensor(ck, name, d0, d1, DST(dst)))
        LOAD("encoder.layer.%d.attention.output.dense.weight", H, H, L->attn_out_w);
        LOAD("encoder.layer.%d.attention.output.dense.bias", H, 0, L->attn_out_b);
        LOAD("encoder.layer.%d.attention.output.LayerNorm.weight", H, 0, L->attn_ln_g);
        LOAD("encoder.layer.%d.attention.output.LayerNorm.bias", H, 0, L->attn_ln_b);
        LOAD("encoder.layer.%d.intermediate.dense.weight", I, H, L->inter_w);
        LOAD("encoder.layer.%d.intermediate.dense.bias", I, 0, L->inter_b);
        LOAD("encoder.layer.%d.output.dense.weight", H, I, L->out_w);
        LOAD("encoder.layer.%d.output.dense.bias", H, 0, L->out_b);
        LOAD("encoder.layer.%d.output.LayerNorm.weight", H, 0, L->out_ln_g);
        LOAD("encoder.layer.%d.output.LayerNorm.bias", H, 0, L->out_ln_b);
#undef LOAD
    }
    if (cfg->has_pooler) {
        EMBER_TRY(load_tensor(ck, "pooler.dense.weight", H, H, DST(w->pool_w)));
        EMBER_TRY(load_tensor(ck, "pooler.dense.bias", H, 0, DST(w->pool_b)));
    }
#undef DST
    return EMBER_OK;
}

static ember_status load_all(checkpoint *ck, ember_config *cfg, ember_weights *w) {
    const ember_st_tensor *pw = NULL, *pb = NULL;
    EMBER_TRY(find_bert(ck, "pooler.dense.weight", &pw));
    EMBER_TRY(find_bert(ck, "pooler.dense.bias", &pb));
    if (!pw != !pb)
        return ember_fail(EMBER_ERR_MISSING_TENSOR, "%s: pooler.dense.%s is missing (the other half "
                          "of the pooler is present)", ck->dir, pw ? "bias" : "weight");
    cfg->has_pooler = pw != NULL;
    /* Shapes first: a config.json that claims a model far larger than its tensors (within the
     * bounds of weights/config.c, up to terabytes) is a shape mismatch, not an allocation. */
    EMBER_TRY(visit_all(ck, cfg, NULL));
    EMBER_TRY(check_leftovers(ck, cfg));
    EMBER_TRY(ember_weights_alloc(cfg, w));
    return visit_all(ck, cfg, w);
}

ember_status ember_bert_load_dir(const char *dir, ember_config *cfg, ember_weights *w) {
    memset(w, 0, sizeof *w);
    char path[4352];
    snprintf(path, sizeof path, "%s/config.json", dir);
    EMBER_TRY(ember_config_load(path, cfg));

    checkpoint ck;
    ember_status st = checkpoint_open(&ck, dir);
    if (st == EMBER_OK) st = load_all(&ck, cfg, w);
    checkpoint_close(&ck);
    if (st != EMBER_OK) ember_weights_free(w);
    return st;
}
