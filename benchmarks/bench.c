/*
 * ember_bench: time ember_forward and report it against the floor of the hardware.
 *
 *   ember_bench --preset bert-base --dtype f16 --batch 32 --seq 128 --ceilings
 *   ember_bench --model DIR --inputs inputs.safetensors --json out.json
 *
 * CUDA: inputs (several rotating sets) and outputs are allocated once on the device; each
 * forward is bracketed by a cudaEvent pair on a created stream (ember_forward waits for
 * its stream before returning, so every call is one request's latency: launch gaps
 * included). Host wall time per call is reported beside it. With --async the calls are
 * enqueued back to back (EMBER_FORWARD_ASYNC) and the stream is waited for once at the end
 * of the timed loop; each call still has its own event pair. CPU backend: clock_gettime.
 * The floor and its derivation are in benchmarks/README.md.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "ember.h"
#include "weights/safetensors.h"

#ifdef EMBER_WITH_CUDA
#include <cuda_runtime.h>
#endif

/* ---- options ---------------------------------------------------------------------------- */

typedef struct bench_opts {
    const char *model_dir, *preset, *inputs_path, *json_path, *save_output;
    int backend_set, dtype_set;
    ember_backend backend;
    ember_dtype dtype;
    int batch, seq, batch_set, seq_set;
    int uniform;       /* lengths uniform in [len_lo, len_hi] * seq, else full */
    double len_lo, len_hi;
    int warmup, iters, rotate, warmup_set, iters_set;
    uint64_t seed;
    int device;
    int pooler;        /* -1 auto (if the model has one), 0 off, 1 on */
    int flush_l2;
    int ceilings, gemm_n, ceil_reps;
    long copy_mib;
    double peak_tflops, peak_gbs; /* override the nominal ceilings */
    int skip_masked;   /* EMBER_FORWARD_SKIP_MASKED: padding removal */
    int valid_tokens;  /* with skip_masked: pass each set's count as ember_inputs.valid_tokens */
    int async;         /* EMBER_FORWARD_ASYNC: no per-call synchronisation */
    int no_graphs;     /* ember_load_options.cuda_graphs = 0 */
    int tuning;        /* ember_load_options.tuning: -1 (EMBER_TUNE), 0, 1 */
    int tuning_report; /* print every tuning choice and candidate time */
    const char *tuning_load, *tuning_save;
} bench_opts;

static void usage(FILE *f) {
    fputs(
        "usage: ember_bench (--preset bert-base|bert-large|minilm | --model DIR) [options]\n"
        "  --backend cuda|cpu|reference   default: cuda when built with CUDA and a GPU is visible\n"
        "  --dtype f16|bf16|f32      default: f16 on cuda, f32 on cpu\n"
        "  --batch N --seq N         default 32 x 128 (taken from --inputs when given)\n"
        "  --lengths full|uniform:LO:HI   valid length per sequence, uniform in [LO,HI]*seq\n"
        "                            (right padding); default full\n"
        "  --inputs FILE             safetensors with input_ids and attention_mask, I64 or\n"
        "                            I32, shape [B,S] or [R,B,S] (R rotating sets)\n"
        "  --warmup N --iters N      default 20 / 200 on cuda, 1 / 3 on cpu\n"
        "  --rotate R                input sets cycled through (default 4)\n"
        "  --seed N                  weights (presets) and inputs (default 1)\n"
        "  --device N                CUDA device ordinal (default 0)\n"
        "  --pooler auto|on|off      compute pooler_output too (auto: if the model has one)\n"
        "  --flush-l2                overwrite 2x L2 before each timed call (cuda)\n"
        "  --ceilings                measure GEMM TFLOP/s and copy GB/s in this run (cuda)\n"
        "  --gemm-n N --copy-mib N --ceil-reps N   ceiling sizes (8192, 2048, 20)\n"
        "  --peak-tflops X --peak-gbs Y   replace the nominal ceilings (800, 3000)\n"
        "  --skip-masked             padding removal (EMBER_FORWARD_SKIP_MASKED)\n"
        "  --valid-tokens            with --skip-masked: pass each call's count of valid\n"
        "                            tokens (ember_inputs.valid_tokens), as a pipeline with a\n"
        "                            host tokenizer can: no read-back sync on cuda\n"
        "  --async                   no per-call sync (EMBER_FORWARD_ASYNC); one sync after\n"
        "                            the timed loop, events still per call (cuda)\n"
        "  --no-graphs               cuda_graphs = 0: plain launches every call (cuda)\n"
        "  --tuning on|off           time each op's candidates at a shape's first call (a\n"
        "                            warm-up call), or keep the defaults; default EMBER_TUNE, on\n"
        "  --tuning-report           print every op's choice and each candidate's time (cuda)\n"
        "  --tuning-load FILE --tuning-save FILE   read choices before / write them after\n"
        "  --json FILE               also write the results as JSON\n"
        "  --save-output FILE        write last_hidden_state of input set 0 (safetensors)\n",
        f);
}

static const char *next_arg(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) bench_die("%s needs a value (see --help)", argv[*i]);
    return argv[++*i];
}

static long parse_long(const char *flag, const char *s, long lo, long hi) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        bench_die("%s: '%s' is not an integer in [%ld, %ld]", flag, s, lo, hi);
    return v;
}

static double parse_double(const char *flag, const char *s) {
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0.0)) bench_die("%s: '%s' is not a positive number", flag, s);
    return v;
}

static void parse_lengths(const char *s, bench_opts *o) {
    if (strcmp(s, "full") == 0) {
        o->uniform = 0;
        return;
    }
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    char *lo = NULL, *hi = NULL, *end1 = NULL, *end2 = NULL;
    if (strncmp(buf, "uniform:", 8) == 0 && (lo = buf + 8) && (hi = strchr(lo, ':')) != NULL) {
        *hi++ = '\0';
        o->len_lo = strtod(lo, &end1);
        o->len_hi = strtod(hi, &end2);
        if (end1 != lo && !*end1 && end2 != hi && !*end2 && o->len_lo > 0.0 &&
            o->len_lo <= o->len_hi && o->len_hi <= 1.0) {
            o->uniform = 1;
            return;
        }
    }
    bench_die("--lengths: '%s' is not 'full' or 'uniform:LO:HI' with 0 < LO <= HI <= 1", s);
}

static void parse_args(int argc, char **argv, bench_opts *o) {
    memset(o, 0, sizeof *o);
    o->tuning = -1;
    o->batch = 32;
    o->seq = 128;
    o->rotate = 4;
    o->seed = 1;
    o->pooler = -1;
    o->gemm_n = 8192;
    o->copy_mib = 2048;
    o->ceil_reps = 20;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--model")) {
            o->model_dir = next_arg(argc, argv, &i);
        } else if (!strcmp(a, "--preset")) {
            o->preset = next_arg(argc, argv, &i);
        } else if (!strcmp(a, "--backend")) {
            const char *v = next_arg(argc, argv, &i);
            if (!strcmp(v, "cuda")) o->backend = EMBER_BACKEND_CUDA;
            else if (!strcmp(v, "cpu")) o->backend = EMBER_BACKEND_CPU;
            else if (!strcmp(v, "reference")) o->backend = EMBER_BACKEND_REFERENCE;
            else bench_die("--backend: '%s' is not cuda, cpu or reference", v);
            o->backend_set = 1;
        } else if (!strcmp(a, "--dtype")) {
            const char *v = next_arg(argc, argv, &i);
            if (!strcmp(v, "f16") || !strcmp(v, "fp16")) o->dtype = EMBER_DTYPE_F16;
            else if (!strcmp(v, "bf16")) o->dtype = EMBER_DTYPE_BF16;
            else if (!strcmp(v, "f32") || !strcmp(v, "fp32")) o->dtype = EMBER_DTYPE_F32;
            else bench_die("--dtype: '%s' is not f16, bf16 or f32", v);
            o->dtype_set = 1;
        } else if (!strcmp(a, "--batch")) {
            o->batch = (int)parse_long(a, next_arg(argc, argv, &i), 1, 1 << 20);
            o->batch_set = 1;
        } else if (!strcmp(a, "--seq")) {
            o->seq = (int)parse_long(a, next_arg(argc, argv, &i), 1, 1 << 20);
            o->seq_set = 1;
        } else if (!strcmp(a, "--lengths")) {
            parse_lengths(next_arg(argc, argv, &i), o);
        } else if (!strcmp(a, "--inputs")) {
            o->inputs_path = next_arg(argc, argv, &i);
        } else if (!strcmp(a, "--warmup")) {
            o->warmup = (int)parse_long(a, next_arg(argc, argv, &i), 0, 1000000);
            o->warmup_set = 1;
        } else if (!strcmp(a, "--iters")) {
            o->iters = (int)parse_long(a, next_arg(argc, argv, &i), 1, 1000000);
            o->iters_set = 1;
        } else if (!strcmp(a, "--rotate")) {
            o->rotate = (int)parse_long(a, next_arg(argc, argv, &i), 1, 1024);
        } else if (!strcmp(a, "--seed")) {
            o->seed = (uint64_t)parse_long(a, next_arg(argc, argv, &i), 0, 0x7FFFFFFFL);
        } else if (!strcmp(a, "--device")) {
            o->device = (int)parse_long(a, next_arg(argc, argv, &i), 0, 1024);
        } else if (!strcmp(a, "--pooler")) {
            const char *v = next_arg(argc, argv, &i);
            if (!strcmp(v, "auto")) o->pooler = -1;
            else if (!strcmp(v, "on")) o->pooler = 1;
            else if (!strcmp(v, "off")) o->pooler = 0;
            else bench_die("--pooler: '%s' is not auto, on or off", v);
        } else if (!strcmp(a, "--flush-l2")) {
            o->flush_l2 = 1;
        } else if (!strcmp(a, "--ceilings")) {
            o->ceilings = 1;
        } else if (!strcmp(a, "--gemm-n")) {
            o->gemm_n = (int)parse_long(a, next_arg(argc, argv, &i), 256, 32768);
        } else if (!strcmp(a, "--copy-mib")) {
            o->copy_mib = parse_long(a, next_arg(argc, argv, &i), 64, 1L << 20);
        } else if (!strcmp(a, "--ceil-reps")) {
            o->ceil_reps = (int)parse_long(a, next_arg(argc, argv, &i), 1, 10000);
        } else if (!strcmp(a, "--peak-tflops")) {
            o->peak_tflops = parse_double(a, next_arg(argc, argv, &i));
        } else if (!strcmp(a, "--peak-gbs")) {
            o->peak_gbs = parse_double(a, next_arg(argc, argv, &i));
        } else if (!strcmp(a, "--skip-masked")) {
            o->skip_masked = 1;
        } else if (!strcmp(a, "--valid-tokens")) {
            o->valid_tokens = 1;
        } else if (!strcmp(a, "--async")) {
            o->async = 1;
        } else if (!strcmp(a, "--no-graphs")) {
            o->no_graphs = 1;
        } else if (!strcmp(a, "--tuning")) {
            const char *v = next_arg(argc, argv, &i);
            if (!strcmp(v, "on")) o->tuning = 1;
            else if (!strcmp(v, "off")) o->tuning = 0;
            else bench_die("--tuning: '%s' is not on or off", v);
        } else if (!strcmp(a, "--tuning-report")) {
            o->tuning_report = 1;
        } else if (!strcmp(a, "--tuning-load")) {
            o->tuning_load = next_arg(argc, argv, &i);
        } else if (!strcmp(a, "--tuning-save")) {
            o->tuning_save = next_arg(argc, argv, &i);
        } else if (!strcmp(a, "--json")) {
            o->json_path = next_arg(argc, argv, &i);
        } else if (!strcmp(a, "--save-output")) {
            o->save_output = next_arg(argc, argv, &i);
        } else {
            usage(stderr);
            bench_die("unknown argument '%s'", a);
        }
    }
    if (!o->model_dir == !o->preset) bench_die("give exactly one of --model DIR and --preset NAME");
}

/* ---- model ------------------------------------------------------------------------------- */

static int preset_config(const char *name, ember_config *c) {
    memset(c, 0, sizeof *c);
    c->vocab_size = 30522;
    c->max_position_embeddings = 512;
    c->type_vocab_size = 2;
    c->pad_token_id = 0;
    c->layer_norm_eps = 1e-12;
    c->hidden_act = EMBER_ACT_GELU;
    c->has_pooler = 1;
    if (!strcmp(name, "bert-base")) {
        c->num_hidden_layers = 12, c->hidden_size = 768, c->num_attention_heads = 12;
        c->intermediate_size = 3072;
    } else if (!strcmp(name, "bert-large")) {
        c->num_hidden_layers = 24, c->hidden_size = 1024, c->num_attention_heads = 16;
        c->intermediate_size = 4096;
    } else if (!strcmp(name, "minilm")) { /* all-MiniLM-L6-v2 shapes */
        c->num_hidden_layers = 6, c->hidden_size = 384, c->num_attention_heads = 12;
        c->intermediate_size = 1536;
    } else {
        return 0;
    }
    return 1;
}

static const char *dtype_name(ember_dtype d) {
    return d == EMBER_DTYPE_F16 ? "f16" : d == EMBER_DTYPE_BF16 ? "bf16" : "f32";
}

/* ---- inputs ------------------------------------------------------------------------------ */

typedef struct input_sets {
    int sets, batch, seq;
    int32_t *ids;  /* [sets,B,S] */
    int32_t *mask; /* [sets,B,S] */
    int *lengths;  /* [sets,B]: ones in each mask row */
} input_sets;

static void count_lengths(input_sets *in) {
    size_t rows = (size_t)in->sets * in->batch;
    in->lengths = calloc(rows, sizeof *in->lengths);
    if (!in->lengths) bench_die("out of host memory");
    for (size_t r = 0; r < rows; r++)
        for (int t = 0; t < in->seq; t++) in->lengths[r] += in->mask[r * in->seq + t] != 0;
}

static void read_inputs_file(const char *path, input_sets *in) {
    ember_st_file *f = NULL;
    bench_check(ember_st_open(path, &f), "opening --inputs");
    const ember_st_tensor *ids = ember_st_find(f, "input_ids");
    const ember_st_tensor *mask = ember_st_find(f, "attention_mask");
    if (!ids) bench_die("%s: no tensor 'input_ids'", path);
    if (ids->ndim != 2 && ids->ndim != 3) bench_die("%s: input_ids must be [B,S] or [R,B,S]", path);
    in->sets = ids->ndim == 3 ? (int)ids->shape[0] : 1;
    in->batch = (int)ids->shape[ids->ndim - 2];
    in->seq = (int)ids->shape[ids->ndim - 1];
    if (in->sets < 1 || in->batch < 1 || in->seq < 1) bench_die("%s: empty input_ids", path);
    size_t n = (size_t)in->sets * in->batch * in->seq;
    in->ids = malloc(n * sizeof *in->ids);
    in->mask = malloc(n * sizeof *in->mask);
    if (!in->ids || !in->mask) bench_die("out of host memory");
    bench_check(ember_st_to_i32(ids, in->ids), "reading input_ids");
    if (mask) {
        if (mask->ndim != ids->ndim || memcmp(mask->shape, ids->shape, sizeof(int64_t) * ids->ndim))
            bench_die("%s: attention_mask and input_ids differ in shape", path);
        bench_check(ember_st_to_i32(mask, in->mask), "reading attention_mask");
        for (size_t i = 0; i < n; i++)
            if (in->mask[i] != 0 && in->mask[i] != 1) bench_die("%s: attention_mask is not 0/1", path);
    } else {
        for (size_t i = 0; i < n; i++) in->mask[i] = 1;
    }
    ember_st_close(f);
    count_lengths(in);
}

/* Random ids in [1, V) (never zeros) on the valid tokens, pad_token_id after them. */
static void make_inputs(const bench_opts *o, const ember_config *c, input_sets *in) {
    in->sets = o->rotate;
    in->batch = o->batch;
    in->seq = o->seq;
    size_t n = (size_t)in->sets * in->batch * in->seq;
    in->ids = malloc(n * sizeof *in->ids);
    in->mask = malloc(n * sizeof *in->mask);
    if (!in->ids || !in->mask) bench_die("out of host memory");
    uint64_t rng = o->seed * 0x2545F4914F6CDD1Dull + 17;
    int pad = c->pad_token_id >= 0 && c->pad_token_id < c->vocab_size ? c->pad_token_id : 0;
    uint64_t span = c->vocab_size > 1 ? (uint64_t)c->vocab_size - 1 : 1;
    for (size_t row = 0; row < (size_t)in->sets * in->batch; row++) {
        int len = in->seq;
        if (o->uniform) {
            double frac = o->len_lo + (o->len_hi - o->len_lo) * bench_rand_unit(&rng);
            len = (int)ceil(frac * in->seq);
            len = len < 1 ? 1 : len > in->seq ? in->seq : len;
        }
        for (int t = 0; t < in->seq; t++) {
            size_t k = row * in->seq + t;
            int valid = t < len;
            in->ids[k] = valid ? (int32_t)(c->vocab_size > 1 ? 1 + bench_rand_u64(&rng) % span : 0)
                               : pad;
            in->mask[k] = valid;
        }
    }
    count_lengths(in);
}

/* ---- timing ------------------------------------------------------------------------------ */

typedef struct bench_run {
    double *ev_ms, *wall_ms; /* [iters]; ev_ms NULL on the CPU backend */
    double first_ms;         /* wall time of the first (warm-up) call: tuning happens there */
    size_t weight_bytes, workspace_bytes;
    size_t io_bytes_one;     /* one input set + the outputs                      */
    size_t io_bytes_all;     /* every rotating set + the outputs                 */
    double meminfo_load;     /* device bytes taken by the load (cudaMemGetInfo)   */
    double meminfo_peak;     /* largest taken over the run, bench buffers removed */
} bench_run;

static void save_output(const char *path, const float *h, const float *pool, int B, int S, int H) {
    ember_st_tensor t[2];
    memset(t, 0, sizeof t);
    t[0].name = "last_hidden_state";
    t[0].dtype = EMBER_ST_F32;
    t[0].ndim = 3;
    t[0].shape[0] = B, t[0].shape[1] = S, t[0].shape[2] = H;
    t[0].data = h;
    t[0].nbytes = sizeof(float) * B * S * H;
    t[1].name = "pooler_output";
    t[1].dtype = EMBER_ST_F32;
    t[1].ndim = 2;
    t[1].shape[0] = B, t[1].shape[1] = H;
    t[1].data = pool;
    t[1].nbytes = sizeof(float) * B * H;
    bench_check(ember_st_write(path, t, pool ? 2 : 1, NULL, NULL, 0), "--save-output");
}

/* ember_inputs.valid_tokens for input set s (0 = not given). */
static int set_valid_tokens(const bench_opts *o, const input_sets *in, int s) {
    if (!o->skip_masked || !o->valid_tokens) return 0;
    int n = 0;
    for (int b = 0; b < in->batch; b++) n += in->lengths[(size_t)s * in->batch + b];
    return n;
}

/* The EMBER_FORWARD_* flags of the timed calls (ASYNC only for the timed loop on cuda). */
static unsigned forward_flags(const bench_opts *o) {
    return (o->skip_masked ? EMBER_FORWARD_SKIP_MASKED : 0u) | (o->async ? EMBER_FORWARD_ASYNC : 0u);
}

static void run_cpu(ember_model *m, const bench_opts *o, const input_sets *in, int H, int pooler,
                    bench_run *r) {
    size_t bs = (size_t)in->batch * in->seq;
    float *out = malloc(sizeof(float) * bs * H);
    float *pool = pooler ? malloc(sizeof(float) * in->batch * H) : NULL;
    if (!out || (pooler && !pool)) bench_die("out of host memory for the outputs");
    r->wall_ms = calloc((size_t)o->iters, sizeof(double));
    if (!r->wall_ms) bench_die("out of host memory");
    ember_outputs outs = {.last_hidden_state = out, .pooler_output = pool};
    for (int i = 0; i < o->warmup + o->iters; i++) {
        int s = i % in->sets;
        ember_inputs inp = {.batch = in->batch, .seq_len = in->seq, .input_ids = in->ids + s * bs,
                            .attention_mask = in->mask + s * bs, .flags = forward_flags(o),
                            .valid_tokens = set_valid_tokens(o, in, s)};
        double t0 = bench_now_s();
        bench_check(ember_forward(m, &inp, &outs, NULL), "ember_forward");
        double t1 = bench_now_s();
        if (i >= o->warmup) r->wall_ms[i - o->warmup] = (t1 - t0) * 1e3;
        if (i == 0) r->first_ms = (t1 - t0) * 1e3;
    }
    if (o->save_output) {
        ember_inputs inp = {.batch = in->batch, .seq_len = in->seq, .input_ids = in->ids,
                            .attention_mask = in->mask,
                            .flags = o->skip_masked ? EMBER_FORWARD_SKIP_MASKED : 0u};
        bench_check(ember_forward(m, &inp, &outs, NULL), "ember_forward");
        save_output(o->save_output, out, pool, in->batch, in->seq, H);
    }
    r->io_bytes_one = sizeof(float) * (bs * H + (pooler ? (size_t)in->batch * H : 0)) +
                      2 * sizeof(int32_t) * bs;
    r->io_bytes_all = r->io_bytes_one;
    r->meminfo_load = r->meminfo_peak = NAN;
    free(out);
    free(pool);
}

#ifdef EMBER_WITH_CUDA
static void run_cuda(ember_model *m, const bench_opts *o, const input_sets *in, int H, int pooler,
                     const bench_device *dev, size_t free_before_load, bench_run *r) {
    size_t free_b = 0, total_b = 0;
    CK(cudaMemGetInfo(&free_b, &total_b));
    r->meminfo_load = (double)free_before_load - (double)free_b;

    size_t bs = (size_t)in->batch * in->seq;
    int sets = in->sets < o->rotate ? o->rotate : in->sets; /* a 2-D file is replicated */
    int32_t *d_ids = NULL, *d_mask = NULL;
    float *d_out = NULL, *d_pool = NULL;
    CK(cudaMalloc((void **)&d_ids, sizeof(int32_t) * bs * sets));
    CK(cudaMalloc((void **)&d_mask, sizeof(int32_t) * bs * sets));
    for (int s = 0; s < sets; s++) {
        int src = s % in->sets;
        CK(cudaMemcpy(d_ids + s * bs, in->ids + src * bs, sizeof(int32_t) * bs, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(d_mask + s * bs, in->mask + src * bs, sizeof(int32_t) * bs, cudaMemcpyHostToDevice));
    }
    CK(cudaMalloc((void **)&d_out, sizeof(float) * bs * H));
    CK(cudaMemset(d_out, 0xFF, sizeof(float) * bs * H)); /* NaN: unwritten output shows */
    if (pooler) CK(cudaMalloc((void **)&d_pool, sizeof(float) * in->batch * H));
    size_t out_bytes = sizeof(float) * (bs * H + (pooler ? (size_t)in->batch * H : 0));
    r->io_bytes_one = out_bytes + 2 * sizeof(int32_t) * bs;
    r->io_bytes_all = out_bytes + 2 * sizeof(int32_t) * bs * sets;

    void *flush = NULL;
    size_t flush_bytes = 2 * dev->l2_bytes;
    if (o->flush_l2 && flush_bytes) CK(cudaMalloc(&flush, flush_bytes));

    cudaStream_t stream;
    CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    /* one event pair per timed call: with --async nothing is read before the loop ends */
    const int total = o->warmup + o->iters;
    cudaEvent_t *ev = malloc(sizeof(cudaEvent_t) * 2 * (size_t)o->iters);
    r->ev_ms = calloc((size_t)o->iters, sizeof(double));
    r->wall_ms = calloc((size_t)o->iters, sizeof(double));
    if (!ev || !r->ev_ms || !r->wall_ms) bench_die("out of host memory");
    for (int i = 0; i < 2 * o->iters; i++) CK(cudaEventCreate(&ev[i]));

    size_t peak_taken = 0;
    ember_outputs outs = {.last_hidden_state = d_out, .pooler_output = d_pool};
    for (int i = 0; i < total; i++) {
        int s = i % sets;
        const int timed = i >= o->warmup, k = i - o->warmup;
        ember_inputs inp = {.batch = in->batch, .seq_len = in->seq, .input_ids = d_ids + s * bs,
                            .attention_mask = d_mask + s * bs, .flags = forward_flags(o),
                            .valid_tokens = set_valid_tokens(o, in, s % in->sets)};
        if (flush) {
            CK(cudaMemsetAsync(flush, i & 0xFF, flush_bytes, stream));
            if (!o->async) CK(cudaStreamSynchronize(stream));
        }
        double t0 = bench_now_s();
        if (timed) CK(cudaEventRecord(ev[2 * k], stream));
        bench_check(ember_forward(m, &inp, &outs, (ember_stream)stream), "ember_forward");
        if (timed) CK(cudaEventRecord(ev[2 * k + 1], stream));
        if (!o->async && timed) CK(cudaEventSynchronize(ev[2 * k + 1]));
        double t1 = bench_now_s();
        if (timed) r->wall_ms[k] = (t1 - t0) * 1e3; /* --async: the enqueue time */
        if (i == 0) r->first_ms = (t1 - t0) * 1e3;
        if (o->async && i == o->warmup - 1) /* warm-up errors surface before the timing */
            bench_check(ember_model_sync(m, (ember_stream)stream), "ember_model_sync");
        if (i == 0 || i == total - 1) {
            CK(cudaMemGetInfo(&free_b, &total_b));
            size_t taken = free_before_load > free_b ? free_before_load - free_b : 0;
            if (taken > peak_taken) peak_taken = taken;
        }
    }
    /* --async: the one wait of the timed loop (and its error report) */
    bench_check(ember_model_sync(m, (ember_stream)stream), "ember_model_sync");
    for (int k = 0; k < o->iters; k++) {
        float ms = 0.0f;
        CK(cudaEventElapsedTime(&ms, ev[2 * k], ev[2 * k + 1]));
        r->ev_ms[k] = ms;
    }
    for (int i = 0; i < 2 * o->iters; i++) CK(cudaEventDestroy(ev[i]));
    free(ev);
    CK(cudaGetLastError());
    size_t bench_bufs = r->io_bytes_all + (flush ? flush_bytes : 0);
    r->meminfo_peak = (double)peak_taken - (double)bench_bufs;

    if (o->save_output) {
        ember_inputs inp = {.batch = in->batch, .seq_len = in->seq, .input_ids = d_ids,
                            .attention_mask = d_mask,
                            .flags = o->skip_masked ? EMBER_FORWARD_SKIP_MASKED : 0u};
        bench_check(ember_forward(m, &inp, &outs, (ember_stream)stream), "ember_forward");
        float *h = malloc(sizeof(float) * bs * H);
        float *p = pooler ? malloc(sizeof(float) * in->batch * H) : NULL;
        if (!h || (pooler && !p)) bench_die("out of host memory");
        CK(cudaMemcpy(h, d_out, sizeof(float) * bs * H, cudaMemcpyDeviceToHost));
        if (p) CK(cudaMemcpy(p, d_pool, sizeof(float) * in->batch * H, cudaMemcpyDeviceToHost));
        save_output(o->save_output, h, p, in->batch, in->seq, H);
        free(h);
        free(p);
    }
    CK(cudaStreamDestroy(stream));
    CK(cudaFree(flush));
    CK(cudaFree(d_ids));
    CK(cudaFree(d_mask));
    CK(cudaFree(d_out));
    CK(cudaFree(d_pool));
}
#endif

/* ---- report ------------------------------------------------------------------------------ */

typedef struct floor_t {
    double s;       /* seconds; NAN when a ceiling is unknown */
    int compute;    /* 1: the FLOP term is the larger        */
    double flop_s, byte_s;
} floor_t;

static floor_t floor_of(double flops, double bytes, double tflops, double gbs) {
    floor_t f = {NAN, 0, NAN, NAN};
    if (tflops > 0.0) f.flop_s = flops / (tflops * 1e12);
    if (gbs > 0.0) f.byte_s = bytes / (gbs * 1e9);
    if (tflops > 0.0 && gbs > 0.0) {
        f.compute = f.flop_s >= f.byte_s;
        f.s = f.compute ? f.flop_s : f.byte_s;
    }
    return f;
}

typedef struct report {
    const bench_opts *o;
    const char *model_name;
    ember_config cfg;
    ember_backend backend;
    ember_dtype dtype;
    int pooler, sets;
    double valid_tokens, padded_tokens; /* per forward, averaged over the sets */
    bench_work work;                    /* averaged over the sets              */
    bench_stats ev, wall;               /* ms */
    int have_ev;
    bench_run run;
    int have_dev;
    bench_device dev;
    bench_ceilings ceil;
    double nominal_tflops, nominal_gbs;
    floor_t nom_valid, nom_padded, meas_valid, meas_padded;
    char command[2048];
} report;

static void print_floor(const char *label, floor_t f, double median_ms) {
    if (isnan(f.s)) {
        printf("  %-28s n/a (a ceiling is unknown)\n", label);
        return;
    }
    printf("  %-28s %9.4f ms (%s-bound; FLOP term %.4f ms, byte term %.4f ms)  time/floor %.2f\n",
           label, f.s * 1e3, f.compute ? "compute" : "memory", f.flop_s * 1e3, f.byte_s * 1e3,
           median_ms / (f.s * 1e3));
}

static const char *backend_name(ember_backend b) {
    return b == EMBER_BACKEND_CUDA ? "cuda" : b == EMBER_BACKEND_REFERENCE ? "reference" : "cpu";
}

static void print_report(const report *R) {
    const ember_config *c = &R->cfg;
    const bench_work *w = &R->work;
    printf("command: %s\n", R->command);
    printf("model: %s  L%d H%d NH%d I%d V%d P%d  pooler %s\n", R->model_name,
           c->num_hidden_layers, c->hidden_size, c->num_attention_heads, c->intermediate_size,
           c->vocab_size, c->max_position_embeddings, R->pooler ? "computed" : "not computed");
    printf("backend: %s  dtype: %s\n", backend_name(R->backend),
           dtype_name(R->dtype));
    if (R->have_dev)
        printf("device: %s (sm_%d%d, %d SMs, peak clock %d MHz, L2 %.1f MiB, %.1f GiB), "
               "driver API %d.%d, runtime %d.%d\n",
               R->dev.name, R->dev.cc_major, R->dev.cc_minor, R->dev.sm_count,
               R->dev.peak_clock_mhz, R->dev.l2_bytes / 1048576.0, R->dev.total_bytes / 1073741824.0,
               R->dev.driver_version / 1000, R->dev.driver_version % 1000 / 10,
               R->dev.runtime_version / 1000, R->dev.runtime_version % 1000 / 10);
    printf("shape: batch %d x seq %d, lengths %s, valid tokens %.1f of %.0f (%.1f%%), %d input sets\n",
           R->o->batch, R->o->seq,
           R->o->inputs_path ? "from --inputs" : R->o->uniform ? "uniform" : "full",
           R->valid_tokens, R->padded_tokens, 100.0 * R->valid_tokens / R->padded_tokens, R->sets);
    if (R->o->uniform && !R->o->inputs_path)
        printf("  lengths uniform in [%.3g, %.3g] x seq, right padding\n", R->o->len_lo, R->o->len_hi);
    printf("runs: warmup %d, timed %d, seed %llu%s\n", R->o->warmup, R->o->iters,
           (unsigned long long)R->o->seed, R->o->flush_l2 ? ", L2 flushed before each call" : "");
    printf("forward: padding removal %s; %s; CUDA graphs %s\n",
           !R->o->skip_masked    ? "off"
           : R->o->valid_tokens ? "on (EMBER_FORWARD_SKIP_MASKED, valid_tokens given)"
                                : "on (EMBER_FORWARD_SKIP_MASKED)",
           R->o->async ? "EMBER_FORWARD_ASYNC (one wait after the timed loop)"
                       : "each call waits for its stream",
           R->backend != EMBER_BACKEND_CUDA ? "n/a" : R->o->no_graphs ? "off" : "on");

    printf("work (FLOPs/token = L*(8H^2 + 4HI + 4SH) = L*(24H^2 + 4SH) when I = 4H):\n");
    printf("  FLOPs/token at S=%d: %.2f MFLOP\n", R->o->seq, bench_flops_per_token(c, R->o->seq) / 1e6);
    printf("  FLOPs/forward: padded %.2f GFLOP, valid tokens %.2f GFLOP\n", w->flops_padded / 1e9,
           w->flops_valid / 1e9);
    printf("  bytes floor: weights %.2f MB + embedding rows %.2f MB (valid %.2f MB) + ids/mask/outputs "
           "%.2f MB\n",
           w->bytes_weights / 1e6, w->bytes_embed_padded / 1e6, w->bytes_embed_valid / 1e6,
           w->bytes_io / 1e6);

    printf("ceilings:\n");
    char tf[32] = "n/a", gb[32] = "n/a";
    if (R->nominal_tflops > 0.0) snprintf(tf, sizeof tf, "%.1f", R->nominal_tflops);
    if (R->nominal_gbs > 0.0) snprintf(gb, sizeof gb, "%.0f", R->nominal_gbs);
    printf("  nominal: %s TFLOP/s, %s GB/s (%s)\n", tf, gb,
           R->o->peak_tflops > 0.0 || R->o->peak_gbs > 0.0 ? "from the command line"
           : R->backend == EMBER_BACKEND_CUDA ? "the issue's H100 figures; none for f32 compute"
                                               : "none for the CPU: give --peak-tflops and --peak-gbs");
    if (R->ceil.measured)
        printf("  measured: GEMM %d^3 %s (fp32 accumulate) %.1f TFLOP/s [p10 %.1f, p90 %.1f]; "
               "D2D copy %.0f MiB %.0f GB/s read+write [p10 %.0f, p90 %.0f]; median of %d\n",
               R->ceil.gemm_n, dtype_name(R->dtype), R->ceil.gemm_tflops, R->ceil.gemm_tflops_p10,
               R->ceil.gemm_tflops_p90, R->ceil.copy_bytes / 1048576.0, R->ceil.copy_gbs,
               R->ceil.copy_gbs_p10, R->ceil.copy_gbs_p90, R->ceil.reps);
    else
        printf("  measured: not measured (pass --ceilings on the GPU)\n");

    const bench_stats *t = R->have_ev ? &R->ev : &R->wall;
    printf("time per forward (%s, ms): median %.4f  p10 %.4f  p90 %.4f  min %.4f  max %.4f  mean %.4f\n",
           R->have_ev ? "cuda events" : "host clock", t->median, t->p10, t->p90, t->min, t->max,
           t->mean);
    if (R->have_ev)
        printf("host wall per call (ms):      median %.4f  p10 %.4f  p90 %.4f  min %.4f\n",
               R->wall.median, R->wall.p10, R->wall.p90, R->wall.min);
    double sec = t->median * 1e-3;
    int giga = R->backend != EMBER_BACKEND_CUDA; /* CPU rates read better in GFLOP/s */
    printf("throughput: %.0f valid tokens/s (%.0f padded tokens/s); achieved %.2f %s on valid "
           "FLOPs, %.2f %s on padded FLOPs\n",
           R->valid_tokens / sec, R->padded_tokens / sec, w->flops_valid / sec / (giga ? 1e9 : 1e12),
           giga ? "GFLOP/s" : "TFLOP/s", w->flops_padded / sec / (giga ? 1e9 : 1e12),
           giga ? "GFLOP/s" : "TFLOP/s");
    printf("floor (max of FLOPs/peak and bytes/bandwidth; time/floor = median / floor):\n");
    print_floor("nominal, valid tokens:", R->nom_valid, t->median);
    print_floor("nominal, padded:", R->nom_padded, t->median);
    print_floor("measured, valid tokens:", R->meas_valid, t->median);
    print_floor("measured, padded:", R->meas_padded, t->median);

    printf("memory: weights %.2f MiB + workspace %.2f MiB (ember_model_memory) + one input set and "
           "outputs %.2f MiB = %.2f MiB\n",
           R->run.weight_bytes / 1048576.0, R->run.workspace_bytes / 1048576.0,
           R->run.io_bytes_one / 1048576.0,
           (R->run.weight_bytes + R->run.workspace_bytes + R->run.io_bytes_one) / 1048576.0);
    if (!isnan(R->run.meminfo_peak))
        printf("  cudaMemGetInfo: load took %.2f MiB; peak over the run %.2f MiB (bench buffers "
               "removed; includes cuBLAS/driver allocations)\n",
               R->run.meminfo_load / 1048576.0, R->run.meminfo_peak / 1048576.0);
    if (R->have_dev && !R->o->flush_l2 && w->bytes_weights < (double)R->dev.l2_bytes)
        printf("note: the encoder weights (%.1f MiB) fit in L2 (%.1f MiB): back-to-back calls may "
               "read them from L2; --flush-l2 measures the cold case\n",
               w->bytes_weights / 1048576.0, R->dev.l2_bytes / 1048576.0);
}

/* Minimal JSON writer. */
typedef struct jw {
    FILE *f;
    int depth;
    int first[16];
} jw;

static void j_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

static void j_key(jw *w, const char *k) {
    if (!w->first[w->depth]) fputc(',', w->f);
    w->first[w->depth] = 0;
    fprintf(w->f, "\n%*s", 2 * w->depth, "");
    j_string(w->f, k);
    fputs(": ", w->f);
}

static void j_open(jw *w, const char *k) {
    if (k) j_key(w, k);
    fputc('{', w->f);
    w->first[++w->depth] = 1;
}

static void j_close(jw *w) {
    w->depth--;
    fprintf(w->f, "\n%*s}", 2 * w->depth, "");
}

static void j_num(jw *w, const char *k, double v) {
    j_key(w, k);
    if (isfinite(v)) fprintf(w->f, "%.10g", v);
    else fputs("null", w->f);
}

static void j_str(jw *w, const char *k, const char *v) {
    j_key(w, k);
    j_string(w->f, v);
}

static void j_stats(jw *w, const char *k, const bench_stats *s) {
    j_open(w, k);
    j_num(w, "median", s->median);
    j_num(w, "p10", s->p10);
    j_num(w, "p90", s->p90);
    j_num(w, "min", s->min);
    j_num(w, "max", s->max);
    j_num(w, "mean", s->mean);
    j_num(w, "n", s->n);
    j_close(w);
}

static void j_floor(jw *w, const char *k, floor_t f, double median_ms) {
    j_open(w, k);
    j_num(w, "ms", f.s * 1e3);
    j_str(w, "bound", isnan(f.s) ? "n/a" : f.compute ? "compute" : "memory");
    j_num(w, "flop_term_ms", f.flop_s * 1e3);
    j_num(w, "byte_term_ms", f.byte_s * 1e3);
    j_num(w, "time_over_floor", median_ms / (f.s * 1e3));
    j_close(w);
}

static void write_json(const char *path, const report *R) {
    FILE *f = fopen(path, "w");
    if (!f) bench_die("--json: cannot write %s: %s", path, strerror(errno));
    jw w = {.f = f};
    const ember_config *c = &R->cfg;
    const bench_stats *t = R->have_ev ? &R->ev : &R->wall;
    j_open(&w, NULL);
    j_str(&w, "command", R->command);
    j_str(&w, "model", R->model_name);
    j_open(&w, "config");
    j_num(&w, "num_hidden_layers", c->num_hidden_layers);
    j_num(&w, "hidden_size", c->hidden_size);
    j_num(&w, "num_attention_heads", c->num_attention_heads);
    j_num(&w, "intermediate_size", c->intermediate_size);
    j_num(&w, "vocab_size", c->vocab_size);
    j_num(&w, "max_position_embeddings", c->max_position_embeddings);
    j_close(&w);
    j_str(&w, "backend", backend_name(R->backend));
    j_str(&w, "dtype", dtype_name(R->dtype));
    j_num(&w, "batch", R->o->batch);
    j_num(&w, "seq", R->o->seq);
    j_str(&w, "lengths", R->o->inputs_path ? "file" : R->o->uniform ? "uniform" : "full");
    j_num(&w, "sets", R->sets);
    j_num(&w, "warmup", R->o->warmup);
    j_num(&w, "iters", R->o->iters);
    j_num(&w, "pooler", R->pooler);
    j_num(&w, "flush_l2", R->o->flush_l2);
    j_num(&w, "skip_masked", R->o->skip_masked);
    j_num(&w, "valid_tokens_given", R->o->skip_masked && R->o->valid_tokens);
    j_num(&w, "async", R->o->async);
    j_num(&w, "cuda_graphs", R->backend == EMBER_BACKEND_CUDA && !R->o->no_graphs);
    j_num(&w, "valid_tokens", R->valid_tokens);
    j_num(&w, "padded_tokens", R->padded_tokens);
    if (R->have_dev) {
        j_open(&w, "device");
        j_str(&w, "name", R->dev.name);
        j_num(&w, "ordinal", R->dev.ordinal);
        j_num(&w, "cc", R->dev.cc_major * 10 + R->dev.cc_minor);
        j_num(&w, "sm_count", R->dev.sm_count);
        j_num(&w, "peak_clock_mhz", R->dev.peak_clock_mhz);
        j_num(&w, "l2_bytes", (double)R->dev.l2_bytes);
        j_num(&w, "total_bytes", (double)R->dev.total_bytes);
        j_num(&w, "driver_api_version", R->dev.driver_version);
        j_num(&w, "runtime_version", R->dev.runtime_version);
        j_close(&w);
    }
    j_open(&w, "work");
    j_num(&w, "flops_per_token_padded", bench_flops_per_token(c, R->o->seq));
    j_num(&w, "flops_padded", R->work.flops_padded);
    j_num(&w, "flops_valid", R->work.flops_valid);
    j_num(&w, "bytes_weights", R->work.bytes_weights);
    j_num(&w, "bytes_embed_padded", R->work.bytes_embed_padded);
    j_num(&w, "bytes_embed_valid", R->work.bytes_embed_valid);
    j_num(&w, "bytes_io", R->work.bytes_io);
    j_close(&w);
    j_str(&w, "timer", R->have_ev ? "cuda_events" : "host_clock");
    j_stats(&w, "time_ms", t);
    j_stats(&w, "wall_ms", &R->wall);
    j_num(&w, "valid_tokens_per_s", R->valid_tokens / (t->median * 1e-3));
    j_num(&w, "tflops_valid", R->work.flops_valid / (t->median * 1e-3) / 1e12);
    j_num(&w, "tflops_padded", R->work.flops_padded / (t->median * 1e-3) / 1e12);
    j_open(&w, "ceilings");
    j_num(&w, "nominal_tflops", R->nominal_tflops > 0.0 ? R->nominal_tflops : NAN);
    j_num(&w, "nominal_gbs", R->nominal_gbs > 0.0 ? R->nominal_gbs : NAN);
    j_num(&w, "measured", R->ceil.measured);
    j_num(&w, "gemm_n", R->ceil.measured ? R->ceil.gemm_n : NAN);
    j_num(&w, "gemm_tflops", R->ceil.measured ? R->ceil.gemm_tflops : NAN);
    j_num(&w, "copy_bytes", R->ceil.measured ? (double)R->ceil.copy_bytes : NAN);
    j_num(&w, "copy_gbs", R->ceil.measured ? R->ceil.copy_gbs : NAN);
    j_close(&w);
    j_open(&w, "floor");
    j_floor(&w, "nominal_valid", R->nom_valid, t->median);
    j_floor(&w, "nominal_padded", R->nom_padded, t->median);
    j_floor(&w, "measured_valid", R->meas_valid, t->median);
    j_floor(&w, "measured_padded", R->meas_padded, t->median);
    j_close(&w);
    j_open(&w, "memory");
    j_num(&w, "weight_bytes", (double)R->run.weight_bytes);
    j_num(&w, "workspace_bytes", (double)R->run.workspace_bytes);
    j_num(&w, "io_bytes_one_set", (double)R->run.io_bytes_one);
    j_num(&w, "footprint_bytes",
          (double)(R->run.weight_bytes + R->run.workspace_bytes + R->run.io_bytes_one));
    j_num(&w, "meminfo_load_bytes", R->run.meminfo_load);
    j_num(&w, "meminfo_peak_bytes", R->run.meminfo_peak);
    j_close(&w);
    j_close(&w);
    fputc('\n', f);
    if (fclose(f) != 0) bench_die("--json: error writing %s", path);
}

/* ---- tuning ------------------------------------------------------------------------------- */

/* Every op's choice and each candidate's median time, as the GPU check's tuning step shows. */
static void print_tuning(ember_model *m, double first_ms) {
    static const char *op[] = {"gemm", "ffn_in", "attention", "pdl"};
    static const char *status[] = {"ok", "WRONG", "unavailable", "not run"};
    static const char *source[] = {"timed", "imported", "fixed (tuning off)"};
    int n = 0;
    bench_check(ember_model_tuning(m, NULL, 0, &n), "ember_model_tuning");
    ember_tuning_entry *e = n ? calloc((size_t)n, sizeof *e) : NULL;
    if (n && !e) bench_die("out of host memory");
    if (n) bench_check(ember_model_tuning(m, e, n, &n), "ember_model_tuning");
    printf("tuning: %d choices; the first call (where a shape is tuned) took %.1f ms\n", n, first_ms);
    for (int i = 0; i < n; i++) {
        printf("  %-9s %-4s %-46s -> %s (%s)\n", op[e[i].op], e[i].dtype == EMBER_DTYPE_F32 ? "f32"
               : e[i].dtype == EMBER_DTYPE_F16 ? "f16" : "bf16", e[i].shape,
               e[i].candidates[e[i].choice].name, source[e[i].source]);
        for (int k = 0; k < e[i].n_candidates; k++) {
            const ember_tuning_candidate *c = &e[i].candidates[k];
            char t[32] = "-", d[32] = "-";
            if (c->time_us >= 0) snprintf(t, sizeof t, "%.2f us", c->time_us);
            if (c->rel_diff >= 0) snprintf(d, sizeof d, "%.2g", c->rel_diff);
            printf("      %c %-16s %-11s %12s   rel diff %s\n", k == e[i].choice ? '*' : ' ', c->name,
                   status[c->status], t, d);
        }
    }
    free(e);
}

/* ---- main -------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    bench_opts o;
    parse_args(argc, argv, &o);
    report R;
    memset(&R, 0, sizeof R);
    R.o = &o;
    for (int i = 0, n = 0; i < argc && n < (int)sizeof R.command - 1; i++)
        n += snprintf(R.command + n, sizeof R.command - (size_t)n, "%s%s", i ? " " : "", argv[i]);

    if (o.valid_tokens && !o.skip_masked)
        bench_die("--valid-tokens is only used with --skip-masked");
    if (!o.backend_set)
        o.backend = ember_cuda_device_count() > 0 ? EMBER_BACKEND_CUDA : EMBER_BACKEND_CPU;
    if (!o.dtype_set) o.dtype = o.backend == EMBER_BACKEND_CUDA ? EMBER_DTYPE_F16 : EMBER_DTYPE_F32;
    if (!o.warmup_set) o.warmup = o.backend == EMBER_BACKEND_CUDA ? 20 : 1;
    if (!o.iters_set) o.iters = o.backend == EMBER_BACKEND_CUDA ? 200 : 3;

    input_sets in;
    memset(&in, 0, sizeof in);
    if (o.inputs_path) {
        read_inputs_file(o.inputs_path, &in);
        if ((o.batch_set && o.batch != in.batch) || (o.seq_set && o.seq != in.seq))
            bench_die("--batch/--seq disagree with %s ([%d,%d])", o.inputs_path, in.batch, in.seq);
        o.batch = in.batch;
        o.seq = in.seq;
    }

    size_t free_before_load = 0;
    (void)free_before_load;
    if (o.backend == EMBER_BACKEND_CUDA) {
#ifdef EMBER_WITH_CUDA
        bench_device_open(o.device, &R.dev);
        R.have_dev = 1;
        if (o.ceilings) {
            bench_measure_ceilings(o.dtype, o.gemm_n, (size_t)o.copy_mib << 20, o.ceil_reps,
                                   o.seed, &R.ceil);
        }
        size_t total_b = 0;
        CK(cudaMemGetInfo(&free_before_load, &total_b));
#else
        bench_die("--backend cuda: this ember_bench was built without CUDA");
#endif
    } else if (o.ceilings) {
        fprintf(stderr, "ember_bench: --ceilings ignored on the CPU backend\n");
    }

    ember_load_options lo;
    ember_load_options_init(&lo);
    lo.backend = o.backend;
    lo.compute_dtype = o.dtype;
    lo.device = o.device;
    lo.max_batch = o.batch;
    lo.max_seq_len = o.seq;
    lo.cuda_graphs = !o.no_graphs;
    lo.tuning = o.tuning;
    ember_model *m = NULL;
    if (o.preset) {
        ember_config pc;
        if (!preset_config(o.preset, &pc)) bench_die("--preset: unknown '%s' (bert-base, bert-large, minilm)", o.preset);
        bench_check(ember_model_init_random(&pc, o.seed, &lo, &m), "ember_model_init_random");
        R.model_name = o.preset;
    } else {
        bench_check(ember_model_load(o.model_dir, &lo, &m), "ember_model_load");
        R.model_name = o.model_dir;
    }
    bench_check(ember_model_config(m, &R.cfg), "ember_model_config");
    R.backend = ember_model_backend(m);
    R.dtype = ember_model_dtype(m);
    if (o.seq > R.cfg.max_position_embeddings)
        bench_die("--seq %d exceeds max_position_embeddings %d", o.seq, R.cfg.max_position_embeddings);
    bench_check(ember_model_reserve(m, o.batch, o.seq), "ember_model_reserve");
    if (o.tuning_load) bench_check(ember_model_tuning_load(m, o.tuning_load), "--tuning-load");

    if (!o.inputs_path) make_inputs(&o, &R.cfg, &in);
    for (size_t k = 0; k < (size_t)in.sets * in.batch * in.seq; k++)
        if (in.ids[k] < 0 || in.ids[k] >= R.cfg.vocab_size)
            bench_die("input id %d at %zu is outside the vocabulary (%d)", in.ids[k], k, R.cfg.vocab_size);
    R.pooler = o.pooler < 0 ? R.cfg.has_pooler : o.pooler;
    if (R.pooler && !R.cfg.has_pooler) bench_die("--pooler on: the model has no pooler");
    int sets_run = in.sets < o.rotate && o.backend == EMBER_BACKEND_CUDA ? o.rotate : in.sets;
    R.sets = sets_run;

    /* Work per forward, averaged over the input sets. */
    size_t elem = R.dtype == EMBER_DTYPE_F32 ? 4 : 2;
    memset(&R.work, 0, sizeof R.work);
    for (int s = 0; s < in.sets; s++) {
        bench_work w;
        bench_work_count(&R.cfg, in.batch, in.seq, in.lengths + (size_t)s * in.batch, R.pooler,
                         elem, &w);
        R.work.flops_padded += w.flops_padded / in.sets;
        R.work.flops_valid += w.flops_valid / in.sets;
        R.work.bytes_weights += w.bytes_weights / in.sets;
        R.work.bytes_embed_padded += w.bytes_embed_padded / in.sets;
        R.work.bytes_embed_valid += w.bytes_embed_valid / in.sets;
        R.work.bytes_io += w.bytes_io / in.sets;
        for (int b = 0; b < in.batch; b++) R.valid_tokens += (double)in.lengths[s * in.batch + b] / in.sets;
    }
    R.padded_tokens = (double)in.batch * in.seq;

    if (o.backend == EMBER_BACKEND_CUDA) {
#ifdef EMBER_WITH_CUDA
        run_cuda(m, &o, &in, R.cfg.hidden_size, R.pooler, &R.dev, free_before_load, &R.run);
#endif
    } else {
        run_cpu(m, &o, &in, R.cfg.hidden_size, R.pooler, &R.run);
    }
    bench_check(ember_model_memory(m, &R.run.weight_bytes, &R.run.workspace_bytes), "ember_model_memory");

    if (R.run.ev_ms) {
        bench_stats_compute(R.run.ev_ms, o.iters, &R.ev);
        R.have_ev = 1;
    }
    bench_stats_compute(R.run.wall_ms, o.iters, &R.wall);

    if (o.backend == EMBER_BACKEND_CUDA) {
        R.nominal_tflops = R.dtype == EMBER_DTYPE_F32 ? 0.0 : BENCH_NOMINAL_TFLOPS_16BIT;
        R.nominal_gbs = BENCH_NOMINAL_GBS;
    }
    if (o.peak_tflops > 0.0) R.nominal_tflops = o.peak_tflops;
    if (o.peak_gbs > 0.0) R.nominal_gbs = o.peak_gbs;
    double bytes_valid = R.work.bytes_weights + R.work.bytes_embed_valid + R.work.bytes_io;
    double bytes_padded = R.work.bytes_weights + R.work.bytes_embed_padded + R.work.bytes_io;
    R.nom_valid = floor_of(R.work.flops_valid, bytes_valid, R.nominal_tflops, R.nominal_gbs);
    R.nom_padded = floor_of(R.work.flops_padded, bytes_padded, R.nominal_tflops, R.nominal_gbs);
    double mt = R.ceil.measured ? R.ceil.gemm_tflops : 0.0, mg = R.ceil.measured ? R.ceil.copy_gbs : 0.0;
    R.meas_valid = floor_of(R.work.flops_valid, bytes_valid, mt, mg);
    R.meas_padded = floor_of(R.work.flops_padded, bytes_padded, mt, mg);

    print_report(&R);
    if (o.json_path) write_json(o.json_path, &R);
    if (o.tuning_report) print_tuning(m, R.run.first_ms);
    if (o.tuning_save) bench_check(ember_model_tuning_save(m, o.tuning_save), "--tuning-save");

    ember_model_free(m);
    free(R.run.ev_ms);
    free(R.run.wall_ms);
    free(in.ids);
    free(in.mask);
    free(in.lengths);
    return 0;
}
