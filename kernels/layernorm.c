/* Bias + residual + LayerNorm, CPU reference. */
#include <math.h>

#include "ops.h"

void ember_ref_bias_residual_layernorm(float *out, const float *x, const float *bias,
                                       const float *residual, const float *gamma,
                                       const float *beta, int N, int H, double eps) {
    double row[H];
    for (int64_t t = 0; t < N; t++) {
        const float *xr = x + t * H;
        const float *rr = residual + t * H;
        double mean = 0.0;
        for (int i = 0; i < H; i++) {
            /* HF: LayerNorm(dropout(dense(x)) + input_tensor); dense already includes bias. */
            row[i] = (double)xr[i] + (bias ? (double)bias[i] : 0.0) + (double)rr[i];
            mean += row[i];
        }
        mean /= H;
        double var = 0.0;
        for (int i = 0; i < H; i++) var += (row[i] - mean) * (row[i] - mean);
        var /= H;
        double rstd = 1.0 / sqrt(var + eps);
        float *o = out + t * H;
        for (int i = 0; i < H; i++) o[i] = (float)((row[i] - mean) * rstd * gamma[i] + beta[i]);
    }
}
