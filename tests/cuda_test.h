// Helpers shared by the CUDA test files (included inside their #ifdef EMBER_WITH_CUDA part).
#pragma once

#include <cuda_runtime.h> /* also the typed cudaMalloc(T **) overloads the tests use */

#include <cstdio>
#include <cstdlib>

#include "ember.h"

// Every GPU test starts with this: shown as skipped, never passed, without a device.
#define REQUIRE_CUDA_DEVICE() \
    if (ember_cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device"

// Test infrastructure failures (not the library's) abort: nothing after them means anything.
#define CUDA_OK(expr)                                                                              \
    do {                                                                                           \
        cudaError_t e_ = (expr);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_)); \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

namespace ember_test {

inline constexpr ember_dtype kDtypes[] = {EMBER_DTYPE_F32, EMBER_DTYPE_F16, EMBER_DTYPE_BF16};

inline const char *DtName(ember_dtype dt) {
    return dt == EMBER_DTYPE_F32 ? "f32" : dt == EMBER_DTYPE_F16 ? "f16" : "bf16";
}

inline size_t DtSize(ember_dtype dt) { return dt == EMBER_DTYPE_F32 ? 4 : 2; }

}  // namespace ember_test
