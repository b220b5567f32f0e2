/* The tuning table: which candidate each op uses, per op and shape (ember.h, "Tuning").
 * Internal. host/tune.c is plain C (the table, the choice among timed candidates, the output
 * check, the file format) and is built and tested everywhere; the timing harness that feeds it
 * on a GPU is host/cuda_tune.c. */
#ifndef EMBER_TUNE_H
#define EMBER_TUNE_H

#include <stddef.h>
#include <stdint.h>

#include "ember.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    EMBER_TUNE_PARAMS = 8,      /* shape parameters of a key                         */
    EMBER_TUNE_MAX_RECORDS = 4096, /* beyond this new shapes keep their defaults      */
    EMBER_TUNE_GEMM_ALGOS = 8,  /* cuBLASLt algorithms asked for (candidates 0..7)    */
};

/* Attention modes (key parameter 4). */
enum { EMBER_TUNE_ATTN_PADDED = 0, EMBER_TUNE_ATTN_MASKED = 1, EMBER_TUNE_ATTN_PACKED = 2 };

/* An op and its shape (EMBER_TUNE_PDL: a whole forward's). Parameters, unused ones 0:
 *   GEMM       N, IN, OUT, ld_in, bias (0/1), activation + 1 (0 = none), the alignments of
 *              w, in, out and bias as log2 nibbles (0x8888: all 256 bytes, bias nibble 0 without
 *              a bias)
 *   FFN_IN     N, IN, OUT, activation + 1
 *   ATTENTION  B, S, heads, head size, EMBER_TUNE_ATTN_*
 *   PDL        B, S, mask given (0/1) of a forward run as a CUDA graph */
typedef struct ember_tune_key {
    int op;    /* ember_tune_op */
    int dtype; /* ember_dtype   */
    int64_t p[EMBER_TUNE_PARAMS];
} ember_tune_key;

typedef struct ember_tune_record {
    ember_tune_key key;
    int choice;
    ember_tune_source source;
    int checked; /* an imported non-default choice has passed the check on this GPU */
    int n_cand;
    ember_tuning_candidate cand[EMBER_TUNE_MAX_CANDIDATES];
} ember_tune_record;

typedef struct ember_tuner {
    int mode;  /* 1: time candidates; 0: fixed defaults                                     */
    int allow; /* set by the backend around each call: this call's shapes are stable, so
                * choices may be made and recorded now (0 in captures and for sizes that
                * change every call)                                                         */
    ember_tune_record *rec;
    int n, cap;
    /* what the choices depend on, written into and checked against files */
    char device[128];
    int cc_major, cc_minor;
    long lt_version, dnn_version;
    unsigned generation; /* changes when an import replaces choices (caches key on it) */
} ember_tuner;

/* mode from ember_load_options.tuning (-1 = follow `env`, the value of EMBER_TUNE or NULL):
 * "on"/"1" or unset: 1, "off"/"0": 0; anything else is EMBER_ERR_INVALID_ARGUMENT. */
ember_status ember_tune_mode(int option, const char *env, int *mode);
/* EMBER_PDL (ember.h, EMBER_TUNE_PDL): "on"/"1" 1, "off"/"0" 0, unset, "" or "auto" -1 (the
 * tuning decides); anything else is EMBER_ERR_INVALID_ARGUMENT. */
ember_status ember_tune_pdl_mode(const char *env, int *mode);
void ember_tuner_init(ember_tuner *t, int mode);
void ember_tuner_free(ember_tuner *t);

int ember_tune_key_equal(const ember_tune_key *a, const ember_tune_key *b);
ember_tune_record *ember_tuner_find(ember_tuner *t, const ember_tune_key *k);
/* Insert or replace the record of r->key. EMBER_ERR_CAPACITY when the table is full (the
 * caller keeps its choice for this call only). */
ember_status ember_tuner_put(ember_tuner *t, const ember_tune_record *r);
/* Can a new key still be recorded? */
int ember_tuner_has_room(const ember_tuner *t);

/* Candidates an op can have (GEMM 8, FFN_IN 2, ATTENTION 2, PDL 2), 0 for an unknown op. */
int ember_tune_op_candidates(int op);
/* "cublaslt#3", "cublaslt+kernel", "cudnn-fused", "ember", "cudnn-sdpa", PDL "off" / "on". */
void ember_tune_candidate_name(int op, int i, char *buf, size_t n);
/* Readable shape of a key ("N=4096 IN=768 OUT=3072 bias gelu"). */
void ember_tune_describe(const ember_tune_key *k, char *buf, size_t n);

/* The choice among candidates with measured times: the fastest EMBER_CANDIDATE_OK one, but
 * the default (0) unless the other is faster by more than EMBER_TUNE_MARGIN (timing noise);
 * 0 when nothing but the default is OK. */
#define EMBER_TUNE_MARGIN 0.03
int ember_tune_pick(const ember_tuning_candidate *c, int n);
/* Median of v[0..n) (sorts v), n >= 1. */
float ember_tune_median(float *v, int n);

/* The bound a candidate's output must meet against the default's: relative L2 over the whole
 * output (see the table in tune.c); 0 for PDL, whose candidates must agree exactly. */
double ember_tune_tolerance(int op, ember_dtype dt);
/* Compare got with ref (n elements of dt, host memory): 1 if every element is finite where
 * ref is and the relative L2 distance is <= tol. *rel gets the distance (inf on a
 * non-finite value); why (may be NULL) says what failed. */
int ember_tune_compare(const void *ref, const void *got, size_t n, ember_dtype dt, double tol,
                       double *rel, char *why, size_t why_len);

/* The report of ember_model_tuning. */
void ember_tuner_report(const ember_tuner *t, ember_tuning_entry *entries, int cap, int *count);

/* The file (ember.h, ember_model_tuning_save). Text, one record per line:
 *   ember-tuning <version: 1, or 2 when an entry is EMBER_TUNE_PDL>
 *   device <name>
 *   cc <major>.<minor>
 *   cublaslt <version>
 *   cudnn <version, 0 = none>
 *   entries <count>
 *   entry <op> <dtype> <p0> ... <p7> <choice>       (count lines)
 *   end
 * ember_tuner_parse checks all of it before importing anything; it reads versions 1 (no PDL
 * entries, what ember wrote before PDL) and 2. Writing version 1 when it suffices keeps such
 * files readable by an ember that knows only version 1. */
ember_status ember_tuner_save(const ember_tuner *t, const char *path);
ember_status ember_tuner_load(ember_tuner *t, const char *path);
ember_status ember_tuner_parse(ember_tuner *t, const char *text, size_t len, const char *name);
/* The text ember_tuner_save writes; malloc'd, *len its length. */
ember_status ember_tuner_format(const ember_tuner *t, char **text, size_t *len);

#ifdef __cplusplus
}
#endif

#endif
