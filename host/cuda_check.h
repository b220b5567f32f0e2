/* One checking macro for CUDA runtime and cuBLAS(Lt) calls, shared by host/backend_cuda.c and
 * kernels/<op>.cu; internal. A failed call records "expr failed in func (file:line): name: text"
 * through ember_fail and returns the mapped status from the enclosing function:
 *   cudaErrorMemoryAllocation, CUBLAS_STATUS_ALLOC_FAILED -> EMBER_ERR_OUT_OF_MEMORY
 *   sticky errors (illegal address, launch failure, device assert, ...) -> EMBER_ERR_DEVICE_LOST
 *   anything else                                                     -> EMBER_ERR_CUDA
 * Only tests and benchmarks may abort; the library returns. */
#ifndef EMBER_CUDA_CHECK_H
#define EMBER_CUDA_CHECK_H

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

ember_status ember_cuda_fail(cudaError_t e, const char *expr, const char *func, const char *file,
                             int line);
ember_status ember_cublas_fail(cublasStatus_t s, const char *expr, const char *func,
                               const char *file, int line);
/* 1 if `e` leaves the CUDA context unusable (every later call fails the same way). */
int ember_cuda_is_sticky(cudaError_t e);

#define EMBER_CUDA_CHECK(expr)                                                         \
    do {                                                                               \
        cudaError_t e_ck_ = (expr);                                                    \
        if (e_ck_ != cudaSuccess)                                                      \
            return ember_cuda_fail(e_ck_, #expr, __func__, __FILE__, __LINE__);        \
    } while (0)

#define EMBER_CUBLAS_CHECK(expr)                                                       \
    do {                                                                               \
        cublasStatus_t s_ck_ = (expr);                                                 \
        if (s_ck_ != CUBLAS_STATUS_SUCCESS)                                            \
            return ember_cublas_fail(s_ck_, #expr, __func__, __FILE__, __LINE__);      \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif
