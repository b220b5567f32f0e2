/* The ember command line: the table of subcommands, `forward` (a forward pass on a safetensors
 * file) and `info` (version, build and the model's configuration). Arguments and help:
 * host/cli_args.c. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ember.h"
#include "host/cli.h"
#include "weights/config.h"
#include "weights/safetensors.h"

#ifdef EMBER_WITH_CUDA
#include <cuda_runtime.h>
#endif

static int fail(const char *what, ember_status st) { return ember_cli_fail(what, st); }

/* ---- the subcommands' options ------------------------------------------------------------ */

typedef struct forward_args {
    cli_model_args m; /* first: ember_cli_model_opts point into it */
    const char *inputs, *output, *hf_tolerance;
    int hidden_states, pooler, quiet, mean_pool, logits;
} forward_args;

#define FWD(f) offsetof(forward_args, f)
static const cli_opt k_forward_opts[] = {
    {"--inputs", CLI_STRING, FWD(inputs), "IN.safetensors",
     "input_ids (I32/I64 [B,S]), inputs_embeds (F32 [B,S,E]) or\nembedding_output (F32 [B,S,H]): exactly one; "
     "attention_mask, token_type_ids,\nposition_ids (I32/I64 [B,S]) optional", 0, 0, NULL, 1},
    {"--output", CLI_STRING, FWD(output), "OUT.safetensors",
     "F32 last_hidden_state [B,S,H] and what the flags below add", 0, 0, NULL, 1},
    {"--hidden-states", CLI_SWITCH, FWD(hidden_states), NULL, "add hidden_states [L+1,B,S,H]", 1, 0, NULL, 0},
    {"--pooler", CLI_SWITCH, FWD(pooler), NULL, "add pooler_output [B,H]", 1, 0, NULL, 0},
    {"--logits", CLI_SWITCH, FWD(logits), NULL,
     "add the head's logits ([B,num_labels] or [B,S,num_labels])", 1, 0, NULL, 0},
    {"--mean-pool", CLI_SWITCH, FWD(mean_pool), NULL,
     "add sentence_embedding [B,H] (masked mean, L2-normalised,\nas sentence-transformers) and print "
     "their cosine similarities", 1, 0, NULL, 0},
    {"--hf-tolerance", CLI_STRING, FWD(hf_tolerance), "ATOL,RTOL",
     "check every output against the inputs file's expected.<name>\n(HuggingFace's): each element "
     "within ATOL + RTOL x |HF|;\nexit 1 when one is not (tools/run.sh passes the bound of\n"
     "tests/tolerances.h)", 0, 0, NULL, 0},
    {"--quiet", CLI_SWITCH, FWD(quiet), NULL, "print nothing but errors and failed checks", 1, 0, NULL, 0},
    {NULL, 0, 0, NULL, NULL, 0, 0, NULL, 0},
};
static const cli_opt *const k_forward_groups[] = {ember_cli_model_opts, ember_cli_device_opts,
                                                  k_forward_opts, NULL};
/* info loads on the CPU: --model alone */
static const cli_opt *const k_info_groups[] = {ember_cli_model_opts, NULL};

static void print_config(const ember_config *c) {
    static const char *heads[] = {"none", "sequence classification", "token classification"};
    printf("  %s, head %s", ember_arch_name(c->arch),
           c->head >= 0 && c->head <= 2 ? heads[c->head] : "?");
    if (c->head != EMBER_HEAD_NONE) printf(" (%d labels)", c->num_labels);
    if (c->embedding_size != c->hidden_size) printf(", embedding_size %d", c->embedding_size);
    printf("\n");
    printf("  layers %d, hidden %d, heads %d (head size %d), intermediate %d\n",
           c->num_hidden_layers, c->hidden_size, c->num_attention_heads,
           c->hidden_size / c->num_attention_heads, c->intermediate_size);
    printf("  vocab %d, max positions %d, token types %d, activation %s, layer_norm_eps %g\n",
           c->vocab_size, c->max_position_embeddings, c->type_vocab_size,
           ember_activation_name(c->hidden_act), c->layer_norm_eps);
    printf("  pooler %s, parameters %lld\n", c->has_pooler ? "yes" : "no",
           (long long)ember_config_param_count(c));
}

/* "major.minor" of CUDA's version integers (13000 = 13.0), "-" for 0 (unknown, none). */
static const char *cuda_ver(int v, char *buf, size_t n) {
    if (v > 0) snprintf(buf, n, "%d.%d", v / 1000, v % 1000 / 10);
    else snprintf(buf, n, "-");
    return buf;
}

/* The library's version and build (ember_version, ember_build_info). */
static void print_build(void) {
    const ember_build *b = ember_build_info();
    printf("ember %s\n  backends: %s\n", ember_version(NULL, NULL, NULL), b->backends);
    if (!b->cuda_toolkit_version) {
        printf("  CUDA: not built\n");
        return;
    }
    char t[16], r[16], d[16];
    printf("  CUDA: built with %s for architectures %s; runtime %s, driver %s, cuBLASLt %d.%d.%d,"
           " %d device%s\n", cuda_ver(b->cuda_toolkit_version, t, sizeof t), b->cuda_archs,
           cuda_ver(b->cuda_runtime_version, r, sizeof r),
           b->cuda_driver_version ? cuda_ver(b->cuda_driver_version, d, sizeof d) : "none",
           b->cublas_version / 10000, b->cublas_version / 100 % 100, b->cublas_version % 100,
           b->cuda_device_count, b->cuda_device_count == 1 ? "" : "s");
}

static int cmd_info(void *args, int n_operands, char **operands) {
    const cli_model_args *a = args;
    print_build();
    ember_model *m = NULL;
    ember_load_options opt;
    ember_load_options_init(&opt);
    opt.max_batch = 1;
    opt.max_seq_len = 1;
    ember_status st = ember_model_load(a->model, &opt, &m);
    if (st != EMBER_OK) return fail("loading the model", st);
    ember_config c;
    ember_model_config(m, &c);
    printf("model %s\n", a->model);
    print_config(&c);
    for (int l = 0; l < c.num_labels && l < 16; l++) {
        printf("%s%d: ", l ? ", " : "  labels ", l);
        ember_cli_print_escaped(stdout, ember_model_label(m, l));
        if (l + 1 == c.num_labels || l == 15) printf("%s\n", c.num_labels > 16 ? ", ..." : "");
    }
    ember_model_free(m);
    return 0;
}

/* An integer input tensor [B,S] as int32, or NULL if absent. */
static int read_index(ember_st_file *f, const char *name, int64_t B, int64_t S, int32_t **out) {
    *out = NULL;
    const ember_st_tensor *t = ember_st_find(f, name);
    if (!t) return 1;
    if (t->ndim != 2 || t->shape[0] != B || t->shape[1] != S) {
        fprintf(stderr, "ember: input '%s' must have shape [%lld, %lld]\n", name, (long long)B,
                (long long)S);
        return 0;
    }
    if (t->dtype != EMBER_ST_I32 && t->dtype != EMBER_ST_I64) {
        fprintf(stderr, "ember: input '%s' must be I32 or I64, not %s\n", name,
                ember_st_dtype_name(t->dtype));
        return 0;
    }
    *out = malloc(sizeof(int32_t) * (size_t)(B * S));
    if (!*out) { fprintf(stderr, "ember: out of memory\n"); return 0; }
    ember_status st = ember_st_to_i32(t, *out);
    if (st != EMBER_OK) { fail(name, st); return 0; }
    return 1;
}

static int read_embeds(ember_st_file *f, const char *name, int64_t *B, int64_t *S, int64_t H,
                       float **out) {
    *out = NULL;
    const ember_st_tensor *t = ember_st_find(f, name);
    if (!t) return 1;
    if (t->ndim != 3 || t->shape[2] != H || t->dtype != EMBER_ST_F32) {
        fprintf(stderr, "ember: input '%s' must be F32 [B, S, %lld]\n", name, (long long)H);
        return 0;
    }
    *B = t->shape[0];
    *S = t->shape[1];
    *out = malloc(t->nbytes ? t->nbytes : 1);
    if (!*out) { fprintf(stderr, "ember: out of memory\n"); return 0; }
    ember_st_to_f32(t, *out);
    return 1;
}

/* --hf-tolerance: the bound and what the checks found. */
typedef struct hf_check {
    int on;
    double atol, rtol;
    int checked, failed;
} hf_check;

/* When the inputs file carries HF's own outputs (expected.<name>, as the bundled goldens do),
 * say how close ember came; with --hf-tolerance, whether every element is within
 * atol + rtol |HF| (NaN never is). A failed check is printed even with --quiet. */
static void report_expected(ember_st_file *f, const char *name, const float *got, size_t n,
                            int quiet, hf_check *chk) {
    char key[64];
    snprintf(key, sizeof key, "expected.%s", name);
    const ember_st_tensor *t = ember_st_find(f, key);
    if (!t) return;
    float *want = NULL;
    if ((size_t)ember_st_numel(t) != n || t->dtype != EMBER_ST_F32 || !(want = malloc(sizeof(float) * n)) ||
        ember_st_to_f32(t, want) != EMBER_OK) {
        free(want);
        if (chk->on) {
            chk->checked++;
            chk->failed++;
            printf("  vs HuggingFace %s: FAIL: it is not F32 with the %zu elements ember wrote\n", key, n);
        }
        return;
    }
    double max_abs = 0.0, worst = 0.0;
    size_t nan = 0, over = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - want[i]);
        const double bound = chk->atol + chk->rtol * fabs((double)want[i]);
        if (d != d) nan++;
        else if (d > max_abs) max_abs = d;
        if (!chk->on) continue;
        if (!(d <= bound)) over++; /* NaN fails */
        if (d == d && bound > 0.0 && d / bound > worst) worst = d / bound;
    }
    free(want);
    if (!chk->on) {
        if (!quiet)
            printf("  vs HuggingFace %s (from the inputs file): max |diff| %.3g%s\n", key, max_abs,
                   nan ? ", NaN present" : "");
        return;
    }
    chk->checked++;
    if (over) {
        chk->failed++;
        printf("  vs HuggingFace %s (from the inputs file): max |diff| %.3g%s: FAIL: %zu of %zu "
               "elements outside |diff| <= %g + %g |HF|%s\n", key, max_abs, nan ? ", NaN present" : "",
               over, n, chk->atol, chk->rtol, nan ? "" : " (the worst at");
        if (!nan) printf("    %.3g times its bound)\n", worst);
    } else if (!quiet) {
        printf("  vs HuggingFace %s (from the inputs file): max |diff| %.3g, within |diff| <= %g + "
               "%g |HF| (the worst element at %.2f of its bound)\n", key, max_abs, chk->atol,
               chk->rtol, worst);
    }
}

/* "ATOL,RTOL": two finite numbers >= 0. */
static int parse_tolerance(const char *s, hf_check *chk) {
    char *end = NULL;
    chk->atol = strtod(s, &end);
    if (end == s || *end != ',') return 0;
    const char *r = end + 1;
    chk->rtol = strtod(r, &end);
    return end != r && !*end && isfinite(chk->atol) && isfinite(chk->rtol) && chk->atol >= 0 &&
           chk->rtol >= 0;
}

/* Sentence embeddings: mean of the unmasked tokens, L2-normalised. emb is (B,H). */
static void mean_pool(float *emb, const float *h, const int32_t *mask, int64_t B, int64_t S,
                      int64_t H) {
    for (int64_t b = 0; b < B; b++) {
        double n = 0.0, norm = 0.0;
        double *acc = calloc((size_t)H, sizeof(double));
        if (!acc) return;
        for (int64_t s = 0; s < S; s++) {
            if (mask && !mask[b * S + s]) continue;
            n += 1.0;
            for (int64_t i = 0; i < H; i++) acc[i] += h[(b * S + s) * H + i];
        }
        for (int64_t i = 0; i < H; i++) {
            acc[i] /= n > 0.0 ? n : 1.0;
            norm += acc[i] * acc[i];
        }
        norm = sqrt(norm);
        for (int64_t i = 0; i < H; i++) emb[b * H + i] = (float)(acc[i] / (norm > 1e-12 ? norm : 1e-12));
        free(acc);
    }
}

/* The cosine-similarity table; labels from the inputs' "sentences" metadata (a JSON list). */
static void print_similarity(ember_st_file *f, const float *emb, int64_t B, int64_t H) {
    json_t *labels = NULL;
    const char *meta = ember_st_metadata(f, "sentences");
    if (meta) labels = json_loads(meta, 0, NULL);
    printf("  cosine similarity of the sentence embeddings:\n");
    for (int64_t a = 0; a < B; a++) {
        json_t *l = json_is_array(labels) ? json_array_get(labels, (size_t)a) : NULL;
        printf("    [%lld] ", (long long)a);
        ember_cli_print_label(json_is_string(l) ? json_string_value(l) : "", 48);
        for (int64_t b = 0; b < B; b++) {
            double dot = 0.0;
            for (int64_t i = 0; i < H; i++) dot += (double)emb[a * H + i] * emb[b * H + i];
            printf(" %+.3f", dot);
        }
        printf("\n");
    }
    json_decref(labels);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Device mirror of a host buffer for the CUDA backend (the API takes device pointers). */
static void *to_device(const void *host, size_t bytes, int cuda) {
    if (!host || !cuda) return (void *)host;
#ifdef EMBER_WITH_CUDA
    void *d = NULL;
    if (cudaMalloc(&d, bytes ? bytes : 1) != cudaSuccess) return NULL;
    if (cudaMemcpy(d, host, bytes, cudaMemcpyHostToDevice) != cudaSuccess) { cudaFree(d); return NULL; }
    return d;
#else
    return NULL;
#endif
}

static void device_free(void *d, int cuda) {
#ifdef EMBER_WITH_CUDA
    if (cuda && d) cudaFree(d);
#endif
}

static int forward_check(const void *args) {
    const forward_args *a = args;
    hf_check chk;
    if (a->hf_tolerance && !parse_tolerance(a->hf_tolerance, &chk)) {
        fprintf(stderr, "ember forward: --hf-tolerance needs ATOL,RTOL (two numbers >= 0), not "
                        "'%s'\n", a->hf_tolerance);
        return 0;
    }
    return 1;
}

static int cmd_forward(void *args, int n_operands, char **operands) {
    const forward_args *a = args;
    hf_check chk = {0};
    if (a->hf_tolerance) chk.on = parse_tolerance(a->hf_tolerance, &chk); /* forward_check: valid */
    int rc = 1;
    ember_model *m = NULL;
    ember_st_file *f = NULL;
    int32_t *ids = NULL, *mask = NULL, *types = NULL, *pos = NULL;
    float *embeds = NULL, *eout = NULL, *last = NULL, *pooled = NULL, *hidden = NULL, *sent = NULL;
    float *logits = NULL;
    void *d[8] = {0};
    const int cuda = a->m.backend == EMBER_BACKEND_CUDA;

    ember_status st = ember_st_open(a->inputs, &f);
    if (st != EMBER_OK) return fail("reading the inputs", st);

    double t0 = now_s();
    st = ember_cli_load_model(&a->m, a->m.model, &m);
    if (st != EMBER_OK) { fail("loading the model", st); goto done; }
    double t_load = now_s() - t0;
    ember_config c;
    ember_model_config(m, &c);
    const int64_t H = c.hidden_size;

    /* B and S come from the inputs file: bounded before any size is computed from them */
    const char *entry_names[] = {"input_ids", "inputs_embeds", "embedding_output"};
    const ember_st_tensor *entry = NULL;
    int entries = 0;
    for (int i = 0; i < 3; i++) {
        const ember_st_tensor *t = ember_st_find(f, entry_names[i]);
        if (t) entries++, entry = t;
    }
    if (entries != 1) {
        fprintf(stderr, "ember: %s must hold exactly one of input_ids, inputs_embeds, "
                        "embedding_output (found %d)\n", a->inputs, entries);
        goto done;
    }
    if (entry->ndim < 2) {
        fprintf(stderr, "ember: %s must be [B, S%s]\n", entry->name,
                entry == ember_st_find(f, "input_ids") ? "" : ", H");
        goto done;
    }
    const int64_t B = entry->shape[0], S = entry->shape[1];
    if (B < 1 || S < 1 || B > 1 << 20 || S > 1 << 20 || B * S > INT_MAX) {
        fprintf(stderr, "ember: batch %lld x seq_len %lld is not a valid input (each 1..%d, and at "
                        "most %d tokens)\n", (long long)B, (long long)S, 1 << 20, INT_MAX);
        goto done;
    }
    int64_t Be = 0, Se = 0, Bo = 0, So = 0;
    if (!read_index(f, "input_ids", B, S, &ids) ||
        !read_embeds(f, "inputs_embeds", &Be, &Se, c.embedding_size, &embeds) ||
        !read_embeds(f, "embedding_output", &Bo, &So, H, &eout))
        goto done;
    if (!read_index(f, "attention_mask", B, S, &mask) ||
        !read_index(f, "token_type_ids", B, S, &types) ||
        !read_index(f, "position_ids", B, S, &pos))
        goto done;

    if (S > c.max_position_embeddings) {
        fprintf(stderr, "ember: seq_len %lld exceeds max_position_embeddings %d\n", (long long)S,
                c.max_position_embeddings);
        goto done;
    }
    st = ember_model_reserve(m, (int)B, (int)S);
    if (st != EMBER_OK) { fail("reserving the workspace", st); goto done; }

    /* B x S <= INT_MAX (checked above), H <= 65536, layers <= 512: every byte count below is
     * < 2^60 and fits a 64-bit size_t */
    const size_t nt = (size_t)(B * S), act = nt * (size_t)H;
    const size_t nhs = (size_t)(c.num_hidden_layers + 1) * act;
    const size_t nl = (c.head == EMBER_HEAD_TOKEN_CLASSIFICATION ? nt : (size_t)B) *
                      (size_t)c.num_labels;
    last = malloc(sizeof(float) * act);
    if (a->pooler) pooled = malloc(sizeof(float) * (size_t)(B * H));
    if (a->hidden_states) hidden = malloc(sizeof(float) * nhs);
    if (a->logits) logits = malloc(sizeof(float) * (nl ? nl : 1));
    if (!last || (a->pooler && !pooled) || (a->hidden_states && !hidden) || (a->logits && !logits)) {
        fprintf(stderr, "ember: out of host memory for the outputs\n");
        goto done;
    }

    ember_inputs in = {.batch = (int)B, .seq_len = (int)S};
    ember_outputs out = {0};
    in.input_ids = to_device(ids, nt * 4, cuda);
    in.inputs_embeds = to_device(embeds, nt * (size_t)c.embedding_size * 4, cuda);
    in.embedding_output = to_device(eout, act * 4, cuda);
    in.attention_mask = to_device(mask, nt * 4, cuda);
    in.token_type_ids = to_device(types, nt * 4, cuda);
    in.position_ids = to_device(pos, nt * 4, cuda);
    out.last_hidden_state = cuda ? to_device(last, act * 4, 1) : last;
    out.pooler_output = pooled ? (cuda ? to_device(pooled, (size_t)(B * H) * 4, 1) : pooled) : NULL;
    out.hidden_states = hidden ? (cuda ? to_device(hidden, nhs * 4, 1) : hidden) : NULL;
    out.logits = logits ? (cuda ? to_device(logits, nl * 4, 1) : logits) : NULL;
    d[0] = (void *)in.input_ids; d[1] = (void *)in.inputs_embeds; d[2] = (void *)in.embedding_output;
    d[3] = (void *)in.attention_mask; d[4] = (void *)in.token_type_ids; d[5] = (void *)in.position_ids;
    if (cuda && (!out.last_hidden_state || (pooled && !out.pooler_output) || (logits && !out.logits) ||
                 (hidden && !out.hidden_states) || (ids && !in.input_ids) ||
                 (embeds && !in.inputs_embeds) || (eout && !in.embedding_output) ||
                 (mask && !in.attention_mask) || (types && !in.token_type_ids) ||
                 (pos && !in.position_ids))) {
        fprintf(stderr, "ember: cannot allocate or copy the device buffers\n");
        goto done_dev;
    }

    t0 = now_s();
    st = ember_forward(m, &in, &out, NULL);
    double t_fwd = now_s() - t0;
    if (st != EMBER_OK) { fail("forward", st); goto done_dev; }
#ifdef EMBER_WITH_CUDA
    if (cuda) {
        cudaMemcpy(last, out.last_hidden_state, act * 4, cudaMemcpyDeviceToHost);
        if (pooled) cudaMemcpy(pooled, out.pooler_output, (size_t)(B * H) * 4, cudaMemcpyDeviceToHost);
        if (hidden) cudaMemcpy(hidden, out.hidden_states, nhs * 4, cudaMemcpyDeviceToHost);
        if (logits) cudaMemcpy(logits, out.logits, nl * 4, cudaMemcpyDeviceToHost);
    }
#endif

    if (a->mean_pool) {
        sent = malloc(sizeof(float) * (size_t)(B * H));
        if (!sent) { fprintf(stderr, "ember: out of host memory\n"); goto done_dev; }
        mean_pool(sent, last, mask, B, S, H);
    }

    ember_st_tensor ot[5];
    size_t n_out = 0;
    ot[n_out++] = (ember_st_tensor){.name = "last_hidden_state", .dtype = EMBER_ST_F32, .ndim = 3,
                                    .shape = {B, S, H}, .data = last, .nbytes = act * 4};
    if (pooled)
        ot[n_out++] = (ember_st_tensor){.name = "pooler_output", .dtype = EMBER_ST_F32, .ndim = 2,
                                        .shape = {B, H}, .data = pooled,
                                        .nbytes = (size_t)(B * H) * 4};
    if (hidden)
        ot[n_out++] = (ember_st_tensor){.name = "hidden_states", .dtype = EMBER_ST_F32, .ndim = 4,
                                        .shape = {c.num_hidden_layers + 1, B, S, H},
                                        .data = hidden, .nbytes = nhs * 4};
    if (logits) {
        ember_st_tensor t = {.name = "logits", .dtype = EMBER_ST_F32, .ndim = 2,
                             .shape = {B, c.num_labels}, .data = logits, .nbytes = nl * 4};
        if (c.head == EMBER_HEAD_TOKEN_CLASSIFICATION)
            t.ndim = 3, t.shape[1] = S, t.shape[2] = c.num_labels;
        ot[n_out++] = t;
    }
    if (sent)
        ot[n_out++] = (ember_st_tensor){.name = "sentence_embedding", .dtype = EMBER_ST_F32,
                                        .ndim = 2, .shape = {B, H}, .data = sent,
                                        .nbytes = (size_t)(B * H) * 4};
    const char *mk[] = {"producer", "entry_point"};
    const char *mv[] = {"ember " EMBER_VERSION_STRING, ids ? "input_ids" : embeds ? "inputs_embeds" : "embedding_output"};
    st = ember_st_write(a->output, ot, n_out, mk, mv, 2);
    if (st != EMBER_OK) { fail("writing the output", st); goto done_dev; }

    if (!a->quiet) {
        double sum = 0.0, sq = 0.0;
        for (size_t i = 0; i < act; i++) { sum += last[i]; sq += (double)last[i] * last[i]; }
        printf("ember forward: %s, backend %s, dtype %s\n", a->m.model, ember_cli_backend_name(a->m.backend),
               ember_cli_dtype_name(a->m.dtype));
        print_config(&c);
        printf("  entry point %s, batch %lld x seq_len %lld, mask %s\n", mv[1], (long long)B,
               (long long)S, mask ? "given" : "all ones");
        printf("  load %.1f ms, forward %.1f ms\n", t_load * 1e3, t_fwd * 1e3);
        printf("  last_hidden_state [%lld, %lld, %lld]: mean %+.6f, std %.6f\n", (long long)B,
               (long long)S, (long long)H, sum / act, sqrt(sq / act - (sum / act) * (sum / act)));
        for (int64_t b = 0; b < B && b < 4; b++) {
            printf("    sequence %lld, token 0: [", (long long)b);
            for (int64_t i = 0; i < H && i < 6; i++)
                printf("%s%+.5f", i ? ", " : "", last[(b * S) * H + i]);
            printf("%s]\n", H > 6 ? ", ..." : "");
        }
        if (pooled) printf("  pooler_output [%lld, %lld]\n", (long long)B, (long long)H);
        if (hidden)
            printf("  hidden_states [%d, %lld, %lld, %lld]\n", c.num_hidden_layers + 1,
                   (long long)B, (long long)S, (long long)H);
    }
    report_expected(f, "last_hidden_state", last, act, a->quiet, &chk);
    if (pooled) report_expected(f, "pooler_output", pooled, (size_t)(B * H), a->quiet, &chk);
    if (hidden) report_expected(f, "hidden_states", hidden, nhs, a->quiet, &chk);
    if (logits) report_expected(f, "logits", logits, nl, a->quiet, &chk);
    if (sent) report_expected(f, "sentence_embedding", sent, (size_t)(B * H), a->quiet, &chk);
    if (!a->quiet) {
        if (sent) print_similarity(f, sent, B, H);
        printf("  wrote %s\n", a->output);
    }
    rc = 0;
    if (chk.on && chk.checked == 0) {
        fprintf(stderr, "ember forward: --hf-tolerance: %s holds no expected.<output> to check "
                        "against\n", a->inputs);
        rc = 1;
    } else if (chk.failed) {
        fprintf(stderr, "ember forward: %d of %d outputs differ from HuggingFace's beyond "
                        "--hf-tolerance %s\n", chk.failed, chk.checked, a->hf_tolerance);
        rc = 1;
    }

done_dev:
    if (cuda) {
        for (int i = 0; i < 6; i++) device_free(d[i], 1);
        device_free(out.last_hidden_state, 1);
        device_free(out.pooler_output, 1);
        device_free(out.hidden_states, 1);
        device_free(out.logits, 1);
    }
done:
    free(ids); free(mask); free(types); free(pos);
    free(embeds); free(eout); free(last); free(pooled); free(hidden); free(sent); free(logits);
    ember_model_free(m);
    ember_st_close(f);
    return rc;
}

/* ---- the table ------------------------------------------------------------------------- */

static void forward_init(void *args) { (void)args; /* zeroes: cpu, f32, device 0, no extras */ }

static const cli_command k_forward = {
    "forward",
    "a forward pass on token ids or embeddings from a safetensors file",
    "--model DIR --inputs IN.safetensors --output OUT.safetensors [options]",
    k_forward_groups, NULL,
    "The outputs carry HF's names. When IN also holds HF's own outputs (expected.<name>, as\n"
    "tests/data/goldens do), forward prints how close ember came, and checks it with\n"
    "--hf-tolerance. forward takes token ids (e.g. from HF BertTokenizer, or RoBERTa's BPE,\n"
    "which ember does not have); `ember embed`, `similarity`, `classify` and `rerank` take text.\n",
    sizeof(forward_args), forward_init, forward_check, cmd_forward};

static const cli_command k_info = {
    "info", "ember's version and build, the model's configuration and parameter count",
    "--model DIR", k_info_groups, NULL,
    NULL, sizeof(cli_model_args), NULL, NULL, cmd_info};

/* New subcommands go here (each with its options, help and run function: host/cli.h). */
static const cli_command *const k_commands[] = {
    &k_forward, &k_info, &ember_cli_embed_command, &ember_cli_similarity_command,
    &ember_cli_classify_command, &ember_cli_rerank_command, NULL};

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "--version")) {
        print_build();
        return 0;
    }
    return ember_cli_dispatch(k_commands, argc, argv);
}
