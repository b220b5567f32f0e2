/* Sentence-embedding pooling, CPU reference: sentence-transformers' Pooling (mean, CLS or max
 * over the tokens of the mask), optionally followed by its Normalize (L2, eps 1e-12).
 * Accumulation in double. Each feature is reduced over the sequence on its own (a strided
 * walk down the column), twice when normalising: once for the norm, once for the output, so
 * no scratch is needed and both passes see the same double value. */
#include <math.h>

#include "ops.h"

/* Pooled value of feature i of sequence h (S,H), in double. */
static double pool_feature(const float *h, const int32_t *mask, int S, int H, int i,
                           ember_pooling mode) {
    if (mode == EMBER_POOL_CLS) return h[i];
    if (mode == EMBER_POOL_MAX) {
        /* sentence-transformers sets masked tokens to -1e9, then takes the max; NaN wins as in
         * torch.max */
        double m = -INFINITY;
        for (int s = 0; s < S; s++) {
            double v = (!mask || mask[s]) ? (double)h[(int64_t)s * H + i] : -1e9;
            if (v > m || v != v) m = v;
            if (m != m) break;
        }
        return m;
    }
    double sum = 0.0, n = 0.0;
    for (int s = 0; s < S; s++) {
        if (mask && !mask[s]) continue;
        sum += h[(int64_t)s * H + i];
        n += 1.0;
    }
    return sum / (n > 1e-9 ? n : 1e-9); /* torch.clamp(sum_mask, min=1e-9) */
}

void ember_ref_pool(float *out, const float *hidden, const int32_t *mask, int B, int S, int H,
                    ember_pooling mode, int normalize) {
    for (int b = 0; b < B; b++) {
        const float *h = hidden + (int64_t)b * S * H;
        const int32_t *mk = mask ? mask + (int64_t)b * S : NULL;
        double denom = 1.0;
        if (normalize) {
            double sq = 0.0;
            for (int i = 0; i < H; i++) {
                double p = pool_feature(h, mk, S, H, i, mode);
                sq += p * p;
            }
            double norm = sqrt(sq);
            denom = norm > 1e-12 ? norm : 1e-12; /* F.normalize: x / max(|x|, eps) */
        }
        for (int i = 0; i < H; i++)
            out[(int64_t)b * H + i] = (float)(pool_feature(h, mk, S, H, i, mode) / denom);
    }
}
