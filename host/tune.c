/* The tuning table, the choice among timed candidates, the output check and the tuning file
 * (see host/tune.h). Plain C, no CUDA: tests/test_tuning.cc runs all of it on the CPU. */
#define _POSIX_C_SOURCE 200809L
#include "tune.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"

/* ---- mode, table ------------------------------------------------------------------------- */

ember_status ember_tune_mode(int option, const char *env, int *mode) {
    if (option == 0 || option == 1) {
        *mode = option;
        return EMBER_OK;
    }
    if (option != -1)
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "options.tuning = %d: expected -1 (EMBER_TUNE), 0 (off) or 1 (on)",
                          option);
    if (!env || !*env || !strcmp(env, "on") || !strcmp(env, "1")) {
        *mode = 1;
        return EMBER_OK;
    }
    if (!strcmp(env, "off") || !strcmp(env, "0")) {
        *mode = 0;
        return EMBER_OK;
    }
    return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                      "EMBER_TUNE=%.64s in the environment: expected on or off", env);
}

ember_status ember_tune_pdl_mode(const char *env, int *mode) {
    if (!env || !*env || !strcmp(env, "auto")) *mode = -1;
    else if (!strcmp(env, "on") || !strcmp(env, "1")) *mode = 1;
    else if (!strcmp(env, "off") || !strcmp(env, "0")) *mode = 0;
    else
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT,
                          "EMBER_PDL=%.64s in the environment: expected on, off or auto", env);
    return EMBER_OK;
}

void ember_tuner_init(ember_tuner *t, int mode) {
    memset(t, 0, sizeof *t);
    t->mode = mode;
}

void ember_tuner_free(ember_tuner *t) {
    free(t->rec);
    t->rec = NULL;
    t->n = t->cap = 0;
}

int ember_tune_key_equal(const ember_tune_key *a, const ember_tune_key *b) {
    if (a->op != b->op || a->dtype != b->dtype) return 0;
    for (int i = 0; i < EMBER_TUNE_PARAMS; i++)
        if (a->p[i] != b->p[i]) return 0;
    return 1;
}

ember_tune_record *ember_tuner_find(ember_tuner *t, const ember_tune_key *k) {
    for (int i = 0; i < t->n; i++)
        if (ember_tune_key_equal(&t->rec[i].key, k)) return &t->rec[i];
    return NULL;
}

int ember_tuner_has_room(const ember_tuner *t) { return t->n < EMBER_TUNE_MAX_RECORDS; }

ember_status ember_tuner_put(ember_tuner *t, const ember_tune_record *r) {
    ember_tune_record *old = ember_tuner_find(t, &r->key);
    if (old) {
        *old = *r;
        return EMBER_OK;
    }
    if (!ember_tuner_has_room(t))
        return ember_fail(EMBER_ERR_CAPACITY, "the tuning table holds %d shapes already",
                          EMBER_TUNE_MAX_RECORDS);
    if (t->n == t->cap) {
        const int cap = t->cap ? 2 * t->cap : 32;
        ember_tune_record *p = realloc(t->rec, (size_t)cap * sizeof *p);
        if (!p) return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "cannot grow the tuning table");
        t->rec = p;
        t->cap = cap;
    }
    t->rec[t->n++] = *r;
    return EMBER_OK;
}

/* ---- names ------------------------------------------------------------------------------ */

int ember_tune_op_candidates(int op) {
    switch (op) {
    case EMBER_TUNE_GEMM: return EMBER_TUNE_GEMM_ALGOS;
    case EMBER_TUNE_FFN_IN: return 2;
    case EMBER_TUNE_ATTENTION: return 2;
    case EMBER_TUNE_PDL: return 2;
    default: return 0;
    }
}

void ember_tune_candidate_name(int op, int i, char *buf, size_t n) {
    static const char *ffn[] = {"cublaslt+kernel", "cudnn-fused"};
    static const char *attn[] = {"ember", "cudnn-sdpa"};
    static const char *pdl[] = {"off", "on"};
    if (op == EMBER_TUNE_GEMM) snprintf(buf, n, "cublaslt#%d", i);
    else if (op == EMBER_TUNE_FFN_IN && i >= 0 && i < 2) snprintf(buf, n, "%s", ffn[i]);
    else if (op == EMBER_TUNE_ATTENTION && i >= 0 && i < 2) snprintf(buf, n, "%s", attn[i]);
    else if (op == EMBER_TUNE_PDL && i >= 0 && i < 2) snprintf(buf, n, "%s", pdl[i]);
    else snprintf(buf, n, "?%d", i);
}

static const char *act_name(int64_t act_plus_1) {
    switch (act_plus_1) {
    case 0: return "";
    case 1 + EMBER_ACT_GELU: return " gelu";
    case 1 + EMBER_ACT_GELU_TANH: return " gelu_tanh";
    case 1 + EMBER_ACT_RELU: return " relu";
    default: return " act?";
    }
}

void ember_tune_describe(const ember_tune_key *k, char *buf, size_t n) {
    const int64_t *p = k->p;
    char extra[48] = "";
    switch (k->op) {
    case EMBER_TUNE_GEMM:
        if (p[3] != p[1]) snprintf(extra, sizeof extra, " ld=%lld", (long long)p[3]);
        snprintf(buf, n, "N=%lld IN=%lld OUT=%lld%s%s%s", (long long)p[0], (long long)p[1],
                 (long long)p[2], extra, p[4] ? " bias" : "", act_name(p[5]));
        if ((p[6] & 0xFFF) != 0x888 || (p[4] && (p[6] >> 12) != 8)) { /* not all 256-byte */
            const size_t l = strlen(buf);
            snprintf(buf + l, n > l ? n - l : 0, " align=%d/%d/%d/%d", 1 << (p[6] & 0xF),
                     1 << (p[6] >> 4 & 0xF), 1 << (p[6] >> 8 & 0xF), 1 << (p[6] >> 12 & 0xF));
        }
        break;
    case EMBER_TUNE_FFN_IN:
        snprintf(buf, n, "N=%lld IN=%lld OUT=%lld bias%s", (long long)p[0], (long long)p[1],
                 (long long)p[2], act_name(p[3]));
        break;
    case EMBER_TUNE_ATTENTION:
        snprintf(buf, n, "B=%lld S=%lld heads=%lld head_size=%lld %s", (long long)p[0],
                 (long long)p[1], (long long)p[2], (long long)p[3],
                 p[4] == EMBER_TUNE_ATTN_PACKED   ? "packed"
                 : p[4] == EMBER_TUNE_ATTN_MASKED ? "masked"
                                                  : "no mask");
        break;
    case EMBER_TUNE_PDL:
        snprintf(buf, n, "B=%lld S=%lld %s (graph)", (long long)p[0], (long long)p[1],
                 p[2] ? "masked" : "no mask");
        break;
    default: snprintf(buf, n, "op %d", k->op);
    }
}

/* ---- choice ----------------------------------------------------------------------------- */

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

float ember_tune_median(float *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_float);
    return n % 2 ? v[n / 2] : 0.5f * (v[n / 2 - 1] + v[n / 2]);
}

int ember_tune_pick(const ember_tuning_candidate *c, int n) {
    if (n < 1 || c[0].status != EMBER_CANDIDATE_OK || !(c[0].time_us >= 0.f)) return 0;
    int best = 0;
    for (int i = 1; i < n; i++)
        if (c[i].status == EMBER_CANDIDATE_OK && c[i].time_us >= 0.f &&
            c[i].time_us < c[best].time_us)
            best = i;
    if (best && !((double)c[best].time_us < (double)c[0].time_us * (1.0 - EMBER_TUNE_MARGIN)))
        return 0;
    return best;
}

/* ---- the output check -------------------------------------------------------------------- */

/* A candidate's output vs the default's on the same inputs, relative L2 over the whole output.
 * What two exact implementations may differ by, per op, as a multiple of the storage type's
 * unit roundoff u (f32 2^-24 but see below, f16 2^-11 = 4.9e-4, bf16 2^-8 = 3.9e-3):
 *   GEMM       two summation orders (tiles, split-K in f32), then one rounding to the
 *              storage type each: outputs one rounding apart at most, 2u. f32 is set by the
 *              sums instead: ~sqrt(K) 2^-24 for K <= 4096, ~4e-6, so 1e-5.
 *   FFN_IN     the fused graph rounds once after the GELU, the default twice (GEMM + bias,
 *              then GELU): one more rounding, whose RMS is u/sqrt(3), on top of the GEMM's;
 *              2.5u (f32: 1e-5 as GEMM).
 *   ATTENTION  both round the probabilities to 16 bits per tile of keys, on different
 *              tiles, each within ~1.7x the output rounding of the exact result
 *              (tests/tolerances.h, kAttn*): 2.5u in RMS between the two (no f32 candidate).
 * A relative L2 bound is an RMS: elements may differ more, and typical differences of exact
 * implementations stay under u. Every bound is within the tests' end-to-end ones
 * (tests/test_tuning.cc checks that).
 *   PDL        the same kernels in the same order, launched otherwise: the same bits, 0. */
double ember_tune_tolerance(int op, ember_dtype dt) {
    if (op == EMBER_TUNE_PDL) return 0;
    const double u = dt == EMBER_DTYPE_F16 ? 4.8828125e-4 : dt == EMBER_DTYPE_BF16 ? 3.90625e-3 : 0;
    if (dt == EMBER_DTYPE_F32) return 1e-5;
    return op == EMBER_TUNE_GEMM ? 2 * u : 2.5 * u;
}

static float f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
    uint32_t bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (man << 13); /* Inf / NaN */
    } else if (exp) {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else {
        /* zero or subnormal: man * 2^-24 */
        const float v = (float)man * 5.9604644775390625e-8f;
        memcpy(&bits, &v, 4);
        bits |= sign;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static float load_elem(const void *p, size_t i, ember_dtype dt) {
    if (dt == EMBER_DTYPE_F32) return ((const float *)p)[i];
    uint16_t h;
    memcpy(&h, (const char *)p + 2 * i, 2);
    if (dt == EMBER_DTYPE_F16) return f16_to_f32(h);
    const uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int ember_tune_compare(const void *ref, const void *got, size_t n, ember_dtype dt, double tol,
                       double *rel, char *why, size_t why_len) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        const float r = load_elem(ref, i, dt), g = load_elem(got, i, dt);
        if (!isfinite(r) || !isfinite(g)) {
            *rel = INFINITY;
            if (why)
                snprintf(why, why_len, "element %zu is %g where the default gives %g", i,
                         (double)g, (double)r);
            return 0;
        }
        num += ((double)g - r) * ((double)g - r);
        den += (double)r * r;
    }
    *rel = den > 0 ? sqrt(num / den) : sqrt(num);
    if (*rel <= tol) return 1;
    if (why) snprintf(why, why_len, "relative L2 %.3g to the default exceeds %.3g", *rel, tol);
    return 0;
}

/* ---- report ------------------------------------------------------------------------------ */

void ember_tuner_report(const ember_tuner *t, ember_tuning_entry *entries, int cap, int *count) {
    *count = t->n;
    for (int i = 0; i < t->n && i < cap; i++) {
        const ember_tune_record *r = &t->rec[i];
        ember_tuning_entry *e = &entries[i];
        memset(e, 0, sizeof *e);
        e->op = (ember_tune_op)r->key.op;
        e->dtype = (ember_dtype)r->key.dtype;
        ember_tune_describe(&r->key, e->shape, sizeof e->shape);
        e->choice = r->choice;
        e->source = r->source;
        e->n_candidates = r->n_cand;
        memcpy(e->candidates, r->cand, sizeof e->candidates);
    }
}

/* ---- the file ----------------------------------------------------------------------------- */

#define TUNE_MAGIC "ember-tuning"
#define TUNE_VERSION 2 /* 1: without EMBER_TUNE_PDL entries */
#define TUNE_MAX_BYTES (1u << 20)

ember_status ember_tuner_format(const ember_tuner *t, char **text, size_t *len) {
    *text = NULL;
    *len = 0;
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "cannot format the tuning table");
    int version = 1; /* the oldest that holds every entry */
    for (int i = 0; i < t->n; i++)
        if (t->rec[i].key.op == EMBER_TUNE_PDL) version = TUNE_VERSION;
    fprintf(f, "%s %d\ndevice %s\ncc %d.%d\ncublaslt %ld\ncudnn %ld\nentries %d\n", TUNE_MAGIC,
            version, t->device, t->cc_major, t->cc_minor, t->lt_version, t->dnn_version,
            t->n);
    for (int i = 0; i < t->n; i++) {
        const ember_tune_record *r = &t->rec[i];
        fprintf(f, "entry %d %d", r->key.op, r->key.dtype);
        for (int j = 0; j < EMBER_TUNE_PARAMS; j++) fprintf(f, " %lld", (long long)r->key.p[j]);
        fprintf(f, " %d\n", r->choice);
    }
    fprintf(f, "end\n");
    if (fclose(f) != 0 || !buf) {
        free(buf);
        return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "cannot format the tuning table");
    }
    *text = buf;
    *len = size;
    return EMBER_OK;
}

ember_status ember_tuner_save(const ember_tuner *t, const char *path) {
    char *text;
    size_t len;
    EMBER_TRY(ember_tuner_format(t, &text, &len));
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        free(text);
        return ember_fail(EMBER_ERR_INVALID_ARGUMENT, "tuning file path is too long");
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        const int e = errno;
        free(text);
        return ember_fail(EMBER_ERR_IO, "cannot write %s: %s", tmp, strerror(e));
    }
    const size_t w = fwrite(text, 1, len, f);
    int bad = w != len;
    bad |= fclose(f) != 0;
    free(text);
    if (bad || rename(tmp, path) != 0) {
        const int e = errno;
        remove(tmp);
        return ember_fail(EMBER_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    return EMBER_OK;
}

ember_status ember_tuner_load(ember_tuner *t, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return ember_fail(EMBER_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    char *buf = malloc(TUNE_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "cannot read %s", path);
    }
    const size_t n = fread(buf, 1, TUNE_MAX_BYTES + 1, f);
    const int err = ferror(f);
    fclose(f);
    ember_status st;
    if (err) st = ember_fail(EMBER_ERR_IO, "cannot read %s", path);
    else if (n > TUNE_MAX_BYTES)
        st = ember_fail(EMBER_ERR_FORMAT, "%s: larger than %u bytes: not a tuning file", path,
                        TUNE_MAX_BYTES);
    else st = ember_tuner_parse(t, buf, n, path);
    free(buf);
    return st;
}

/* A line cursor over the text: lines end at '\n' (a '\r' before it is dropped). */
typedef struct cursor {
    const char *p, *end;
    int line;
    char buf[256];
} cursor;

/* Next line into c->buf; 0 at the end of the text, -1 when the line is too long. */
static int next_line(cursor *c) {
    if (c->p >= c->end) return 0;
    const char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
    const char *e = nl ? nl : c->end;
    size_t len = (size_t)(e - c->p);
    if (len && e[-1] == '\r') len--;
    c->line++;
    const int ok = len < sizeof c->buf;
    if (ok) {
        memcpy(c->buf, c->p, len);
        c->buf[len] = 0;
    }
    c->p = nl ? nl + 1 : c->end;
    return ok ? 1 : -1;
}

/* Strict decimal integer token at *s (optional '-'), advancing past it and one space. */
static int parse_i64(const char **s, long long lo, long long hi, long long *out) {
    const char *p = *s;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (*p < '0' || *p > '9') return 0;
    long long v = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (++digits > 18) return 0;
        v = v * 10 + (*p++ - '0');
    }
    if (*p != ' ' && *p != 0) return 0;
    if (neg) v = -v;
    if (v < lo || v > hi) return 0;
    if (*p == ' ') {
        if (!p[1] || p[1] == ' ') return 0; /* one space between tokens, none at the end */
        p++;
    }
    *s = p;
    *out = v;
    return 1;
}

/* "<word> <int>" */
static int keyword_int(const char *line, const char *word, long long lo, long long hi,
                       long long *out) {
    const size_t w = strlen(word);
    if (strncmp(line, word, w) || line[w] != ' ') return 0;
    const char *p = line + w + 1;
    return parse_i64(&p, lo, hi, out) && *p == 0;
}

static int printable(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) return 0;
    return 1;
}

/* The shape parameters a key of this op may have; 0 names the first bad one in why. */
static int key_valid(const ember_tune_key *k, char *why, size_t n) {
    const int64_t *p = k->p;
    const int64_t big = INT_MAX;
    int unused_from = EMBER_TUNE_PARAMS;
    switch (k->op) {
    case EMBER_TUNE_GEMM:
        if (p[0] < 1 || p[1] < 1 || p[2] < 1 || p[0] > big || p[1] > big || p[2] > big)
            return snprintf(why, n, "GEMM sizes must be in [1, %d]", INT_MAX), 0;
        if (p[3] < p[1] || p[3] > big) return snprintf(why, n, "GEMM ld_in < IN"), 0;
        if (p[4] != 0 && p[4] != 1) return snprintf(why, n, "GEMM bias must be 0 or 1"), 0;
        if (p[5] < 0 || p[5] > 1 + EMBER_ACT_RELU)
            return snprintf(why, n, "GEMM activation out of range"), 0;
        if (p[6] < 0 || p[6] > 0xFFFF || (p[6] & 0xF) > 8 || (p[6] >> 4 & 0xF) > 8 ||
            (p[6] >> 8 & 0xF) > 8 || (p[6] >> 12) > 8)
            return snprintf(why, n, "GEMM alignments must be 4 nibbles of at most 8"), 0;
        unused_from = 7;
        break;
    case EMBER_TUNE_FFN_IN:
        if (p[0] < 1 || p[1] < 1 || p[2] < 1 || p[0] > big || p[1] > big || p[2] > big)
            return snprintf(why, n, "FFN sizes must be in [1, %d]", INT_MAX), 0;
        if (p[3] < 1 || p[3] > 1 + EMBER_ACT_RELU)
            return snprintf(why, n, "FFN activation out of range"), 0;
        unused_from = 4;
        break;
    case EMBER_TUNE_PDL:
        if (p[0] < 1 || p[1] < 1 || p[0] > big || p[1] > big)
            return snprintf(why, n, "PDL batch and sequence length must be in [1, %d]", INT_MAX), 0;
        if (p[2] != 0 && p[2] != 1) return snprintf(why, n, "PDL mask must be 0 or 1"), 0;
        unused_from = 3;
        break;
    case EMBER_TUNE_ATTENTION:
        if (p[0] < 1 || p[1] < 1 || p[2] < 1 || p[0] > big || p[1] > big || p[2] > big)
            return snprintf(why, n, "attention sizes must be in [1, %d]", INT_MAX), 0;
        if (p[3] < 1 || p[3] > 256) return snprintf(why, n, "attention head size outside [1, 256]"), 0;
        if (p[4] < 0 || p[4] > EMBER_TUNE_ATTN_PACKED)
            return snprintf(why, n, "attention mode out of range"), 0;
        unused_from = 5;
        break;
    default: return snprintf(why, n, "unknown op %d", k->op), 0;
    }
    for (int i = unused_from; i < EMBER_TUNE_PARAMS; i++)
        if (p[i] != 0) return snprintf(why, n, "parameter %d must be 0 for this op", i), 0;
    return 1;
}

ember_status ember_tuner_parse(ember_tuner *t, const char *text, size_t len, const char *name) {
    if (memchr(text, 0, len))
        return ember_fail(EMBER_ERR_FORMAT, "%s: contains a NUL byte: not a tuning file", name);
    cursor c = {.p = text, .end = text + len, .line = 0};
    long long v, cc_minor;
#define NEXT()                                                                                 \
    do {                                                                                       \
        const int r_ = next_line(&c);                                                          \
        if (r_ == 0) return ember_fail(EMBER_ERR_FORMAT, "%s: ends early, after line %d", name, c.line); \
        if (r_ < 0) return ember_fail(EMBER_ERR_FORMAT, "%s:%d: line too long", name, c.line); \
    } while (0)
#define BAD(...) return ember_fail(EMBER_ERR_FORMAT, __VA_ARGS__)
    NEXT();
    if (!keyword_int(c.buf, TUNE_MAGIC, 0, 1000000, &v))
        BAD("%s:%d: not an ember tuning file (expected \"%s %d\")", name, c.line, TUNE_MAGIC,
            TUNE_VERSION);
    if (v < 1 || v > TUNE_VERSION)
        BAD("%s:%d: tuning file version %lld; this ember reads versions 1 to %d", name, c.line, v,
            TUNE_VERSION);
    const long long version = v;
    NEXT();
    if (strncmp(c.buf, "device ", 7) || !c.buf[7] || !printable(c.buf + 7) ||
        strlen(c.buf + 7) >= sizeof t->device)
        BAD("%s:%d: expected \"device <name>\"", name, c.line);
    char device[sizeof t->device];
    snprintf(device, sizeof device, "%s", c.buf + 7);
    NEXT();
    {
        const char *p = c.buf + 3;
        if (strncmp(c.buf, "cc ", 3)) BAD("%s:%d: expected \"cc <major>.<minor>\"", name, c.line);
        char *dot = strchr(p, '.');
        if (!dot) BAD("%s:%d: expected \"cc <major>.<minor>\"", name, c.line);
        *dot = ' ';
        if (!parse_i64(&p, 0, 1000, &v) || !parse_i64(&p, 0, 1000, &cc_minor) || *p)
            BAD("%s:%d: expected \"cc <major>.<minor>\"", name, c.line);
    }
    const long long cc_major = v;
    long long lt, dnn, count;
    NEXT();
    if (!keyword_int(c.buf, "cublaslt", 0, LONG_MAX, &lt))
        BAD("%s:%d: expected \"cublaslt <version>\"", name, c.line);
    NEXT();
    if (!keyword_int(c.buf, "cudnn", 0, LONG_MAX, &dnn))
        BAD("%s:%d: expected \"cudnn <version>\"", name, c.line);
    NEXT();
    if (!keyword_int(c.buf, "entries", 0, EMBER_TUNE_MAX_RECORDS, &count))
        BAD("%s:%d: expected \"entries <count>\" with a count in [0, %d]", name, c.line,
            EMBER_TUNE_MAX_RECORDS);
    ember_tune_record *recs = count ? calloc((size_t)count, sizeof *recs) : NULL;
    int *lines = count ? calloc((size_t)count, sizeof *lines) : NULL;
    if (count && (!recs || !lines)) {
        free(recs);
        free(lines);
        return ember_fail(EMBER_ERR_OUT_OF_MEMORY, "cannot read %s", name);
    }
    ember_status st = EMBER_OK;
    for (long long i = 0; i < count && st == EMBER_OK; i++) {
        const int r = next_line(&c);
        if (r <= 0) {
            st = ember_fail(EMBER_ERR_FORMAT, r ? "%s:%d: line too long"
                                                : "%s: ends early, after line %d (%lld entries "
                                                  "announced)", name, c.line, count);
            break;
        }
        ember_tune_record *e = &recs[i];
        lines[i] = c.line;
        const char *p = c.buf + 6;
        long long op, dt, ch, prm[EMBER_TUNE_PARAMS];
        int ok = !strncmp(c.buf, "entry ", 6) && parse_i64(&p, 0, 100, &op) &&
                 parse_i64(&p, 0, 100, &dt);
        for (int j = 0; ok && j < EMBER_TUNE_PARAMS; j++) ok = parse_i64(&p, 0, INT_MAX, &prm[j]);
        ok = ok && parse_i64(&p, 0, 1000, &ch) && *p == 0;
        if (!ok) {
            st = ember_fail(EMBER_ERR_FORMAT,
                            "%s:%d: expected \"entry <op> <dtype> <8 parameters> <choice>\" "
                            "(non-negative integers)", name, c.line);
            break;
        }
        e->key.op = (int)op;
        e->key.dtype = (int)dt;
        for (int j = 0; j < EMBER_TUNE_PARAMS; j++) e->key.p[j] = prm[j];
        char why[96];
        if (dt > EMBER_DTYPE_BF16) {
            st = ember_fail(EMBER_ERR_FORMAT, "%s:%d: dtype %lld is not an ember_dtype", name,
                            c.line, dt);
            break;
        }
        if (op == EMBER_TUNE_PDL && version < 2) {
            st = ember_fail(EMBER_ERR_FORMAT, "%s:%d: a PDL entry (op %d) in a version %lld file",
                            name, c.line, EMBER_TUNE_PDL, version);
            break;
        }
        if (!key_valid(&e->key, why, sizeof why)) {
            st = ember_fail(EMBER_ERR_FORMAT, "%s:%d: %s", name, c.line, why);
            break;
        }
        const int ncand = ember_tune_op_candidates((int)op);
        if (ch >= ncand) {
            st = ember_fail(EMBER_ERR_FORMAT, "%s:%d: choice %lld, but this op has %d candidates",
                            name, c.line, ch, ncand);
            break;
        }
        for (long long j = 0; j < i; j++)
            if (ember_tune_key_equal(&recs[j].key, &e->key)) {
                st = ember_fail(EMBER_ERR_FORMAT, "%s:%d: the same op and shape as line %d", name,
                                c.line, lines[j]);
                break;
            }
        e->choice = (int)ch;
        e->source = EMBER_TUNE_IMPORTED;
        e->checked = ch == 0;
        e->n_cand = ncand;
        for (int j = 0; j < ncand; j++) {
            ember_tune_candidate_name((int)op, j, e->cand[j].name, sizeof e->cand[j].name);
            e->cand[j].status = EMBER_CANDIDATE_NOT_RUN;
            e->cand[j].time_us = -1.f;
            e->cand[j].rel_diff = -1.f;
        }
    }
    if (st == EMBER_OK) {
        const int r = next_line(&c);
        if (r <= 0 || strcmp(c.buf, "end"))
            st = ember_fail(EMBER_ERR_FORMAT, "%s:%d: expected \"end\" after %lld entries", name,
                            r < 0 ? c.line : c.line + (r == 0), count);
    }
    while (st == EMBER_OK) { /* only empty lines may follow */
        const int r = next_line(&c);
        if (r == 0) break;
        if (r < 0 || c.buf[0])
            st = ember_fail(EMBER_ERR_FORMAT, "%s:%d: text after \"end\"", name, c.line);
    }
    /* the same GPU and libraries, or the choices mean nothing here */
    if (st == EMBER_OK) {
        if (strcmp(device, t->device) || cc_major != t->cc_major || cc_minor != t->cc_minor)
            st = ember_fail(EMBER_ERR_UNSUPPORTED,
                            "%s was tuned on %s (compute capability %lld.%lld); this is %s (%d.%d): "
                            "ignored, nothing imported", name, device, cc_major, cc_minor,
                            t->device, t->cc_major, t->cc_minor);
        else if (lt != t->lt_version || dnn != t->dnn_version)
            st = ember_fail(EMBER_ERR_UNSUPPORTED,
                            "%s was tuned with cuBLASLt %lld and cuDNN %lld; here they are %ld and "
                            "%ld: ignored, nothing imported", name, lt, dnn, t->lt_version,
                            t->dnn_version);
    }
    if (st == EMBER_OK) {
        int fresh = 0;
        for (long long i = 0; i < count; i++) fresh += ember_tuner_find(t, &recs[i].key) == NULL;
        if (t->n + fresh > EMBER_TUNE_MAX_RECORDS)
            st = ember_fail(EMBER_ERR_CAPACITY,
                            "%s: %d new shapes would exceed the table's %d: nothing imported", name,
                            fresh, EMBER_TUNE_MAX_RECORDS);
    }
    for (long long i = 0; i < count && st == EMBER_OK; i++) st = ember_tuner_put(t, &recs[i]);
    if (count) t->generation++;
    free(recs);
    free(lines);
    return st;
#undef NEXT
#undef BAD
}
