/* Linear layer (torch.nn.Linear), CPU reference: double accumulation, rows in parallel. */
#include "ops.h"

/* dot of two float rows in double; four partial sums keep the loop pipelined. */
static double dot(const float *a, const float *b, int n) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += (double)a[i] * b[i];
        s1 += (double)a[i + 1] * b[i + 1];
        s2 += (double)a[i + 2] * b[i + 2];
        s3 += (double)a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += (double)a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

void ember_ref_linear(float *out, const float *in, const float *w, const float *b, int N, int IN,
                      int OUT) {
    /* Each output element is independent, so the threads do not change any result. */
#pragma omp parallel for schedule(static)
    for (int t = 0; t < N; t++) {
        const float *x = in + (int64_t)t * IN;
        float *o = out + (int64_t)t * OUT;
        for (int j = 0; j < OUT; j++) {
            double acc = dot(x, w + (int64_t)j * IN, IN);
            o[j] = (float)(b ? acc + (double)b[j] : acc);
        }
    }
}
