/* Errors, random numbers, statistics and the FLOP / byte counts of ember_bench. */
#define _POSIX_C_SOURCE 200809L

#include "bench.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

void bench_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("ember_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void bench_check(ember_status st, const char *what) {
    if (st != EMBER_OK)
        bench_die("%s failed: %s: %s", what, ember_status_string(st), ember_last_error());
}

uint64_t bench_rand_u64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double bench_rand_unit(uint64_t *state) {
    return (double)(bench_rand_u64(state) >> 11) * (1.0 / 9007199254740992.0);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double sorted_quantile(const double *v, int n, double q) {
    double pos = q * (n - 1);
    int lo = (int)pos;
    if (lo >= n - 1) return v[n - 1];
    double frac = pos - lo;
    return v[lo] + frac * (v[lo + 1] - v[lo]);
}

void bench_stats_compute(double *v, int n, bench_stats *out) {
    bench_stats s = {0};
    s.n = n;
    if (n > 0) {
        double sum = 0.0;
        for (int i = 0; i < n; i++) sum += v[i];
        qsort(v, (size_t)n, sizeof *v, cmp_double);
        s.median = sorted_quantile(v, n, 0.5);
        s.p10 = sorted_quantile(v, n, 0.1);
        s.p90 = sorted_quantile(v, n, 0.9);
        s.min = v[0];
        s.max = v[n - 1];
        s.mean = sum / n;
    }
    *out = s;
}

double bench_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double bench_flops_per_token(const ember_config *c, int s) {
    double H = c->hidden_size, I = c->intermediate_size, L = c->num_hidden_layers;
    /* Q,K,V and output projections 2*4H^2, FFN 2*2HI, QK^T 2sH and PV 2sH. */
    return L * (8.0 * H * H + 4.0 * H * I + 4.0 * (double)s * H);
}

void bench_work_count(const ember_config *c, int batch, int seq, const int *lengths,
                      int with_pooler, size_t elem, bench_work *out) {
    double H = c->hidden_size, I = c->intermediate_size, L = c->num_hidden_layers;
    double e = (double)elem;
    double valid_tokens = 0.0, flops_valid = 0.0;
    int max_len = 0;
    for (int b = 0; b < batch; b++) {
        valid_tokens += lengths[b];
        flops_valid += lengths[b] * bench_flops_per_token(c, lengths[b]);
        if (lengths[b] > max_len) max_len = lengths[b];
    }
    bench_work w;
    w.flops_padded = (double)batch * seq * bench_flops_per_token(c, seq);
    w.flops_valid = flops_valid;
    /* Per layer: QKV (3H^2 + 3H), output (H^2 + H), FFN (2HI + I + H), two LayerNorms (4H). */
    w.bytes_weights = (L * (4.0 * H * H + 2.0 * H * I + 9.0 * H + I) + 2.0 * H) * e;
    if (with_pooler) {
        w.flops_padded += (double)batch * 2.0 * H * H;
        w.flops_valid += (double)batch * 2.0 * H * H;
        w.bytes_weights += (H * H + H) * e;
    }
    /* Word rows of the gathered tokens, position rows 0..S-1, one token-type row. */
    w.bytes_embed_padded = ((double)batch * seq + seq + 1.0) * H * e;
    w.bytes_embed_valid = (valid_tokens + max_len + 1.0) * H * e;
    w.bytes_io = (double)batch * seq * (4.0 + 4.0) + (double)batch * seq * H * 4.0 +
                 (with_pooler ? (double)batch * H * 4.0 : 0.0);
    *out = w;
}
