/* `ember embed` and `ember similarity`: text in, sentence embeddings out.
 *
 * Texts come from the arguments or, without any, one per line from stdin. Each is checked to
 * be UTF-8 and counted in WordPiece tokens; the texts are then sorted by length and run in
 * batches of similar lengths (little padding), and the embeddings are written back in input
 * order. Pooling, normalisation, the maximum length, lower-casing and the directory of the BERT
 * model come from the model directory (ember_pooling_config_load: modules.json, the Pooling
 * module's config.json, sentence_bert_config.json) unless a flag overrides them. Nothing is written until every text has been embedded, and a
 * regular output file goes through a temporary file and rename(), so a failure leaves no partial
 * file (a symlink is written through; a device or FIFO directly: weights/file.h). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "ember.h"
#include "host/cli.h"
#include "weights/file.h"
#include "weights/safetensors.h"
#include "weights/st_config.h"
#include "weights/vocab.h"

#ifdef EMBER_WITH_CUDA
#include <cuda_runtime.h>
#endif

#define DEFAULT_BATCH 32
#define PROGRESS_MIN_TEXTS 64 /* a progress bar only for this many texts or more */
#define MAX_TEXTS (INT_MAX / 2) /* texts per run: every count and index below fits an int */

static int fail(const char *what, ember_status st) { return ember_cli_fail(what, st); }

int ember_cli_fail(const char *what, ember_status st) {
    fprintf(stderr, "ember: %s: %s\n  ", what, ember_status_string(st));
    ember_cli_print_escaped(stderr, ember_last_error()); /* it quotes names from the files */
    fputc('\n', stderr);
    return 1;
}

enum { FMT_TEXT, FMT_JSONL, FMT_NPY, FMT_SAFETENSORS };

typedef struct embed_args {
    cli_model_args m; /* first: ember_cli_model_opts point into it */
    const char *output;
    int pooling;    /* ember_pooling, or -1 = the model's */
    int normalize;  /* 0/1, or -1 = the model's           */
    int max_length; /* 0 = the model's                    */
    int batch;
    int format;
    int similarity; /* set by the command, not a flag     */
} embed_args;

#define EMB(f) offsetof(embed_args, f)
static const cli_choice k_poolings[] = {
    {"mean", EMBER_POOL_MEAN}, {"cls", EMBER_POOL_CLS}, {"max", EMBER_POOL_MAX}, {NULL, 0}};
static const cli_choice k_formats[] = {
    {"text", FMT_TEXT}, {"jsonl", FMT_JSONL}, {"npy", FMT_NPY}, {"safetensors", FMT_SAFETENSORS},
    {NULL, 0}};
static const cli_opt k_text_opts[] = { /* embed and similarity */
    {"--pooling", CLI_CHOICE, EMB(pooling), NULL,
     "default: the model's Pooling module, else mean", 0, 0, k_poolings, 0},
    {"--normalize", CLI_SWITCH, EMB(normalize), NULL, "L2-normalise (default: whether the model has a\n"
     "Normalize module; a plain HF directory: no)", 1, 0, NULL, 0},
    {"--no-normalize", CLI_SWITCH, EMB(normalize), NULL, "do not", 0, 0, NULL, 0},
    {"--max-length", CLI_INT, EMB(max_length), "N",
     "tokens per text, [CLS] and [SEP] included; default:\nsentence_bert_config.json's "
     "max_seq_length, else the\nmodel's max_position_embeddings", 2, INT_MAX, NULL, 0},
    {"--batch", CLI_INT, EMB(batch), "N", "texts per forward, default 32", 1, MAX_TEXTS, NULL, 0},
    {NULL, 0, 0, NULL, NULL, 0, 0, NULL, 0},
};
static const cli_opt k_embed_opts[] = { /* embed only */
    {"--format", CLI_CHOICE, EMB(format), NULL,
     "text: one line of H numbers per text; jsonl: one JSON\nobject per text {\"index\", \"text\", "
     "\"tokens\",\n\"embedding\"}; npy: float32 [N, H]; safetensors: F32\n\"sentence_embedding\" "
     "[N, H] (needs --output). Default\ntext", 0, 0, k_formats, 0},
    {"--output", CLI_STRING, EMB(output), "FILE",
     "write there instead of stdout: a regular file\natomically (a temporary file, then rename), "
     "through\na symlink to its target, a device or FIFO directly", 0, 0, NULL, 0},
    {NULL, 0, 0, NULL, NULL, 0, 0, NULL, 0},
};
static const cli_opt *const k_embed_groups[] = {ember_cli_model_opts, ember_cli_device_opts,
                                                k_text_opts, k_embed_opts, NULL};
static const cli_opt *const k_similarity_groups[] = {ember_cli_model_opts, ember_cli_device_opts,
                                                     k_text_opts, NULL};

static void embed_init(void *args) {
    embed_args *a = args;
    a->pooling = a->normalize = -1;
    a->batch = DEFAULT_BATCH;
}

static int embed_check(const void *args) {
    const embed_args *a = args;
    if (a->format == FMT_SAFETENSORS && !a->output) {
        fprintf(stderr, "ember embed: --format safetensors needs --output FILE\n");
        return 0;
    }
    return 1;
}

static void similarity_init(void *args) {
    embed_init(args);
    ((embed_args *)args)->similarity = 1;
}

/* ---- input ------------------------------------------------------------------------------ */

typedef struct texts {
    char **s;     /* NUL-terminated, NUL bytes of the input removed */
    size_t *len;  /* bytes of the original text (for UTF-8 offsets) */
    int n;
    int from_stdin;
} texts;

static void texts_free(texts *t) {
    if (t->s && t->from_stdin) {
        for (int i = 0; i < t->n; i++) free(t->s[i]);
        free(t->s); /* else argv's */
    }
    free(t->len);
    memset(t, 0, sizeof *t);
}

static int texts_push(texts *t, char *s, size_t len, int *cap) {
    if (t->n == *cap) {
        /* counts stay ints (ember_tokenizer_encode's n, the output's index): a limit, not a wrap */
        if (*cap >= MAX_TEXTS) {
            fprintf(stderr, "ember: more than %d lines on stdin\n", MAX_TEXTS);
            return 0;
        }
        const int nc = *cap == 0 ? 64 : *cap > MAX_TEXTS / 2 ? MAX_TEXTS : 2 * *cap;
        char **ns = realloc(t->s, sizeof(char *) * (size_t)nc);
        if (ns) t->s = ns;
        size_t *nl = realloc(t->len, sizeof(size_t) * (size_t)nc);
        if (nl) t->len = nl;
        if (!ns || !nl) return 0;
        *cap = nc;
    }
    t->s[t->n] = s;
    t->len[t->n] = len;
    t->n++;
    return 1;
}

/* All of stdin, split into lines ("\n" or "\r\n"; a last line without newline counts). */
static int read_stdin(texts *t) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return 0;
    for (;;) {
        if (n == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); fprintf(stderr, "ember: out of memory reading stdin\n"); return 0; }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) break;
    }
    if (ferror(stdin)) {
        fprintf(stderr, "ember: reading stdin failed: %s\n", strerror(errno));
        free(buf);
        return 0;
    }
    t->from_stdin = 1;
    int tcap = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && buf[j] != '\n') j++;
        size_t len = j - i;
        if (len && buf[i + len - 1] == '\r') len--;
        char *s = malloc(len + 1);
        if (!s || !texts_push(t, s, len, &tcap)) {
            if (!s || t->n < MAX_TEXTS) fprintf(stderr, "ember: out of memory reading stdin\n");
            free(s);
            free(buf);
            return 0;
        }
        memcpy(s, buf + i, len);
        s[len] = 0;
        i = j + 1;
    }
    free(buf);
    return 1;
}

/* Offset of the first byte that is not well-formed UTF-8 (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or -1. */
static long utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) k = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else return (long)i;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n) return (long)i;
            unsigned d = s[i + j];
            if (d < (j == 1 ? lo : 0x80) || d > (j == 1 ? hi : 0xBF)) return (long)i;
        }
        i += k + 1;
    }
    return -1;
}

/* In place: drop NUL bytes (the tokenizer's text cleaning drops U+0000 anyway; the encoder
 * takes NUL-terminated strings). */
static void strip_nul(char *s, size_t len) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++)
        if (s[i]) s[o++] = s[i];
    s[o] = 0;
}

/* ---- output ------------------------------------------------------------------------------- */

/* stdout, or a file written through ember_out (weights/file.h): a regular file (or a new path)
 * via a temporary file renamed over it once complete, a symlink through to its target, a device
 * or FIFO in place. */
typedef struct out_file {
    FILE *f;
    ember_out o;
    const char *path; /* NULL: stdout */
} out_file;

static int out_open(out_file *o, const char *path) {
    memset(o, 0, sizeof *o);
    o->o.fd = -1;
    if (!path) {
        o->f = stdout;
        return 1;
    }
    o->path = path;
    ember_status st = ember_out_open(path, &o->o);
    if (st != EMBER_OK) return !fail("opening the output", st);
    int fd = dup(o->o.fd); /* the FILE closes its own descriptor; ember_out_close the other */
    if (fd < 0 || !(o->f = fdopen(fd, "wb"))) {
        fprintf(stderr, "ember: cannot write '%s': %s\n", path, strerror(errno));
        if (fd >= 0) close(fd);
        ember_out_close(&o->o, 0);
        return 0;
    }
    return 1;
}

/* ok: keep what was written (rename over the target); else remove the temporary file. */
static int out_close(out_file *o, int ok) {
    if (!o->path) {
        if (fflush(stdout) != 0 || ferror(stdout)) {
            fprintf(stderr, "ember: writing stdout failed: %s\n", strerror(errno));
            return 0;
        }
        return ok;
    }
    const int bad = ferror(o->f) != 0;
    if ((fclose(o->f) != 0 || bad) && ok) {
        fprintf(stderr, "ember: writing '%s' failed: %s\n", o->path, strerror(errno));
        ok = 0;
    }
    ember_status st = ember_out_close(&o->o, ok);
    if (st != EMBER_OK) return !fail("writing the output", st);
    return ok;
}

/* NumPy .npy v1.0: magic, header length, a dict padded with spaces to a 64-byte boundary. */
static void write_npy(FILE *f, const float *e, int n, int H) {
    char dict[128];
    int dl = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }",
                      n, H);
    int total = 10 + dl + 1;
    int pad = (64 - total % 64) % 64;
    unsigned hl = (unsigned)(dl + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc((int)(hl & 0xff), f);
    fputc((int)(hl >> 8), f);
    fwrite(dict, 1, (size_t)dl, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    /* little-endian hosts only (x86-64, aarch64), as the rest of ember */
    fwrite(e, sizeof(float), (size_t)n * H, f);
}

static void write_text(FILE *f, const float *e, int n, int H) {
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < H; j++) fprintf(f, "%s%.9g", j ? " " : "", e[(size_t)i * H + j]);
        fputc('\n', f);
    }
}

static int write_jsonl(FILE *f, const float *e, const texts *t, const int *tokens, int H) {
    for (int i = 0; i < t->n; i++) {
        json_t *js = json_string(t->s[i]);
        char *q = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
        json_decref(js);
        if (!q) { fprintf(stderr, "ember: cannot encode text %d as JSON\n", i + 1); return 0; }
        fprintf(f, "{\"index\": %d, \"text\": %s, \"tokens\": %d, \"embedding\": [", i, q,
                tokens[i]);
        free(q);
        for (int j = 0; j < H; j++) fprintf(f, "%s%.9g", j ? ", " : "", e[(size_t)i * H + j]);
        fputs("]}\n", f);
    }
    return 1;
}

/* ---- the run ------------------------------------------------------------------------------ */

static const char *pool_name(int p) {
    return p == EMBER_POOL_CLS ? "cls" : p == EMBER_POOL_MAX ? "max" : "mean";
}

/* Texts in order of their token counts (ties: input order), for little padding. */
static const int *g_sort_len;
static int by_length(const void *x, const void *y) {
    int a = *(const int *)x, b = *(const int *)y;
    if (g_sort_len[a] != g_sort_len[b]) return g_sort_len[a] < g_sort_len[b] ? -1 : 1;
    return a < b ? -1 : a > b;
}

typedef struct runner {
    ember_model *m;
    int cuda, H, cap_tokens, cap_batch;
    float *hidden, *pooled; /* host: (cap_tokens, H), (cap_batch, H) */
    int32_t *d_ids, *d_mask, *d_types; /* CUDA device buffers, else NULL */
    float *d_hidden, *d_pooled;
} runner;

static void runner_free(runner *r) {
    free(r->hidden);
    free(r->pooled);
#ifdef EMBER_WITH_CUDA
    if (r->cuda) {
        cudaFree(r->d_ids);
        cudaFree(r->d_mask);
        cudaFree(r->d_types);
        cudaFree(r->d_hidden);
        cudaFree(r->d_pooled);
    }
#endif
}

static int runner_alloc(runner *r) {
    /* cap_tokens <= INT_MAX, H <= 65536: the byte counts fit a 64-bit size_t */
    const size_t T = (size_t)r->cap_tokens, H = (size_t)r->H, B = (size_t)r->cap_batch;
    r->hidden = r->cuda ? NULL : malloc(sizeof(float) * T * H);
    r->pooled = malloc(sizeof(float) * B * H);
    if ((!r->cuda && !r->hidden) || !r->pooled) {
        fprintf(stderr, "ember: out of host memory for %zu tokens\n", T);
        return 0;
    }
#ifdef EMBER_WITH_CUDA
    if (r->cuda) {
        cudaError_t e = cudaMalloc((void **)&r->d_ids, 4 * T);
        if (e == cudaSuccess) e = cudaMalloc((void **)&r->d_mask, 4 * T);
        if (e == cudaSuccess) e = cudaMalloc((void **)&r->d_types, 4 * T);
        if (e == cudaSuccess) e = cudaMalloc((void **)&r->d_hidden, sizeof(float) * T * H);
        if (e == cudaSuccess) e = cudaMalloc((void **)&r->d_pooled, sizeof(float) * B * H);
        if (e != cudaSuccess) {
            fprintf(stderr, "ember: cannot allocate device buffers: %s\n", cudaGetErrorString(e));
            return 0;
        }
    }
#endif
    return 1;
}

/* One batch: forward + pool into r->pooled (host). */
static int run_batch(runner *r, const ember_encoding *enc, ember_pooling mode, int normalize) {
    const int B = enc->batch, S = enc->seq_len;
    ember_status st = ember_model_reserve(r->m, B, S);
    if (st != EMBER_OK) return fail("reserving the workspace", st);
    ember_config c;
    ember_model_config(r->m, &c);
    ember_inputs in = {.batch = B, .seq_len = S, .input_ids = enc->input_ids,
                       .attention_mask = enc->attention_mask,
                       /* DistilBERT has no token types */
                       .token_type_ids = c.type_vocab_size > 0 ? enc->token_type_ids : NULL};
    ember_outputs out = {.last_hidden_state = r->hidden};
    float *pooled = r->pooled;
#ifdef EMBER_WITH_CUDA
    if (r->cuda) {
        const size_t nt = sizeof(int32_t) * (size_t)B * S;
        cudaError_t e = cudaMemcpy(r->d_ids, enc->input_ids, nt, cudaMemcpyHostToDevice);
        if (e == cudaSuccess) e = cudaMemcpy(r->d_mask, enc->attention_mask, nt, cudaMemcpyHostToDevice);
        if (e == cudaSuccess) e = cudaMemcpy(r->d_types, enc->token_type_ids, nt, cudaMemcpyHostToDevice);
        if (e != cudaSuccess) {
            fprintf(stderr, "ember: copying the batch to the device failed: %s\n",
                    cudaGetErrorString(e));
            return 1;
        }
        in.input_ids = r->d_ids;
        in.attention_mask = r->d_mask;
        if (in.token_type_ids) in.token_type_ids = r->d_types;
        out.last_hidden_state = r->d_hidden;
        pooled = r->d_pooled;
    }
#endif
    st = ember_forward(r->m, &in, &out, NULL);
    if (st != EMBER_OK) return fail("forward", st);
    st = ember_pool(r->m, out.last_hidden_state, in.attention_mask, B, S, mode, normalize, pooled,
                    NULL);
    if (st != EMBER_OK) return fail("pooling", st);
#ifdef EMBER_WITH_CUDA
    if (r->cuda) {
        cudaError_t e = cudaMemcpy(r->pooled, pooled, sizeof(float) * (size_t)B * r->H,
                                   cudaMemcpyDeviceToHost);
        if (e != cudaSuccess) {
            fprintf(stderr, "ember: copying the embeddings back failed: %s\n", cudaGetErrorString(e));
            return 1;
        }
    }
#endif
    return 0;
}

/* Display width of a code point: 2 for East Asian wide / fullwidth and emoji, else 1. */
static int cp_width(unsigned cp) {
    if ((cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) ||
        (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
        (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
        (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1faff) ||
        (cp >= 0x20000 && cp <= 0x3fffd))
        return 2;
    return 1;
}

/* One character of text at s[i] as shown: its bytes, or an escape for a control character (C0,
 * DEL, C1), a bidirectional control, which a terminal would obey (ESC [ ... sequences, U+009B
 * CSI, U+202E reversing what follows), or a byte that is not UTF-8. Returns the display width;
 * *len is the bytes consumed. */
static int text_char(const unsigned char *s, size_t n, size_t i, char out[12], size_t *len) {
    uint32_t cp;
    int k = ember_utf8_decode(s + i, n - i, &cp);
    *len = k ? (size_t)k : 1;
    if (k == 0) return snprintf(out, 12, "\\x%02x", s[i]);
    const int bidi = cp == 0x61c || cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
                     (cp >= 0x2066 && cp <= 0x2069);
    if (cp < 0x20 || cp == 0x7f) return snprintf(out, 12, "\\x%02x", cp);
    if ((cp >= 0x80 && cp < 0xa0) || bidi) return snprintf(out, 12, "\\u%04x", cp);
    memcpy(out, s + i, (size_t)k);
    out[k] = 0;
    return cp_width(cp);
}

void ember_cli_print_escaped(FILE *f, const char *s) {
    const size_t n = strlen(s);
    char piece[12];
    size_t k;
    for (size_t i = 0; i < n; i += k) {
        text_char((const unsigned char *)s, n, i, piece, &k);
        fputs(piece, f);
    }
}

void ember_cli_print_label(const char *s, int width) {
    const unsigned char *p = (const unsigned char *)s;
    const size_t total = strlen(s);
    char piece[12];
    size_t k;
    int need = 0; /* does it fit whole? */
    for (size_t i = 0; i < total; i += k) need += text_char(p, total, i, piece, &k);
    const int limit = need <= width ? width : width - 3;
    int used = 0;
    for (size_t i = 0; i < total; i += k) {
        const int w = text_char(p, total, i, piece, &k);
        if (used + w > limit) break;
        fputs(piece, stdout);
        used += w;
    }
    if (need > width) {
        fputs("...", stdout);
        used += 3;
    }
    for (; used < width; used++) putchar(' ');
}

static void print_similarity(const texts *t, const float *e, int H) {
    const int n = t->n, lw = 40;
    double *norm = malloc(sizeof(double) * (size_t)n);
    if (!norm) return;
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < H; j++) s += (double)e[(size_t)i * H + j] * e[(size_t)i * H + j];
        norm[i] = sqrt(s);
    }
    printf("cosine similarity:\n%*s", lw + 8, "");
    for (int b = 0; b < n; b++) {
        char h[16];
        snprintf(h, sizeof h, "[%d]", b);
        printf(" %6s", h);
    }
    printf("\n");
    for (int a = 0; a < n; a++) {
        char h[16];
        snprintf(h, sizeof h, "[%d]", a);
        printf("  %5s ", h);
        ember_cli_print_label(t->s[a], lw);
        for (int b = 0; b < n; b++) {
            double dot = 0.0;
            for (int j = 0; j < H; j++) dot += (double)e[(size_t)a * H + j] * e[(size_t)b * H + j];
            double d = norm[a] * norm[b];
            printf(" %+6.3f", d > 0.0 ? dot / d : 0.0);
        }
        printf("\n");
    }
    free(norm);
}

static int run_embed(void *args, int n_operands, char **operands) {
    const embed_args a = *(const embed_args *)args;
    const int similarity = a.similarity;
    const char *cmd = similarity ? "similarity" : "embed";
    int rc = 1;
    texts t = {0};
    ember_tokenizer *tok = NULL;
    ember_model *m = NULL;
    int *ntok = NULL, *order = NULL, *used = NULL;
    float *emb = NULL;
    const char **batch_texts = NULL;
    char **lowered = NULL; /* the texts lower-cased, when the model asks for it */
    runner r = {0};

    /* 1. the texts, checked */
    if (n_operands > 0) {
        t.s = operands;
        t.n = n_operands;
        t.len = malloc(sizeof(size_t) * (size_t)t.n);
        if (!t.len) goto done;
        for (int i = 0; i < t.n; i++) t.len[i] = strlen(t.s[i]);
    } else if (!read_stdin(&t)) {
        goto done;
    }
    if (t.n == 0) {
        fprintf(stderr, "ember %s: no input texts: give TEXT arguments or lines on stdin\n", cmd);
        goto done;
    }
    if (similarity && t.n < 2) {
        fprintf(stderr, "ember similarity: needs at least two texts\n");
        goto done;
    }
    for (int i = 0; i < t.n; i++) {
        long bad = utf8_invalid_at((const unsigned char *)t.s[i], t.len[i]);
        if (bad >= 0) {
            fprintf(stderr, "ember %s: input %d (%s %d) is not valid UTF-8 at byte offset %ld "
                            "(0x%02x); nothing written\n", cmd, i + 1,
                    t.from_stdin ? "stdin line" : "TEXT argument", i + 1, bad,
                    (unsigned char)t.s[i][bad]);
            goto done;
        }
        if (t.from_stdin) strip_nul(t.s[i], t.len[i]);
    }

    /* 2. the model directory */
    ember_pooling_config pc;
    ember_status st = ember_pooling_config_load(a.m.model, &pc);
    if (st != EMBER_OK) { fail("reading the sentence-transformers configuration", st); goto done; }
    const ember_pooling mode = a.pooling >= 0 ? (ember_pooling)a.pooling : pc.mode;
    const int normalize = a.normalize >= 0 ? a.normalize : pc.normalize;
    /* the Transformer module's directory holds the BERT model and its tokenizer */
    char bert_dir[4096 + 256 + 2];
    snprintf(bert_dir, sizeof bert_dir, "%s%s%s", a.m.model, *pc.transformer_path ? "/" : "",
             pc.transformer_path);
    if (pc.do_lower_case) { /* sentence-transformers lower-cases the texts before tokenizing */
        lowered = calloc((size_t)t.n, sizeof *lowered);
        for (int i = 0; lowered && i < t.n; i++) {
            size_t n;
            st = ember_sbert_lower(t.s[i], strlen(t.s[i]), &lowered[i], &n);
            if (st != EMBER_OK) { fail("lower-casing the texts (do_lower_case)", st); goto done; }
        }
        if (!lowered) { fprintf(stderr, "ember: out of host memory for %d texts\n", t.n); goto done; }
    }
    char **tok_texts = lowered ? lowered : t.s; /* what the tokenizer sees */
    st = ember_tokenizer_load(bert_dir, NULL, &tok);
    if (st != EMBER_OK) { fail("loading the tokenizer", st); goto done; }
    st = ember_cli_load_model(&a.m, bert_dir, &m);
    if (st != EMBER_OK) { fail("loading the model", st); goto done; }
    ember_config c;
    ember_model_config(m, &c);
    if (ember_tokenizer_vocab_size(tok) > c.vocab_size) {
        fprintf(stderr, "ember %s: vocab.txt has %d tokens but the model's vocab_size is %d\n",
                cmd, (int)ember_tokenizer_vocab_size(tok), c.vocab_size);
        goto done;
    }
    int L = a.max_length ? a.max_length : pc.max_seq_length ? pc.max_seq_length
                                                             : c.max_position_embeddings;
    if (L > c.max_position_embeddings) L = c.max_position_embeddings;
    if (L < 2) {
        fprintf(stderr, "ember %s: the model's max_position_embeddings (%d) leaves no room for "
                        "[CLS] and [SEP]\n", cmd, c.max_position_embeddings);
        goto done;
    }

    /* 3. token counts, and the order that batches texts of similar lengths */
    ntok = malloc(sizeof(int) * (size_t)t.n);
    order = malloc(sizeof(int) * (size_t)t.n);
    used = malloc(sizeof(int) * (size_t)t.n);
    emb = malloc(sizeof(float) * (size_t)t.n * c.hidden_size);
    const int batch = a.batch < t.n ? a.batch : t.n; /* start + batch cannot pass INT_MAX */
    batch_texts = malloc(sizeof(char *) * (size_t)batch);
    if (!ntok || !order || !used || !emb || !batch_texts) {
        fprintf(stderr, "ember: out of host memory for %d texts\n", t.n);
        goto done;
    }
    int n_truncated = 0;
    for (int i = 0; i < t.n; i++) {
        int64_t n = 0;
        st = ember_tokenize(tok, tok_texts[i], strlen(tok_texts[i]), NULL, 0, &n);
        if (st != EMBER_OK) {
            char what[64];
            snprintf(what, sizeof what, "tokenizing input %d", i + 1);
            fail(what, st);
            goto done;
        }
        ntok[i] = n + 2 > L ? L : (int)(n + 2);
        n_truncated += n + 2 > L;
        order[i] = i;
    }
    g_sort_len = ntok;
    qsort(order, (size_t)t.n, sizeof *order, by_length);

    /* 4. batches */
    r.m = m;
    r.cuda = a.m.backend == EMBER_BACKEND_CUDA;
    r.H = c.hidden_size;
    r.cap_batch = batch;
    /* The buffers hold the largest batch as it will be: sorted by length, a batch's seq_len is
     * its last text's count. Computed in 64 bits and checked against what a forward takes
     * (ember_model_reserve: batch x seq_len <= INT_MAX), never batch x L in an int, which
     * wrapped (4096 x 2^20 = 0: a malloc(0) the forward then overran). */
    int64_t cap_tokens = 0;
    for (int start = 0; start < t.n; start += batch) {
        const int nb = t.n - start < batch ? t.n - start : batch;
        const int64_t tokens = (int64_t)nb * ntok[order[start + nb - 1]];
        if (tokens > INT_MAX) {
            fprintf(stderr, "ember %s: a batch of %d texts of %d tokens is %lld tokens, more than "
                            "the %d a forward takes; use a smaller --batch or --max-length\n",
                    cmd, nb, ntok[order[start + nb - 1]], (long long)tokens, INT_MAX);
            goto done;
        }
        if (tokens > cap_tokens) cap_tokens = tokens;
    }
    r.cap_tokens = (int)cap_tokens;
    if (!runner_alloc(&r)) goto done;
    /* the last batch's workspace at once: batches grow in length, and growing the workspace
     * batch by batch would reallocate it (and fault its pages in) again and again */
    st = ember_model_reserve(m, r.cap_batch, ntok[order[t.n - 1]]);
    if (st != EMBER_OK) { fail("reserving the workspace", st); goto done; }
    const int progress = isatty(STDERR_FILENO) && t.n >= PROGRESS_MIN_TEXTS;
    for (int start = 0; start < t.n; start += batch) {
        const int nb = t.n - start < batch ? t.n - start : batch;
        for (int k = 0; k < nb; k++) batch_texts[k] = tok_texts[order[start + k]];
        ember_encoding enc;
        st = ember_tokenizer_encode(tok, nb, batch_texts, NULL, L, &enc);
        if (st != EMBER_OK) { fail("encoding a batch", st); goto done; }
        int bad = 0;
        if ((int64_t)enc.batch * enc.seq_len > r.cap_tokens || enc.batch > r.cap_batch) {
            fprintf(stderr, "ember %s: internal error: a batch of %d x %d tokens does not fit the "
                            "%d tokens sized for it\n", cmd, enc.batch, enc.seq_len, r.cap_tokens);
            bad = 1;
        }
        if (!bad) bad = run_batch(&r, &enc, mode, normalize);
        for (int k = 0; !bad && k < nb; k++) {
            const int i = order[start + k];
            used[i] = enc.lengths[k];
            memcpy(emb + (size_t)i * r.H, r.pooled + (size_t)k * r.H, sizeof(float) * r.H);
        }
        ember_encoding_free(&enc);
        if (bad) goto done;
        if (progress) {
            const int done_n = start + nb, w = 30, fill = (int)((long long)w * done_n / t.n);
            fprintf(stderr, "\rember %s: [%.*s%*s] %d/%d", cmd, fill,
                    "##############################", w - fill, "", done_n, t.n);
        }
    }
    if (progress) fprintf(stderr, "\n");
    if (n_truncated)
        fprintf(stderr, "ember %s: warning: %d of %d input%s had more than %d tokens ([CLS] and "
                        "[SEP] included) and %s truncated to %d\n", cmd, n_truncated, t.n,
                t.n == 1 ? "" : "s", L, n_truncated == 1 ? "was" : "were", L);

    /* 5. output */
    if (similarity) {
        printf("ember similarity: %s, %s pooling%s, up to %d tokens, %s %s\n", a.m.model,
               pool_name(mode), normalize ? " + normalize" : "", L, ember_cli_backend_name(a.m.backend),
               ember_cli_dtype_name(a.m.dtype));
        print_similarity(&t, emb, r.H);
        rc = 0;
    } else if (a.format == FMT_SAFETENSORS) {
        ember_st_tensor ts = {.name = "sentence_embedding", .dtype = EMBER_ST_F32, .ndim = 2,
                              .shape = {t.n, r.H}, .data = emb,
                              .nbytes = sizeof(float) * (size_t)t.n * r.H};
        char maxlen[16], norm_s[4];
        snprintf(maxlen, sizeof maxlen, "%d", L);
        snprintf(norm_s, sizeof norm_s, "%d", normalize);
        const char *mk[] = {"producer", "model", "pooling", "normalize", "max_length"};
        const char *mv[] = {"ember " EMBER_VERSION_STRING, a.m.model, pool_name(mode), norm_s, maxlen};
        st = ember_st_write(a.output, &ts, 1, mk, mv, 5);
        if (st != EMBER_OK) { fail("writing the output", st); goto done; }
        rc = 0;
    } else {
        out_file o;
        if (!out_open(&o, a.output)) goto done;
        int ok = 1;
        if (a.format == FMT_NPY) write_npy(o.f, emb, t.n, r.H);
        else if (a.format == FMT_JSONL) ok = write_jsonl(o.f, emb, &t, used, r.H);
        else write_text(o.f, emb, t.n, r.H);
        rc = out_close(&o, ok) ? 0 : 1;
    }

done:
    runner_free(&r);
    free(ntok);
    free(order);
    free(used);
    free(emb);
    free(batch_texts);
    for (int i = 0; lowered && i < t.n; i++) free(lowered[i]);
    free(lowered);
    ember_model_free(m);
    ember_tokenizer_free(tok);
    texts_free(&t);
    return rc;
}

/* ---- the commands ------------------------------------------------------------------------- */

#define TEXT_DETAILS \
    "Texts are the TEXT arguments or, without any, the lines of stdin (a trailing newline ends\n" \
    "the last line; \\r\\n works; an empty line is an empty text). Use -- before TEXTs that\n" \
    "start with '-'. Texts must be UTF-8: invalid UTF-8 is an error naming the input and the\n" \
    "byte offset, and nothing is written.\n" \
    "\n" \
    "--model DIR is a BERT directory with vocab.txt: a sentence-transformers model or a plain HF\n" \
    "one. Pooling, normalisation, the maximum length and lower-casing default to its\n" \
    "sentence-transformers files, read as sentence-transformers reads them (modules.json, the\n" \
    "Transformer module's folder with sentence_bert_config.json, the Pooling module's\n" \
    "config.json, a Normalize module); a module ember cannot reproduce is an error.\n" \
    "\n" \
    "Truncation: a text longer than min(--max-length, max_position_embeddings) tokens is cut to\n" \
    "that many (word pieces dropped from the end, [SEP] kept), like sentence-transformers; one\n" \
    "warning line on stderr says how many texts were cut.\n"

const cli_command ember_cli_embed_command = {
    "embed", "sentence embeddings of texts (ember's tokenizer, forward and pooling)",
    "--model DIR [options] [TEXT ...]", k_embed_groups, "TEXT",
    TEXT_DETAILS "Rows are written in input order; a progress bar appears on stderr when it is a\n"
                 "terminal and there are 64 texts or more.\n",
    sizeof(embed_args), embed_init, embed_check, run_embed};

const cli_command ember_cli_similarity_command = {
    "similarity", "the cosine similarity of every pair of texts, as a table",
    "--model DIR [options] TEXT TEXT [TEXT ...]", k_similarity_groups, "TEXT", TEXT_DETAILS,
    sizeof(embed_args), similarity_init, NULL, run_embed};
