/* ember_version() and ember_build_info(): what this library is and what CUDA it runs with. */
#include <pthread.h>

#include "ember.h"

#ifdef EMBER_WITH_CUDA
#include <cublasLt.h>
#include <cuda_runtime.h>
#endif

#ifndef EMBER_CUDA_ARCHS /* CMake passes CUDA_ARCHITECTURES, space-separated */
#define EMBER_CUDA_ARCHS ""
#endif

const char *ember_version(int *major, int *minor, int *patch) {
    if (major) *major = EMBER_VERSION_MAJOR;
    if (minor) *minor = EMBER_VERSION_MINOR;
    if (patch) *patch = EMBER_VERSION_PATCH;
    return EMBER_VERSION_STRING;
}

static ember_build g_build;
static pthread_once_t g_build_once = PTHREAD_ONCE_INIT;

static void probe_build(void) {
    ember_build b = {.version = EMBER_VERSION_STRING, .backends = "cpu reference", .cuda_archs = ""};
#ifdef EMBER_WITH_CUDA
    b.backends = "cpu reference cuda";
    b.cuda_archs = EMBER_CUDA_ARCHS;
    b.cuda_toolkit_version = CUDART_VERSION;
    int v = 0;
    if (cudaRuntimeGetVersion(&v) == cudaSuccess) b.cuda_runtime_version = v;
    v = 0;
    if (cudaDriverGetVersion(&v) == cudaSuccess) b.cuda_driver_version = v; /* 0: no driver */
    (void)cudaGetLastError(); /* neither query may leave an error for the caller's next check */
    b.cublas_version = (int)cublasLtGetVersion();
#endif
    b.cuda_device_count = ember_cuda_device_count();
    g_build = b;
}

const ember_build *ember_build_info(void) {
    pthread_once(&g_build_once, probe_build);
    return &g_build;
}
