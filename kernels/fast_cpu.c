/* The fast CPU path's heavy ops (kernels/fast_cpu.h): sgemm, fused bias + activation, fused
 * bias + residual + LayerNorm, attention per (sequence, head). float32 throughout.
 *
 * Vectorisation without -ffast-math: sums that the compiler may not reorder are written with
 * 16 fixed lanes (lane k takes elements k, k+16, ...; the lanes are then added in a fixed
 * tree), so the result is the same whatever the vector width; elementwise work is plain
 * IEEE arithmetic. With GCC on x86-64 the hot loops are compiled three times (AVX-512, AVX2 or
 * x86-64-v3, baseline) and the CPU picks one at load. ISO C mode contracts no multiply-add into
 * an FMA, and attention's dot products call fmaf, which is one rounding everywhere, so every
 * variant gives the same bits (checked: the AVX-512 Release build and the -O0 sanitizer build,
 * which has no clones, wrote identical all-MiniLM-L6-v2 outputs). */
#include "fast_cpu.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "cpu_pool.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define FAST_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
/* Attention's dot products use fmaf, which C defines as one rounding: the FMA instructions of
 * x86-64-v3/v4 and the library call of the baseline give the same bits. */
#define FMA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FAST_CLONES
#define FMA_CLONES
#endif

enum { LANES = 16 };

/* Work below which an op runs on the calling thread alone, about half a millisecond of it:
 * waking the pool's threads costs tens of microseconds, more than a small op takes (one
 * sentence, the soak test's tiny batches). Elementwise ops go to the pool in blocks of
 * PARALLEL_MIN_ELEMENTS / 4 elements. */
#define PARALLEL_MIN_ELEMENTS (1 << 18) /* elements of a bias + activation or LayerNorm */
#define PARALLEL_MIN_MACS (1 << 22)     /* multiply-adds of an attention */

/* Rows [0, N) of C elements in blocks of about PARALLEL_MIN_ELEMENTS / 4 elements. */
typedef struct row_blocks {
    int64_t N, rows; /* rows per block */
} row_blocks;

static row_blocks blocks_of(int64_t N, int C) {
    int64_t rows = (PARALLEL_MIN_ELEMENTS / 4) / (C > 0 ? C : 1);
    if (rows < 1) rows = 1;
    return (row_blocks){N, rows};
}
static int64_t n_blocks(row_blocks b) { return (b.N + b.rows - 1) / b.rows; }

static inline uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static inline float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* exp(x) in float: x = n ln2 + r, |r| <= ln2/2 (Cody-Waite split of ln2), e^r by its Taylor
 * polynomial to degree 7 (truncation 5e-9 relative), times 2^n built in the exponent bits.
 * Below -87.3 (2^n would leave the normal range) it returns 0, which is what softmax and
 * erfc need; above 88.3 it is clamped (never reached by the callers). Branch-free, so loops
 * calling it vectorise. */
static inline float fexp(float x) {
    const float shift = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    const float xc = x < -87.3f ? -87.3f : x > 88.3f ? 88.3f : x;
    const float j = xc * 1.44269504f + shift;
    const float n = j - shift;
    const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t e = (int32_t)(f2u(j) - f2u(shift)) + 127;
    const float v = p * u2f((uint32_t)e << 23);
    return x < -87.3f ? 0.0f : v;
}

/* Sum of x[0..n) in the 16-lane order described at the top. */
static inline float lane_sum(const float *x, int n) {
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) acc[k] += x[i + k];
    for (int k = 0; i + k < n; k++) acc[k] += x[i + k];
    for (int w = LANES / 2; w > 0; w /= 2)
        for (int k = 0; k < w; k++) acc[k] += acc[k + w];
    return acc[0];
}

/* ---- linear ------------------------------------------------------------------------------ */

/* One sgemm on OpenBLAS's threads. Cutting the GEMM into fixed tiles run single-threaded on
 * ember's threads would make the result independent of the thread count, but measured on the
 * 2-core development machine it was 15-20% slower on one thread (every tile packs its panels
 * again) and much slower on two (concurrent sgemm calls contend inside OpenBLAS). */
void ember_fast_linear(float *out, const float *in, const float *w, const float *b, int N, int IN,
                       int OUT) {
    if (b)
        for (int64_t t = 0; t < N; t++) memcpy(out + t * OUT, b, sizeof(float) * (size_t)OUT);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OUT, IN, 1.0f, in, IN, w, IN,
                b ? 1.0f : 0.0f, out, OUT);
}

/* ---- bias + activation ------------------------------------------------------------------- */

FAST_CLONES
static void bias_act_row(float *x, const float *bias, int C, ember_activation act) {
    switch (act) {
    case EMBER_ACT_GELU:
        /* 0.5 x (1 + erf(x / sqrt 2)); erf(a) = 1 - t P(t) e^(-a^2), t = 1 / (1 + p a), a >= 0
         * (A&S 7.1.26). 1 + erf is 2 - tPe above 0 and tPe below, without cancellation. */
        for (int i = 0; i < C; i++) {
            const float v = x[i] + (bias ? bias[i] : 0.0f);
            const float z = v * 0.70710678118654752f;
            const float a = fabsf(z);
            const float t = 1.0f / (1.0f + 0.3275911f * a);
            float p = 1.061405429f;
            p = p * t - 1.453152027f;
            p = p * t + 1.421413741f;
            p = p * t - 0.284496736f;
            p = p * t + 0.254829592f;
            const float c = p * t * fexp(-a * a);
            x[i] = 0.5f * v * (z >= 0.0f ? 2.0f - c : c);
        }
        break;
    case EMBER_ACT_GELU_TANH:
        /* 0.5 x (1 + tanh(u)) = x / (1 + e^(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3) */
        for (int i = 0; i < C; i++) {
            const float v = x[i] + (bias ? bias[i] : 0.0f);
            const float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
            x[i] = v / (1.0f + fexp(-2.0f * u));
        }
        break;
    case EMBER_ACT_RELU:
        for (int i = 0; i < C; i++) {
            const float v = x[i] + (bias ? bias[i] : 0.0f);
            x[i] = v > 0.0f ? v : 0.0f;
        }
        break;
    }
}

typedef struct bias_act_job {
    float *x;
    const float *bias;
    int C;
    ember_activation act;
    row_blocks rb;
} bias_act_job;

static void bias_act_task(void *ctx, int64_t task, int worker) {
    const bias_act_job *j = ctx;
    const int64_t r0 = task * j->rb.rows, r1 = r0 + j->rb.rows < j->rb.N ? r0 + j->rb.rows : j->rb.N;
    for (int64_t t = r0; t < r1; t++) bias_act_row(j->x + t * j->C, j->bias, j->C, j->act);
}

void ember_fast_bias_act(float *x, const float *bias, int64_t N, int C, ember_activation act) {
    bias_act_job j = {x, bias, C, act, blocks_of(N, C)};
    ember_pool_run(n_blocks(j.rb), bias_act_task, &j, N * C < PARALLEL_MIN_ELEMENTS);
}

/* ---- bias + residual + LayerNorm --------------------------------------------------------- */

FAST_CLONES
static void bias_residual_ln_row(float *o, const float *x, const float *bias, const float *r,
                                 const float *gamma, const float *beta, int H, float eps) {
    /* HF: LayerNorm(dense(x) + input); dense includes the bias. o may be r. */
    for (int i = 0; i < H; i++) o[i] = (x[i] + (bias ? bias[i] : 0.0f)) + r[i];
    const float mean = lane_sum(o, H) / (float)H;
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= H; i += LANES)
        for (int k = 0; k < LANES; k++) acc[k] += (o[i + k] - mean) * (o[i + k] - mean);
    for (int k = 0; i + k < H; k++) acc[k] += (o[i + k] - mean) * (o[i + k] - mean);
    for (int w = LANES / 2; w > 0; w /= 2)
        for (int k = 0; k < w; k++) acc[k] += acc[k + w];
    const float rstd = 1.0f / sqrtf(acc[0] / (float)H + eps);
    for (int j = 0; j < H; j++) o[j] = (o[j] - mean) * rstd * gamma[j] + beta[j];
}

typedef struct ln_job {
    float *out;
    const float *x, *bias, *residual, *gamma, *beta;
    int H;
    float eps;
    row_blocks rb;
} ln_job;

static void ln_task(void *ctx, int64_t task, int worker) {
    const ln_job *j = ctx;
    const int64_t r0 = task * j->rb.rows, r1 = r0 + j->rb.rows < j->rb.N ? r0 + j->rb.rows : j->rb.N;
    for (int64_t t = r0; t < r1; t++)
        bias_residual_ln_row(j->out + t * j->H, j->x + t * j->H, j->bias, j->residual + t * j->H,
                             j->gamma, j->beta, j->H, j->eps);
}

void ember_fast_bias_residual_layernorm(float *out, const float *x, const float *bias,
                                        const float *residual, const float *gamma,
                                        const float *beta, int N, int H, double eps) {
    ln_job j = {out, x, bias, residual, gamma, beta, H, (float)eps, blocks_of(N, H)};
    ember_pool_run(n_blocks(j.rb), ln_task, &j, (int64_t)N * H < PARALLEL_MIN_ELEMENTS);
}

/* ---- attention ----------------------------------------------------------------------------- */

static int round_lanes(int n) { return (n + LANES - 1) / LANES * LANES; }

/* Scratch of one (sequence, head), for up to S keys of head size HD. */
static size_t kt_floats(int S, int HD) { return (size_t)HD * round_lanes(S); }
static size_t vp_floats(int S, int HD) { return (size_t)S * round_lanes(HD); }

size_t ember_fast_attention_scratch(int S, int HD) {
    /* K^T, packed K then V, 4 rows of probabilities, key rows (S, as int32) */
    return kt_floats(S, HD) + vp_floats(S, HD) + 4 * (size_t)round_lanes(S) + (size_t)S;
}

/* One head of one sequence, four queries at a time. Rows r of the sequence are qkv + r*3H (q,
 * k, v at offsets 0, H, 2H, head h at h*HD) and out + r*H. keys[0..nk) are the attended rows
 * in order; nk = 0 means no valid key (a fully masked sequence of n rows: HF attends uniformly
 * over all n). Every score is a dot product over d in order, every probability sum and output
 * element a sum over the keys in order, whichever block a query falls in.
 * The head's keys and values are first copied out of qkv: rows of qkv are 3H floats apart, a
 * stride that maps them onto a few cache sets. */
FMA_CLONES
static void attend_head(float *out, const float *qkv, int n, const int32_t *keys, int nk, int H,
                        int HD, int h, float *scratch) {
    const int64_t row = 3 * (int64_t)H;
    const int sp = round_lanes(nk), hp = round_lanes(HD);
    float *kt = scratch, *vp = kt + kt_floats(nk, HD), *p = vp + vp_floats(nk, HD);
    const float *q0 = qkv + h * HD, *k0 = qkv + H + h * HD, *v0 = qkv + 2 * H + h * HD;
    if (nk == 0) {
        /* every score is float32-min in HF: uniform weights 1/n over the n keys */
        float *acc = scratch;
        for (int d = 0; d < HD; d++) acc[d] = 0.0f;
        for (int j = 0; j < n; j++)
            for (int d = 0; d < HD; d++) acc[d] += v0[j * row + d];
        for (int i = 0; i < n; i++)
            for (int d = 0; d < HD; d++) out[(int64_t)i * H + h * HD + d] = acc[d] / (float)n;
        return;
    }
    /* K^T (HD x sp, zero columns up to the lanes) through a packed copy of K */
    for (int j = 0; j < nk; j++) memcpy(vp + (size_t)j * hp, k0 + keys[j] * row, sizeof(float) * HD);
    for (int d = 0; d < HD; d++) {
        float *kr = kt + (size_t)d * sp;
        for (int j = 0; j < nk; j++) kr[j] = vp[(size_t)j * hp + d];
        for (int j = nk; j < sp; j++) kr[j] = 0.0f;
    }
    /* V packed, rows of hp with zero columns past HD */
    for (int j = 0; j < nk; j++) {
        float *vr = vp + (size_t)j * hp;
        memcpy(vr, v0 + keys[j] * row, sizeof(float) * HD);
        for (int d = HD; d < hp; d++) vr[d] = 0.0f;
    }
    const float scale = 1.0f / sqrtf((float)HD);
    float *p0 = p, *p1 = p + sp, *p2 = p + 2 * sp, *p3 = p + 3 * sp;
    for (int i0 = 0; i0 < n; i0 += 4) {
        const int nq = n - i0 < 4 ? n - i0 : 4;
        /* a short last block repeats its last query and discards the copies */
        const float *qa = q0 + i0 * row, *qb = q0 + (i0 + (nq > 1 ? 1 : 0)) * row,
                    *qc = q0 + (i0 + (nq > 2 ? 2 : nq - 1)) * row,
                    *qd = q0 + (i0 + (nq > 3 ? 3 : nq - 1)) * row;
        for (int jb = 0; jb < sp; jb += LANES) {
            float sa[LANES] = {0}, sb[LANES] = {0}, sc[LANES] = {0}, sd[LANES] = {0};
            for (int d = 0; d < HD; d++) {
                const float *kr = kt + (size_t)d * sp + jb;
                const float a = qa[d], b = qb[d], c = qc[d], e = qd[d];
                for (int k = 0; k < LANES; k++) {
                    sa[k] = fmaf(a, kr[k], sa[k]);
                    sb[k] = fmaf(b, kr[k], sb[k]);
                    sc[k] = fmaf(c, kr[k], sc[k]);
                    sd[k] = fmaf(e, kr[k], sd[k]);
                }
            }
            for (int k = 0; k < LANES; k++) {
                p0[jb + k] = sa[k] * scale;
                p1[jb + k] = sb[k] * scale;
                p2[jb + k] = sc[k] * scale;
                p3[jb + k] = sd[k] * scale;
            }
        }
        float sum[4];
        for (int b = 0; b < 4; b++) {
            float *pb = p + (size_t)b * sp, mx = -INFINITY;
            for (int j = 0; j < nk; j++) mx = pb[j] > mx ? pb[j] : mx;
            for (int j = 0; j < nk; j++) pb[j] = fexp(pb[j] - mx);
            sum[b] = 0.0f; /* in key order, so padded and packed runs add alike */
            for (int j = 0; j < nk; j++) sum[b] += pb[j];
        }
        for (int db = 0; db < hp; db += LANES) {
            float aa[LANES] = {0}, ab[LANES] = {0}, ac[LANES] = {0}, ad[LANES] = {0};
            for (int j = 0; j < nk; j++) {
                const float *vr = vp + (size_t)j * hp + db;
                const float wa = p0[j], wb = p1[j], wc = p2[j], wd = p3[j];
                for (int k = 0; k < LANES; k++) {
                    aa[k] = fmaf(wa, vr[k], aa[k]);
                    ab[k] = fmaf(wb, vr[k], ab[k]);
                    ac[k] = fmaf(wc, vr[k], ac[k]);
                    ad[k] = fmaf(wd, vr[k], ad[k]);
                }
            }
            const float *acc[4] = {aa, ab, ac, ad};
            const int w = HD - db < LANES ? HD - db : LANES;
            for (int b = 0; b < nq; b++) {
                float *o = out + (int64_t)(i0 + b) * H + h * HD + db;
                for (int k = 0; k < w; k++) o[k] = acc[b][k] / sum[b];
            }
        }
    }
}

typedef struct attention_job {
    float *out;
    const float *qkv;
    const int32_t *mask, *cu_seqlens;
    int S, NH, HD;
    float *scratch;
    size_t per; /* floats of scratch per worker */
} attention_job;

static void attention_task(void *ctx, int64_t task, int worker) {
    const attention_job *j = ctx;
    const int b = (int)(task / j->NH), h = (int)(task % j->NH), H = j->NH * j->HD;
    float *mine = j->scratch + j->per * (size_t)worker;
    int32_t *keys = (int32_t *)(mine + (j->per - (size_t)j->S));
    int64_t first;
    int n, nk = 0;
    if (j->cu_seqlens) {
        first = j->cu_seqlens[b];
        n = j->cu_seqlens[b + 1] - j->cu_seqlens[b];
        for (int k = 0; k < n; k++) keys[nk++] = k;
    } else {
        first = (int64_t)b * j->S;
        n = j->S;
        for (int k = 0; k < j->S; k++)
            if (!j->mask || j->mask[first + k] != 0) keys[nk++] = k;
    }
    if (n > 0)
        attend_head(j->out + first * H, j->qkv + first * 3 * H, n, keys, nk, H, j->HD, h, mine);
}

void ember_fast_attention(float *out, const float *qkv, const int32_t *mask,
                          const int32_t *cu_seqlens, int B, int S, int NH, int HD, float *scratch,
                          int threads) {
    const int H = NH * HD;
    attention_job j = {out, qkv, mask, cu_seqlens, S, NH, HD, scratch,
                       ember_fast_attention_scratch(S, HD)};
    /* multiply-adds of QK^T and PV if every key were valid */
    const int64_t macs = 2 * (cu_seqlens ? (int64_t)S * cu_seqlens[B] : (int64_t)B * S * S) * H;
    ember_pool_run((int64_t)B * NH, attention_task, &j,
                   macs < PARALLEL_MIN_MACS || threads < ember_pool_threads());
}
