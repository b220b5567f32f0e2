/* The host weights: one fp32 arena laid out for a config, and random weights for tests. */
#include "weights.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/error.h"

/* Floats of the arena for c, in the order ember_weights_alloc lays it out. */
static size_t arena_floats(const ember_config *c) {
    const size_t H = (size_t)c->hidden_size, I = (size_t)c->intermediate_size;
    const size_t E = (size_t)c->embedding_size, L = (size_t)c->num_labels;
    const size_t per_layer = 3 * H * H + 3 * H + H * H + H + 2 * H + I * H + I + H * I + H + 2 * H;
    size_t total = ((size_t)c->vocab_size + (size_t)c->max_position_embeddings +
                    (size_t)ember_type_rows(c)) * E + 2 * E +
                   (size_t)c->num_hidden_layers * per_layer + (c->has_pooler ? H * H + H : 0);
    if (E != H) total += H * E + H;
    if (c->head == EMBER_HEAD_SEQUENCE_CLASSIFICATION && c->arch != EMBER_ARCH_BERT)
        total += H * H + H;
    if (c->head != EMBER_HEAD_NONE) total += L * H + L;
    return total;
}

ember_status ember_weights_alloc(const ember_config *c, ember_weights *w) {
    memset(w, 0, sizeof *w);
    const size_t H = (size_t)c->hidden_size, I = (size_t)c->intermediate_size;
    const size_t E = (size_t)c->embedding_size, L = (size_t)c->num_labels;
    const size_t total = arena_floats(c);
    w->arena = malloc(total * sizeof(float));
    w->layers = calloc((size_t)c->num_hidden_layers, sizeof *w->layers);
    if (!w->arena || !w->layers) {
        ember_weights_free(w);
        return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes for the weights",
                          total * sizeof(float));
    }
    w->arena_floats = total;
    float *p = w->arena;
#define TAKE(dst, n) (dst = p, p += (n))
    TAKE(w->word, (size_t)c->vocab_size * E);
    TAKE(w->position, (size_t)c->max_position_embeddings * E);
    TAKE(w->token_type, (size_t)ember_type_rows(c) * E);
    if (c->type_vocab_size == 0) memset(w->token_type, 0, sizeof(float) * E);
    TAKE(w->emb_ln_g, E);
    TAKE(w->emb_ln_b, E);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        ember_layer_weights *Lw = &w->layers[l];
        TAKE(Lw->qkv_w, 3 * H * H);
        TAKE(Lw->qkv_b, 3 * H);
        TAKE(Lw->attn_out_w, H * H);
        TAKE(Lw->attn_out_b, H);
        TAKE(Lw->attn_ln_g, H);
        TAKE(Lw->attn_ln_b, H);
        TAKE(Lw->inter_w, I * H);
        TAKE(Lw->inter_b, I);
        TAKE(Lw->out_w, H * I);
        TAKE(Lw->out_b, H);
        TAKE(Lw->out_ln_g, H);
        TAKE(Lw->out_ln_b, H);
    }
    if (c->has_pooler) {
        TAKE(w->pool_w, H * H);
        TAKE(w->pool_b, H);
    }
    /* after the BERT tensors, so that a BERT model's random weights stay what they were */
    if (E != H) {
        TAKE(w->emb_proj_w, H * E);
        TAKE(w->emb_proj_b, H);
    }
    if (c->head == EMBER_HEAD_SEQUENCE_CLASSIFICATION) {
        if (c->arch == EMBER_ARCH_BERT) {
            w->head_dense_w = w->pool_w; /* BertForSequenceClassification: classifier(pooler) */
            w->head_dense_b = w->pool_b;
        } else {
            TAKE(w->head_dense_w, H * H);
            TAKE(w->head_dense_b, H);
        }
    }
    if (c->head != EMBER_HEAD_NONE) {
        TAKE(w->head_out_w, L * H);
        TAKE(w->head_out_b, L);
    }
#undef TAKE
    return EMBER_OK;
}

void ember_weights_free(ember_weights *w) {
    if (!w) return;
    free(w->arena);
    free(w->layers);
    memset(w, 0, sizeof *w);
}

/* splitmix64: a small, well-mixed generator, enough for reproducible random weights. */
static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [center - half, center + half). */
static void fill_uniform(float *x, size_t n, double center, double half, uint64_t *s) {
    for (size_t i = 0; i < n; i++) {
        double u = (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0);
        x[i] = (float)(center + half * (2.0 * u - 1.0));
    }
}

void ember_weights_fill_random(const ember_config *c, uint64_t seed, ember_weights *w) {
    uint64_t s = seed;
    const size_t H = (size_t)c->hidden_size, I = (size_t)c->intermediate_size;
    const size_t E = (size_t)c->embedding_size, L = (size_t)c->num_labels;
    /* sqrt(3/fan_in) keeps unit-variance inputs at unit variance through each projection. */
    const double wh = sqrt(3.0 / (double)H), wi = sqrt(3.0 / (double)I), we = sqrt(3.0 / (double)E);
    fill_uniform(w->word, (size_t)c->vocab_size * E, 0.0, 1.0, &s);
    fill_uniform(w->position, (size_t)c->max_position_embeddings * E, 0.0, 0.5, &s);
    if (c->type_vocab_size > 0) fill_uniform(w->token_type, (size_t)c->type_vocab_size * E, 0.0, 0.5, &s);
    fill_uniform(w->emb_ln_g, E, 1.0, 0.2, &s);
    fill_uniform(w->emb_ln_b, E, 0.0, 0.1, &s);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        ember_layer_weights *Lw = &w->layers[l];
        fill_uniform(Lw->qkv_w, 3 * H * H, 0.0, wh, &s);
        fill_uniform(Lw->qkv_b, 3 * H, 0.0, 0.1, &s);
        fill_uniform(Lw->attn_out_w, H * H, 0.0, wh, &s);
        fill_uniform(Lw->attn_out_b, H, 0.0, 0.1, &s);
        fill_uniform(Lw->attn_ln_g, H, 1.0, 0.2, &s);
        fill_uniform(Lw->attn_ln_b, H, 0.0, 0.1, &s);
        fill_uniform(Lw->inter_w, I * H, 0.0, wh, &s);
        fill_uniform(Lw->inter_b, I, 0.0, 0.1, &s);
        fill_uniform(Lw->out_w, H * I, 0.0, wi, &s);
        fill_uniform(Lw->out_b, H, 0.0, 0.1, &s);
        fill_uniform(Lw->out_ln_g, H, 1.0, 0.2, &s);
        fill_uniform(Lw->out_ln_b, H, 0.0, 0.1, &s);
    }
    if (c->has_pooler) {
        fill_uniform(w->pool_w, H * H, 0.0, wh, &s);
        fill_uniform(w->pool_b, H, 0.0, 0.1, &s);
    }
    if (w->emb_proj_w) {
        fill_uniform(w->emb_proj_w, H * E, 0.0, we, &s);
        fill_uniform(w->emb_proj_b, H, 0.0, 0.1, &s);
    }
    if (w->head_dense_w && w->head_dense_w != w->pool_w) {
        fill_uniform(w->head_dense_w, H * H, 0.0, wh, &s);
        fill_uniform(w->head_dense_b, H, 0.0, 0.1, &s);
    }
    if (w->head_out_w) {
        fill_uniform(w->head_out_w, L * H, 0.0, wh, &s);
        fill_uniform(w->head_out_b, L, 0.0, 0.1, &s);
    }
}
