/* Warp-level tensor-core and async-copy primitives of sm_80 and later (mma.sync m16n8k16,
 * ldmatrix, cp.async) as inline PTX; internal. They run unchanged on sm_90 (wgmma is a
 * different, sm_90a-only path).
 *
 * Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"),
 * with g = lane / 4 and t = lane % 4; each 32-bit register holds two 16-bit elements, the
 * lower-indexed one in the low half:
 *   A (16x16, row-major):  a[0] = row g,   cols 2t..2t+1     a[1] = row g+8, cols 2t..2t+1
 *                          a[2] = row g,   cols 2t+8..2t+9   a[3] = row g+8, cols 2t+8..2t+9
 *   B (16x8, "col": stored as 8 rows of 16 k):  b[0] = k 2t..2t+1, col g   b[1] = k 2t+8..2t+9
 *   C, D (16x8 f32):       c[0], c[1] = row g, cols 2t, 2t+1;  c[2], c[3] = row g+8, same cols
 * ldmatrix .x4 loads four 8x8 matrices of 16-bit elements; lanes 8m..8m+7 give the (16-byte
 * aligned) addresses of rows 0..7 of matrix m. Lane l receives in r[m] row l/4, elements
 * 2(l%4) and 2(l%4)+1 of matrix m: the A or B fragment of an 8x8 piece. With .trans it
 * receives rows 2(l%4) and 2(l%4)+1 of column l/4 instead: the B fragment of a matrix stored
 * k-major (V in attention).
 *
 * The emulator used to check kernels without a GPU replaces this header with a CPU model of
 * the same layouts; nothing else in a kernel needs replacing. */
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <string.h>

namespace ember_cuda {

__device__ __forceinline__ uint32_t smem_addr(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* r[m] = this lane's piece of matrix m; `row` is the address of the row this lane names. */
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void *row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(row))
                 : "memory");
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void *row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(row))
                 : "memory");
}

/* d (16x8 f32) += a (16x16) * b (16x8), T = __half or __nv_bfloat16. */
template <typename T> __device__ __forceinline__ void mma_16816(float d[4], const uint32_t a[4],
                                                                const uint32_t b[2]);

template <>
__device__ __forceinline__ void mma_16816<__half>(float d[4], const uint32_t a[4],
                                                  const uint32_t b[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float d[4], const uint32_t a[4],
                                                         const uint32_t b[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/* Two f32 values rounded (nearest even) into one register of T pair, lo in the low half. */
template <typename T> __device__ __forceinline__ uint32_t pack2(float lo, float hi);

template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &h, sizeof u);
    return u;
}

template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &h, sizeof u);
    return u;
}

/* 16 bytes global -> shared, asynchronous (L2 only). valid = false writes 16 zero bytes and
 * reads nothing (src-size 0); src must still be a valid-looking address. */
__device__ __forceinline__ void cp_async16(void *smem_dst, const void *gmem_src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem_dst)),
                 "l"(gmem_src), "r"(valid ? 16 : 0)
                 : "memory");
}

/* Closes the group of cp.async issued since the previous commit (an empty group is fine). */
__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

/* Waits until at most N of this thread's committed groups are still in flight. The data is
 * visible to other threads only after a barrier that follows the wait. */
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

}  // namespace ember_cuda
