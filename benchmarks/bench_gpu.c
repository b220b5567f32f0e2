/*
 * Device description and the two ceilings (a large cuBLAS GEMM, a large device-to-device
 * copy), measured in the same run as the model so the floor uses this card as it is now.
 */
#define _POSIX_C_SOURCE 200809L

#include "bench.h"

#ifdef EMBER_WITH_CUDA

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define CKB(x)                                                                              \
    do {                                                                                    \
        cublasStatus_t s_ = (x);                                                            \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                    \
            bench_die("%s:%d: %s: %s", __FILE__, __LINE__, #x, cublasGetStatusString(s_));  \
    } while (0)

void bench_device_open(int ordinal, bench_device *out) {
    memset(out, 0, sizeof *out);
    CK(cudaSetDevice(ordinal));
    CK(cudaFree(NULL)); /* create the context now, outside every measurement */
    struct cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, ordinal));
    snprintf(out->name, sizeof out->name, "%s", p.name);
    out->ordinal = ordinal;
    out->cc_major = p.major;
    out->cc_minor = p.minor;
    out->sm_count = p.multiProcessorCount;
    out->l2_bytes = (size_t)p.l2CacheSize;
    out->total_bytes = p.totalGlobalMem;
    int khz = 0;
    if (cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, ordinal) == cudaSuccess)
        out->peak_clock_mhz = khz / 1000;
    CK(cudaDriverGetVersion(&out->driver_version));
    CK(cudaRuntimeGetVersion(&out->runtime_version));
}

/* Random values of magnitude [0.25, 1) with random signs, built from bits (never zeros). */
static void fill_random(void *host, size_t n, ember_dtype dt, uint64_t *rng) {
    if (dt == EMBER_DTYPE_F32) {
        float *f = host;
        for (size_t i = 0; i < n; i++) f[i] = (float)(2.0 * bench_rand_unit(rng) - 1.0);
        return;
    }
    uint16_t *h = host;
    for (size_t i = 0; i < n; i += 4) {
        uint64_t r = bench_rand_u64(rng);
        for (size_t j = i; j < n && j < i + 4; j++, r >>= 16) {
            uint16_t sign = (uint16_t)((r & 1u) << 15), ebit = (uint16_t)((r >> 1) & 1u);
            uint16_t mant = (uint16_t)(r >> 2);
            if (dt == EMBER_DTYPE_F16) /* exponent field 13 or 14 (bias 15) */
                h[j] = (uint16_t)(sign | ((13u + ebit) << 10) | (mant & 0x3FFu));
            else /* bf16: exponent field 125 or 126 (bias 127) */
                h[j] = (uint16_t)(sign | ((125u + ebit) << 7) | (mant & 0x7Fu));
        }
    }
}

void bench_measure_ceilings(ember_dtype dt, int n, size_t copy_bytes, int reps, uint64_t seed,
                            bench_ceilings *out) {
    memset(out, 0, sizeof *out);
    if (reps < 1) reps = 1;
    cudaStream_t stream;
    cudaEvent_t ev0, ev1;
    CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    CK(cudaEventCreate(&ev0));
    CK(cudaEventCreate(&ev1));
    double *ms = calloc((size_t)reps, sizeof *ms);
    if (!ms) bench_die("out of host memory");

    /* ---- GEMM: C(n,n) = A(n,n) B(n,n), inputs in dt, fp32 accumulation ---- */
    size_t elem = dt == EMBER_DTYPE_F32 ? 4 : 2;
    size_t count = (size_t)n * (size_t)n;
    void *host = malloc(count * elem);
    void *a = NULL, *b = NULL, *c = NULL;
    if (!host) bench_die("out of host memory for the %d^3 GEMM", n);
    CK(cudaMalloc(&a, count * elem));
    CK(cudaMalloc(&b, count * elem));
    CK(cudaMalloc(&c, count * elem));
    uint64_t rng = seed ^ 0xC0FFEEull;
    fill_random(host, count, dt, &rng);
    CK(cudaMemcpy(a, host, count * elem, cudaMemcpyHostToDevice));
    fill_random(host, count, dt, &rng);
    CK(cudaMemcpy(b, host, count * elem, cudaMemcpyHostToDevice));
    free(host);

    cudaDataType_t t = dt == EMBER_DTYPE_F16    ? CUDA_R_16F
                       : dt == EMBER_DTYPE_BF16 ? CUDA_R_16BF
                                                : CUDA_R_32F;
    cublasHandle_t handle;
    CKB(cublasCreate(&handle));
    CKB(cublasSetStream(handle, stream));
    const float alpha = 1.0f, beta = 0.0f;
    for (int i = 0; i < reps + 3; i++) {
        if (i >= 3) CK(cudaEventRecord(ev0, stream));
        CKB(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, t, n, b, t, n,
                         &beta, c, t, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        if (i >= 3) {
            CK(cudaEventRecord(ev1, stream));
            CK(cudaEventSynchronize(ev1));
            float e = 0.0f;
            CK(cudaEventElapsedTime(&e, ev0, ev1));
            ms[i - 3] = e;
        }
    }
    CK(cudaStreamSynchronize(stream));
    double flops = 2.0 * (double)n * n * n;
    bench_stats s;
    bench_stats_compute(ms, reps, &s);
    out->gemm_n = n;
    out->reps = reps;
    out->gemm_tflops = flops / (s.median * 1e-3) / 1e12;
    out->gemm_tflops_p10 = flops / (s.p90 * 1e-3) / 1e12; /* slow times give low rates */
    out->gemm_tflops_p90 = flops / (s.p10 * 1e-3) / 1e12;
    CKB(cublasDestroy(handle));
    CK(cudaFree(a));
    CK(cudaFree(b));
    CK(cudaFree(c));

    /* ---- device-to-device copy; shrink to fit if the card is busy ---- */
    size_t free_b = 0, total_b = 0;
    CK(cudaMemGetInfo(&free_b, &total_b));
    while (copy_bytes > ((size_t)64 << 20) && 2 * copy_bytes > free_b / 10 * 9) copy_bytes /= 2;
    void *src = NULL, *dst = NULL;
    CK(cudaMalloc(&src, copy_bytes));
    CK(cudaMalloc(&dst, copy_bytes));
    CK(cudaMemsetAsync(src, 0xA5, copy_bytes, stream));
    CK(cudaMemsetAsync(dst, 0x5A, copy_bytes, stream));
    for (int i = 0; i < reps + 2; i++) {
        if (i >= 2) CK(cudaEventRecord(ev0, stream));
        CK(cudaMemcpyAsync(dst, src, copy_bytes, cudaMemcpyDeviceToDevice, stream));
        if (i >= 2) {
            CK(cudaEventRecord(ev1, stream));
            CK(cudaEventSynchronize(ev1));
            float e = 0.0f;
            CK(cudaEventElapsedTime(&e, ev0, ev1));
            ms[i - 2] = e;
        }
    }
    double moved = 2.0 * (double)copy_bytes;
    bench_stats_compute(ms, reps, &s);
    out->copy_bytes = copy_bytes;
    out->copy_gbs = moved / (s.median * 1e-3) / 1e9;
    out->copy_gbs_p10 = moved / (s.p90 * 1e-3) / 1e9;
    out->copy_gbs_p90 = moved / (s.p10 * 1e-3) / 1e9;
    CK(cudaFree(src));
    CK(cudaFree(dst));
    CK(cudaEventDestroy(ev0));
    CK(cudaEventDestroy(ev1));
    CK(cudaStreamDestroy(stream));
    CK(cudaGetLastError());
    free(ms);
    out->measured = 1;
}

#else
/* CPU-only build: nothing here (ISO C wants a declaration in every translation unit). */
typedef int bench_gpu_unused;
#endif
