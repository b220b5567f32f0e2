/* The model object: load, argument validation shared by all backends, dispatch. */
#include "model.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kernels/ops.h"
#include "tune.h"
#include "weights/arch.h"
#include "weights/checkpoint.h"
#include "weights/config.h"

void ember_load_options_init(ember_load_options *opt) {
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    opt->backend = EMBER_BACKEND_CPU;
    opt->compute_dtype = EMBER_DTYPE_F32;
    opt->device = 0;
    opt->max_batch = 8;
    opt->max_seq_len = 128;
    opt->cuda_graphs = 1;
    opt->tuning = -1;
}

/* The per-model lock (ember.h, Threads). table_copy and memory take a const model; the lock is
 * the one part of it that they change, and every model is a calloc'd, non-const object. */
static void model_lock(const ember_model *m) { pthread_mutex_lock((pthread_mutex_t *)&m->lock); }
static void model_unlock(const ember_model *m) { pthread_mutex_unlock((pthread_mutex_t *)&m->lock); }

/* ---- model lifetime --------------------------------------------------------------------- */

static ember_status check_options(const ember_load_options *opt) {
    if (opt->backend != EMBER_BACKEND_CPU && opt->backend != EMBER_BACKEND_CUDA &&
        opt->backend != EMBER_BACKEND_REFERENCE)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "options.backend = %d is not an ember_backend",
                          (int)opt->backend);
    if (opt->compute_dtype != EMBER_DTYPE_F32 && opt->compute_dtype != EMBER_DTYPE_F16 &&
        opt->compute_dtype != EMBER_DTYPE_BF16)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "options.compute_dtype = %d is not an ember_dtype", (int)opt->compute_dtype);
    if (opt->backend != EMBER_BACKEND_CUDA && opt->compute_dtype != EMBER_DTYPE_F32)
        return ember_fail(EMBER_ERR_UNSUPPORTED,
                          "options.compute_dtype: the CPU backends compute in f32 only "
                          "(f16/bf16 need the CUDA backend)");
    if (opt->max_batch < 1 || opt->max_seq_len < 1)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "options.max_batch = %d and options.max_seq_len = %d must be >= 1",
                          opt->max_batch, opt->max_seq_len);
    if (opt->tuning < -1 || opt->tuning > 1)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "options.tuning = %d: expected -1 (EMBER_TUNE), 0 (off) or 1 (on)",
                          opt->tuning);
    if (opt->backend == EMBER_BACKEND_CUDA) {
#ifdef EMBER_WITH_CUDA
        if (opt->device < 0)
            return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "options.device = %d must be >= 0",
                              opt->device);
#else
        return ember_fail(EMBER_ERR_NO_DEVICE,
                          "no CUDA device: this ember was built without the CUDA backend "
                          "(configure with -DEMBER_CUDA=ON and a CUDA toolkit)");
#endif
    }
    return EMBER_OK;
}

/* NULL options mean the defaults (written into *def); then check them. */
static ember_status resolve_options(const ember_load_options **opt, ember_load_options *def) {
    if (!*opt) {
        ember_load_options_init(def);
        *opt = def;
    }
    return check_options(*opt);
}

/* Create the model object around host weights (consumed: freed or kept by the backend) and
 * meta (taken by the model, cleared). */
static ember_status model_create(const ember_config *cfg, ember_weights *w, ember_model_meta *meta,
                                 const ember_load_options *opt, ember_model **out) {
    ember_model *m = calloc(1, sizeof *m);
    if (!m) return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "cannot allocate the model object");
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "cannot create the model's mutex");
    }
    m->cfg = *cfg;
    m->meta = *meta;
    memset(meta, 0, sizeof *meta);
    m->backend = opt->backend;
    m->dtype = opt->compute_dtype;
    m->device = opt->device;
    m->cuda_graphs = opt->cuda_graphs;
    m->tuning = opt->tuning;
    m->cap_seq = opt->max_seq_len < cfg->max_position_embeddings ? opt->max_seq_len
                                                                  : cfg->max_position_embeddings;
    m->cap_batch = opt->max_batch;
#ifdef EMBER_WITH_CUDA
    m->ops = opt->backend == EMBER_BACKEND_CUDA ? &ember_cuda_backend : &ember_cpu_backend;
#else
    m->ops = &ember_cpu_backend;
#endif
    ember_status st = m->ops->init(m, w);
    if (st == EMBER_OK) st = m->ops->reserve(m, m->cap_batch, m->cap_seq);
    if (st != EMBER_OK) {
        if (m->impl) m->ops->destroy(m);
        ember_model_meta_free(&m->meta);
        pthread_mutex_destroy(&m->lock);
        free(m);
        return st;
    }
    *out = m;
    return EMBER_OK;
}

ember_status ember_model_load(const char *model_dir, const ember_load_options *opt,
                              ember_model **out) {
    ember_clear_error();
    if (out) *out = NULL;
    if (!model_dir) return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "model_dir is NULL");
    if (!out) return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "out is NULL");
    ember_load_options def;
    EMBER_TRY(resolve_options(&opt, &def));
    ember_config cfg;
    ember_weights w;
    ember_model_meta meta;
    EMBER_TRY(ember_checkpoint_load_dir(model_dir, &cfg, &meta, &w));
    ember_status st = model_create(&cfg, &w, &meta, opt, out);
    ember_weights_free(&w);
    ember_model_meta_free(&meta);
    return st;
}

ember_status ember_model_init_random(const ember_config *cfg, uint64_t seed,
                                     const ember_load_options *opt, ember_model **out) {
    ember_clear_error();
    if (out) *out = NULL;
    if (!cfg) return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "cfg is NULL");
    if (!out) return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "out is NULL");
    ember_load_options def;
    EMBER_TRY(resolve_options(&opt, &def));
    ember_config c = *cfg;
    c.has_pooler = cfg->has_pooler ? 1 : 0;
    if (c.embedding_size == 0) c.embedding_size = c.hidden_size;
    EMBER_TRY(ember_config_check(&c, "ember_config"));
    if (c.has_pooler && !ember_arch_get(c.arch)->pooler)
        return ember_fail(EMBER_ERR_CONFIG, "ember_config: has_pooler = 1 but %s has no pooler",
                          ember_arch_name(c.arch));
    if (c.head == EMBER_HEAD_SEQUENCE_CLASSIFICATION && c.arch == EMBER_ARCH_BERT && !c.has_pooler)
        return ember_fail(EMBER_ERR_CONFIG, "ember_config: BERT's sequence classification head "
                          "classifies pooler_output: set has_pooler = 1");
    ember_model_meta meta;
    memset(&meta, 0, sizeof meta);
    EMBER_TRY(ember_model_meta_default_labels(c.num_labels, &meta));
    ember_weights w;
    ember_status st = ember_weights_alloc(&c, &w);
    if (st == EMBER_OK) {
        ember_weights_fill_random(&c, seed, &w);
        st = model_create(&c, &w, &meta, opt, out);
    }
    ember_weights_free(&w);
    ember_model_meta_free(&meta);
    return st;
}

void ember_model_free(ember_model *m) {
    if (!m) return;
    m->ops->destroy(m);
    ember_model_meta_free(&m->meta);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

ember_status ember_model_config(const ember_model *m, ember_config *out) {
    if (!m || !out) return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "%s is NULL", m ? "out" : "model");
    *out = m->cfg;
    return EMBER_OK;
}

const char *ember_model_label(const ember_model *m, int index) {
    if (!m || index < 0 || index >= m->meta.n_labels || !m->meta.labels) return NULL;
    return m->meta.labels[index];
}

ember_backend ember_model_backend(const ember_model *m) { return m ? m->backend : EMBER_BACKEND_CPU; }
ember_dtype ember_model_dtype(const ember_model *m) { return m ? m->dtype : EMBER_DTYPE_F32; }

ember_status ember_model_reserve(ember_model *m, int max_batch, int max_seq_len) {
    ember_clear_error();
    if (!m) return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "model is NULL");
    if (max_batch < 1 || max_seq_len < 1)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "max_batch = %d and max_seq_len = %d must be >= 1", max_batch, max_seq_len);
    if (max_seq_len > m->cfg.max_position_embeddings)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "max_seq_len = %d exceeds max_position_embeddings = %d", max_seq_len,
                          m->cfg.max_position_embeddings);
    const int64_t want = (int64_t)max_batch * max_seq_len;
    if (want > INT_MAX) /* the backends count tokens (and index the packing plan) in int32 */
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "max_batch = %d x max_seq_len = %d = %lld tokens exceeds the limit of "
                          "%d tokens per workspace", max_batch, max_seq_len, (long long)want,
                          INT_MAX);
    model_lock(m);
    ember_status st = EMBER_OK;
    const int64_t have = (int64_t)m->cap_batch * m->cap_seq;
    if (want > have || max_seq_len > m->cap_seq) {
        /* sequences up to the longer of the two, tokens for the larger of the two */
        const int ns = max_seq_len > m->cap_seq ? max_seq_len : m->cap_seq;
        const int64_t tokens = want > have ? want : have;
        const int64_t nb64 = (tokens + ns - 1) / ns;
        const int nb = nb64 > INT_MAX ? INT_MAX : (int)nb64;
        if (nb64 * ns > INT_MAX)
            st = ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                            "growing the workspace (%d x %d tokens) to sequences of %d would hold "
                            "%lld tokens, more than the limit of %d", m->cap_batch, m->cap_seq,
                            ns, (long long)(nb64 * ns), INT_MAX);
        if (st == EMBER_OK) st = m->ops->reserve(m, nb, ns);
        if (st == EMBER_OK) {
            m->cap_batch = nb;
            m->cap_seq = ns;
        }
    }
    model_unlock(m);
    return st;
}

ember_status ember_model_memory(const ember_model *m, size_t *weight_bytes,
                                size_t *workspace_bytes) {
    if (!m) return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "model is NULL");
    size_t wb = 0, sb = 0;
    model_lock(m);
    ember_status st = m->ops->memory(m, &wb, &sb);
    model_unlock(m);
    EMBER_TRY(st);
    if (weight_bytes) *weight_bytes = wb;
    if (workspace_bytes) *workspace_bytes = sb;
    return EMBER_OK;
}

/* ---- tuning (host/tune.c; the CUDA backend makes the choices) ----------------------------- */

ember_status ember_model_tuning(const ember_model *m, ember_tuning_entry *entries, int cap,
                                int *count) {
    ember_clear_error();
    if (!m || !count)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "ember_model_tuning: %s is NULL",
                          m ? "count" : "model");
    if (cap < 0 || (cap > 0 && !entries))
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "ember_model_tuning: cap = %d with entries %s", cap,
                          entries ? "given" : "NULL");
    *count = 0;
    if (!m->ops->tuner) return EMBER_OK;
    model_lock(m);
    ember_tuner *t = m->ops->tuner((ember_model *)m);
    if (t) ember_tuner_report(t, entries, cap, count);
    model_unlock(m);
    return EMBER_OK;
}

/* save / load: the model's table under its lock. */
static ember_status tuning_file(ember_model *m, const char *path, int save) {
    ember_clear_error();
    const char *fn = save ? "ember_model_tuning_save" : "ember_model_tuning_load";
    if (!m || !path) return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, m ? "path" : "model");
    if (!m->ops->tuner)
        return ember_fail(EMBER_ERR_UNSUPPORTED, "%s: the %s backend has nothing to tune", fn,
                          m->backend == EMBER_BACKEND_REFERENCE ? "reference" : m->ops->name);
    model_lock(m);
    ember_tuner *t = m->ops->tuner(m);
    const ember_status st = !t     ? ember_fail(EMBER_ERR_INTERNAL, "%s: no tuning table", fn)
                            : save ? ember_tuner_save(t, path)
                                   : ember_tuner_load(t, path);
    model_unlock(m);
    return st;
}

ember_status ember_model_tuning_save(const ember_model *m, const char *path) {
    return tuning_file((ember_model *)m, path, 1);
}

ember_status ember_model_tuning_load(ember_model *m, const char *path) {
    return tuning_file(m, path, 0);
}

ember_status ember_model_reserve_shapes(ember_model *m, const ember_shape *shapes, int n) {
    ember_clear_error();
    if (!m) return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "model is NULL");
    if (n < 1 || !shapes)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "ember_model_reserve_shapes: n_shapes = %d with shapes %s", n,
                          shapes ? "given" : "NULL");
    int64_t tokens = 0;
    int seq = 0;
    for (int i = 0; i < n; i++) {
        const ember_shape *x = &shapes[i];
        if (x->batch < 1 || x->seq_len < 1 || x->seq_len > m->cfg.max_position_embeddings ||
            (x->has_mask != 0 && x->has_mask != 1))
            return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                              "shapes[%d]: batch = %d, seq_len = %d, has_mask = %d (batch >= 1, "
                              "1 <= seq_len <= max_position_embeddings = %d, has_mask 0 or 1)",
                              i, x->batch, x->seq_len, x->has_mask,
                              m->cfg.max_position_embeddings);
        const int64_t t = (int64_t)x->batch * x->seq_len;
        if (t > INT_MAX)
            return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                              "shapes[%d]: batch %d x seq_len %d exceeds %d tokens", i, x->batch,
                              x->seq_len, INT_MAX);
        if (t > tokens) tokens = t;
        if (x->seq_len > seq) seq = x->seq_len;
    }
    EMBER_TRY(ember_model_reserve(m, (int)((tokens + seq - 1) / seq), seq));
    if (!m->ops->tune_shapes) return EMBER_OK;
    model_lock(m);
    const ember_status st = m->ops->tune_shapes(m, shapes, n);
    model_unlock(m);
    return st;
}

/* ---- forward ------------------------------------------------------------------------------ */

/* Host-side value checks, for the CPU backend whose inputs are host memory. */
static ember_status check_index(const char *what, const int32_t *v, int B, int S, int limit,
                                const char *limit_name) {
    if (!v) return EMBER_OK;
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++) {
            int32_t x = v[(int64_t)b * S + s];
            if (x < 0 || x >= limit)
                return ember_fail(EMBER_ERR_OUT_OF_RANGE, "%s[%d][%d] = %d is outside [0, %s = %d)",
                                  what, b, s, (int)x, limit_name, limit);
        }
    return EMBER_OK;
}

/* NaN and Inf in the embeds entry points are rejected (ember.h, ember_inputs): the first one
 * found is named. One pass over B*S*H values, next to the ~24*L*H flops per value of the
 * encoder. */
static ember_status check_finite(const char *what, const void *x, ember_dtype dt, int B, int S,
                                 int H) {
    if (!x) return EMBER_OK;
    const int64_t n = (int64_t)B * S * H;
    for (int64_t i = 0; i < n; i++) {
        float v;
        ember_ref_convert(&v, EMBER_DTYPE_F32, (const char *)x + i * (dt == EMBER_DTYPE_F32 ? 4 : 2),
                          dt, 1);
        if (!isfinite(v))
            return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                              "%s[%lld][%lld][%lld] = %g: NaN and Inf are rejected", what,
                              (long long)(i / ((int64_t)S * H)), (long long)(i / H % S),
                              (long long)(i % H), (double)v);
    }
    return EMBER_OK;
}

static ember_status check_host_values(const ember_model *m, const ember_inputs *in) {
    const ember_config *c = &m->cfg;
    int B = in->batch, S = in->seq_len;
    EMBER_TRY(check_index("input_ids", in->input_ids, B, S, c->vocab_size, "vocab_size"));
    if (!in->embedding_output) {
        EMBER_TRY(check_index("token_type_ids", in->token_type_ids, B, S, c->type_vocab_size,
                              "type_vocab_size"));
        EMBER_TRY(check_index("position_ids", in->position_ids, B, S, c->max_position_embeddings,
                              "max_position_embeddings"));
    }
    if (in->attention_mask) {
        int64_t ones = 0;
        for (int64_t t = 0; t < (int64_t)B * S; t++) {
            if (in->attention_mask[t] != 0 && in->attention_mask[t] != 1)
                return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                                  "attention_mask[%lld][%lld] = %d: mask values must be 0 or 1",
                                  (long long)(t / S), (long long)(t % S), (int)in->attention_mask[t]);
            ones += in->attention_mask[t];
        }
        if (in->valid_tokens && in->valid_tokens != ones)
            return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                              "inputs.valid_tokens = %d but attention_mask has %lld nonzero "
                              "values", in->valid_tokens, (long long)ones);
    }
    EMBER_TRY(check_finite("inputs_embeds", in->inputs_embeds, in->embeds_dtype, B, S,
                           c->embedding_size));
    EMBER_TRY(check_finite("embedding_output", in->embedding_output, in->embeds_dtype, B, S,
                           c->hidden_size));
    return EMBER_OK;
}

static int valid_dtype(ember_dtype dt) {
    return dt == EMBER_DTYPE_F32 || dt == EMBER_DTYPE_F16 || dt == EMBER_DTYPE_BF16;
}

/* The checks that need only the arguments and the model's immutable config. */
static ember_status check_forward_args(const ember_model *m, const ember_inputs *in,
                                       const ember_outputs *out) {
    if (!m) return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "model is NULL");
    if (!in) return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "inputs is NULL");
    if (!out) return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "outputs is NULL");
    const ember_config *c = &m->cfg;
    int entries = (in->input_ids != NULL) + (in->inputs_embeds != NULL) +
                  (in->embedding_output != NULL);
    if (entries != 1)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "exactly one of input_ids, inputs_embeds, embedding_output must be "
                          "non-NULL (got %d)", entries);
    if (in->batch < 1 || in->seq_len < 1)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "batch = %d and seq_len = %d must be >= 1",
                          in->batch, in->seq_len);
    if (in->seq_len > c->max_position_embeddings)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "seq_len = %d exceeds max_position_embeddings = %d", in->seq_len,
                          c->max_position_embeddings);
    const ember_arch_info *a = ember_arch_get(c->arch);
    if (a->padding_positions && !in->position_ids && !in->embedding_output &&
        in->seq_len > c->max_position_embeddings - c->pad_token_id - 1)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "seq_len = %d: %s's default positions run from pad_token_id + 1 = %d, so "
                          "sequences hold at most max_position_embeddings - %d = %d tokens",
                          in->seq_len, a->model_type, c->pad_token_id + 1, c->pad_token_id + 1,
                          c->max_position_embeddings - c->pad_token_id - 1);
    if (!a->has_token_types && in->token_type_ids)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "inputs.token_type_ids given, but %s has no token types (pass NULL)",
                          a->model_type);
    if ((int64_t)in->batch * in->seq_len > INT_MAX)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "batch = %d x seq_len = %d = %lld tokens exceeds the limit of %d",
                          in->batch, in->seq_len, (long long)in->batch * in->seq_len, INT_MAX);
    const unsigned known = EMBER_FORWARD_SKIP_MASKED | EMBER_FORWARD_ASYNC;
    if (in->flags & ~known)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "inputs.flags = 0x%x has unknown bits 0x%x (known: "
                          "EMBER_FORWARD_SKIP_MASKED 0x%x, EMBER_FORWARD_ASYNC 0x%x)",
                          in->flags, in->flags & ~known, EMBER_FORWARD_SKIP_MASKED,
                          EMBER_FORWARD_ASYNC);
    if (in->valid_tokens && !((in->flags & EMBER_FORWARD_SKIP_MASKED) && in->attention_mask))
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "inputs.valid_tokens = %d is only read with EMBER_FORWARD_SKIP_MASKED "
                          "and an attention_mask; pass 0 otherwise", in->valid_tokens);
    if (in->valid_tokens < 0 || (int64_t)in->valid_tokens > (int64_t)in->batch * in->seq_len)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "inputs.valid_tokens = %d is outside [0, batch x seq_len = %lld]",
                          in->valid_tokens, (long long)in->batch * in->seq_len);
    if (!out->last_hidden_state)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "outputs.last_hidden_state is NULL");
    if (!valid_dtype(in->embeds_dtype))
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "inputs.embeds_dtype = %d is not an ember_dtype (F32 0, F16 1, BF16 2)",
                          (int)in->embeds_dtype);
    if (!valid_dtype(out->dtype))
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "outputs.dtype = %d is not an ember_dtype (F32 0, F16 1, BF16 2)",
                          (int)out->dtype);
    if (out->pooler_output && !c->has_pooler)
        return ember_fail(EMBER_ERR_UNSUPPORTED,
                          "outputs.pooler_output requested but the checkpoint has no pooler "
                          "(pooler.dense.* absent)");
    if (out->logits && c->head == EMBER_HEAD_NONE)
        return ember_fail(EMBER_ERR_UNSUPPORTED,
                          "outputs.logits requested but the model has no head ember runs "
                          "(architecture %s%s%s; ember runs *ForSequenceClassification and "
                          "*ForTokenClassification)", m->meta.architecture[0] ? "\"" : "",
                          m->meta.architecture[0] ? m->meta.architecture : "not given",
                          m->meta.architecture[0] ? "\"" : "");
    return EMBER_OK;
}

/* Under the model's lock: the capacity, then (CPU) the values, which are read only once the
 * buffers are known to fit the workspace, then the backend. */
static ember_status forward_locked(ember_model *m, const ember_inputs *in,
                                   const ember_outputs *out, ember_stream stream) {
    if (in->seq_len > m->cap_seq || (int64_t)in->batch * in->seq_len > (int64_t)m->cap_batch * m->cap_seq)
        return ember_fail(EMBER_ERR_CAPACITY,
                          "batch %d x seq_len %d exceeds the workspace (%d x %d tokens, sequences "
                          "up to %d); call ember_model_reserve first", in->batch, in->seq_len,
                          m->cap_batch, m->cap_seq, m->cap_seq);
    if (m->backend != EMBER_BACKEND_CUDA) {
        if (stream)
            return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "stream must be NULL for the CPU backend");
        EMBER_TRY(check_host_values(m, in));
    }
    return m->ops->forward(m, in, out, stream);
}

ember_status ember_forward(ember_model *m, const ember_inputs *in, const ember_outputs *out,
                           ember_stream stream) {
    ember_clear_error();
    EMBER_TRY(check_forward_args(m, in, out));
    model_lock(m);
    const ember_status st = forward_locked(m, in, out, stream);
    model_unlock(m);
    return st;
}

ember_status ember_model_sync(ember_model *m, ember_stream stream) {
    ember_clear_error();
    if (!m) return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "model is NULL");
    if (m->backend != EMBER_BACKEND_CUDA) {
        if (stream)
            return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "stream must be NULL for the CPU backend");
        return EMBER_OK;
    }
    if (!m->ops->sync)
        return ember_fail(EMBER_ERR_INTERNAL, "backend %s has no sync", m->ops->name);
    model_lock(m);
    const ember_status st = m->ops->sync(m, stream);
    model_unlock(m);
    return st;
}

ember_status ember_embed_tokens(ember_model *m, const int32_t *ids, int64_t n, float *out,
                                ember_stream stream) {
    return ember_embed_tokens_as(m, ids, n, EMBER_DTYPE_F32, out, 0, stream);
}

ember_status ember_embed_tokens_as(ember_model *m, const int32_t *ids, int64_t n,
                                   ember_dtype out_dtype, void *out, unsigned flags,
                                   ember_stream stream) {
    ember_clear_error();
    if (!m) return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "model is NULL");
    if (!valid_dtype(out_dtype))
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "out_dtype = %d is not an ember_dtype (F32 0, F16 1, BF16 2)",
                          (int)out_dtype);
    if (flags & ~EMBER_FORWARD_ASYNC)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "flags = 0x%x: only EMBER_FORWARD_ASYNC (0x%x) is known here", flags,
                          EMBER_FORWARD_ASYNC);
    if (!ids || !out)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "%s is NULL", ids ? "out" : "input_ids");
    if (n < 1) return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "n_tokens = %lld must be >= 1", (long long)n);
    if (m->backend != EMBER_BACKEND_CUDA) {
        if (stream)
            return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "stream must be NULL for the CPU backend");
        for (int64_t t = 0; t < n; t++)
            if (ids[t] < 0 || ids[t] >= m->cfg.vocab_size)
                return ember_fail(EMBER_ERR_OUT_OF_RANGE,
                                  "input_ids[%lld] = %d is outside [0, vocab_size = %d)",
                                  (long long)t, (int)ids[t], m->cfg.vocab_size);
    }
    model_lock(m);
    const ember_status st = m->ops->embed(m, ids, n, out, out_dtype, flags, stream);
    model_unlock(m);
    return st;
}

ember_status ember_table_shape(const ember_model *m, ember_table t, int64_t *rows, int64_t *cols) {
    if (!m || !rows || !cols)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "model, rows and cols must be non-NULL");
    switch (t) {
    case EMBER_TABLE_WORD: *rows = m->cfg.vocab_size; break;
    case EMBER_TABLE_POSITION: *rows = m->cfg.max_position_embeddings; break;
    case EMBER_TABLE_TOKEN_TYPE: *rows = m->cfg.type_vocab_size; break; /* 0: DistilBERT */
    default: return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "table = %d is not an ember_table", (int)t);
    }
    *cols = m->cfg.embedding_size;
    return EMBER_OK;
}

ember_status ember_table_copy(const ember_model *m, ember_table t, float *dst, size_t dst_count,
                              ember_stream stream) {
    ember_clear_error();
    int64_t rows, cols;
    EMBER_TRY(ember_table_shape(m, t, &rows, &cols));
    if (!dst) return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "dst is NULL");
    if (dst_count < (size_t)(rows * cols))
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "dst_count = %zu is smaller than the table (%lld x %lld floats)", dst_count,
                          (long long)rows, (long long)cols);
    if (m->backend != EMBER_BACKEND_CUDA && stream)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "stream must be NULL for the CPU backend");
    if (rows == 0) return EMBER_OK; /* DistilBERT's token types */
    model_lock(m);
    const ember_status st = m->ops->table_copy(m, t, dst, stream);
    model_unlock(m);
    return st;
}

/* ---- pooling ------------------------------------------------------------------------------ */

ember_status ember_pool(ember_model *m, const float *hidden, const int32_t *mask, int batch,
                        int seq_len, ember_pooling mode, int normalize, float *out,
                        ember_stream stream) {
    ember_clear_error();
    if (!m) return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "ember_pool: model is NULL");
    if (!hidden || !out)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "ember_pool: %s is NULL",
                          hidden ? "out" : "hidden");
    if (batch < 1 || seq_len < 1)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "ember_pool: batch = %d and seq_len = %d must be >= 1", batch, seq_len);
    if ((int64_t)batch * seq_len > ((int64_t)1 << 40) / m->cfg.hidden_size)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "ember_pool: batch %d x seq_len %d x hidden %d is too large", batch,
                          seq_len, m->cfg.hidden_size);
    if (mode != EMBER_POOL_MEAN && mode != EMBER_POOL_CLS && mode != EMBER_POOL_MAX)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "ember_pool: mode = %d is not an ember_pooling (EMBER_POOL_MEAN 0, "
                          "EMBER_POOL_CLS 1, EMBER_POOL_MAX 2)", (int)mode);
    if (normalize != 0 && normalize != 1)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "ember_pool: normalize = %d must be 0 or 1",
                          normalize);
    if (m->backend != EMBER_BACKEND_CUDA) {
        if (stream)
            return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                              "ember_pool: stream must be NULL for the CPU backend");
        if (mask)
            for (int64_t t = 0; t < (int64_t)batch * seq_len; t++)
                if (mask[t] != 0 && mask[t] != 1)
                    return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                                      "ember_pool: attention_mask[%lld][%lld] = %d: mask values "
                                      "must be 0 or 1", (long long)(t / seq_len),
                                      (long long)(t % seq_len), (int)mask[t]);
    }
    if (!m->ops->pool)
        return ember_fail(EMBER_ERR_INTERNAL, "backend %s has no pooling", m->ops->name);
    model_lock(m);
    const ember_status st = m->ops->pool(m, hidden, mask, batch, seq_len, mode, normalize, out,
                                         stream);
    model_unlock(m);
    return st;
}

#ifndef EMBER_WITH_CUDA
int ember_cuda_device_count(void) { return 0; }
#endif
