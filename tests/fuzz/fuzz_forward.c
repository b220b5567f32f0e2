/* libFuzzer target: argument validation of ember_forward / ember_embed_tokens on the CPU
 * backend, with two tiny random models (H 8, 2 heads, 1 layer, vocab 50, 16 positions,
 * 2 token types; one with a pooler, one without) created once.
 *
 * Input bytes, read in order (missing bytes read as 0):
 *   op        entry point: input_ids, inputs_embeds, embedding_output, none, two at once;
 *             or ember_embed_tokens
 *   ptrs      NULL model / inputs / outputs / last_hidden_state, a non-NULL stream,
 *             pooler_output, hidden_states, the model without a pooler
 *   opts      attention_mask, token_type_ids, position_ids present; value modes
 *   batch, seq_len, flags   small values or extremes (-1, 0, INT_MAX, ...)
 *   valid_tokens            absent, the mask's count, the count off by a signed byte, any int
 *   values    the arrays' elements (valid by construction, raw int8 or raw int32; floats
 *             small, or raw bits: NaN and Inf must be rejected)
 * Every buffer holds exactly what batch x seq_len claims (so that ASan catches ember reading
 * past it); claims of more than 4096 tokens or of B, S < 1 get a 1-element buffer, which ember
 * must reject without reading. An independent oracle decides whether the call is valid.
 *
 * Checks: OK exactly when the oracle says valid; on failure a known status and a message;
 * on success every output element written (NaN-poisoned before) and finite, masked rows 0
 * under EMBER_FORWARD_SKIP_MASKED; after every input, both models still give a fixed request
 * bit-identical outputs. */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tests/fuzz/fuzz_util.h"

enum { H = 8, NHEADS = 2, LAYERS = 1, VOCAB = 50, MAXPOS = 16, TYPES = 2, INTER = 16 };
enum { CAP_BATCH = 8, CAP_SEQ = 16, MAX_CLAIM = 4096 };

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

static uint8_t u8(reader *r) {
    if (!r->n) return 0;
    r->n--;
    return *r->p++;
}

static uint32_t u32(reader *r) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)u8(r) << (8 * i);
    return v;
}

/* Mostly small sizes, sometimes an extreme. */
static int dim(reader *r, int small) {
    static const int extremes[] = {-1, 0, INT_MIN, INT_MAX, 65536, 1 << 20, 17, -100,
                                   CAP_BATCH * CAP_SEQ, 129, 4097, 46341, 1 << 16, 2, 3, 1};
    uint8_t b = u8(r);
    return b < 0xf0 ? b % small : extremes[b - 0xf0];
}

/* Element values: 0 = valid (b % limit), 1 = raw int8, 2 = raw int32, 3 = valid but one. */
static int32_t *ints(reader *r, int64_t n, int mode, int limit) {
    int32_t *v = malloc(sizeof *v * (size_t)n);
    FUZZ_CHECK(v, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        if (mode == 1) v[i] = (int8_t)u8(r);
        else if (mode == 2) v[i] = (int32_t)u32(r);
        else v[i] = u8(r) % limit;
    }
    if (mode == 3) v[u8(r) % n] = (int32_t)u32(r);
    return v;
}

/* Floats: small (k / 16) unless raw, when any bit pattern (NaN, inf) may appear. */
static float *floats(reader *r, int64_t n, int raw) {
    float *v = malloc(sizeof *v * (size_t)n);
    FUZZ_CHECK(v, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        if (raw) {
            uint32_t b = u32(r);
            memcpy(&v[i], &b, sizeof b);
        } else {
            v[i] = (float)(int8_t)u8(r) / 16.0f;
        }
    }
    return v;
}

static int in_range(const int32_t *v, int64_t n, int limit) {
    for (int64_t i = 0; v && i < n; i++)
        if (v[i] < 0 || v[i] >= limit) return 0;
    return 1;
}

static float *poisoned(int64_t n) {
    float *v = malloc(sizeof *v * (size_t)(n ? n : 1));
    FUZZ_CHECK(v, "out of memory");
    for (int64_t i = 0; i < n; i++) v[i] = NAN;
    return v;
}

static int all_finite(const float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

/* ---- the models and their fixed request ---------------------------------------------- */

static ember_model *g_model[2]; /* [0] with pooler, [1] without */
enum { RB = 2, RS = 5 };
static float g_ref_h[2][RB * RS * H], g_ref_p[RB * H];

static void reference_request(ember_model *m, int pooler, float *h, float *p) {
    static const int32_t ids[RB * RS] = {1, 7, 49, 3, 0, 1, 9, 9, 2, 48};
    static const int32_t mask[RB * RS] = {1, 1, 1, 1, 0, 1, 1, 1, 1, 1};
    static const int32_t types[RB * RS] = {0, 0, 1, 1, 0, 0, 0, 0, 1, 1};
    ember_inputs in = {.batch = RB, .seq_len = RS, .input_ids = ids, .attention_mask = mask,
                       .token_type_ids = types};
    ember_outputs out = {.last_hidden_state = h, .pooler_output = pooler ? p : NULL};
    ember_status st = ember_forward(m, &in, &out, NULL);
    FUZZ_CHECK(st == EMBER_OK, "reference request fails: %s", ember_last_error());
}

static void check_models_unchanged(void) {
    float h[RB * RS * H], p[RB * H];
    for (int k = 0; k < 2; k++) {
        reference_request(g_model[k], k == 0, h, p);
        FUZZ_CHECK(memcmp(h, g_ref_h[k], sizeof h) == 0, "model %d: reference output changed", k);
        FUZZ_CHECK(k != 0 || memcmp(p, g_ref_p, sizeof p) == 0, "reference pooler output changed");
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    for (int k = 0; k < 2; k++) {
        ember_config c = {.vocab_size = VOCAB, .hidden_size = H, .num_hidden_layers = LAYERS,
                          .num_attention_heads = NHEADS, .intermediate_size = INTER,
                          .max_position_embeddings = MAXPOS, .type_vocab_size = TYPES,
                          .layer_norm_eps = 1e-12, .hidden_act = EMBER_ACT_GELU,
                          .has_pooler = k == 0};
        ember_load_options opt;
        ember_load_options_init(&opt);
        opt.max_batch = CAP_BATCH;
        opt.max_seq_len = CAP_SEQ;
        ember_status st = ember_model_init_random(&c, 1234 + (uint64_t)k, &opt, &g_model[k]);
        FUZZ_CHECK(st == EMBER_OK, "ember_model_init_random: %s", ember_last_error());
        reference_request(g_model[k], k == 0, g_ref_h[k], g_ref_p);
    }
    return 0;
}

/* ---- ember_embed_tokens ---------------------------------------------------------------- */

static void fuzz_embed(reader *r, uint8_t ptrs) {
    ember_model *m = (ptrs & 1) ? NULL : g_model[(ptrs >> 7) & 1];
    int64_t n = dim(r, 40);
    if (n > MAX_CLAIM) n = MAX_CLAIM; /* any n >= 1 is valid here: claim only what we hold */
    int64_t len = n >= 1 ? n : 1;
    int32_t *ids = ints(r, len, (ptrs >> 2) & 3, VOCAB);
    float *out = poisoned(len * H);
    ember_stream stream = (ptrs & 0x10) ? (ember_stream)out : NULL; /* never dereferenced */
    const int null_ids = ptrs & 2, null_out = ptrs & 0x20;
    ember_status st = ember_embed_tokens(m, null_ids ? NULL : ids, n, null_out ? NULL : out, stream);
    fuzz_check_status(st, "ember_embed_tokens");
    int valid = m && !null_ids && !null_out && !stream && n >= 1 && in_range(ids, n, VOCAB);
    FUZZ_CHECK((st == EMBER_OK) == valid, "ember_embed_tokens: status %s but the call is %s (%s)",
               ember_status_string(st), valid ? "valid" : "invalid", ember_last_error());
    if (st == EMBER_OK) FUZZ_CHECK(all_finite(out, n * H), "embed_tokens left NaN");
    free(ids);
    free(out);
}

/* ---- ember_forward --------------------------------------------------------------------- */

static void fuzz_forward(reader *r, uint8_t op, uint8_t ptrs) {
    const uint8_t opts = u8(r);
    const int B = dim(r, 10), S = dim(r, 20);
    const uint8_t fb = u8(r);
    const unsigned flags = (fb & 0x80) ? u32(r) : (fb & 3u);
    const int entry = op % 5; /* 0 ids, 1 embeds, 2 embedding_output, 3 none, 4 two */
    const int with_pool = ptrs & 0x20, with_hs = ptrs & 0x40, k = (ptrs >> 7) & 1;
    ember_model *m = (ptrs & 1) ? NULL : g_model[k];

    /* claimed sizes; non-positive or huge claims get a 1-element buffer */
    const int64_t N = (int64_t)B * S;
    const int sane = B >= 1 && S >= 1 && N <= MAX_CLAIM;
    const int64_t n = sane ? N : 1;
    const int id_mode = (opts >> 4) & 3, other_mode = (opts >> 6) & 3;
    int32_t *ids = (entry == 0 || entry == 4) ? ints(r, n, id_mode, VOCAB) : NULL;
    float *emb = (entry == 1 || entry == 2 || entry == 4) ? floats(r, n * H, (opts >> 3) & 1) : NULL;
    int32_t *mask = (opts & 1) ? ints(r, n, other_mode, 2) : NULL;
    int32_t *types = (opts & 2) ? ints(r, n, other_mode, TYPES) : NULL;
    int32_t *pos = (opts & 4) ? ints(r, n, other_mode, MAXPOS) : NULL;
    float *h = poisoned(n * H), *p = poisoned(sane ? (int64_t)B * H : 1);
    float *hs = poisoned(n * H * (LAYERS + 1));

    /* valid_tokens (fb bits 2-3): not given, the mask's count, the count off by a signed
     * byte, or any int */
    int64_t ones = 0;
    for (int64_t t = 0; mask && t < n; t++) ones += mask[t] != 0;
    const int vt_mode = (fb >> 2) & 3;
    const int valid_tokens = vt_mode == 0   ? 0
                             : vt_mode == 1 ? (int)ones
                             : vt_mode == 2 ? (int)ones + (int8_t)u8(r)
                                            : (int)u32(r);
    ember_inputs in = {.batch = B, .seq_len = S, .attention_mask = mask, .token_type_ids = types,
                       .position_ids = pos, .flags = flags, .valid_tokens = valid_tokens};
    if (entry == 0 || entry == 4) in.input_ids = ids;
    if (entry == 1) in.inputs_embeds = emb;
    if (entry == 2 || entry == 4) in.embedding_output = emb;
    ember_outputs out = {.last_hidden_state = (ptrs & 8) ? NULL : h,
                         .pooler_output = with_pool ? p : NULL,
                         .hidden_states = with_hs ? hs : NULL};
    ember_stream stream = (ptrs & 0x10) ? (ember_stream)h : NULL; /* never dereferenced */

    ember_status st = ember_forward(m, (ptrs & 2) ? NULL : &in, (ptrs & 4) ? NULL : &out, stream);
    fuzz_check_status(st, "ember_forward");

    /* the oracle: what the header promises to accept */
    int valid = m && !(ptrs & 2) && !(ptrs & 4) && !(ptrs & 8) && !stream && entry <= 2 && B >= 1 &&
                S >= 1 && S <= MAXPOS && S <= CAP_SEQ && N <= CAP_BATCH * CAP_SEQ &&
                (flags & ~(EMBER_FORWARD_SKIP_MASKED | EMBER_FORWARD_ASYNC)) == 0 &&
                !(with_pool && k == 1);
    if (valid) {
        valid = in_range(ids, N, VOCAB) && in_range(mask, N, 2) && (!emb || all_finite(emb, N * H));
        /* given, it is read only with SKIP_MASKED and a mask, and must be the mask's count */
        if (valid_tokens)
            valid = valid && (flags & EMBER_FORWARD_SKIP_MASKED) && mask && valid_tokens == ones;
        if (entry != 2) valid = valid && in_range(types, N, TYPES) && in_range(pos, N, MAXPOS);
    }
    FUZZ_CHECK((st == EMBER_OK) == valid, "ember_forward: status %s but the call is %s (%s)",
               ember_status_string(st), valid ? "valid" : "invalid", ember_last_error());
    if (st == EMBER_OK) {
        /* inputs of |x| <= 8 must give finite outputs, every element written (larger finite
         * embedding_output values may overflow the f32 projections: not checked) */
        int bounded = 1;
        for (int64_t i = 0; emb && i < N * H; i++) bounded &= fabsf(emb[i]) <= 8.0f;
        if (bounded) {
            FUZZ_CHECK(all_finite(h, N * H), "last_hidden_state not all finite / not all written");
            if (with_pool) FUZZ_CHECK(all_finite(p, (int64_t)B * H), "pooler_output not finite");
            if (with_hs) FUZZ_CHECK(all_finite(hs, N * H * (LAYERS + 1)), "hidden_states not finite");
        }
        if ((flags & EMBER_FORWARD_SKIP_MASKED) && mask)
            for (int64_t t = 0; t < N; t++)
                for (int j = 0; j < H && !mask[t]; j++)
                    FUZZ_CHECK(h[t * H + j] == 0.0f, "masked row %lld not zero", (long long)t);
    }
    free(ids);
    free(emb);
    free(mask);
    free(types);
    free(pos);
    free(h);
    free(p);
    free(hs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    reader r = {data, size};
    const uint8_t op = u8(&r), ptrs = u8(&r);
    if (op >= 0xf0) fuzz_embed(&r, ptrs);
    else fuzz_forward(&r, op, ptrs);
    check_models_unchanged();
    return 0;
}
