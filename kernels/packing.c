/* Padding removal (EMBER_FORWARD_SKIP_MASKED), CPU reference: the packing plan and the row
 * moves between the padded (B,S) layout and the packed layout of valid tokens. The CUDA twins
 * are in kernels/packing.cu.
 *
 * Packed order is sequence by sequence, tokens in their original order, so sequence b is the
 * contiguous rows cu_seqlens[b] .. cu_seqlens[b+1]-1: exactly what ember_ref_attention_packed
 * takes. Every other op of the encoder works row by row and does not care about the order. */
#include <string.h>

#include "ops.h"

int64_t ember_ref_pack_plan(const int32_t *mask, int B, int S, int32_t *cu_seqlens,
                            int32_t *index, int32_t *inverse) {
    int32_t t = 0;
    cu_seqlens[0] = 0;
    for (int b = 0; b < B; b++) {
        for (int s = 0; s < S; s++) {
            const int32_t p = (int32_t)((int64_t)b * S + s);
            if (mask[p] != 0) {
                index[t] = p;
                inverse[p] = t++;
            } else {
                inverse[p] = -1;
            }
        }
        cu_seqlens[b + 1] = t;
    }
    return t;
}

void ember_ref_gather_rows(float *out, const float *in, const int32_t *index, int64_t T, int C) {
    for (int64_t r = 0; r < T; r++)
        memcpy(out + r * C, in + (int64_t)index[r] * C, sizeof(float) * (size_t)C);
}

void ember_ref_unpack_rows(float *out, const float *packed, const int32_t *inverse, int64_t N,
                           int C) {
    for (int64_t p = 0; p < N; p++) {
        if (inverse[p] >= 0)
            memcpy(out + p * C, packed + (int64_t)inverse[p] * C, sizeof(float) * (size_t)C);
        else
            memset(out + p * C, 0, sizeof(float) * (size_t)C);
    }
}

void ember_ref_first_rows(float *out, const float *packed, const int32_t *inverse, int B, int S,
                          int C) {
    for (int b = 0; b < B; b++) {
        const int32_t r = inverse[(int64_t)b * S];
        if (r >= 0)
            memcpy(out + (int64_t)b * C, packed + (int64_t)r * C, sizeof(float) * (size_t)C);
        else
            memset(out + (int64_t)b * C, 0, sizeof(float) * (size_t)C);
    }
}
