// CPU model of kernels/mma_sm80.cuh for the fiber emulator (tools/emu; not a GPU). Each
// warp-collective op: every lane deposits its operands, a warp barrier, every lane
// computes its own result from its warp's deposits (layouts as documented in the real
// header, taken from the PTX ISA), a second warp barrier. Divergent collectives are detected.
// cp.async: EMU_CPASYNC=late lands copies only at cp.async.wait_group (catches reads before
// the wait); default "early" lands them at issue (catches overwrites of a buffer still read).
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include "cuda_runtime.h"

namespace ember_cuda {
namespace emu_mma {
struct Copy { void *dst; uint8_t data[16]; };
struct State {
    const void *ptr[1024];
    uint32_t a[1024][4], b[1024][2];
    uint64_t tag[1024], cnt[1024];
    std::vector<std::vector<Copy>> groups[1024];  // committed groups, oldest first
    std::vector<Copy> open[1024];
    int late = -1;
    long long n_mma = 0, n_ldsm = 0, n_cp = 0;
};
inline State &st() { static State s; return s; }
inline int tid() { return (int)threadIdx.x; }
inline void enter(int kind) {
    State &s = st();
    const int t = tid();
    s.tag[t] = ((uint64_t)kind << 56) | ++s.cnt[t];
    emu::warp_barrier();
    const int w0 = t & ~31;
    for (int l = 0; l < 32; l++)
        if (w0 + l < (int)blockDim.x && s.tag[w0 + l] != s.tag[t]) {
            fprintf(stderr, "emu: divergent warp collective (thread %d kind %d vs lane %d)\n", t, kind, l);
            abort();
        }
}
inline void leave() { emu::warp_barrier(); }
inline uint16_t h16(const void *p, int i) { uint16_t v; memcpy(&v, (const char *)p + 2 * i, 2); return v; }
inline void check_row(const void *p) {
    if ((uintptr_t)p & 15) { fprintf(stderr, "emu: ldmatrix row address %p not 16-byte aligned\n", p); abort(); }
}
inline float widen(uint16_t v, const __half *) { __half h; memcpy(&h, &v, 2); return __half2float(h); }
inline float widen(uint16_t v, const __nv_bfloat16 *) { __nv_bfloat16 h; memcpy(&h, &v, 2); return __bfloat162float(h); }
inline void land(const Copy &c) { memcpy(c.dst, c.data, 16); }
}  // namespace emu_mma

inline void ldmatrix_x4(uint32_t r[4], const void *row) {
    using namespace emu_mma;
    State &s = st();
    check_row(row);
    s.ptr[tid()] = row;
    enter(1);
    const int t = tid(), w0 = t & ~31, lane = t & 31;
    for (int m = 0; m < 4; m++) {
        const void *p = s.ptr[w0 + 8 * m + lane / 4];
        r[m] = h16(p, 2 * (lane % 4)) | (uint32_t)h16(p, 2 * (lane % 4) + 1) << 16;
    }
    if (lane == 0) s.n_ldsm++;
    leave();
}

inline void ldmatrix_x4_trans(uint32_t r[4], const void *row) {
    using namespace emu_mma;
    State &s = st();
    check_row(row);
    s.ptr[tid()] = row;
    enter(2);
    const int t = tid(), w0 = t & ~31, lane = t & 31;
    for (int m = 0; m < 4; m++) {
        const void *p0 = s.ptr[w0 + 8 * m + 2 * (lane % 4)], *p1 = s.ptr[w0 + 8 * m + 2 * (lane % 4) + 1];
        r[m] = h16(p0, lane / 4) | (uint32_t)h16(p1, lane / 4) << 16;
    }
    if (lane == 0) s.n_ldsm++;
    leave();
}

template <typename T> inline void mma_16816(float d[4], const uint32_t a[4], const uint32_t b[2]) {
    using namespace emu_mma;
    State &s = st();
    const int t = tid(), w0 = t & ~31, lane = t & 31;
    memcpy(s.a[t], a, 16);
    memcpy(s.b[t], b, 8);
    enter(3);
    float A[16][16], B[16][8];
    const T *tag = nullptr;
    for (int l = 0; l < 32; l++) {
        const int g = l / 4, q = l % 4;
        const uint32_t *ra = s.a[w0 + l], *rb = s.b[w0 + l];
        for (int e = 0; e < 2; e++) {
            A[g][2 * q + e] = widen((uint16_t)(ra[0] >> (16 * e)), tag);
            A[g + 8][2 * q + e] = widen((uint16_t)(ra[1] >> (16 * e)), tag);
            A[g][2 * q + 8 + e] = widen((uint16_t)(ra[2] >> (16 * e)), tag);
            A[g + 8][2 * q + 8 + e] = widen((uint16_t)(ra[3] >> (16 * e)), tag);
            B[2 * q + e][g] = widen((uint16_t)(rb[0] >> (16 * e)), tag);
            B[2 * q + 8 + e][g] = widen((uint16_t)(rb[1] >> (16 * e)), tag);
        }
    }
    const int g = lane / 4, q = lane % 4;
    for (int i = 0; i < 4; i++) {
        const int r = g + 8 * (i / 2), c = 2 * q + (i & 1);
        double acc = d[i];
        for (int k = 0; k < 16; k++) acc += (double)A[r][k] * B[k][c];
        d[i] = (float)acc;
    }
    if (lane == 0) s.n_mma++;
    leave();
}

template <typename T> inline uint32_t pack2(float lo, float hi);
template <> inline uint32_t pack2<__half>(float lo, float hi) {
    __half a = __float2half_rn(lo), b = __float2half_rn(hi);
    uint16_t x, y; memcpy(&x, &a, 2); memcpy(&y, &b, 2);
    return x | (uint32_t)y << 16;
}
template <> inline uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
    __nv_bfloat16 a = __float2bfloat16_rn(lo), b = __float2bfloat16_rn(hi);
    uint16_t x, y; memcpy(&x, &a, 2); memcpy(&y, &b, 2);
    return x | (uint32_t)y << 16;
}

inline void cp_async16(void *smem_dst, const void *gmem_src, bool valid) {
    using namespace emu_mma;
    State &s = st();
    if (s.late < 0) { const char *e = getenv("EMU_CPASYNC"); s.late = e && !strcmp(e, "late"); }
    if (((uintptr_t)smem_dst & 15) || (valid && ((uintptr_t)gmem_src & 15))) { fprintf(stderr, "emu: cp.async misaligned\n"); abort(); }
    Copy c;
    c.dst = smem_dst;
    if (valid) memcpy(c.data, gmem_src, 16); else memset(c.data, 0, 16);
    s.n_cp++;
    if (!s.late) land(c);
    else {
        // poison the destination until the copy lands: a read before the wait sees NaN
        memset(smem_dst, 0xFF, 16);
        s.open[tid()].push_back(c);
    }
}
inline void cp_async_commit() {
    using namespace emu_mma;
    State &s = st();
    s.groups[tid()].push_back(std::move(s.open[tid()]));
    s.open[tid()].clear();
}
template <int N> inline void cp_async_wait() {
    using namespace emu_mma;
    State &s = st();
    auto &gs = s.groups[tid()];
    while ((int)gs.size() > N) {
        for (const Copy &c : gs.front()) land(c);
        gs.erase(gs.begin());
    }
}
}  // namespace ember_cuda
