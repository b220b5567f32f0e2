/* Element type conversion on the host (twin of kernels/convert.cu): the CPU backend computes in
 * f32 and takes / returns f16 and bf16 tensors through it (ember_inputs.embeds_dtype,
 * ember_outputs.dtype, ember_embed_tokens_as). Widening is exact; narrowing rounds to nearest
 * even as the CUDA intrinsics __float2half_rn / __float2bfloat16_rn do. */
#include <math.h>
#include <string.h>

#include "kernels/ops.h"
#include "weights/safetensors.h"

static uint32_t f32_bits(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    return x;
}

static uint16_t f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1u); /* round to nearest even at bit 16; Inf stays Inf */
    return (uint16_t)(x >> 16);
}

static uint16_t f32_to_f16(float f) {
    const uint32_t x = f32_bits(f), ax = x & 0x7fffffffu;
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    if (ax > 0x7f800000u) return sign | 0x7e00u;  /* NaN */
    if (ax >= 0x477ff000u) return sign | 0x7c00u; /* >= 65520 (and Inf) rounds to Inf */
    if (ax < 0x38800000u) {                       /* below 2^-14: subnormal half or zero */
        float v;
        memcpy(&v, &ax, sizeof v);
        /* v x 2^24 is exact and < 1024; rounding it to an integer (nearest even, the default
         * mode) gives the subnormal's mantissa, and 1024 the smallest normal, 0x0400 */
        return sign | (uint16_t)lrintf(v * 16777216.0f);
    }
    const uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u); /* nearest even at bit 13 */
    return sign | (uint16_t)((r - 0x38000000u) >> 13);  /* rebias 127 -> 15 */
}

static float load_f32(const void *src, ember_dtype dt, int64_t i) {
    if (dt == EMBER_DTYPE_F32) return ((const float *)src)[i];
    const uint16_t h = ((const uint16_t *)src)[i];
    return dt == EMBER_DTYPE_F16 ? ember_f16_to_f32(h) : ember_bf16_to_f32(h);
}

void ember_ref_convert(void *dst, ember_dtype dst_dt, const void *src, ember_dtype src_dt,
                       int64_t n) {
    if (dst_dt == src_dt) {
        if (dst != src) memcpy(dst, src, (size_t)n * (dst_dt == EMBER_DTYPE_F32 ? 4 : 2));
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        const float v = load_f32(src, src_dt, i);
        if (dst_dt == EMBER_DTYPE_F32) ((float *)dst)[i] = v;
        else if (dst_dt == EMBER_DTYPE_F16) ((uint16_t *)dst)[i] = f32_to_f16(v);
        else ((uint16_t *)dst)[i] = f32_to_bf16(v);
    }
}
