/* Multi-head self-attention, CPU reference with HF eager semantics, in double. */
#include <float.h>
#include <math.h>

#include "ops.h"

void ember_ref_attention(float *out, const float *qkv, const int32_t *mask, int B, int S, int NH,
                         int HD, double *scratch) {
    const int H = NH * HD;
    const int64_t row = 3 * (int64_t)H; /* stride between tokens in qkv */
    const double scale = 1.0 / sqrt((double)HD);
    /* HF eager: scores + (1 - mask) * finfo(float32).min. For a fully masked row every score
     * is -FLT_MAX + O(1), which rounds to -FLT_MAX, so the softmax is uniform over S keys. */
    const double masked = -(double)FLT_MAX;
    for (int b = 0; b < B; b++) {
        const float *base = qkv + (int64_t)b * S * row;
        for (int h = 0; h < NH; h++) {
            for (int i = 0; i < S; i++) {
                const float *q = base + i * row + h * HD;
                double mx = -INFINITY;
                for (int j = 0; j < S; j++) {
                    const float *k = base + j * row + H + h * HD;
                    double s = 0.0;
                    for (int d = 0; d < HD; d++) s += (double)q[d] * k[d];
                    s *= scale;
                    if (mask && mask[(int64_t)b * S + j] == 0) s = (double)(float)(s + masked);
                    scratch[j] = s;
                    if (s > mx) mx = s;
                }
                double sum = 0.0;
                for (int j = 0; j < S; j++) {
                    scratch[j] = exp(scratch[j] - mx);
                    sum += scratch[j];
                }
                float *o = out + ((int64_t)b * S + i) * H + h * HD;
                for (int d = 0; d < HD; d++) {
                    double acc = 0.0;
                    for (int j = 0; j < S; j++) acc += scratch[j] * base[j * row + 2 * H + h * HD + d];
                    o[d] = (float)(acc / sum);
                }
            }
        }
    }
}

void ember_ref_attention_packed(float *out, const float *qkv, const int32_t *cu_seqlens, int B,
                                int NH, int HD, double *scratch) {
    const int H = NH * HD;
    for (int b = 0; b < B; b++) {
        const int len = cu_seqlens[b + 1] - cu_seqlens[b];
        /* a packed sequence is a batch of one with no mask */
        if (len > 0)
            ember_ref_attention(out + (int64_t)cu_seqlens[b] * H, qkv + (int64_t)cu_seqlens[b] * 3 * H,
                                NULL, 1, len, NH, HD, scratch);
    }
}
