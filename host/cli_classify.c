/* `ember classify` and `ember rerank`: text in, the model's head out.
 *
 * classify: a *ForSequenceClassification model gives each text its labels' scores as HF's
 * text-classification pipeline computes them (softmax over the labels; sigmoid for one label or
 * problem_type "multi_label_classification"; the logits for "regression"); a
 * *ForTokenClassification model gives each word piece its label (softmax over the labels, like
 * the token-classification pipeline without aggregation).
 * rerank: a cross-encoder (one label) scores (query, document) pairs encoded as
 * [CLS] query [SEP] document [SEP] and sorts them, as sentence-transformers' CrossEncoder.rank
 * does: its activation is the model's (config_sentence_transformers.json "activation_fn", else
 * config.json's "sentence_transformers" / "sbert_ce_default_activation_function"), else the
 * sigmoid, CrossEncoder's default for one label.
 * Both tokenize with ember's WordPiece tokenizer (vocab.txt); RoBERTa and XLM-R models, whose
 * tokenizers are BPE / SentencePiece, are refused with a message saying so. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ember.h"
#include "host/cli.h"

#ifdef EMBER_WITH_CUDA
#include <cuda_runtime.h>
#endif

#define DEFAULT_BATCH 32

static int fail(const char *what, ember_status st) { return ember_cli_fail(what, st); }

/* ---- the options ---------------------------------------------------------------------------- */

typedef struct cls_args {
    cli_model_args m; /* first: ember_cli_model_opts point into it */
    const char *query;
    int max_length, batch, jsonl, all, top_k;
    int rerank; /* set by the command, not a flag */
} cls_args;

#define CLS(f) offsetof(cls_args, f)
static const cli_choice k_formats[] = {{"text", 0}, {"jsonl", 1}, {NULL, 0}};
static const cli_opt k_common_opts[] = { /* classify and rerank */
    {"--max-length", CLI_INT, CLS(max_length), "N",
     "tokens per sequence, special tokens included (a pair\nneeds 3); default "
     "max_position_embeddings", 2, INT_MAX, NULL, 0},
    {"--batch", CLI_INT, CLS(batch), "N", "sequences per forward, default 32", 1, 1 << 20, NULL, 0},
    {"--format", CLI_CHOICE, CLS(jsonl), NULL, "jsonl: one JSON object per line; default text", 0,
     0, k_formats, 0},
    {NULL, 0, 0, NULL, NULL, 0, 0, NULL, 0},
};
static const cli_opt k_classify_opts[] = {
    {"--all", CLI_SWITCH, CLS(all), NULL, "every label's score, best first (sequence\nclassification)",
     1, 0, NULL, 0},
    {NULL, 0, 0, NULL, NULL, 0, 0, NULL, 0},
};
static const cli_opt k_rerank_opts[] = {
    {"--query", CLI_STRING, CLS(query), "Q", "the query every DOC is scored against", 0, 0, NULL, 1},
    {"--top-k", CLI_INT, CLS(top_k), "N", "print the best N only", 1, INT_MAX, NULL, 0},
    {NULL, 0, 0, NULL, NULL, 0, 0, NULL, 0},
};
static const cli_opt *const k_classify_groups[] = {ember_cli_model_opts, ember_cli_device_opts,
                                                   k_common_opts, k_classify_opts, NULL};
static const cli_opt *const k_rerank_groups[] = {ember_cli_model_opts, ember_cli_device_opts,
                                                 k_rerank_opts, k_common_opts, NULL};

static void classify_init(void *args) { ((cls_args *)args)->batch = DEFAULT_BATCH; }

static void rerank_init(void *args) {
    classify_init(args);
    ((cls_args *)args)->rerank = 1;
}

/* ---- config.json / sentence-transformers settings the library does not read ------------------ */

static json_t *load_json(const char *dir, const char *name) {
    char path[4352];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return json_load_file(path, 0, NULL);
}

enum { SCORE_SOFTMAX, SCORE_SIGMOID, SCORE_IDENTITY, SCORE_TANH };

/* HF's text-classification pipeline: regression -> none; multi-label or one label -> sigmoid;
 * otherwise softmax. */
static int pipeline_function(const char *dir, int num_labels) {
    json_t *cfg = load_json(dir, "config.json");
    const char *pt = json_string_value(json_object_get(cfg, "problem_type"));
    int f = pt && !strcmp(pt, "regression") ? SCORE_IDENTITY
            : (pt && !strcmp(pt, "multi_label_classification")) || num_labels == 1 ? SCORE_SIGMOID
                                                                                    : SCORE_SOFTMAX;
    json_decref(cfg);
    return f;
}

/* CrossEncoder's activation for a one-label model (sentence-transformers 6: the model config's
 * activation_fn, then config.json's, then the default sigmoid). A path outside torch.* needs
 * trust_remote_code there and falls back to the default; ember does the same. Returns -1 for
 * a torch activation ember does not have. */
static int cross_encoder_function(const char *dir) {
    json_t *st = load_json(dir, "config_sentence_transformers.json");
    json_t *cfg = load_json(dir, "config.json");
    const char *path = json_string_value(json_object_get(st, "activation_fn"));
    if (!path)
        path = json_string_value(
            json_object_get(json_object_get(cfg, "sentence_transformers"), "activation_fn"));
    if (!path) path = json_string_value(json_object_get(cfg, "sbert_ce_default_activation_function"));
    int f = SCORE_SIGMOID;
    if (path && strncmp(path, "torch.", 6) != 0) {
        fprintf(stderr, "ember rerank: warning: activation_fn '%s' is not a torch function; "
                        "using the default sigmoid, as sentence-transformers does without "
                        "trust_remote_code\n", path);
    } else if (path) {
        const char *leaf = strrchr(path, '.') + 1;
        f = !strcmp(leaf, "Sigmoid") ? SCORE_SIGMOID : !strcmp(leaf, "Identity") ? SCORE_IDENTITY
            : !strcmp(leaf, "Tanh")  ? SCORE_TANH : -1;
        if (f < 0)
            fprintf(stderr, "ember rerank: the model's activation_fn '%s' is not one ember "
                            "applies (Sigmoid, Identity, Tanh)\n", path);
    }
    json_decref(st);
    json_decref(cfg);
    return f;
}

/* scores[0..n) from logits[0..n) by f (softmax over all n). */
static void score(int f, const float *logits, int n, double *scores) {
    double mx = -INFINITY, sum = 0.0;
    for (int i = 0; i < n; i++) mx = logits[i] > mx ? logits[i] : mx;
    for (int i = 0; i < n; i++) {
        const double x = logits[i];
        scores[i] = f == SCORE_SIGMOID ? 1.0 / (1.0 + exp(-x)) : f == SCORE_TANH ? tanh(x)
                    : f == SCORE_IDENTITY ? x : exp(x - mx);
        sum += scores[i];
    }
    if (f == SCORE_SOFTMAX)
        for (int i = 0; i < n; i++) scores[i] /= sum;
}

/* ---- running batches ------------------------------------------------------------------------- */

/* One forward of an encoding; logits (host) get the head's output. */
static int run(ember_model *m, const ember_config *c, const ember_encoding *enc, int cuda,
               float *logits) {
    const int B = enc->batch, S = enc->seq_len;
    ember_status st = ember_model_reserve(m, B, S);
    if (st != EMBER_OK) return fail("reserving the workspace", st);
    const size_t N = (size_t)B * S, H = (size_t)c->hidden_size;
    ember_inputs in = {.batch = B, .seq_len = S, .input_ids = enc->input_ids,
                       .attention_mask = enc->attention_mask,
                       .token_type_ids = c->type_vocab_size > 0 ? enc->token_type_ids : NULL};
    float *last = NULL;
    int rc = 1;
    if (!cuda) {
        last = malloc(sizeof(float) * N * H);
        if (!last) { fprintf(stderr, "ember: out of host memory\n"); return 1; }
        ember_outputs out = {.last_hidden_state = last, .logits = logits};
        st = ember_forward(m, &in, &out, NULL);
        rc = st == EMBER_OK ? 0 : fail("forward", st);
        free(last);
        return rc;
    }
#ifdef EMBER_WITH_CUDA
    const size_t NL = (c->head == EMBER_HEAD_TOKEN_CLASSIFICATION ? N : (size_t)B) *
                      (size_t)c->num_labels;
    int32_t *d_int = NULL;
    float *d_last = NULL, *d_logits = NULL;
    cudaError_t e = cudaMalloc((void **)&d_int, sizeof(int32_t) * 3 * N);
    if (e == cudaSuccess) e = cudaMalloc((void **)&d_last, sizeof(float) * N * H);
    if (e == cudaSuccess) e = cudaMalloc((void **)&d_logits, sizeof(float) * NL);
    if (e == cudaSuccess)
        e = cudaMemcpy(d_int, enc->input_ids, 4 * N, cudaMemcpyHostToDevice);
    if (e == cudaSuccess)
        e = cudaMemcpy(d_int + N, enc->attention_mask, 4 * N, cudaMemcpyHostToDevice);
    if (e == cudaSuccess)
        e = cudaMemcpy(d_int + 2 * N, enc->token_type_ids, 4 * N, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) {
        fprintf(stderr, "ember: device buffers: %s\n", cudaGetErrorString(e));
    } else {
        in.input_ids = d_int;
        in.attention_mask = d_int + N;
        if (in.token_type_ids) in.token_type_ids = d_int + 2 * N;
        ember_outputs out = {.last_hidden_state = d_last, .logits = d_logits};
        st = ember_forward(m, &in, &out, NULL);
        if (st != EMBER_OK) fail("forward", st);
        else if ((e = cudaMemcpy(logits, d_logits, sizeof(float) * NL, cudaMemcpyDeviceToHost)) !=
                 cudaSuccess)
            fprintf(stderr, "ember: copying the logits back: %s\n", cudaGetErrorString(e));
        else rc = 0;
    }
    cudaFree(d_int);
    cudaFree(d_last);
    cudaFree(d_logits);
#endif
    return rc;
}

/* A JSON string literal of s (valid UTF-8: the tokenizer has checked the texts). */
static void print_json_string(FILE *f, const char *s) {
    json_t *j = json_string(s ? s : "");
    char *d = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    fputs(d ? d : "\"\"", f);
    free(d);
    json_decref(j);
}

/* ---- the commands ----------------------------------------------------------------------------- */

typedef struct ranked {
    int index;
    double score;
} ranked;

static int by_score(const void *x, const void *y) {
    const ranked *a = x, *b = y;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return a->index - b->index; /* a stable sort, as Python's sorted */
}

static void print_sequence(const cls_args *a, const ember_model *m, int num_labels, int index,
                           const char *text, const double *scores, const float *logits) {
    ranked *r = malloc(sizeof *r * (size_t)num_labels);
    if (!r) return;
    for (int l = 0; l < num_labels; l++) r[l] = (ranked){l, scores[l]};
    qsort(r, (size_t)num_labels, sizeof *r, by_score);
    if (a->jsonl) {
        printf("{\"index\": %d, \"text\": ", index);
        print_json_string(stdout, text);
        printf(", \"label\": ");
        print_json_string(stdout, ember_model_label(m, r[0].index));
        printf(", \"score\": %.9g, \"scores\": {", r[0].score);
        for (int l = 0; l < num_labels; l++) {
            printf("%s", l ? ", " : "");
            print_json_string(stdout, ember_model_label(m, l));
            printf(": %.9g", scores[l]);
        }
        printf("}, \"logits\": [");
        for (int l = 0; l < num_labels; l++) printf("%s%.9g", l ? ", " : "", logits[l]);
        printf("]}\n");
    } else {
        const int shown = a->all ? num_labels : 1;
        for (int k = 0; k < shown; k++) {
            fputs(k ? "\t" : "", stdout);
            ember_cli_print_escaped(stdout, ember_model_label(m, r[k].index));
            printf("\t%.6f", r[k].score);
        }
        fputc('\t', stdout);
        ember_cli_print_escaped(stdout, text); /* no control character reaches a terminal */
        fputc('\n', stdout);
    }
    free(r);
}

static void print_tokens(const cls_args *a, const ember_model *m, const ember_tokenizer *tok,
                         int num_labels, int index, const char *text, const int32_t *ids,
                         int len, const float *logits) {
    double *scores = malloc(sizeof(double) * (size_t)num_labels);
    if (!scores) return;
    ember_special_tokens sp;
    ember_tokenizer_special(tok, &sp);
    if (a->jsonl) {
        printf("{\"index\": %d, \"text\": ", index);
        print_json_string(stdout, text);
        printf(", \"tokens\": [");
    } else {
        printf("[%d] ", index);
        ember_cli_print_escaped(stdout, text);
        fputc('\n', stdout);
    }
    int first = 1;
    for (int s = 0; s < len; s++) {
        if (ids[s] == sp.cls || ids[s] == sp.sep || ids[s] == sp.pad) continue;
        score(SCORE_SOFTMAX, logits + (size_t)s * num_labels, num_labels, scores);
        int best = 0;
        for (int l = 1; l < num_labels; l++) best = scores[l] > scores[best] ? l : best;
        const char *piece = ember_tokenizer_token(tok, ids[s]);
        if (a->jsonl) {
            printf("%s{\"token\": ", first ? "" : ", ");
            print_json_string(stdout, piece ? piece : "");
            printf(", \"label\": ");
            print_json_string(stdout, ember_model_label(m, best));
            printf(", \"score\": %.9g}", scores[best]);
        } else {
            fputs("  ", stdout);
            ember_cli_print_escaped(stdout, piece ? piece : "?");
            fputc('\t', stdout);
            ember_cli_print_escaped(stdout, ember_model_label(m, best));
            printf("\t%.6f\n", scores[best]);
        }
        first = 0;
    }
    if (a->jsonl) printf("]}\n");
    free(scores);
}

static int run_classify(void *args, int n_texts, char **texts) {
    const cls_args a = *(const cls_args *)args;
    const int rerank = a.rerank;
    const char *cmd = rerank ? "rerank" : "classify";
    if (n_texts == 0) {
        fprintf(stderr, "ember %s: no %s given\n", cmd, rerank ? "documents (DOC ...)" : "TEXTs");
        return 2;
    }
    int rc = 1;
    ember_model *m = NULL;
    ember_tokenizer *tok = NULL;
    float *logits = NULL;
    double *scores = NULL;
    ranked *rank = NULL;
    const char **queries = NULL;

    ember_status st = ember_cli_load_model(&a.m, a.m.model, &m);
    if (st != EMBER_OK) { fail("loading the model", st); goto done; }
    ember_config c;
    ember_model_config(m, &c);
    if (c.head == EMBER_HEAD_NONE || (rerank && c.head != EMBER_HEAD_SEQUENCE_CLASSIFICATION)) {
        fprintf(stderr, "ember %s: %s has no %s head (config.json \"architectures\" names no "
                        "*ForSequenceClassification%s)\n", cmd, a.m.model,
                rerank ? "sequence-classification" : "classification",
                rerank ? "" : " or *ForTokenClassification");
        goto done;
    }
    if (rerank && c.num_labels != 1) {
        fprintf(stderr, "ember rerank: %s has %d labels; a cross-encoder has one (as "
                        "CrossEncoder.rank requires): use ember classify\n", a.m.model, c.num_labels);
        goto done;
    }
    if (c.arch == EMBER_ARCH_ROBERTA || c.arch == EMBER_ARCH_XLM_ROBERTA) {
        fprintf(stderr, "ember %s: %s is a %s model, whose tokenizer is %s, not WordPiece: ember's "
                        "tokenizer cannot encode text for it. Tokenize with HF and pass the ids "
                        "(ember forward --inputs, or the C API)\n", cmd, a.m.model,
                ember_arch_name(c.arch),
                c.arch == EMBER_ARCH_ROBERTA ? "byte-level BPE" : "SentencePiece");
        goto done;
    }
    st = ember_tokenizer_load(a.m.model, NULL, &tok);
    if (st != EMBER_OK) { fail("loading the tokenizer", st); goto done; }
    if (ember_tokenizer_vocab_size(tok) > c.vocab_size) {
        fprintf(stderr, "ember %s: vocab.txt has %d tokens but the model's vocab_size is %d\n",
                cmd, (int)ember_tokenizer_vocab_size(tok), c.vocab_size);
        goto done;
    }
    int L = a.max_length && a.max_length < c.max_position_embeddings ? a.max_length
                                                                      : c.max_position_embeddings;
    if (L < (rerank ? 3 : 2)) {
        fprintf(stderr, "ember %s: %d tokens leave no room for the special tokens\n", cmd, L);
        goto done;
    }
    const int n = n_texts, NL = c.num_labels;
    const int fn = rerank ? cross_encoder_function(a.m.model) : pipeline_function(a.m.model, NL);
    if (fn < 0) goto done;
    const size_t per_seq = c.head == EMBER_HEAD_TOKEN_CLASSIFICATION ? (size_t)L * NL : (size_t)NL;
    logits = malloc(sizeof(float) * per_seq * (size_t)(a.batch < n ? a.batch : n));
    scores = malloc(sizeof(double) * (size_t)NL * (size_t)n);
    rank = malloc(sizeof *rank * (size_t)n);
    queries = malloc(sizeof(char *) * (size_t)(a.batch < n ? a.batch : n));
    if (!logits || !scores || !rank || !queries) {
        fprintf(stderr, "ember: out of host memory for %d texts\n", n);
        goto done;
    }
    for (int k = 0; k < a.batch && k < n; k++) queries[k] = a.query;
    const int cuda = a.m.backend == EMBER_BACKEND_CUDA;
    for (int start = 0; start < n; start += a.batch) {
        const int nb = n - start < a.batch ? n - start : a.batch;
        ember_encoding enc;
        st = ember_tokenizer_encode(tok, nb, rerank ? queries : (const char *const *)texts + start,
                                    rerank ? (const char *const *)texts + start : NULL, L, &enc);
        if (st != EMBER_OK) { fail("encoding a batch", st); goto done; }
        int bad = run(m, &c, &enc, cuda, logits);
        for (int k = 0; !bad && k < nb; k++) {
            const int i = start + k;
            if (c.head == EMBER_HEAD_TOKEN_CLASSIFICATION) {
                print_tokens(&a, m, tok, NL, i, texts[i],
                             enc.input_ids + (size_t)k * enc.seq_len, enc.lengths[k],
                             logits + (size_t)k * enc.seq_len * NL);
                continue;
            }
            score(fn, logits + (size_t)k * NL, NL, scores + (size_t)i * NL);
            if (rerank) rank[i] = (ranked){i, scores[i]};
            else print_sequence(&a, m, NL, i, texts[i], scores + (size_t)i * NL,
                                logits + (size_t)k * NL);
        }
        ember_encoding_free(&enc);
        if (bad) goto done;
    }
    if (rerank) {
        qsort(rank, (size_t)n, sizeof *rank, by_score);
        const int shown = a.top_k && a.top_k < n ? a.top_k : n;
        for (int k = 0; k < shown; k++) {
            if (a.jsonl) {
                printf("{\"corpus_id\": %d, \"score\": %.9g, \"text\": ", rank[k].index,
                       rank[k].score);
                print_json_string(stdout, texts[rank[k].index]);
                printf("}\n");
            } else {
                printf("%.6f\t%d\t", rank[k].score, rank[k].index);
                ember_cli_print_escaped(stdout, texts[rank[k].index]);
                fputc('\n', stdout);
            }
        }
    }
    rc = 0;

done:
    free(logits);
    free(scores);
    free(rank);
    free(queries);
    ember_tokenizer_free(tok);
    ember_model_free(m);
    return rc;
}

#define CLASSIFY_DETAILS                                                                         \
    "The model directory needs a WordPiece vocab.txt (BERT, DistilBERT, ELECTRA). RoBERTa and\n" \
    "XLM-R tokenizers are byte-level BPE / SentencePiece, which ember does not have: tokenize\n"  \
    "with HF and run `ember forward --logits` on the ids.\n"

const cli_command ember_cli_classify_command = {
    "classify", "a classification head on texts: labels and scores", "--model DIR [options] TEXT ...",
    k_classify_groups, "TEXT",
    "Sequence classification: one line per text, \"label<TAB>score<TAB>text\" (the best label;\n"
    "--all: every label, best first), scores as HF's text-classification pipeline (softmax over\n"
    "the labels; sigmoid for one label or problem_type multi_label_classification; the logit\n"
    "for regression). Token classification: per text a line \"[i] text\", then one line per\n"
    "word piece \"  token<TAB>label<TAB>score\" (softmax over the labels).\n" CLASSIFY_DETAILS,
    sizeof(cls_args), classify_init, NULL, run_classify};

const cli_command ember_cli_rerank_command = {
    "rerank", "cross-encoder scores of documents for a query, best first",
    "--model DIR --query Q [options] DOC ...", k_rerank_groups, "DOC",
    "Scores every (Q, DOC) pair with a cross-encoder (a *ForSequenceClassification model with one\n"
    "label) and prints \"score<TAB>index<TAB>DOC\" lines, best first, as sentence-transformers'\n"
    "CrossEncoder.rank: pairs are [CLS] Q [SEP] DOC [SEP], cut longest-first to --max-length;\n"
    "the score is the model's activation of the logit (config_sentence_transformers.json's\n"
    "activation_fn, else the sigmoid, CrossEncoder's default for one label).\n" CLASSIFY_DETAILS,
    sizeof(cls_args), rerank_init, NULL, run_classify};
