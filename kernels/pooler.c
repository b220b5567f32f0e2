/* The heads' dense layer, CPU reference: act(dense(x)) on chosen rows; the pooler is
 * tanh(dense(hidden[:, 0])). */
#include <math.h>

#include "ops.h"

static double head_act(double x, ember_head_act act) {
    switch (act) {
    case EMBER_HEAD_ACT_NONE: return x;
    case EMBER_HEAD_ACT_TANH: return tanh(x);
    case EMBER_HEAD_ACT_GELU: return ember_ref_activation(x, EMBER_ACT_GELU);
    case EMBER_HEAD_ACT_RELU: return ember_ref_activation(x, EMBER_ACT_RELU);
    }
    return x;
}

void ember_ref_dense(float *out, const float *in, int64_t ld_in, const float *w, const float *b,
                     int N, int IN, int OUT, ember_head_act act) {
    for (int n = 0; n < N; n++) {
        const float *x = in + (int64_t)n * ld_in;
        for (int j = 0; j < OUT; j++) {
            double acc = b ? b[j] : 0.0;
            const float *wr = w + (int64_t)j * IN;
            for (int i = 0; i < IN; i++) acc += (double)x[i] * wr[i];
            out[(int64_t)n * OUT + j] = (float)head_act(acc, act);
        }
    }
}

void ember_ref_pooler(float *out, const float *hidden, const float *w, const float *b, int B,
                      int S, int H) {
    ember_ref_dense(out, hidden, (int64_t)S * H, w, b, B, H, H, EMBER_HEAD_ACT_TANH);
}
