/*
 * Helpers shared by the files of ember_bench (every benchmarks/ C file is linked into one binary).
 * The floor arithmetic lives here so that README.md, the printed report and compare.py
 * all use one definition: see benchmarks/README.md for the derivation.
 */
#ifndef EMBER_BENCH_H
#define EMBER_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "ember.h"

/* The H100 ceilings quoted by the performance issue (dense fp16/bf16 tensor-core rate and
 * HBM bandwidth). They are leads, not measurements: `--ceilings` measures both. */
#define BENCH_NOMINAL_TFLOPS_16BIT 800.0
#define BENCH_NOMINAL_GBS 3000.0

/* ---- errors, random numbers, statistics (bench_util.c) ------------------------------ */

#if defined(__GNUC__)
#define BENCH_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define BENCH_NORETURN __attribute__((noreturn))
#else
#define BENCH_PRINTF(a, b)
#define BENCH_NORETURN
#endif

/* Print "ember_bench: <message>" to stderr and exit(1). */
BENCH_NORETURN void bench_die(const char *fmt, ...) BENCH_PRINTF(1, 2);

#ifdef EMBER_WITH_CUDA
#include <cuda_runtime.h>
/* A failed CUDA call ends the benchmark with the call and its place. */
#define CK(x)                                                                               \
    do {                                                                                    \
        cudaError_t e_ = (x);                                                               \
        if (e_ != cudaSuccess)                                                              \
            bench_die("%s:%d: %s: %s", __FILE__, __LINE__, #x, cudaGetErrorString(e_));     \
    } while (0)
#endif
/* On st != EMBER_OK: print what, the status and ember_last_error(), exit(1). */
void bench_check(ember_status st, const char *what);

uint64_t bench_rand_u64(uint64_t *state); /* splitmix64 */
double bench_rand_unit(uint64_t *state);  /* uniform in [0,1) */

typedef struct bench_stats {
    int n;
    double median, p10, p90, min, max, mean;
} bench_stats;

/* Sorts v in place. Percentiles interpolate linearly between order statistics. */
void bench_stats_compute(double *v, int n, bench_stats *out);

double bench_now_s(void); /* CLOCK_MONOTONIC seconds */

/* ---- work and bytes of one forward --------------------------------------------------- */

typedef struct bench_work {
    double flops_padded; /* every sequence counted at the padded length S              */
    double flops_valid;  /* each sequence at its number of attended (mask = 1) tokens   */
    double bytes_weights;   /* encoder layers (+ pooler when computed), once            */
    double bytes_embed_padded; /* gathered word rows for B*S tokens + position rows    */
    double bytes_embed_valid;  /* same for the valid tokens only                       */
    double bytes_io;        /* ids + mask read, fp32 outputs written                    */
} bench_work;

/* lengths[b] = valid tokens of sequence b (b < batch); elem = bytes per weight element. */
void bench_work_count(const ember_config *cfg, int batch, int seq, const int *lengths,
                      int with_pooler, size_t elem, bench_work *out);

/* FLOPs per token at attention length s: L*(8H^2 + 4HI + 4sH), = L*(24H^2 + 4sH) if I = 4H. */
double bench_flops_per_token(const ember_config *cfg, int s);

/* ---- CUDA (bench_gpu.c) ---------------------------------------------------------------- */

typedef struct bench_device {
    char name[256];
    int ordinal, cc_major, cc_minor, sm_count, peak_clock_mhz;
    size_t l2_bytes, total_bytes;
    int driver_version, runtime_version; /* CUDA API versions: 13000 = 13.0 */
} bench_device;

typedef struct bench_ceilings {
    int measured;
    int gemm_n;             /* n x n x n GEMM                                     */
    int reps;
    double gemm_tflops;     /* 2n^3 / median time                                 */
    double gemm_tflops_p10, gemm_tflops_p90;
    size_t copy_bytes;      /* bytes per copy; the bandwidth counts read + write   */
    double copy_gbs;        /* 2 * copy_bytes / median time                       */
    double copy_gbs_p10, copy_gbs_p90;
} bench_ceilings;

#ifdef EMBER_WITH_CUDA
/* Selects the device, creates its context and fills *out. Exits on a CUDA error. */
void bench_device_open(int ordinal, bench_device *out);
/* The two ceilings: a cublasGemmEx in `dt` (fp32 accumulation; f32 is plain SGEMM, no
 * TF32) on random data, and a device-to-device cudaMemcpyAsync. Frees what it allocates. */
void bench_measure_ceilings(ember_dtype dt, int gemm_n, size_t copy_bytes, int reps,
                            uint64_t seed, bench_ceilings *out);
#endif

#endif
