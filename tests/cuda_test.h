// Helpers shared by the CUDA test files (included inside their #ifdef EMBER_WITH_CUDA part).
#pragma once

#include <cuda_runtime.h> /* also the typed cudaMalloc(T **) overloads the tests use */
#include <cxxabi.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include "ember.h"

namespace ember_test {

// The classes (gtest's Suite_Name_Test) whose body calls REQUIRE_CUDA_DEVICE(), demangled.
inline std::vector<std::string> &GpuTestClasses() {
    static std::vector<std::string> classes;
    return classes;
}

inline std::string Demangle(const char *mangled) {
    int status = 0;
    char *d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
    std::string out = status == 0 && d ? d : mangled;
    std::free(d);
    return out;
}

// Odr-used by REQUIRE_CUDA_DEVICE() inside a test body, so `registered` is initialised before
// main(): the binary knows its GPU tests without running them (GpuTestList in test_cuda.cc).
template <class TestClass>
struct GpuTestMark {
    static const bool registered;
};
template <class TestClass>
const bool GpuTestMark<TestClass>::registered =
    (GpuTestClasses().push_back(Demangle(typeid(TestClass).name())), true);

}  // namespace ember_test

// Every GPU test starts with this: shown as skipped, never passed, without a device. It also
// marks the test as a GPU test, which is how tools/gpu-check.sh selects and counts the GPU
// tests (so it must stand in the TEST body itself, not in a helper or a fixture).
#define REQUIRE_CUDA_DEVICE()                                                                  \
    (void)::ember_test::GpuTestMark<std::remove_reference_t<decltype(*this)>>::registered;      \
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
