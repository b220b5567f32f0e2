/* HuggingFace tensor names of the BERT family -> ember_weights, from one or several safetensors
 * shards. The names come from the family's row of weights/arch.c; this file knows none. */
#include "checkpoint.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
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

/* Look up a tensor by its canonical name (no prefix), trying the family's base-model prefix
 * ("bert.", "roberta.", ...) and, for LayerNorm, the legacy gamma/beta spellings. */
static ember_status find_named(checkpoint *ck, const ember_arch_info *a, const char *canon,
                               const ember_st_tensor **out) {
    char alts[4][NAME_MAX_LEN];
    int n = 0;
    if (strlen(canon) + strlen(a->base_prefix) + 1 >= NAME_MAX_LEN)
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
        strcpy(alts[n], a->base_prefix);
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

/* What one load pass needs: the checkpoint, the family, and where a missing tensor is noted. */
typedef struct loader {
    checkpoint *ck;
    const ember_arch_info *a;
    const ember_config *cfg;
    const ember_model_meta *meta;
} loader;

/* Check the tensor's shape and dtype, then convert it into dst (nothing when dst is NULL). */
static ember_status load_tensor(const loader *ld, const char *canon, int64_t d0, int64_t d1,
                                float *dst) {
    const ember_st_tensor *t = NULL;
    EMBER_TRY(find_named(ld->ck, ld->a, canon, &t));
    char want[64];
    if (d1) snprintf(want, sizeof want, "[%lld, %lld]", (long long)d0, (long long)d1);
    else snprintf(want, sizeof want, "[%lld]", (long long)d0);
    if (!t)
        return ember_fail(EMBER_ERR_MISSING_TENSOR,
                          "%s: tensor '%s' (or '%s%s') is missing; expected shape %s", ld->ck->dir,
                          canon, ld->a->base_prefix, canon, want);
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

/* module.weight of shape (d0, d1) (or (d0) when d1 is 0), then module.bias (bias_n; 0 = none).
 * `module` may be a format with one %d, filled with `layer`. DST(x) is NULL in the checking
 * pass and does not evaluate x (no arithmetic on NULL). */
static ember_status load_module(const loader *ld, const char *module, int layer, const char *leaf_w,
                                int64_t d0, int64_t d1, float *w, const char *leaf_b,
                                int64_t bias_n, float *b) {
    char mod[NAME_MAX_LEN], name[NAME_MAX_LEN + 16];
    snprintf(mod, sizeof mod, module, layer);
    snprintf(name, sizeof name, "%s.%s", mod, leaf_w);
    EMBER_TRY(load_tensor(ld, name, d0, d1, w));
    if (!bias_n) return EMBER_OK;
    snprintf(name, sizeof name, "%s.%s", mod, leaf_b);
    return load_tensor(ld, name, bias_n, 0, b);
}
#define DST(x) (w ? (x) : NULL)
#define LINEAR(module, layer, out_n, in_n, wp, bp) \
    load_module(ld, module, layer, "weight", out_n, in_n, DST(wp), "bias", out_n, DST(bp))
#define LAYERNORM(module, layer, n, gp, bp) \
    load_module(ld, module, layer, "weight", n, 0, DST(gp), "bias", n, DST(bp))

/* DistilBERT's sinusoidal table (create_sinusoidal_embeddings): computed in double as numpy
 * does, rounded to float32 as torch.FloatTensor does. */
static void fill_sinusoidal(float *out, int P, int E) {
    for (int p = 0; p < P; p++)
        for (int j = 0; j < E; j++) {
            const double angle = (double)p / pow(10000.0, (double)(2 * (j / 2)) / (double)E);
            out[(size_t)p * E + j] = (float)(j % 2 == 0 ? sin(angle) : cos(angle));
        }
}

/* The position table; with sinusoidal_pos_embds, HF uses the checkpoint's table when it holds
 * one and generates the sinusoids only when it does not. */
static ember_status load_positions(const loader *ld, ember_weights *w) {
    const ember_config *c = ld->cfg;
    char name[NAME_MAX_LEN + 16];
    snprintf(name, sizeof name, "%s.weight", ld->a->position);
    if (ld->meta && ld->meta->sinusoidal_positions) {
        const ember_st_tensor *t = NULL;
        EMBER_TRY(find_named(ld->ck, ld->a, name, &t));
        if (!t) {
            if (w) fill_sinusoidal(w->position, c->max_position_embeddings, c->embedding_size);
            return EMBER_OK;
        }
    }
    return load_tensor(ld, name, c->max_position_embeddings, c->embedding_size, DST(w->position));
}

/* The head of cfg->head: names and rule from the family's row. */
static ember_status load_head(const loader *ld, ember_weights *w) {
    const ember_config *c = ld->cfg;
    const ember_arch_info *a = ld->a;
    const int64_t H = c->hidden_size, L = c->num_labels;
    if (c->head == EMBER_HEAD_SEQUENCE_CLASSIFICATION) {
        if (c->arch == EMBER_ARCH_BERT) {
            if (!c->has_pooler)
                return ember_fail(EMBER_ERR_MISSING_TENSOR,
                                  "%s: %s classifies pooler_output, but pooler.dense is missing",
                                  ld->ck->dir, ld->meta ? ld->meta->architecture : "the head");
        } else {
            EMBER_TRY(LINEAR(a->seq_dense, 0, H, H, w->head_dense_w, w->head_dense_b));
        }
        return LINEAR(a->seq_out, 0, L, H, w->head_out_w, w->head_out_b);
    }
    if (c->head == EMBER_HEAD_TOKEN_CLASSIFICATION)
        return LINEAR(a->tok_out, 0, L, H, w->head_out_w, w->head_out_b);
    return EMBER_OK;
}

/* Every tensor of the model with its expected shape, converted into w; with w NULL only
 * checked. */
static ember_status visit_all(const loader *ld, ember_weights *w) {
    const ember_config *c = ld->cfg;
    const ember_arch_info *a = ld->a;
    const int64_t H = c->hidden_size, I = c->intermediate_size, E = c->embedding_size;
    EMBER_TRY(load_module(ld, a->word, 0, "weight", c->vocab_size, E, DST(w->word), NULL, 0, NULL));
    EMBER_TRY(load_positions(ld, w));
    if (a->token_type)
        EMBER_TRY(load_module(ld, a->token_type, 0, "weight", c->type_vocab_size, E,
                              DST(w->token_type), NULL, 0, NULL));
    EMBER_TRY(LAYERNORM(a->emb_ln, 0, E, w->emb_ln_g, w->emb_ln_b));
    if (E != H) EMBER_TRY(LINEAR(a->emb_proj, 0, H, E, w->emb_proj_w, w->emb_proj_b));

    for (int l = 0; l < c->num_hidden_layers; l++) {
        ember_layer_weights *Lw = w ? &w->layers[l] : NULL;
        const char *qkv[3] = {a->query, a->key, a->value};
        for (int p = 0; p < 3; p++)
            EMBER_TRY(LINEAR(qkv[p], l, H, H, Lw->qkv_w + p * H * H, Lw->qkv_b + p * H));
        EMBER_TRY(LINEAR(a->attn_out, l, H, H, Lw->attn_out_w, Lw->attn_out_b));
        EMBER_TRY(LAYERNORM(a->attn_ln, l, H, Lw->attn_ln_g, Lw->attn_ln_b));
        EMBER_TRY(LINEAR(a->inter, l, I, H, Lw->inter_w, Lw->inter_b));
        EMBER_TRY(LINEAR(a->out, l, H, I, Lw->out_w, Lw->out_b));
        EMBER_TRY(LAYERNORM(a->out_ln, l, H, Lw->out_ln_g, Lw->out_ln_b));
    }
    if (c->has_pooler) EMBER_TRY(LINEAR(a->pooler, 0, H, H, w->pool_w, w->pool_b));
    return load_head(ld, w);
}
#undef LAYERNORM
#undef LINEAR
#undef DST

static int under_root(const char *name, const char *const *roots, size_t n_roots) {
    for (size_t r = 0; r < n_roots && roots[r]; r++)
        if (strncmp(name, roots[r], strlen(roots[r])) == 0) return 1;
    return 0;
}

/* Every tensor that looks like part of the base model (or of the head ember runs) must have
 * been consumed. */
static ember_status check_leftovers(const loader *ld) {
    const ember_arch_info *a = ld->a;
    checkpoint *ck = ld->ck;
    const size_t np = strlen(a->base_prefix);
    for (int s = 0; s < ck->n_shards; s++) {
        for (size_t i = 0; i < ember_st_count(ck->shards[s]); i++) {
            if (ck->used[s][i]) continue;
            const char *name = ember_st_at(ck->shards[s], i)->name;
            const char *n = strncmp(name, a->base_prefix, np) == 0 ? name + np : name;
            if (strcmp(n, "embeddings.position_ids") == 0 ||
                strcmp(n, "embeddings.token_type_ids") == 0)
                continue; /* buffers, not weights */
            if (under_root(n, a->roots, sizeof a->roots / sizeof a->roots[0]))
                return ember_fail(EMBER_ERR_CONFIG,
                                  "%s: unexpected tensor '%s' (config.json: %s, %d layers); the "
                                  "checkpoint and config.json disagree",
                                  ember_st_path(ck->shards[s]), name, a->model_type,
                                  ld->cfg->num_hidden_layers);
            if (ld->cfg->head != EMBER_HEAD_NONE &&
                under_root(name, a->head_roots, sizeof a->head_roots / sizeof a->head_roots[0]))
                return ember_fail(EMBER_ERR_CONFIG,
                                  "%s: unexpected tensor '%s' for the head of %s; the checkpoint "
                                  "and config.json disagree", ember_st_path(ck->shards[s]), name,
                                  ld->meta && ld->meta->architecture[0] ? ld->meta->architecture
                                                                        : a->model_type);
            /* cls.*, lm_head.*, qa_outputs.*, a classifier without a head ...: not run. */
        }
    }
    return EMBER_OK;
}

static ember_status load_all(const loader *ld0, ember_config *cfg, ember_weights *w) {
    loader ld = *ld0;
    if (ld.a->pooler) {
        const ember_st_tensor *pw = NULL, *pb = NULL;
        char name[NAME_MAX_LEN + 16];
        snprintf(name, sizeof name, "%s.weight", ld.a->pooler);
        EMBER_TRY(find_named(ld.ck, ld.a, name, &pw));
        snprintf(name, sizeof name, "%s.bias", ld.a->pooler);
        EMBER_TRY(find_named(ld.ck, ld.a, name, &pb));
        if (!pw != !pb)
            return ember_fail(EMBER_ERR_MISSING_TENSOR, "%s: %s.%s is missing (the other half "
                              "of the pooler is present)", ld.ck->dir, ld.a->pooler,
                              pw ? "bias" : "weight");
        cfg->has_pooler = pw != NULL;
    }
    /* Shapes first: a config.json that claims a model far larger than its tensors (within the
     * bounds of weights/config.c, up to terabytes) is a shape mismatch, not an allocation. */
    EMBER_TRY(visit_all(&ld, NULL));
    EMBER_TRY(check_leftovers(&ld));
    EMBER_TRY(ember_weights_alloc(cfg, w));
    return visit_all(&ld, w);
}

ember_status ember_checkpoint_load_dir(const char *dir, ember_config *cfg, ember_model_meta *meta,
                                       ember_weights *w) {
    memset(w, 0, sizeof *w);
    char path[4352];
    snprintf(path, sizeof path, "%s/config.json", dir);
    EMBER_TRY(ember_config_load_meta(path, cfg, meta));

    checkpoint ck;
    const loader ld = {.ck = &ck, .a = ember_arch_get(cfg->arch), .cfg = cfg, .meta = meta};
    ember_status st = checkpoint_open(&ck, dir);
    if (st == EMBER_OK) st = load_all(&ld, cfg, w);
    checkpoint_close(&ck);
    if (st != EMBER_OK) {
        ember_weights_free(w);
        ember_model_meta_free(meta);
    }
    return st;
}
