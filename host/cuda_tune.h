/* Timing candidates on the device and running the chosen one (host/cuda_tune.c); internal.
 * The ops that have candidates (kernels/linear.cu's GEMMs, host/cuda_cudnn.c's FFN input and
 * attention) describe one call as a job and hand it to ember_tune_run. */
#ifndef EMBER_CUDA_TUNE_H
#define EMBER_CUDA_TUNE_H

#include <cuda_runtime_api.h>

#include "tune.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Enqueue candidate `cand` of the job on `stream`. It must write the whole output (job.out)
 * from the op's inputs alone, whatever the output held before, and nothing the op's inputs
 * depend on. EMBER_ERR_UNSUPPORTED (or any recoverable error) from a candidate other than 0
 * means it cannot run here: it is skipped. */
typedef ember_status (*ember_tune_run_fn)(void *ctx, int cand, cudaStream_t stream);

typedef struct ember_tune_job {
    ember_tune_key key;
    int n;                 /* candidates offered now, 1..EMBER_TUNE_MAX_CANDIDATES; 0 is the default */
    ember_tune_run_fn run;
    void *ctx;
    const void *out;       /* device output every candidate writes: count elements of dt */
    size_t count;
    ember_dtype dt;
} ember_tune_job;

/* A job for `op` in dt with shape parameters p[0..np) (the others 0), n candidates. */
ember_tune_job ember_tune_job_of(int op, ember_dtype dt, const int64_t *p, int np, int n,
                                 ember_tune_run_fn run, void *ctx, const void *out, size_t count);

/* Runs the op once on `stream` with the candidate the tuner holds for job->key:
 *  - a recorded choice runs (candidate 0 if that one is not offered now or cannot run); an
 *    imported non-default choice is first checked against the default on this call's data,
 *    where that is allowed (below), and replaced by the default if it fails;
 *  - a key seen for the first time, where allowed and with tuning on, is tuned: every
 *    candidate runs, is compared with the default's output (ember_tune_tolerance), is timed
 *    (CUDA events: 5 samples of 2 runs each, the median), and the fastest correct one is
 *    recorded and run last, so the op's output is that candidate's;
 *  - otherwise the default runs (recorded as EMBER_TUNE_FIXED when allowed, tuning off).
 * Allowed: t->allow is set and the stream is not being captured. Tuning and checking wait for
 * the stream. *chosen (may be NULL) gets the candidate that produced the output. */
ember_status ember_tune_run(ember_tuner *t, const ember_tune_job *job, cudaStream_t stream,
                            int *chosen);

#ifdef __cplusplus
}
#endif

#endif
