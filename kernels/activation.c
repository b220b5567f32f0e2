/* Bias + activation, CPU reference. */
#include <math.h>

#include "ops.h"

double ember_ref_activation(double x, ember_activation act) {
    switch (act) {
    case EMBER_ACT_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case EMBER_ACT_GELU_TANH: {
        const double k = sqrt(2.0 / 3.14159265358979323846);
        return 0.5 * x * (1.0 + tanh(k * (x + 0.044715 * x * x * x)));
    }
    case EMBER_ACT_RELU: return x > 0.0 ? x : 0.0;
    }
    return x;
}

void ember_ref_bias_act(float *x, const float *bias, int64_t N, int C, ember_activation act) {
    for (int64_t t = 0; t < N; t++) {
        float *r = x + t * C;
        for (int i = 0; i < C; i++) r[i] = (float)ember_ref_activation((double)r[i] + (bias ? bias[i] : 0.0), act);
    }
}
