/* Timing candidates on the device (see host/cuda_tune.h and ember.h, "Tuning").
 *
 * Not yet run on a GPU: this harness has run only in the CPU emulation (tools/emu), where
 * events read a fake clock and the candidates' times are set by the tests. Which candidates
 * win on a real GPU, how noisy 5 samples of 2 runs are there, and how long a shape's first
 * call takes, only the GPU check's tuning step (tools/gpu-tuning.sh) will show.
 *
 * Timing runs on the caller's stream, between CUDA events, after a warm-up run that also
 * brings the candidate's output back for the check; everything before the op on the stream
 * has finished by then, so a sample holds the candidate's own work only: 5 samples of 2
 * back-to-back runs, the median per run. The samples include the launch gaps between runs,
 * which a CUDA graph would mostly hide; at the smallest sizes this favours candidates with
 * fewer launches, which is also what helps a graph the least. The comparison is on the host
 * (the outputs are copied back once per candidate), so a GPU check needs no extra kernel. */
#include "cuda_tune.h"

#include <stdlib.h>
#include <string.h>

#include "cuda_check.h"
#include "error.h"

enum { SAMPLES = 5, RUNS_PER_SAMPLE = 2 };

static size_t dt_size(ember_dtype dt) { return dt == EMBER_DTYPE_F32 ? 4 : 2; }

static int allowed(const ember_tuner *t, cudaStream_t stream) {
    if (!t || !t->allow) return 0;
    enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream, &cs) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return cs == cudaStreamCaptureStatusNone;
}

static void init_candidates(ember_tune_record *r, int n) {
    r->n_cand = n;
    for (int i = 0; i < n; i++) {
        ember_tune_candidate_name(r->key.op, i, r->cand[i].name, sizeof r->cand[i].name);
        r->cand[i].status = EMBER_CANDIDATE_NOT_RUN;
        r->cand[i].time_us = -1.f;
        r->cand[i].rel_diff = -1.f;
    }
}

/* Run candidate c; a non-default one that fails recoverably is reported as unavailable
 * (*skipped = 1, error cleared) instead of failing the call. */
static ember_status run_candidate(const ember_tune_job *j, int c, cudaStream_t stream,
                                  int *skipped) {
    *skipped = 0;
    const ember_status st = j->run(j->ctx, c, stream);
    if (st == EMBER_OK || c == 0 || st == EMBER_ERR_DEVICE_LOST) return st;
    (void)cudaGetLastError();
    ember_clear_error();
    *skipped = 1;
    return EMBER_OK;
}

/* The job's output, on the host. */
static ember_status fetch(const ember_tune_job *j, void *host, cudaStream_t stream) {
    EMBER_CUDA_CHECK(cudaMemcpyAsync(host, j->out, j->count * dt_size(j->dt),
                                     cudaMemcpyDeviceToHost, stream));
    EMBER_CUDA_CHECK(cudaStreamSynchronize(stream));
    return EMBER_OK;
}

/* Median time of one run of candidate c, in microseconds; *skipped when it failed. */
static ember_status time_candidate(const ember_tune_job *j, int c, cudaEvent_t *ev,
                                   cudaStream_t stream, float *us, int *skipped) {
    float t[SAMPLES];
    for (int s = 0; s < SAMPLES; s++) {
        EMBER_CUDA_CHECK(cudaEventRecord(ev[2 * s], stream));
        for (int r = 0; r < RUNS_PER_SAMPLE; r++) {
            EMBER_TRY(run_candidate(j, c, stream, skipped));
            if (*skipped) return EMBER_OK;
        }
        EMBER_CUDA_CHECK(cudaEventRecord(ev[2 * s + 1], stream));
    }
    EMBER_CUDA_CHECK(cudaEventSynchronize(ev[2 * SAMPLES - 1]));
    for (int s = 0; s < SAMPLES; s++) {
        float ms = 0.f;
        EMBER_CUDA_CHECK(cudaEventElapsedTime(&ms, ev[2 * s], ev[2 * s + 1]));
        t[s] = ms * 1000.f / RUNS_PER_SAMPLE;
    }
    *us = ember_tune_median(t, SAMPLES);
    return EMBER_OK;
}

/* Every candidate checked and timed; r->choice = the pick, whose output the op ends with. */
static ember_status tune(const ember_tune_job *j, ember_tune_record *r, cudaStream_t stream) {
    const size_t bytes = j->count * dt_size(j->dt);
    void *ref = malloc(bytes ? bytes : 1), *got = malloc(bytes ? bytes : 1);
    cudaEvent_t ev[2 * SAMPLES] = {0};
    ember_status st = EMBER_OK;
    if (!ref || !got) st = ember_fail(EMBER_ERR_OUT_OF_MEMORY, "tuning: %zu bytes", 2 * bytes);
    for (int i = 0; i < 2 * SAMPLES && st == EMBER_OK; i++) {
        const cudaError_t e = cudaEventCreate(&ev[i]);
        if (e != cudaSuccess) {
            ev[i] = NULL;
            st = ember_cuda_fail(e, "cudaEventCreate", __func__, __FILE__, __LINE__);
        }
    }
    const double tol = ember_tune_tolerance(j->key.op, j->dt);
    for (int c = 0; c < j->n && st == EMBER_OK; c++) {
        ember_tuning_candidate *cand = &r->cand[c];
        int skipped = 0;
        st = run_candidate(j, c, stream, &skipped);
        if (st == EMBER_OK && !skipped) st = fetch(j, c == 0 ? ref : got, stream);
        if (st != EMBER_OK) break;
        if (skipped) {
            cand->status = EMBER_CANDIDATE_UNAVAILABLE;
            continue;
        }
        double rel = 0.0;
        if (c > 0 && !ember_tune_compare(ref, got, j->count, j->dt, tol, &rel, NULL, 0)) {
            cand->status = EMBER_CANDIDATE_WRONG;
            cand->rel_diff = (float)rel;
            continue;
        }
        cand->rel_diff = (float)rel;
        float us = -1.f;
        st = time_candidate(j, c, ev, stream, &us, &skipped);
        cand->status = skipped ? EMBER_CANDIDATE_UNAVAILABLE : EMBER_CANDIDATE_OK;
        cand->time_us = us;
    }
    if (st == EMBER_OK) {
        r->choice = ember_tune_pick(r->cand, j->n);
        int skipped = 0;
        st = run_candidate(j, r->choice, stream, &skipped); /* the op's output is the pick's */
        if (st == EMBER_OK && skipped) st = run_candidate(j, r->choice = 0, stream, &skipped);
    }
    for (int i = 0; i < 2 * SAMPLES; i++)
        if (ev[i]) (void)cudaEventDestroy(ev[i]);
    free(ref);
    free(got);
    return st;
}

/* An imported non-default choice against the default, on this call's data; the op ends with
 * the output of whichever is kept. */
static ember_status check_imported(const ember_tune_job *j, ember_tune_record *r,
                                   cudaStream_t stream) {
    const size_t bytes = j->count * dt_size(j->dt);
    void *ref = malloc(bytes ? bytes : 1), *got = malloc(bytes ? bytes : 1);
    ember_status st = ref && got ? EMBER_OK
                                 : ember_fail(EMBER_ERR_OUT_OF_MEMORY, "tuning: %zu bytes", 2 * bytes);
    int skipped = 0, keep = 0;
    double rel = 0.0;
    if (st == EMBER_OK) st = run_candidate(j, 0, stream, &skipped);
    if (st == EMBER_OK) st = fetch(j, ref, stream);
    if (st == EMBER_OK) st = run_candidate(j, r->choice, stream, &skipped);
    if (st == EMBER_OK && !skipped) st = fetch(j, got, stream);
    if (st == EMBER_OK) {
        keep = !skipped && ember_tune_compare(ref, got, j->count, j->dt,
                                              ember_tune_tolerance(j->key.op, j->dt), &rel,
                                              NULL, 0);
        ember_tuning_candidate *c = &r->cand[r->choice];
        c->status = skipped ? EMBER_CANDIDATE_UNAVAILABLE
                    : keep  ? EMBER_CANDIDATE_OK
                            : EMBER_CANDIDATE_WRONG;
        c->rel_diff = skipped ? -1.f : (float)rel;
        r->checked = 1;
        if (!keep) {
            r->choice = 0;
            st = run_candidate(j, 0, stream, &skipped);
        }
    }
    free(ref);
    free(got);
    return st;
}

ember_tune_job ember_tune_job_of(int op, ember_dtype dt, const int64_t *p, int np, int n,
                                 ember_tune_run_fn run, void *ctx, const void *out, size_t count) {
    ember_tune_job j;
    memset(&j, 0, sizeof j);
    j.key.op = op;
    j.key.dtype = (int)dt;
    for (int i = 0; i < np && i < EMBER_TUNE_PARAMS; i++) j.key.p[i] = p[i];
    j.n = n;
    j.run = run;
    j.ctx = ctx;
    j.out = out;
    j.count = count;
    j.dt = dt;
    return j;
}

ember_status ember_tune_run(ember_tuner *t, const ember_tune_job *job, cudaStream_t stream,
                            int *chosen) {
    if (chosen) *chosen = 0;
    int skipped = 0;
    if (!t) return run_candidate(job, 0, stream, &skipped);
    const int may = allowed(t, stream);
    ember_tune_record *r = ember_tuner_find(t, &job->key);
    if (r) {
        if (r->choice <= 0 || r->choice >= job->n) return run_candidate(job, 0, stream, &skipped);
        if (!r->checked) {
            if (!may) return run_candidate(job, 0, stream, &skipped);
            EMBER_TRY(check_imported(job, r, stream));
            if (chosen) *chosen = r->choice;
            return EMBER_OK;
        }
        EMBER_TRY(run_candidate(job, r->choice, stream, &skipped));
        if (skipped) return run_candidate(job, 0, stream, &skipped);
        if (chosen) *chosen = r->choice;
        return EMBER_OK;
    }
    if (!may || !ember_tuner_has_room(t) || job->n < 1) return run_candidate(job, 0, stream, &skipped);
    ember_tune_record rec;
    memset(&rec, 0, sizeof rec);
    rec.key = job->key;
    rec.checked = 1;
    init_candidates(&rec, job->n > EMBER_TUNE_MAX_CANDIDATES ? EMBER_TUNE_MAX_CANDIDATES : job->n);
    if (!t->mode) {
        rec.source = EMBER_TUNE_FIXED;
        EMBER_TRY(run_candidate(job, 0, stream, &skipped));
        return ember_tuner_put(t, &rec);
    }
    rec.source = EMBER_TUNE_TIMED;
    ember_tune_job j = *job;
    j.n = rec.n_cand;
    EMBER_TRY(tune(&j, &rec, stream));
    if (chosen) *chosen = rec.choice;
    return ember_tuner_put(t, &rec);
}
