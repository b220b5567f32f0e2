/* Pooler, CPU reference: tanh(dense(hidden[:, 0])). */
#include <math.h>

#include "ops.h"

void ember_ref_pooler(float *out, const float *hidden, const float *w, const float *b, int B,
                      int S, int H) {
    for (int bi = 0; bi < B; bi++) {
        const float *x = hidden + (int64_t)bi * S * H; /* first token of sequence bi */
        for (int j = 0; j < H; j++) {
            double acc = b[j];
            const float *wr = w + (int64_t)j * H;
            for (int i = 0; i < H; i++) acc += (double)x[i] * wr[i];
            out[(int64_t)bi * H + j] = (float)tanh(acc);
        }
    }
}
