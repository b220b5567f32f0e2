/* Embeddings, CPU reference: word gather, the fused word + type + position + LayerNorm, and
 * RoBERTa's default position ids. */
#include <math.h>
#include <string.h>

#include "ops.h"

void ember_ref_gather(float *out, const int32_t *ids, int64_t n, const float *word, int H) {
    for (int64_t t = 0; t < n; t++)
        memcpy(out + t * H, word + (int64_t)ids[t] * H, sizeof(float) * (size_t)H);
}

/* LayerNorm of one row held in double; statistics in double (biased variance, like torch). */
static void layernorm_row(float *out, const double *x, const float *gamma, const float *beta,
                          int H, double eps) {
    double mean = 0.0;
    for (int i = 0; i < H; i++) mean += x[i];
    mean /= H;
    double var = 0.0;
    for (int i = 0; i < H; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= H;
    double rstd = 1.0 / sqrt(var + eps);
    for (int i = 0; i < H; i++) out[i] = (float)((x[i] - mean) * rstd * gamma[i] + beta[i]);
}

/* Row `out` is the embedding of padded token t of a batch with rows of S tokens. */
static void embed_row(float *out, int64_t t, const int32_t *ids, const float *embeds,
                      const int32_t *type_ids, const int32_t *pos_ids, const float *word,
                      const float *pos, const float *type, const float *gamma, const float *beta,
                      int S, int H, double eps, double *row) {
    /* HF: inputs_embeds + token_type_embeddings, then + position_embeddings (fp32 there;
     * the sum is exact in double here). */
    const float *w = ids ? word + (int64_t)ids[t] * H : embeds + t * H;
    const float *ty = type + (int64_t)(type_ids ? type_ids[t] : 0) * H;
    const float *p = pos + (int64_t)(pos_ids ? pos_ids[t] : (int32_t)(t % S)) * H;
    for (int i = 0; i < H; i++) row[i] = (double)w[i] + (double)ty[i] + (double)p[i];
    layernorm_row(out, row, gamma, beta, H, eps);
}

void ember_ref_embed_layernorm(float *out, const int32_t *ids, const float *embeds,
                               const int32_t *type_ids, const int32_t *pos_ids,
                               const float *word, const float *pos, const float *type,
                               const float *gamma, const float *beta, int B, int S, int H,
                               double eps) {
    double row[H];
    for (int64_t t = 0; t < (int64_t)B * S; t++)
        embed_row(out + t * H, t, ids, embeds, type_ids, pos_ids, word, pos, type, gamma, beta, S,
                  H, eps, row);
}

void ember_ref_embed_layernorm_packed(float *out, const int32_t *index, int64_t T,
                                      const int32_t *ids, const float *embeds,
                                      const int32_t *type_ids, const int32_t *pos_ids,
                                      const float *word, const float *pos, const float *type,
                                      const float *gamma, const float *beta, int S, int H,
                                      double eps) {
    double row[H];
    for (int64_t r = 0; r < T; r++)
        embed_row(out + r * H, index[r], ids, embeds, type_ids, pos_ids, word, pos, type, gamma,
                  beta, S, H, eps, row);
}

void ember_ref_position_ids(int32_t *out, const int32_t *ids, int B, int S, int pad) {
    for (int b = 0; b < B; b++) {
        int32_t count = 0;
        for (int s = 0; s < S; s++) {
            const int64_t t = (int64_t)b * S + s;
            if (!ids) {
                out[t] = pad + 1 + s;
            } else if (ids[t] == pad) {
                out[t] = pad;
            } else {
                out[t] = pad + ++count;
            }
        }
    }
}
