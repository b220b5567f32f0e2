// The performance paths: EMBER_FORWARD_SKIP_MASKED (padding removal), EMBER_FORWARD_ASYNC +
// ember_model_sync, CUDA graphs, the cuBLASLt GELU epilogue, and the flags validation.
//
// CPU part (runs everywhere): the packing plan, padding removal on both CPU backends against
// the padded run (reference: bit-identical valid rows; both: exact zero rows) and against the
// HF goldens, and the fast CPU backend against the reference on the same edge cases and on odd
// sizes. CUDA part (skips without a device): every packing kernel against its CPU twin,
// padding removal on the GPU against the CPU reference in f32/f16/bf16, ASYNC error
// reporting, CUDA graph replay bit-identical to plain launches, GEMM + activation epilogues.
#include <dlfcn.h>
#include <jansson.h>

#include <algorithm>
#include <optional>
#include <random>

#include "host/model.h"
#include "host/tune.h"
#include "kernels/ops.h"
#include "tests/ember_test.h"

using namespace ember_test;

namespace {

// ---- inputs, outputs, checks shared by the CPU and CUDA tests --------------------------------

struct Batch {
    std::string name;
    int B = 0, S = 0;
    std::vector<int32_t> ids, mask, types, positions;  // empty = absent
    std::vector<float> embeds, embedding_output;        // set = that entry point instead of ids
    int valid_tokens = 0;                               // ember_inputs.valid_tokens
};

// Every value is still the NaN poison: nothing was written.
bool AllNaN(const std::vector<float> &v) {
    return std::all_of(v.begin(), v.end(), [](float f) { return std::isnan(f); });
}

// The number of nonzero mask values: what ember_inputs.valid_tokens must say.
int CountValid(const Batch &x) {
    int n = 0;
    for (int32_t v : x.mask) n += v != 0;
    return n;
}

struct Outs {
    std::vector<float> last, pooled, hidden;
};

// BitIdentical that also accepts two empty vectors (memcmp of NULL is undefined behaviour).
bool Same(const std::vector<float> &a, const std::vector<float> &b) {
    return a.size() == b.size() && (a.empty() || BitIdentical(a, b));
}

bool Valid(const Batch &x, int64_t p) { return x.mask.empty() || x.mask[(size_t)p] != 0; }

// The rows of `v` (layers x B*S rows of H) whose token is valid (want_valid) or masked.
std::vector<float> Rows(const std::vector<float> &v, const Batch &x, int H, bool want_valid) {
    std::vector<float> r;
    const int64_t N = (int64_t)x.B * x.S;
    const int64_t layers = N ? (int64_t)v.size() / (N * H) : 0;
    for (int64_t l = 0; l < layers; l++)
        for (int64_t p = 0; p < N; p++)
            if (Valid(x, p) == want_valid)
                r.insert(r.end(), v.begin() + (l * N + p) * H, v.begin() + (l * N + p + 1) * H);
    return r;
}

// Every masked row is +0.0 exactly (bit pattern 0).
::testing::AssertionResult MaskedRowsAreZero(const std::vector<float> &v, const Batch &x, int H) {
    std::vector<float> m = Rows(v, x, H, false);
    for (size_t i = 0; i < m.size(); i++) {
        uint32_t bits;
        memcpy(&bits, &m[i], 4);
        if (bits != 0)
            return ::testing::AssertionFailure()
                   << "masked element " << i << " of " << m.size() << " is " << m[i];
    }
    return ::testing::AssertionSuccess();
}

// Rows of the pooler output (B,H) whose first token is valid / masked.
std::vector<float> PoolRows(const std::vector<float> &v, const Batch &x, int H, bool first_valid) {
    std::vector<float> r;
    for (int b = 0; b < x.B; b++)
        if (Valid(x, (int64_t)b * x.S) == first_valid)
            r.insert(r.end(), v.begin() + (size_t)b * H, v.begin() + (size_t)(b + 1) * H);
    return r;
}

ember_config TinyConfig(ember_activation act = EMBER_ACT_GELU, bool pooler = true) {
    ember_config c{};
    c.vocab_size = 50;
    c.hidden_size = 32;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.intermediate_size = 48;
    c.max_position_embeddings = 40;
    c.type_vocab_size = 3;
    c.layer_norm_eps = 1e-12;
    c.hidden_act = act;
    c.has_pooler = pooler;
    return c;
}

Model MakeModel(const ember_config &c, ember_backend backend, ember_dtype dt, int max_batch,
                int max_seq, int graphs = 1, uint64_t seed = 7, int tuning = -1) {
    ember_load_options opt;
    ember_load_options_init(&opt);
    opt.backend = backend;
    opt.compute_dtype = dt;
    opt.max_batch = max_batch;
    opt.max_seq_len = max_seq;
    opt.cuda_graphs = graphs;
    opt.tuning = tuning;
    ember_model *m = nullptr;
    ember_status st = ember_model_init_random(&c, seed, &opt, &m);
    EXPECT_EQ(st, EMBER_OK) << Why(st);
    return Model(m);
}

std::vector<int32_t> Ints(size_t n, int limit, uint32_t seed) {
    std::mt19937 g(seed);
    std::uniform_int_distribution<int> u(0, limit - 1);
    std::vector<int32_t> v(n);
    for (auto &x : v) x = u(g);
    return v;
}

std::vector<float> Floats(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
    std::mt19937 g(seed);
    std::uniform_real_distribution<float> u(lo, hi);
    std::vector<float> v(n);
    for (auto &x : v) x = u(g);
    return v;
}

// Mask (B,S) from per-row strings of '1' and '0'.
std::vector<int32_t> MaskOf(const std::vector<std::string> &rows) {
    std::vector<int32_t> m;
    for (const std::string &r : rows)
        for (char ch : r) m.push_back(ch == '1');
    return m;
}

std::vector<int32_t> RightPadded(const std::vector<int> &lengths, int S) {
    std::vector<int32_t> m;
    for (int len : lengths)
        for (int s = 0; s < S; s++) m.push_back(s < len);
    return m;
}

std::vector<int32_t> RandomHoles(int B, int S, double keep, uint32_t seed) {
    std::mt19937 g(seed);
    std::bernoulli_distribution k(keep);
    std::vector<int32_t> m((size_t)B * S);
    for (auto &v : m) v = k(g);
    return m;
}

Batch WithIds(std::string name, int B, int S, std::vector<int32_t> mask, const ember_config &c,
              uint32_t seed) {
    Batch x;
    x.name = std::move(name);
    x.B = B;
    x.S = S;
    x.ids = Ints((size_t)B * S, c.vocab_size, seed);
    x.mask = std::move(mask);
    return x;
}

// The edge cases of padding removal for a model with max_position_embeddings >= 40.
std::vector<Batch> EdgeCases(const ember_config &c) {
    std::vector<Batch> v;
    v.push_back(WithIds("no_mask", 3, 7, {}, c, 1));
    v.push_back(WithIds("all_ones", 3, 7, std::vector<int32_t>(21, 1), c, 2));
    v.push_back(WithIds("one_token", 1, 1, {1}, c, 3));
    v.push_back(WithIds("one_token_masked", 1, 1, {0}, c, 4));
    v.push_back(WithIds("len1_and_max", 2, 40, RightPadded({1, 40}, 40), c, 5));
    v.push_back(WithIds("right_padding", 4, 13, RightPadded({13, 9, 1, 6}, 13), c, 6));
    v.push_back(WithIds("left_padding", 2, 8, MaskOf({"00011111", "00000001"}), c, 7));
    v.push_back(WithIds("fully_masked_middle", 3, 6, MaskOf({"111100", "000000", "110111"}), c, 8));
    v.push_back(WithIds("all_masked", 2, 5, std::vector<int32_t>(10, 0), c, 9));
    Batch h = WithIds("holes_types_positions", 3, 9,
                      MaskOf({"011010111", "101010101", "111111110"}), c, 10);
    h.types = Ints(27, c.type_vocab_size, 11);
    std::vector<int32_t> pos(27);
    for (int b = 0; b < 3; b++) {  // distinct random positions per row
        std::vector<int32_t> perm(c.max_position_embeddings);
        for (int i = 0; i < (int)perm.size(); i++) perm[i] = i;
        std::shuffle(perm.begin(), perm.end(), std::mt19937(12 + b));
        std::copy_n(perm.begin(), 9, pos.begin() + b * 9);
    }
    h.positions = pos;
    v.push_back(h);
    Batch r = WithIds("random_holes", 5, 33, RandomHoles(5, 33, 0.6, 13), c, 14);
    r.types = Ints(5 * 33, c.type_vocab_size, 15);
    v.push_back(r);
    // inputs_embeds and embedding_output entries with holes
    Batch e = h;
    e.name = "holes_inputs_embeds";
    e.ids.clear();
    e.embeds = Floats((size_t)27 * c.hidden_size, 16);
    v.push_back(e);
    Batch eo = h;
    eo.name = "holes_embedding_output";
    eo.ids.clear();
    eo.types.clear();
    eo.positions.clear();
    eo.embedding_output = Floats((size_t)27 * c.hidden_size, 17, -2.f, 2.f);
    v.push_back(eo);
    return v;
}

// ---- CPU --------------------------------------------------------------------------------------

// One CPU forward with host buffers; outputs start as NaN.
ember_status RunCpu(ember_model *m, const Batch &x, unsigned flags, bool pooler, bool hidden,
                    Outs *o) {
    ember_config c;
    ember_model_config(m, &c);
    const size_t N = (size_t)x.B * x.S, H = (size_t)c.hidden_size;
    ember_inputs in{};
    in.batch = x.B;
    in.seq_len = x.S;
    in.input_ids = x.ids.empty() ? nullptr : x.ids.data();
    in.inputs_embeds = x.embeds.empty() ? nullptr : x.embeds.data();
    in.embedding_output = x.embedding_output.empty() ? nullptr : x.embedding_output.data();
    in.attention_mask = x.mask.empty() ? nullptr : x.mask.data();
    in.token_type_ids = x.types.empty() ? nullptr : x.types.data();
    in.position_ids = x.positions.empty() ? nullptr : x.positions.data();
    in.flags = flags;
    in.valid_tokens = x.valid_tokens;
    o->last = Poisoned(N * H);
    o->pooled = pooler ? Poisoned(x.B * H) : std::vector<float>();
    o->hidden = hidden ? Poisoned((c.num_hidden_layers + 1) * N * H) : std::vector<float>();
    ember_outputs out{};
    out.last_hidden_state = o->last.data();
    out.pooler_output = pooler ? o->pooled.data() : nullptr;
    out.hidden_states = hidden ? o->hidden.data() : nullptr;
    return ember_forward(m, &in, &out, nullptr);
}

TEST(ForwardFlags, UnknownBitsAreRejectedByName) {
    ember_config c = TinyConfig();
    Model m = MakeModel(c, EMBER_BACKEND_CPU, EMBER_DTYPE_F32, 2, 8);
    ASSERT_TRUE(m);
    Batch x = WithIds("x", 2, 5, RightPadded({5, 3}, 5), c, 1);
    for (unsigned bad : {0x4u, 0x80000000u, 0x3u | 0x100u}) {
        Outs o;
        ember_status st = RunCpu(m.get(), x, bad, false, false, &o);
        EXPECT_EQ(st, EMBER_ERR_INVALID_ARGUMENT) << Why(st);
        char hex[32];
        snprintf(hex, sizeof hex, "0x%x", bad & ~3u);
        EXPECT_NE(std::string(ember_last_error()).find(hex), std::string::npos)
            << ember_last_error();
        EXPECT_NE(std::string(ember_last_error()).find("flags"), std::string::npos);
    }
    Outs o;
    EXPECT_EQ(RunCpu(m.get(), x, EMBER_FORWARD_SKIP_MASKED | EMBER_FORWARD_ASYNC, true, false, &o),
              EMBER_OK)
        << ember_last_error();
    EXPECT_EQ(ember_model_sync(m.get(), nullptr), EMBER_OK);
}

TEST(PackPlan, SmallExampleByHand) {
    // rows: two valid then padding; empty; holes
    std::vector<int32_t> mask = MaskOf({"1100", "0000", "0101"});
    std::vector<int32_t> cu(4, -7), index(12, -7), inverse(12, -7);
    int64_t T = ember_ref_pack_plan(mask.data(), 3, 4, cu.data(), index.data(), inverse.data());
    EXPECT_EQ(T, 4);
    EXPECT_EQ(cu, (std::vector<int32_t>{0, 2, 2, 4}));
    EXPECT_EQ(std::vector<int32_t>(index.begin(), index.begin() + 4),
              (std::vector<int32_t>{0, 1, 9, 11}));
    EXPECT_EQ(inverse, (std::vector<int32_t>{0, 1, -1, -1, -1, -1, -1, -1, -1, 2, -1, 3}));
}

TEST(PackPlan, RandomMasksAreConsistent) {
    for (int trial = 0; trial < 20; trial++) {
        const int B = 1 + trial % 7, S = 1 + (trial * 13) % 37;
        std::vector<int32_t> mask = RandomHoles(B, S, trial % 3 == 0 ? 1.0 : 0.5, 100 + trial);
        std::vector<int32_t> cu(B + 1), index((size_t)B * S), inverse((size_t)B * S);
        const int64_t T = ember_ref_pack_plan(mask.data(), B, S, cu.data(), index.data(),
                                              inverse.data());
        int64_t ones = 0;
        for (int32_t v : mask) ones += v;
        ASSERT_EQ(T, ones);
        ASSERT_EQ(cu[0], 0);
        for (int b = 0; b < B; b++) {
            int len = 0;
            for (int s = 0; s < S; s++) len += mask[(size_t)b * S + s];
            ASSERT_EQ(cu[b + 1] - cu[b], len);
            for (int r = cu[b]; r < cu[b + 1]; r++) ASSERT_EQ(index[r] / S, b);
        }
        for (int64_t r = 0; r < T; r++) {
            ASSERT_EQ(inverse[index[r]], r);
            if (r > 0) {
                ASSERT_LT(index[r - 1], index[r]);
            }
        }
        for (int64_t p = 0; p < (int64_t)B * S; p++) ASSERT_EQ(inverse[p] >= 0, mask[p] != 0);
    }
}

TEST(PackPlan, RowMovesAreExact) {
    std::vector<int32_t> mask = MaskOf({"0110", "1111", "0000"});
    const int B = 3, S = 4, C = 5, N = 12;
    std::vector<int32_t> cu(4), index(12), inverse(12);
    const int64_t T = ember_ref_pack_plan(mask.data(), B, S, cu.data(), index.data(), inverse.data());
    std::vector<float> in = Floats((size_t)N * C, 1), packed(T * C), back = Poisoned((size_t)N * C);
    ember_ref_gather_rows(packed.data(), in.data(), index.data(), T, C);
    ember_ref_unpack_rows(back.data(), packed.data(), inverse.data(), N, C);
    for (int p = 0; p < N; p++)
        for (int k = 0; k < C; k++)
            EXPECT_EQ(back[(size_t)p * C + k], mask[p] ? in[(size_t)p * C + k] : 0.f);
    std::vector<float> first = Poisoned((size_t)B * C);
    ember_ref_first_rows(first.data(), packed.data(), inverse.data(), B, S, C);
    for (int k = 0; k < C; k++) {
        EXPECT_EQ(first[k], 0.f);                  // token (0,0) masked
        EXPECT_EQ(first[C + k], in[4 * C + k]);    // token (1,0)
        EXPECT_EQ(first[2 * C + k], 0.f);          // empty sequence
    }
}

// Padding removal on both CPU backends. The reference's valid rows are bit-identical to the
// padded run (see host/backend_cpu.c for why); the fast path's agree within its tolerance
// (sgemm's result for a row depends on the row's place in the matrix, and packing moves rows).
class SkipMaskedCpu : public ::testing::TestWithParam<ember_backend> {
  protected:
    ::testing::AssertionResult Match(const std::vector<float> &packed,
                                     const std::vector<float> &plain) const {
        if (GetParam() == EMBER_BACKEND_REFERENCE)
            return Same(packed, plain) ? ::testing::AssertionSuccess()
                                       : ::testing::AssertionFailure() << "not bit-identical";
        return AllClose(packed, plain, ember_tol::kCpuFastAbs, ember_tol::kCpuFastRel);
    }
};

INSTANTIATE_TEST_SUITE_P(Cpu, SkipMaskedCpu,
                         ::testing::Values(EMBER_BACKEND_CPU, EMBER_BACKEND_REFERENCE),
                         [](const ::testing::TestParamInfo<ember_backend> &i) {
                             return BackendName(i.param);
                         });

// Against the padded run: valid rows as above, masked rows exactly 0, pooler from the written
// row 0.
TEST_P(SkipMaskedCpu, EdgeCasesMatchThePaddedRun) {
    ember_config c = TinyConfig();
    Model m = MakeModel(c, GetParam(), EMBER_DTYPE_F32, 8, 40);
    ASSERT_TRUE(m);
    const int H = c.hidden_size;
    // tanh(pooler bias): the pooler of a sequence whose only token is masked.
    Outs z;
    ASSERT_EQ(RunCpu(m.get(), WithIds("z", 1, 1, {0}, c, 1), EMBER_FORWARD_SKIP_MASKED, true, false,
                     &z),
              EMBER_OK)
        << ember_last_error();
    const std::vector<float> tanh_b = z.pooled;
    for (const Batch &x : EdgeCases(c)) {
        SCOPED_TRACE(x.name);
        Outs plain, packed;
        ASSERT_EQ(RunCpu(m.get(), x, 0, true, true, &plain), EMBER_OK) << ember_last_error();
        ASSERT_EQ(RunCpu(m.get(), x, EMBER_FORWARD_SKIP_MASKED, true, true, &packed), EMBER_OK)
            << ember_last_error();
        EXPECT_TRUE(Match(Rows(packed.last, x, H, true), Rows(plain.last, x, H, true)));
        EXPECT_TRUE(Match(Rows(packed.hidden, x, H, true), Rows(plain.hidden, x, H, true)));
        EXPECT_TRUE(MaskedRowsAreZero(packed.last, x, H));
        EXPECT_TRUE(MaskedRowsAreZero(packed.hidden, x, H));
        EXPECT_TRUE(Match(PoolRows(packed.pooled, x, H, true), PoolRows(plain.pooled, x, H, true)));
        std::vector<float> masked_first = PoolRows(packed.pooled, x, H, false);
        for (size_t i = 0; i < masked_first.size(); i++)
            ASSERT_EQ(masked_first[i], tanh_b[i % H]) << "pooler of a masked first token, " << i;
        if (x.mask.empty()) {
            EXPECT_TRUE(Same(packed.last, plain.last));
            EXPECT_TRUE(Same(packed.hidden, plain.hidden));
            EXPECT_TRUE(Same(packed.pooled, plain.pooled));
        }
    }
}

// ember_inputs.valid_tokens: the right count changes no bit; a wrong one is rejected before
// anything is written, and the model then gives the same bits.
TEST_P(SkipMaskedCpu, ValidTokensCountIsCheckedAndChangesNothing) {
    ember_config c = TinyConfig();
    Model m = MakeModel(c, GetParam(), EMBER_DTYPE_F32, 8, 40);
    ASSERT_TRUE(m);
    int checked = 0;
    for (Batch x : EdgeCases(c)) {
        if (x.mask.empty() || CountValid(x) == 0) continue;  // 0 means "not given"
        SCOPED_TRACE(x.name);
        checked++;
        Outs plain, given;
        ASSERT_EQ(RunCpu(m.get(), x, EMBER_FORWARD_SKIP_MASKED, true, true, &plain), EMBER_OK);
        x.valid_tokens = CountValid(x);
        ASSERT_EQ(RunCpu(m.get(), x, EMBER_FORWARD_SKIP_MASKED, true, true, &given), EMBER_OK)
            << ember_last_error();
        EXPECT_TRUE(Same(given.last, plain.last));
        EXPECT_TRUE(Same(given.hidden, plain.hidden));
        EXPECT_TRUE(Same(given.pooled, plain.pooled));
        for (int wrong : {x.valid_tokens - 1, x.valid_tokens + 1}) {
            if (wrong < 1 || wrong > x.B * x.S) continue;
            Batch bad = x;
            bad.valid_tokens = wrong;
            Outs o;
            ember_status st = RunCpu(m.get(), bad, EMBER_FORWARD_SKIP_MASKED, true, false, &o);
            EXPECT_EQ(st, EMBER_ERR_INVALID_ARGUMENT) << Why(st);
            const std::string msg = ember_last_error();
            EXPECT_NE(msg.find("valid_tokens = " + std::to_string(wrong)), std::string::npos) << msg;
            EXPECT_NE(msg.find(std::to_string(x.valid_tokens) + " nonzero"), std::string::npos)
                << msg;
            EXPECT_TRUE(AllNaN(o.last)) << "nothing is written";
        }
        ASSERT_EQ(RunCpu(m.get(), x, EMBER_FORWARD_SKIP_MASKED, true, true, &given), EMBER_OK);
        EXPECT_TRUE(Same(given.last, plain.last)) << "after the rejected calls";
    }
    EXPECT_GE(checked, 3);
}

// valid_tokens outside its use or its range: rejected by name on both backends' common path.
TEST(ForwardFlags, ValidTokensOutsideItsUseIsRejected) {
    ember_config c = TinyConfig();
    Model m = MakeModel(c, EMBER_BACKEND_CPU, EMBER_DTYPE_F32, 4, 16);
    ASSERT_TRUE(m);
    Batch x = WithIds("x", 2, 5, MaskOf({"11100", "11111"}), c, 1);
    struct {
        const char *why;
        int valid_tokens;
        unsigned flags;
        bool mask;
        const char *says;
    } cases[] = {
        {"without SKIP_MASKED", 8, 0u, true, "only read with EMBER_FORWARD_SKIP_MASKED"},
        {"without a mask", 10, EMBER_FORWARD_SKIP_MASKED, false, "only read with"},
        {"negative", -1, EMBER_FORWARD_SKIP_MASKED, true, "outside [0, batch x seq_len = 10]"},
        {"above B x S", 11, EMBER_FORWARD_SKIP_MASKED, true, "outside [0, batch x seq_len = 10]"},
    };
    for (const auto &k : cases) {
        SCOPED_TRACE(k.why);
        Batch y = x;
        y.valid_tokens = k.valid_tokens;
        if (!k.mask) y.mask.clear();
        Outs o;
        ember_status st = RunCpu(m.get(), y, k.flags, false, false, &o);
        EXPECT_EQ(st, EMBER_ERR_INVALID_ARGUMENT) << Why(st);
        const std::string msg = ember_last_error();
        EXPECT_NE(msg.find(k.says), std::string::npos) << msg;
    }
    x.valid_tokens = 8;
    Outs o;
    EXPECT_EQ(RunCpu(m.get(), x, EMBER_FORWARD_SKIP_MASKED, false, false, &o), EMBER_OK)
        << ember_last_error();
}

// Without the pooler and hidden_states, and with a workspace exactly the batch's size.
TEST_P(SkipMaskedCpu, OnlyLastHiddenStateAtFullCapacity) {
    ember_config c = TinyConfig(EMBER_ACT_RELU, false);
    Model m = MakeModel(c, GetParam(), EMBER_DTYPE_F32, 4, 13);
    Batch x = WithIds("rp", 4, 13, RightPadded({13, 9, 1, 6}, 13), c, 3);
    Outs plain, packed;
    ASSERT_EQ(RunCpu(m.get(), x, 0, false, false, &plain), EMBER_OK);
    ASSERT_EQ(RunCpu(m.get(), x, EMBER_FORWARD_SKIP_MASKED, false, false, &packed), EMBER_OK)
        << ember_last_error();
    EXPECT_TRUE(Match(Rows(packed.last, x, c.hidden_size, true),
                      Rows(plain.last, x, c.hidden_size, true)));
    EXPECT_TRUE(MaskedRowsAreZero(packed.last, x, c.hidden_size));
}

// ---- HF goldens with padding removal (CPU here, CUDA below) --------------------------------

Batch GoldenBatch(ember_st_file *f, const GoldenCase &g) {
    Batch x;
    x.name = g.file;
    const ember_st_tensor *t = ember_st_find(f, g.entry.c_str());
    if (!t) {
        ADD_FAILURE() << g.file << ": no " << g.entry;
        return x;
    }
    x.B = (int)t->shape[0];
    x.S = (int)t->shape[1];
    x.mask = ReadI32(f, "attention_mask");
    x.types = ReadI32(f, "token_type_ids");
    x.positions = ReadI32(f, "position_ids");
    if (g.entry == "input_ids") x.ids = ReadI32(f, "input_ids");
    else if (g.entry == "inputs_embeds") x.embeds = ReadF32(f, "inputs_embeds");
    else x.embedding_output = ReadF32(f, "embedding_output");
    if (g.entry == "embedding_output") x.types.clear(), x.positions.clear();
    return x;
}

// tanh of the checkpoint's pooler bias, straight from the safetensors file.
std::vector<float> TanhPoolerBias(const std::string &model_dir) {
    StFile f = OpenSt(DataPath(model_dir + "/model.safetensors"));
    if (!f) return {};
    std::vector<float> b;
    for (const char *name : {"pooler.dense.bias", "bert.pooler.dense.bias"})
        if (Has(f.get(), name)) b = ReadF32(f.get(), name);
    for (float &v : b) v = (float)std::tanh((double)v);
    return b;
}

// Valid rows against HF's expected outputs, masked rows 0, pooler as documented.
void CheckAgainstGolden(ember_st_file *f, const GoldenCase &g, const Batch &x, const Outs &o,
                        int H, double abs_tol, double rel_tol) {
    std::vector<float> want = ReadF32(f, "expected.last_hidden_state");
    EXPECT_TRUE(AllClose(Rows(o.last, x, H, true), Rows(want, x, H, true), abs_tol, rel_tol))
        << "valid rows of last_hidden_state";
    EXPECT_TRUE(MaskedRowsAreZero(o.last, x, H));
    if (g.hidden_states) {
        std::vector<float> wh = ReadF32(f, "expected.hidden_states");
        EXPECT_TRUE(AllClose(Rows(o.hidden, x, H, true), Rows(wh, x, H, true), abs_tol, rel_tol))
            << "valid rows of hidden_states";
        EXPECT_TRUE(MaskedRowsAreZero(o.hidden, x, H));
    }
    if (g.pooler) {
        std::vector<float> wp = ReadF32(f, "expected.pooler_output");
        EXPECT_TRUE(AllClose(PoolRows(o.pooled, x, H, true), PoolRows(wp, x, H, true), abs_tol,
                             rel_tol))
            << "pooler of sequences whose first token is valid";
        std::vector<float> tb = TanhPoolerBias(g.model_dir);
        ASSERT_EQ((int)tb.size(), H);
        std::vector<float> got = PoolRows(o.pooled, x, H, false), exp;
        for (size_t i = 0; i < got.size(); i++) exp.push_back(tb[i % H]);
        EXPECT_TRUE(AllClose(got, exp, abs_tol, rel_tol)) << "pooler of a masked first token";
    }
}

TEST_P(SkipMaskedCpu, HfGoldensValidRowsStillMatch) {
    std::vector<GoldenCase> cases = LoadManifest();
    ASSERT_GE(cases.size(), 40u);
    int with_masked_tokens = 0;
    for (const GoldenCase &g : cases) {
        SCOPED_TRACE(g.file);
        StFile f = OpenSt(DataPath(g.file));
        ASSERT_TRUE(f);
        Batch x = GoldenBatch(f.get(), g);
        Model m = LoadCpu(DataPath(g.model_dir), x.B, x.S, GetParam());
        ASSERT_TRUE(m);
        ember_config c;
        ember_model_config(m.get(), &c);
        Outs o;
        ASSERT_EQ(RunCpu(m.get(), x, EMBER_FORWARD_SKIP_MASKED, g.pooler, g.hidden_states, &o), EMBER_OK)
            << ember_last_error();
        CheckAgainstGolden(f.get(), g, x, o, c.hidden_size, ember_tol::kHfAbs, ember_tol::kHfRel);
        with_masked_tokens += !Rows(o.last, x, c.hidden_size, false).empty();
    }
    // right_padding, holes_mask, fully_masked_row, ... of every model
    EXPECT_GE(with_masked_tokens, 20);
}

// ---- the fast CPU backend against the reference ----------------------------------------------

// Both backends on the same random weights and inputs, with and without padding removal:
// every output within kCpuFastAbs. Returns the largest difference seen.
double CompareBackends(const ember_config &c, const std::vector<Batch> &cases, int max_batch,
                       int max_seq) {
    Model fast = MakeModel(c, EMBER_BACKEND_CPU, EMBER_DTYPE_F32, max_batch, max_seq);
    Model ref = MakeModel(c, EMBER_BACKEND_REFERENCE, EMBER_DTYPE_F32, max_batch, max_seq);
    if (!fast || !ref) return INFINITY;
    double worst = 0.0;
    for (const Batch &x : cases)
        for (unsigned flags : {0u, (unsigned)EMBER_FORWARD_SKIP_MASKED}) {
            SCOPED_TRACE(x.name + (flags ? " skip_masked" : ""));
            Outs f, r;
            EXPECT_EQ(RunCpu(fast.get(), x, flags, c.has_pooler, true, &f), EMBER_OK)
                << ember_last_error();
            EXPECT_EQ(RunCpu(ref.get(), x, flags, c.has_pooler, true, &r), EMBER_OK)
                << ember_last_error();
            EXPECT_TRUE(AllClose(f.last, r.last, ember_tol::kCpuFastAbs, ember_tol::kCpuFastRel))
                << "last_hidden_state";
            EXPECT_TRUE(AllClose(f.hidden, r.hidden, ember_tol::kCpuFastAbs,
                                 ember_tol::kCpuFastRel))
                << "hidden_states";
            EXPECT_TRUE(AllClose(f.pooled, r.pooled, ember_tol::kCpuFastAbs,
                                 ember_tol::kCpuFastRel))
                << "pooler_output";
            if (flags) {
                EXPECT_TRUE(MaskedRowsAreZero(f.last, x, c.hidden_size));
                EXPECT_TRUE(MaskedRowsAreZero(f.hidden, x, c.hidden_size));
            }
            worst = std::max({worst, MaxDiff(f.last, r.last), MaxDiff(f.hidden, r.hidden),
                              MaxDiff(f.pooled, r.pooled)});
        }
    return worst;
}

// The padding-removal edge cases (holes, fully masked rows, left padding, token types,
// positions, the three entry points) with each activation.
TEST(FastCpu, MatchesReferenceOnEdgeCases) {
    double worst = 0.0;
    for (ember_activation act : {EMBER_ACT_GELU, EMBER_ACT_GELU_TANH, EMBER_ACT_RELU}) {
        SCOPED_TRACE("activation " + std::to_string((int)act));
        ember_config c = TinyConfig(act, act != EMBER_ACT_RELU);
        worst = std::max(worst, CompareBackends(c, EdgeCases(c), 8, 40));
    }
    printf("    fast vs reference, edge cases: max |diff| %.3g\n", worst);
}

// Odd sizes: head size 15 and intermediate 97; 3 heads of 32; MiniLM's shape (H 384, 12 heads
// of 32, I 1536) with one layer (the reference is slow under the sanitizers); S = 1, 7, 97.
TEST(FastCpu, MatchesReferenceAtOddSizes) {
    struct Shape {
        int H, NH, I, L;
        ember_activation act;
    };
    double worst = 0.0;
    for (Shape sh : {Shape{60, 4, 97, 2, EMBER_ACT_GELU}, Shape{96, 3, 200, 3, EMBER_ACT_GELU_TANH},
                     Shape{384, 12, 1536, 1, EMBER_ACT_GELU}}) {
        SCOPED_TRACE("H " + std::to_string(sh.H));
        ember_config c = TinyConfig(sh.act, true);
        c.hidden_size = sh.H;
        c.num_attention_heads = sh.NH;
        c.intermediate_size = sh.I;
        c.num_hidden_layers = sh.L;
        c.vocab_size = 1000;
        c.max_position_embeddings = 128;
        std::vector<Batch> cases;
        cases.push_back(WithIds("s1", 1, 1, {}, c, 21));
        Batch seven = WithIds("s7_holes_types", 3, 7, RandomHoles(3, 7, 0.7, 22), c, 23);
        seven.types = Ints(21, c.type_vocab_size, 24);
        cases.push_back(seven);
        cases.push_back(WithIds("s97_right_padded", 2, 97, RightPadded({97, 40}, 97), c, 25));
        Batch e = WithIds("s97_inputs_embeds_holes", 2, 97, RandomHoles(2, 97, 0.5, 26), c, 27);
        e.ids.clear();
        e.embeds = Floats((size_t)2 * 97 * c.hidden_size, 28);
        cases.push_back(e);
        worst = std::max(worst, CompareBackends(c, cases, 3, 97));
    }
    printf("    fast vs reference, odd sizes: max |diff| %.3g\n", worst);
}

}  // namespace

// ==== CUDA ===================================================================================

#ifdef EMBER_WITH_CUDA

#include <cuda_runtime_api.h>

#include "host/cuda_cudnn.h"
#include "tests/cuda_test.h"

namespace {

// Device buffer poisoned with 0xFF bytes (NaN in every float type, -1 in int32).
struct Dev {
    void *p = nullptr;
    size_t bytes = 0;
    Dev() = default;
    explicit Dev(size_t b) : bytes(b) {
        CUDA_OK(cudaMalloc(&p, std::max<size_t>(b, 1)));
        CUDA_OK(cudaMemset(p, 0xFF, std::max<size_t>(b, 1)));
    }
    Dev(const Dev &) = delete;
    Dev &operator=(const Dev &) = delete;
    Dev(Dev &&o) noexcept : p(o.p), bytes(o.bytes) { o.p = nullptr; }
    Dev &operator=(Dev &&o) noexcept {
        std::swap(p, o.p);
        std::swap(bytes, o.bytes);
        return *this;
    }
    ~Dev() {
        if (p) cudaFree(p);
    }
    template <typename T> T *as() const { return static_cast<T *>(p); }
};

template <typename T> Dev Up(const std::vector<T> &h) {
    Dev d(h.size() * sizeof(T));
    if (!h.empty()) CUDA_OK(cudaMemcpy(d.p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}

template <typename T> std::vector<T> Down(const void *p, size_t n) {
    std::vector<T> h(n);
    CUDA_OK(cudaDeviceSynchronize());
    if (n) CUDA_OK(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
}

// Device array in dt holding `h` rounded; *rounded = those values widened back to f32.
Dev ToDt(const std::vector<float> &h, ember_dtype dt, std::vector<float> *rounded) {
    Dev f = Up(h), d(h.size() * DtSize(dt)), back(h.size() * 4);
    EXPECT_EQ(ember_cuda_convert(d.p, dt, f.p, EMBER_DTYPE_F32, (int64_t)h.size(), nullptr), EMBER_OK);
    EXPECT_EQ(ember_cuda_convert(back.p, EMBER_DTYPE_F32, d.p, dt, (int64_t)h.size(), nullptr),
              EMBER_OK);
    if (rounded) *rounded = Down<float>(back.p, h.size());
    return d;
}

std::vector<float> FromDt(const void *p, size_t n, ember_dtype dt) {
    Dev back(n * 4);
    EXPECT_EQ(ember_cuda_convert(back.p, EMBER_DTYPE_F32, p, dt, (int64_t)n, nullptr), EMBER_OK);
    return Down<float>(back.p, n);
}

::testing::AssertionResult RelL2(const std::vector<float> &a, const std::vector<float> &e, double tol) {
    if (a.size() != e.size()) return ::testing::AssertionFailure() << a.size() << " != " << e.size();
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); i++) {
        if (std::isnan(a[i]) || std::isnan(e[i]))
            return ::testing::AssertionFailure() << "NaN at " << i;
        num += ((double)a[i] - e[i]) * ((double)a[i] - e[i]);
        den += (double)e[i] * e[i];
    }
    const double rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
    if (rel <= tol) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "relative L2 " << rel << " > " << tol;
}

// CUDA vs the f32 CPU reference, as in tests/test_cuda.cc.
::testing::AssertionResult Close(const std::vector<float> &a, const std::vector<float> &e,
                                 ember_dtype dt) {
    if (dt == EMBER_DTYPE_F32) return AllClose(a, e, ember_tol::kCudaF32Abs, 0.0);
    return RelL2(a, e, dt == EMBER_DTYPE_F16 ? ember_tol::kCudaF16RelL2 : ember_tol::kCudaBf16RelL2);
}

// One CUDA forward: inputs uploaded to fresh device buffers (so every call sees new
// addresses), outputs poisoned. ASYNC calls are waited for with cudaStreamSynchronize only,
// so the device error flag stays for ember_model_sync.
ember_status RunCuda(ember_model *m, const Batch &x, unsigned flags, bool pooler, bool hidden,
                     Outs *o, cudaStream_t stream = nullptr) {
    ember_config c;
    ember_model_config(m, &c);
    const size_t N = (size_t)x.B * x.S, H = (size_t)c.hidden_size;
    const size_t NL = (size_t)(c.num_hidden_layers + 1);
    Dev ids = Up(x.ids), mask = Up(x.mask), types = Up(x.types), pos = Up(x.positions),
        emb = Up(x.embeds), eo = Up(x.embedding_output);
    Dev last(N * H * 4), pool(pooler ? x.B * H * 4 : 0), hs(hidden ? NL * N * H * 4 : 0);
    ember_inputs in{};
    in.batch = x.B;
    in.seq_len = x.S;
    in.input_ids = x.ids.empty() ? nullptr : ids.as<int32_t>();
    in.inputs_embeds = x.embeds.empty() ? nullptr : emb.as<float>();
    in.embedding_output = x.embedding_output.empty() ? nullptr : eo.as<float>();
    in.attention_mask = x.mask.empty() ? nullptr : mask.as<int32_t>();
    in.token_type_ids = x.types.empty() ? nullptr : types.as<int32_t>();
    in.position_ids = x.positions.empty() ? nullptr : pos.as<int32_t>();
    in.flags = flags;
    in.valid_tokens = x.valid_tokens;
    ember_outputs out{};
    out.last_hidden_state = last.as<float>();
    out.pooler_output = pooler ? pool.as<float>() : nullptr;
    out.hidden_states = hidden ? hs.as<float>() : nullptr;
    ember_status st = ember_forward(m, &in, &out, (ember_stream)stream);
    CUDA_OK(cudaStreamSynchronize(stream));
    if (st == EMBER_OK) {
        o->last = Down<float>(last.p, N * H);
        o->pooled = pooler ? Down<float>(pool.p, x.B * H) : std::vector<float>();
        o->hidden = hidden ? Down<float>(hs.p, NL * N * H) : std::vector<float>();
    }
    return st;
}

// ---- packing kernels against their CPU twins ----------------------------------------------

struct PlanCase {
    const char *name;
    int B, S;
    std::vector<int32_t> mask;
};

std::vector<PlanCase> PlanCases() {
    std::vector<PlanCase> v;
    v.push_back({"by_hand", 3, 4, MaskOf({"1100", "0000", "0101"})});
    v.push_back({"one_masked", 1, 1, {0}});
    v.push_back({"one_valid", 1, 1, {1}});
    v.push_back({"len1_and_512", 2, 512, RightPadded({1, 512}, 512)});
    v.push_back({"all_masked", 5, 7, std::vector<int32_t>(35, 0)});
    v.push_back({"all_valid", 4, 33, std::vector<int32_t>(132, 1)});
    v.push_back({"holes", 7, 97, RandomHoles(7, 97, 0.5, 3)});
    v.push_back({"many_sequences", 3000, 3, RandomHoles(3000, 3, 0.7, 4)});
    std::vector<int> lens(16);
    std::mt19937 g(5);
    for (int &l : lens) l = std::uniform_int_distribution<int>(103, 512)(g);
    v.push_back({"b16_uniform_512", 16, 512, RightPadded(lens, 512)});
    return v;
}

TEST(CudaPacking, PlanMatchesReference) {
    REQUIRE_CUDA_DEVICE();
    for (const PlanCase &c : PlanCases()) {
        SCOPED_TRACE(c.name);
        const size_t N = (size_t)c.B * c.S;
        std::vector<int32_t> cu(c.B + 1), index(N), inverse(N);
        const int64_t T = ember_ref_pack_plan(c.mask.data(), c.B, c.S, cu.data(), index.data(),
                                              inverse.data());
        Dev dm = Up(c.mask), dcu((c.B + 1) * 4), dix(N * 4), dinv(N * 4), err(4);
        // the caller's count: none, right, one too many, one too few (where they exist)
        std::vector<int64_t> expected = {-1, T};
        if (T < (int64_t)N) expected.push_back(T + 1);
        if (T > 0) expected.push_back(T - 1);
        for (int64_t want : expected) {
            SCOPED_TRACE(::testing::Message() << "expected_T " << want << " (T = " << T << ")");
            CUDA_OK(cudaMemset(err.p, 0, 4));
            CUDA_OK(cudaMemset(dix.p, 0x7f, N * 4));  // poison: what the plan leaves is visible
            ASSERT_EQ(ember_cuda_pack_plan(dm.as<int32_t>(), c.B, c.S, (int)want, dcu.as<int32_t>(),
                                           dix.as<int32_t>(), dinv.as<int32_t>(), err.as<int>(),
                                           nullptr),
                      EMBER_OK)
                << ember_last_error();
            EXPECT_EQ(Down<int32_t>(dcu.p, c.B + 1), cu);
            EXPECT_EQ(Down<int32_t>(dinv.p, N), inverse);
            std::vector<int32_t> gi = Down<int32_t>(dix.p, N);
            EXPECT_TRUE(std::equal(index.begin(), index.begin() + T, gi.begin()));
            const bool differs = want >= 0 && want != T;
            EXPECT_EQ(Down<int>(err.p, 1)[0], differs ? (int)EMBER_BAD_VALID_TOKENS : 0);
            // rows T..want, which kernels sized for the caller's count read: position 0
            for (int64_t r = T; r < want; r++) EXPECT_EQ(gi[r], 0) << "index[" << r << "]";
        }
    }
}

TEST(CudaPacking, RowMovesMatchReference) {
    REQUIRE_CUDA_DEVICE();
    const int B = 5, S = 33, C = 72, N = B * S;
    std::vector<int32_t> mask = RandomHoles(B, S, 0.6, 9);
    mask[0] = 0;      // a masked first token
    mask[S] = 1;      // a valid one
    for (int s = 0; s < S; s++) mask[2 * S + s] = 0;  // an empty sequence
    std::vector<int32_t> cu(B + 1), index(N), inverse(N);
    const int64_t T = ember_ref_pack_plan(mask.data(), B, S, cu.data(), index.data(), inverse.data());
    Dev dix = Up(index), dinv = Up(inverse);
    std::vector<float> in = Floats((size_t)N * C, 10, -3.f, 3.f);
    Dev din = Up(in);
    for (ember_dtype dt : kDtypes) {
        SCOPED_TRACE(DtName(dt));
        // gather (f32 -> dt): the packed rows, rounded to dt
        Dev packed(T * C * DtSize(dt));
        ASSERT_EQ(ember_cuda_gather_rows(packed.p, dt, din.as<float>(), EMBER_DTYPE_F32, dix.as<int32_t>(), T, C,
                                         nullptr),
                  EMBER_OK)
            << ember_last_error();
        std::vector<float> want((size_t)T * C), rounded;
        ember_ref_gather_rows(want.data(), in.data(), index.data(), T, C);
        ToDt(want, dt, &rounded);
        std::vector<float> got = FromDt(packed.p, (size_t)T * C, dt);
        EXPECT_TRUE(Same(got, rounded)) << "gather_rows";
        // unpack (dt -> f32 padded, zero rows)
        Dev out(N * C * 4);
        ASSERT_EQ(ember_cuda_unpack_rows(out.as<float>(), EMBER_DTYPE_F32, packed.p, dt, dinv.as<int32_t>(), N, C,
                                         nullptr),
                  EMBER_OK)
            << ember_last_error();
        std::vector<float> ref((size_t)N * C);
        ember_ref_unpack_rows(ref.data(), got.data(), inverse.data(), N, C);
        EXPECT_TRUE(Same(Down<float>(out.p, (size_t)N * C), ref)) << "unpack_rows";
        // first rows (dt -> dt)
        Dev first(B * C * DtSize(dt));
        ASSERT_EQ(ember_cuda_first_rows(first.p, packed.p, dinv.as<int32_t>(), B, S, C, dt, nullptr),
                  EMBER_OK)
            << ember_last_error();
        std::vector<float> fr((size_t)B * C);
        ember_ref_first_rows(fr.data(), got.data(), inverse.data(), B, S, C);
        EXPECT_TRUE(Same(FromDt(first.p, (size_t)B * C, dt), fr)) << "first_rows";
    }
}

TEST(CudaPacking, PackedEmbeddingRowsEqualPaddedRows) {
    REQUIRE_CUDA_DEVICE();
    const int B = 4, S = 37, H = 96, V = 120, P = 64, TV = 3, N = B * S;
    std::vector<int32_t> mask = RandomHoles(B, S, 0.5, 20);
    std::vector<int32_t> cu(B + 1), index(N), inverse(N);
    const int64_t T = ember_ref_pack_plan(mask.data(), B, S, cu.data(), index.data(), inverse.data());
    std::vector<int32_t> ids = Ints(N, V, 21), types = Ints(N, TV, 22), pos = Ints(N, P, 23);
    std::vector<float> embeds = Floats((size_t)N * H, 24);
    Dev dix = Up(index), did = Up(ids), dty = Up(types), dps = Up(pos), dem = Up(embeds);
    std::vector<float> gamma = Floats(H, 25, 0.8f, 1.2f), beta = Floats(H, 26);
    Dev dg = Up(gamma), db = Up(beta);
    Dev err(4);
    for (ember_dtype dt : kDtypes)
        for (int variant = 0; variant < 3; variant++) {
            SCOPED_TRACE(::testing::Message() << DtName(dt) << " variant " << variant);
            std::vector<float> word, ptab, ttab;
            Dev dword = ToDt(Floats((size_t)V * H, 27), dt, &word);
            Dev dpos = ToDt(Floats((size_t)P * H, 28, -.5f, .5f), dt, &ptab);
            Dev dtype = ToDt(Floats((size_t)TV * H, 29, -.5f, .5f), dt, &ttab);
            const bool use_embeds = variant == 1, explicit_pos = variant != 2;
            const int32_t *i_ids = use_embeds ? nullptr : did.as<int32_t>();
            const float *i_emb = use_embeds ? dem.as<float>() : nullptr;
            const int32_t *i_pos = explicit_pos ? dps.as<int32_t>() : nullptr;
            CUDA_OK(cudaMemset(err.p, 0, 4));
            Dev padded(N * H * DtSize(dt)), packed(T * H * DtSize(dt));
            ASSERT_EQ(ember_cuda_embed_layernorm(padded.p, i_ids, i_emb, EMBER_DTYPE_F32, dty.as<int32_t>(), i_pos,
                                                 dword.p, dpos.p, dtype.p, dg.as<float>(),
                                                 db.as<float>(), B, S, H, V, P, TV, 1e-12, dt,
                                                 err.as<int>(), nullptr),
                      EMBER_OK);
            ASSERT_EQ(ember_cuda_embed_layernorm_packed(packed.p, dix.as<int32_t>(), T, i_ids, i_emb, EMBER_DTYPE_F32,
                                                        dty.as<int32_t>(), i_pos, dword.p, dpos.p,
                                                        dtype.p, dg.as<float>(), db.as<float>(), S,
                                                        H, V, P, TV, 1e-12, dt, err.as<int>(),
                                                        nullptr),
                      EMBER_OK)
                << ember_last_error();
            EXPECT_EQ(Down<int>(err.p, 1)[0], 0);
            // the same kernel code per row: packed row r is padded row index[r], bit for bit
            std::vector<float> pad = FromDt(padded.p, (size_t)N * H, dt);
            std::vector<float> pk = FromDt(packed.p, (size_t)T * H, dt), sel((size_t)T * H);
            ember_ref_gather_rows(sel.data(), pad.data(), index.data(), T, H);
            EXPECT_TRUE(Same(pk, sel));
            std::vector<float> ref((size_t)T * H);
            ember_ref_embed_layernorm_packed(ref.data(), index.data(), T, use_embeds ? nullptr : ids.data(),
                                             use_embeds ? embeds.data() : nullptr, types.data(),
                                             explicit_pos ? pos.data() : nullptr, word.data(),
                                             ptab.data(), ttab.data(), gamma.data(), beta.data(),
                                             S, H, 1e-12);
            EXPECT_TRUE(Close(pk, ref, dt));
        }
}

TEST(CudaPacking, CheckIndicesFlagsEachKind) {
    REQUIRE_CUDA_DEVICE();
    const int n = 1000, V = 30, TV = 2, P = 16;
    std::vector<int32_t> ids = Ints(n, V, 1), types = Ints(n, TV, 2), pos = Ints(n, P, 3);
    Dev err(4);
    auto run = [&](const std::vector<int32_t> &a, const std::vector<int32_t> &b,
                   const std::vector<int32_t> &c, bool skip_types) {
        Dev da = Up(a), dbb = Up(b), dc = Up(c);
        CUDA_OK(cudaMemset(err.p, 0, 4));
        EXPECT_EQ(ember_cuda_check_indices(da.as<int32_t>(), V, skip_types ? nullptr : dbb.as<int32_t>(),
                                           TV, dc.as<int32_t>(), P, n, err.as<int>(), nullptr),
                  EMBER_OK);
        return Down<int>(err.p, 1)[0];
    };
    EXPECT_EQ(run(ids, types, pos, false), 0);
    auto bad_ids = ids;
    bad_ids[999] = V;
    EXPECT_EQ(run(bad_ids, types, pos, false), EMBER_BAD_ID);
    auto bad_types = types;
    bad_types[0] = -1;
    EXPECT_EQ(run(ids, bad_types, pos, false), EMBER_BAD_TOKEN_TYPE);
    EXPECT_EQ(run(ids, bad_types, pos, true), 0);
    auto bad_pos = pos;
    bad_pos[500] = P;
    EXPECT_EQ(run(bad_ids, types, bad_pos, false), EMBER_BAD_ID | EMBER_BAD_POSITION);
}

// ---- GEMM + activation (cuBLASLt epilogues) --------------------------------------------------

TEST(CudaLinearAct, MatchesReferenceForEveryActivation) {
    REQUIRE_CUDA_DEVICE();
    Dev ws(32 << 20);
    ember_cuda_gemm *g = nullptr;
    ASSERT_EQ(ember_cuda_gemm_create(&g, ws.p, 32 << 20), EMBER_OK) << ember_last_error();
    printf("    cuBLASLt GELU epilogue for gelu_new / gelu_pytorch_tanh: %s\n",
           ember_cuda_gemm_gelu_epilogue(g) ? "used (passed the tanh probe)" : "NOT used");
    struct {
        int N, IN, OUT;
    } shapes[] = {{1, 768, 3072}, {97, 384, 1536}, {13, 37, 101}, {256, 64, 256}};
    const int acts[] = {EMBER_CUDA_ACT_NONE, EMBER_ACT_GELU, EMBER_ACT_GELU_TANH, EMBER_ACT_RELU};
    uint32_t seed = 1;
    for (auto sh : shapes)
        for (int act : acts)
            for (ember_dtype dt : kDtypes) {
                SCOPED_TRACE(::testing::Message() << DtName(dt) << " N=" << sh.N << " IN=" << sh.IN
                                                  << " OUT=" << sh.OUT << " act=" << act);
                const float wr = std::sqrt(3.f / sh.IN);
                std::vector<float> in, w, b;
                Dev din = ToDt(Floats((size_t)sh.N * sh.IN, seed++, -2.f, 2.f), dt, &in);
                Dev dw = ToDt(Floats((size_t)sh.OUT * sh.IN, seed++, -wr, wr), dt, &w);
                Dev dbias = ToDt(Floats(sh.OUT, seed++, -0.5f, 0.5f), dt, &b);
                Dev out((size_t)sh.N * sh.OUT * DtSize(dt));
                ASSERT_EQ(ember_cuda_linear_act(out.p, din.p, dw.p, dbias.p, sh.N, sh.IN, sh.OUT,
                                                sh.IN, act, dt, g, nullptr),
                          EMBER_OK)
                    << ember_last_error();
                std::vector<float> ref((size_t)sh.N * sh.OUT);
                ember_ref_linear(ref.data(), in.data(), w.data(), b.data(), sh.N, sh.IN, sh.OUT);
                if (act != EMBER_CUDA_ACT_NONE)
                    ember_ref_bias_act(ref.data(), nullptr, sh.N, sh.OUT, (ember_activation)act);
                EXPECT_TRUE(Close(FromDt(out.p, ref.size(), dt), ref, dt));
            }
    ember_cuda_gemm_destroy(g);
}

// ---- padding removal on the GPU ----------------------------------------------------------------

struct ModelCase {
    const char *name;
    ember_config cfg;
};

std::vector<ModelCase> ModelCases() {
    ember_config a = TinyConfig(EMBER_ACT_GELU, true);
    ember_config b = TinyConfig(EMBER_ACT_GELU_TANH, true);
    b.hidden_size = 64;
    b.num_attention_heads = 2;  // head size 32
    b.intermediate_size = 256;
    ember_config r = TinyConfig(EMBER_ACT_RELU, false);
    r.hidden_size = 48;
    r.num_attention_heads = 4;  // head size 12
    return {{"gelu_hd8", a}, {"tanh_hd32", b}, {"relu_hd12_nopool", r}};
}

class CudaSkipMasked : public ::testing::TestWithParam<ember_dtype> {};

TEST_P(CudaSkipMasked, MatchesCpuReferenceOnEdgeCases) {
    REQUIRE_CUDA_DEVICE();
    const ember_dtype dt = GetParam();
    for (const ModelCase &mc : ModelCases()) {
        SCOPED_TRACE(mc.name);
        const ember_config &c = mc.cfg;
        const int H = c.hidden_size;
        const bool pooler = c.has_pooler;
        Model cpu = MakeModel(c, EMBER_BACKEND_REFERENCE, EMBER_DTYPE_F32, 8, 40);
        Model gpu = MakeModel(c, EMBER_BACKEND_CUDA, dt, 8, 40);
        ASSERT_TRUE(cpu && gpu);
        for (const Batch &x : EdgeCases(c)) {
            SCOPED_TRACE(x.name);
            Outs ref, got, plain;
            ASSERT_EQ(RunCpu(cpu.get(), x, EMBER_FORWARD_SKIP_MASKED, pooler, true, &ref), EMBER_OK);
            ASSERT_EQ(RunCuda(gpu.get(), x, EMBER_FORWARD_SKIP_MASKED, pooler, true, &got), EMBER_OK)
                << ember_last_error();
            EXPECT_TRUE(MaskedRowsAreZero(got.last, x, H));
            EXPECT_TRUE(MaskedRowsAreZero(got.hidden, x, H));
            if (!Rows(ref.last, x, H, true).empty()) {
                EXPECT_TRUE(Close(Rows(got.last, x, H, true), Rows(ref.last, x, H, true), dt));
                EXPECT_TRUE(Close(Rows(got.hidden, x, H, true), Rows(ref.hidden, x, H, true), dt));
            }
            if (pooler) { EXPECT_TRUE(Close(got.pooled, ref.pooled, dt)) << "pooler_output"; }
            // the flag is a no-op without a mask
            if (x.mask.empty()) {
                ASSERT_EQ(RunCuda(gpu.get(), x, 0, pooler, true, &plain), EMBER_OK);
                EXPECT_TRUE(Same(got.last, plain.last));
                EXPECT_TRUE(Same(got.hidden, plain.hidden));
            }
            // last_hidden_state alone, and under ASYNC
            Outs only;
            ASSERT_EQ(RunCuda(gpu.get(), x, EMBER_FORWARD_SKIP_MASKED | EMBER_FORWARD_ASYNC, false,
                              false, &only),
                      EMBER_OK)
                << ember_last_error();
            ASSERT_EQ(ember_model_sync(gpu.get(), nullptr), EMBER_OK) << ember_last_error();
            EXPECT_TRUE(Same(only.last, got.last));
            // T given by the caller (no read-back): the same kernels on the same rows, so the
            // same bits, synchronous and ASYNC
            if (!x.mask.empty() && CountValid(x) > 0) {
                Batch y = x;
                y.valid_tokens = CountValid(x);
                Outs given;
                ASSERT_EQ(RunCuda(gpu.get(), y, EMBER_FORWARD_SKIP_MASKED, pooler, true, &given),
                          EMBER_OK)
                    << ember_last_error();
                EXPECT_TRUE(Same(given.last, got.last)) << "valid_tokens given";
                EXPECT_TRUE(Same(given.hidden, got.hidden)) << "valid_tokens given";
                EXPECT_TRUE(Same(given.pooled, got.pooled)) << "valid_tokens given";
                ASSERT_EQ(RunCuda(gpu.get(), y, EMBER_FORWARD_SKIP_MASKED | EMBER_FORWARD_ASYNC,
                                  false, false, &only),
                          EMBER_OK)
                    << ember_last_error();
                ASSERT_EQ(ember_model_sync(gpu.get(), nullptr), EMBER_OK) << ember_last_error();
                EXPECT_TRUE(Same(only.last, got.last)) << "valid_tokens given, ASYNC";
            }
        }
    }
}

TEST_P(CudaSkipMasked, RandomMasksAtBertShapes) {
    REQUIRE_CUDA_DEVICE();
    const ember_dtype dt = GetParam();
    ember_config c = TinyConfig(EMBER_ACT_GELU, true);
    c.hidden_size = 384;
    c.num_attention_heads = 6;  // head size 64
    c.intermediate_size = 1536;
    c.max_position_embeddings = 512;
    c.vocab_size = 1000;
    Model cpu = MakeModel(c, EMBER_BACKEND_REFERENCE, EMBER_DTYPE_F32, 16, 256);
    Model gpu = MakeModel(c, EMBER_BACKEND_CUDA, dt, 16, 256);
    ASSERT_TRUE(cpu && gpu);
    for (int trial = 0; trial < 3; trial++) {
        const int B = trial == 0 ? 16 : trial == 1 ? 3 : 1, S = trial == 0 ? 256 : trial == 1 ? 97 : 200;
        std::vector<int> lens(B);
        std::mt19937 g(40 + trial);
        for (int &l : lens) l = std::uniform_int_distribution<int>((S + 4) / 5, S)(g);
        Batch x = WithIds("uniform", B, S, RightPadded(lens, S), c, 50 + trial);
        if (trial == 1) x.mask = RandomHoles(B, S, 0.5, 60);
        SCOPED_TRACE(::testing::Message() << "B=" << B << " S=" << S);
        Outs ref, got;
        ASSERT_EQ(RunCpu(cpu.get(), x, EMBER_FORWARD_SKIP_MASKED, true, false, &ref), EMBER_OK);
        ASSERT_EQ(RunCuda(gpu.get(), x, EMBER_FORWARD_SKIP_MASKED, true, false, &got), EMBER_OK)
            << ember_last_error();
        EXPECT_TRUE(Close(Rows(got.last, x, c.hidden_size, true), Rows(ref.last, x, c.hidden_size, true), dt));
        EXPECT_TRUE(MaskedRowsAreZero(got.last, x, c.hidden_size));
        EXPECT_TRUE(Close(got.pooled, ref.pooled, dt));
    }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaSkipMasked, ::testing::ValuesIn(kDtypes),
                         [](const ::testing::TestParamInfo<ember_dtype> &i) {
                             return std::string(DtName(i.param));
                         });

TEST(CudaSkipMaskedGolden, F32ValidRowsMatchHf) {
    REQUIRE_CUDA_DEVICE();
    for (const GoldenCase &g : LoadManifest()) {
        SCOPED_TRACE(g.file);
        StFile f = OpenSt(DataPath(g.file));
        ASSERT_TRUE(f);
        Batch x = GoldenBatch(f.get(), g);
        ember_load_options opt;
        ember_load_options_init(&opt);
        opt.backend = EMBER_BACKEND_CUDA;
        opt.max_batch = x.B;
        opt.max_seq_len = x.S;
        ember_model *m = nullptr;
        ASSERT_EQ(ember_model_load(DataPath(g.model_dir).c_str(), &opt, &m), EMBER_OK)
            << ember_last_error();
        Model gpu(m);
        ember_config c;
        ember_model_config(m, &c);
        Outs o;
        ASSERT_EQ(RunCuda(m, x, EMBER_FORWARD_SKIP_MASKED, g.pooler, g.hidden_states, &o), EMBER_OK)
            << ember_last_error();
        CheckAgainstGolden(f.get(), g, x, o, c.hidden_size, ember_tol::kHfAbs, ember_tol::kHfRel);
    }
}

// Bad values on masked tokens are still reported (as without padding removal).
TEST(CudaSkipMaskedErrors, BadValuesOnMaskedTokensAreReported) {
    REQUIRE_CUDA_DEVICE();
    ember_config c = TinyConfig();
    Model gpu = MakeModel(c, EMBER_BACKEND_CUDA, EMBER_DTYPE_F32, 4, 16);
    ASSERT_TRUE(gpu);
    Batch x = WithIds("x", 2, 6, MaskOf({"111000", "110000"}), c, 3);
    x.ids[5] = c.vocab_size;  // masked token
    Outs o;
    ember_status st = RunCuda(gpu.get(), x, EMBER_FORWARD_SKIP_MASKED, true, false, &o);
    EXPECT_EQ(st, EMBER_ERR_OUT_OF_RANGE) << Why(st);
    EXPECT_NE(std::string(ember_last_error()).find("input_ids"), std::string::npos);
    x.ids[5] = 0;
    x.mask[7] = 3;  // not 0/1
    st = RunCuda(gpu.get(), x, EMBER_FORWARD_SKIP_MASKED, true, false, &o);
    EXPECT_EQ(st, EMBER_ERR_INVALID_ARGUMENT) << Why(st);
    x.mask[7] = 1;
    EXPECT_EQ(RunCuda(gpu.get(), x, EMBER_FORWARD_SKIP_MASKED, true, false, &o), EMBER_OK)
        << ember_last_error();
}

// A valid_tokens count that differs from the mask's (checked on the device, which has the
// mask): reported by the call, or by ember_model_sync under ASYNC; the model stays usable.
// Counts above the true one make the kernels read rows the plan did not write; those rows
// point at token 0, so nothing is read out of bounds (compute-sanitizer's memcheck on a GPU,
// ASan under tools/emu).
TEST(CudaSkipMaskedErrors, WrongValidTokensCountIsReported) {
    REQUIRE_CUDA_DEVICE();
    ember_config c = TinyConfig();
    Model gpu = MakeModel(c, EMBER_BACKEND_CUDA, EMBER_DTYPE_F32, 4, 16);
    ASSERT_TRUE(gpu);
    Batch x = WithIds("x", 3, 7, MaskOf({"1110000", "1111111", "0110100"}), c, 4);
    const int T = CountValid(x);
    Outs ref;
    ASSERT_EQ(RunCuda(gpu.get(), x, EMBER_FORWARD_SKIP_MASKED, true, true, &ref), EMBER_OK)
        << ember_last_error();
    for (int wrong : {1, T - 1, T + 1, x.B * x.S}) {
        SCOPED_TRACE(::testing::Message() << "valid_tokens " << wrong << " of " << T);
        Batch bad = x;
        bad.valid_tokens = wrong;
        Outs o;
        ember_status st = RunCuda(gpu.get(), bad, EMBER_FORWARD_SKIP_MASKED, true, true, &o);
        EXPECT_EQ(st, EMBER_ERR_INVALID_ARGUMENT) << Why(st);
        EXPECT_NE(std::string(ember_last_error()).find("valid_tokens"), std::string::npos)
            << ember_last_error();
        EXPECT_EQ(RunCuda(gpu.get(), bad, EMBER_FORWARD_SKIP_MASKED | EMBER_FORWARD_ASYNC, true,
                          false, &o),
                  EMBER_OK);
        st = ember_model_sync(gpu.get(), nullptr);
        EXPECT_EQ(st, EMBER_ERR_INVALID_ARGUMENT) << Why(st);
        EXPECT_NE(std::string(ember_last_error()).find("valid_tokens"), std::string::npos)
            << ember_last_error();
        Outs again;
        ASSERT_EQ(RunCuda(gpu.get(), x, EMBER_FORWARD_SKIP_MASKED, true, true, &again), EMBER_OK)
            << ember_last_error();
        EXPECT_TRUE(Same(again.last, ref.last)) << "the model is still usable";
        EXPECT_TRUE(Same(again.hidden, ref.hidden));
    }
}

// ---- EMBER_FORWARD_ASYNC + ember_model_sync ----------------------------------------------------

TEST(CudaAsync, ErrorsAccumulateUntilSync) {
    REQUIRE_CUDA_DEVICE();
    ember_config c = TinyConfig();
    for (int graphs : {0, 1}) {
        SCOPED_TRACE(graphs ? "graphs" : "no graphs");
        Model gpu = MakeModel(c, EMBER_BACKEND_CUDA, EMBER_DTYPE_F32, 4, 16, graphs);
        ASSERT_TRUE(gpu);
        cudaStream_t s;
        CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
        Batch good = WithIds("good", 3, 9, RandomHoles(3, 9, 0.7, 1), c, 2);
        good.types = Ints(27, c.type_vocab_size, 3);
        Outs sync_out, async_out;
        ASSERT_EQ(RunCuda(gpu.get(), good, 0, true, false, &sync_out, s), EMBER_OK);
        for (int i = 0; i < 4; i++) {  // repeated: launched, captured, replayed
            ASSERT_EQ(RunCuda(gpu.get(), good, EMBER_FORWARD_ASYNC, true, false, &async_out, s),
                      EMBER_OK);
            EXPECT_TRUE(Same(async_out.last, sync_out.last)) << "call " << i;
            EXPECT_TRUE(Same(async_out.pooled, sync_out.pooled)) << "call " << i;
        }
        EXPECT_EQ(ember_model_sync(gpu.get(), (ember_stream)s), EMBER_OK) << ember_last_error();

        Batch bad = good;
        bad.ids[4] = -1;
        Batch bad_type = good;
        bad_type.types[2] = c.type_vocab_size;
        Outs o;
        EXPECT_EQ(RunCuda(gpu.get(), bad, EMBER_FORWARD_ASYNC, true, false, &o, s), EMBER_OK);
        // a synchronous call in between reports only its own inputs
        EXPECT_EQ(RunCuda(gpu.get(), good, 0, true, false, &o, s), EMBER_OK) << ember_last_error();
        EXPECT_EQ(RunCuda(gpu.get(), bad_type, EMBER_FORWARD_ASYNC, true, false, &o, s), EMBER_OK);
        ember_status st = ember_model_sync(gpu.get(), (ember_stream)s);
        EXPECT_EQ(st, EMBER_ERR_OUT_OF_RANGE) << Why(st);
        EXPECT_NE(std::string(ember_last_error()).find("input_ids"), std::string::npos);
        EXPECT_NE(std::string(ember_last_error()).find("token_type_ids"), std::string::npos);
        EXPECT_EQ(ember_model_sync(gpu.get(), (ember_stream)s), EMBER_OK) << "cleared";
        // synchronous bad call: reported at once, nothing left for sync
        st = RunCuda(gpu.get(), bad, 0, true, false, &o, s);
        EXPECT_EQ(st, EMBER_ERR_OUT_OF_RANGE) << Why(st);
        EXPECT_EQ(ember_model_sync(gpu.get(), (ember_stream)s), EMBER_OK);
        CUDA_OK(cudaStreamDestroy(s));
    }
}

// ASYNC calls on two streams back to back: the second waits for the first on the device.
TEST(CudaAsync, CallsOnDifferentStreamsStayOrdered) {
    REQUIRE_CUDA_DEVICE();
    ember_config c = TinyConfig();
    c.hidden_size = 256;
    c.num_attention_heads = 4;
    c.intermediate_size = 1024;
    Model gpu = MakeModel(c, EMBER_BACKEND_CUDA, EMBER_DTYPE_F32, 8, 40);
    ASSERT_TRUE(gpu);
    const int H = c.hidden_size;
    Batch a = WithIds("a", 8, 40, RandomHoles(8, 40, 0.8, 1), c, 2);
    Batch b = WithIds("b", 8, 40, {}, c, 3);
    Outs wa, wb;
    ASSERT_EQ(RunCuda(gpu.get(), a, 0, true, false, &wa), EMBER_OK);
    ASSERT_EQ(RunCuda(gpu.get(), b, 0, true, false, &wb), EMBER_OK);
    cudaStream_t s1, s2;
    CUDA_OK(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking));
    CUDA_OK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
    const size_t N = 8 * 40;
    for (int round = 0; round < 5; round++) {
        Dev ia = Up(a.ids), ma = Up(a.mask), ib = Up(b.ids);
        Dev oa(N * H * 4), ob(N * H * 4), pa(8 * H * 4), pb(8 * H * 4);
        ember_inputs in{};
        in.batch = 8;
        in.seq_len = 40;
        in.flags = EMBER_FORWARD_ASYNC | (round % 2 ? EMBER_FORWARD_SKIP_MASKED : 0u);
        in.input_ids = ia.as<int32_t>();
        in.attention_mask = ma.as<int32_t>();
        ember_outputs out{};
        out.last_hidden_state = oa.as<float>();
        out.pooler_output = pa.as<float>();
        ASSERT_EQ(ember_forward(gpu.get(), &in, &out, (ember_stream)s1), EMBER_OK);
        in.input_ids = ib.as<int32_t>();
        in.attention_mask = nullptr;
        out.last_hidden_state = ob.as<float>();
        out.pooler_output = pb.as<float>();
        ASSERT_EQ(ember_forward(gpu.get(), &in, &out, (ember_stream)s2), EMBER_OK);
        CUDA_OK(cudaStreamSynchronize(s1));
        CUDA_OK(cudaStreamSynchronize(s2));
        std::vector<float> la = Down<float>(oa.p, N * H), lb = Down<float>(ob.p, N * H);
        if (round % 2) {
            EXPECT_TRUE(Close(Rows(la, a, H, true), Rows(wa.last, a, H, true), EMBER_DTYPE_F32));
        } else {
            EXPECT_TRUE(Same(la, wa.last)) << "round " << round;
        }
        EXPECT_TRUE(Same(lb, wb.last)) << "round " << round;
    }
    EXPECT_EQ(ember_model_sync(gpu.get(), (ember_stream)s1), EMBER_OK);
    CUDA_OK(cudaStreamDestroy(s1));
    CUDA_OK(cudaStreamDestroy(s2));
}

// ---- CUDA graphs ------------------------------------------------------------------------------

struct GraphShape {
    int B, S;
    bool mask, types_pos, pooler;
};

Batch ShapeBatch(const GraphShape &g, const ember_config &c, uint32_t seed) {
    Batch x = WithIds("g", g.B, g.S, g.mask ? RandomHoles(g.B, g.S, 0.7, seed) : std::vector<int32_t>(),
                      c, seed + 1);
    if (g.types_pos) {
        x.types = Ints((size_t)g.B * g.S, c.type_vocab_size, seed + 2);
        x.positions = Ints((size_t)g.B * g.S, c.max_position_embeddings, seed + 3);
    }
    return x;
}

void ExpectSame(const Outs &a, const Outs &b, const char *what) {
    EXPECT_TRUE(Same(a.last, b.last)) << what << ": sum |diff| " << SumAbsDiff(a.last, b.last);
    EXPECT_TRUE(Same(a.pooled, b.pooled)) << what << " pooler";
    EXPECT_TRUE(Same(a.hidden, b.hidden)) << what << " hidden_states";
}

TEST(CudaGraphs, ReplayIsBitIdenticalToPlainLaunches) {
    REQUIRE_CUDA_DEVICE();
    ember_config c = TinyConfig(EMBER_ACT_GELU_TANH, true);
    c.hidden_size = 128;
    c.num_attention_heads = 2;
    c.intermediate_size = 512;
    c.max_position_embeddings = 128;
    for (ember_dtype dt : {EMBER_DTYPE_F16, EMBER_DTYPE_F32}) {
        SCOPED_TRACE(DtName(dt));
        // two models compared bit for bit: the same (default) candidates in both
        Model graphs = MakeModel(c, EMBER_BACKEND_CUDA, dt, 4, 128, 1, 7, 0);
        Model plain = MakeModel(c, EMBER_BACKEND_CUDA, dt, 4, 128, 0, 7, 0);
        ASSERT_TRUE(graphs && plain);
        cudaStream_t s;
        CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
        const GraphShape shapes[] = {{1, 128, true, false, true}, {1, 128, false, false, true},
                                     {4, 33, true, true, true},   {2, 7, false, true, false},
                                     {3, 97, true, false, true},  {1, 1, true, false, true}};
        uint32_t seed = 100;
        auto check_all = [&](const char *phase) {
            for (const GraphShape &g : shapes)
                for (int call = 0; call < 4; call++) {  // launched, captured, replayed, replayed
                    SCOPED_TRACE(::testing::Message() << phase << " B=" << g.B << " S=" << g.S
                                                      << " mask=" << g.mask << " call " << call);
                    Batch x = ShapeBatch(g, c, seed += 10);  // new contents, new addresses
                    Outs a, b;
                    ASSERT_EQ(RunCuda(graphs.get(), x, 0, g.pooler, false, &a, s), EMBER_OK)
                        << ember_last_error();
                    ASSERT_EQ(RunCuda(plain.get(), x, 0, g.pooler, false, &b, s), EMBER_OK);
                    ExpectSame(a, b, "graph vs plain");
                    // the other entry point: a graph of its own (never captured here: one call)
                    if (call == 3 && !x.ids.empty()) {
                        Batch e = x;
                        e.ids.clear();
                        e.embeds = Floats((size_t)g.B * g.S * c.hidden_size, seed);
                        ASSERT_EQ(RunCuda(graphs.get(), e, 0, g.pooler, false, &a, s), EMBER_OK);
                        ASSERT_EQ(RunCuda(plain.get(), e, 0, g.pooler, false, &b, s), EMBER_OK);
                        ExpectSame(a, b, "inputs_embeds");
                    }
                }
        };
        check_all("first");
        ember_cuda_graph_stats st{};
        ASSERT_EQ(ember_cuda_graph_stats_get(graphs.get(), &st), EMBER_OK);
        printf("    %s: %d graphs cached, %ld captured, %ld replayed, %ld capture failures\n",
               DtName(dt), st.cached, st.captured, st.replayed, st.failed);
        EXPECT_EQ(st.failed, 0);
        EXPECT_EQ(st.captured, 6);
        EXPECT_GE(st.replayed, 6 * 2);
        // reserve drops the graphs (the workspace moved); replay must still be identical
        ASSERT_EQ(ember_model_reserve(graphs.get(), 8, 128), EMBER_OK);
        ASSERT_EQ(ember_model_reserve(plain.get(), 8, 128), EMBER_OK);
        ASSERT_EQ(ember_cuda_graph_stats_get(graphs.get(), &st), EMBER_OK);
        EXPECT_EQ(st.cached, 0);
        check_all("after reserve");
        // more shapes than the cache holds: evicted shapes are captured again
        for (int round = 0; round < 2; round++)
            for (int S = 2; S < 14; S++) {
                GraphShape g{2, S, true, false, true};
                for (int call = 0; call < 3; call++) {
                    Batch x = ShapeBatch(g, c, seed += 10);
                    Outs a, b;
                    ASSERT_EQ(RunCuda(graphs.get(), x, 0, true, false, &a, s), EMBER_OK);
                    ASSERT_EQ(RunCuda(plain.get(), x, 0, true, false, &b, s), EMBER_OK);
                    ExpectSame(a, b, "many shapes");
                }
            }
        ASSERT_EQ(ember_cuda_graph_stats_get(graphs.get(), &st), EMBER_OK);
        EXPECT_LE(st.cached, 8);
        // hidden_states and SKIP_MASKED run without graphs and agree too
        Batch x = ShapeBatch({3, 97, true, true, true}, c, 7);
        for (int call = 0; call < 3; call++) {
            Outs a, b;
            ASSERT_EQ(RunCuda(graphs.get(), x, 0, true, true, &a, s), EMBER_OK);
            ASSERT_EQ(RunCuda(plain.get(), x, 0, true, true, &b, s), EMBER_OK);
            ExpectSame(a, b, "hidden_states");
            ASSERT_EQ(RunCuda(graphs.get(), x, EMBER_FORWARD_SKIP_MASKED, true, false, &a, s), EMBER_OK);
            ASSERT_EQ(RunCuda(plain.get(), x, EMBER_FORWARD_SKIP_MASKED, true, false, &b, s), EMBER_OK);
            ExpectSame(a, b, "skip_masked");
        }
        CUDA_OK(cudaStreamDestroy(s));
    }
}

// The legacy default stream works too (the graph is captured on an internal stream).
TEST(CudaGraphs, LegacyStreamAndCpuParity) {
    REQUIRE_CUDA_DEVICE();
    ember_config c = TinyConfig();
    Model cpu = MakeModel(c, EMBER_BACKEND_REFERENCE, EMBER_DTYPE_F32, 4, 40);
    Model gpu = MakeModel(c, EMBER_BACKEND_CUDA, EMBER_DTYPE_F32, 4, 40, 1);
    ASSERT_TRUE(cpu && gpu);
    for (int call = 0; call < 4; call++) {
        Batch x = WithIds("x", 4, 40, RandomHoles(4, 40, 0.8, 70 + call), c, 80 + call);
        Outs a, b;
        ASSERT_EQ(RunCpu(cpu.get(), x, 0, true, false, &a), EMBER_OK);
        ASSERT_EQ(RunCuda(gpu.get(), x, 0, true, false, &b, nullptr), EMBER_OK) << ember_last_error();
        EXPECT_TRUE(Close(b.last, a.last, EMBER_DTYPE_F32)) << "call " << call;
        EXPECT_TRUE(Close(b.pooled, a.pooled, EMBER_DTYPE_F32)) << "call " << call;
    }
    ember_cuda_graph_stats st{};
    ASSERT_EQ(ember_cuda_graph_stats_get(gpu.get(), &st), EMBER_OK);
    EXPECT_EQ(st.captured, 1);
    EXPECT_EQ(st.replayed, 2);
}

// ---- tuning (ember.h, "Tuning"; host/cuda_tune.c) ------------------------------------------
// On a GPU these time real candidates; in the emulation (tools/emu) the cuBLASLt model's
// algorithms differ in summation order and cost fake times, and the CudaTuningEmu tests set
// those times (EMU_LT_*) to check which candidate wins. Timing-dependent expectations are only
// made in the emulation.

std::vector<ember_tuning_entry> Tuning(ember_model *m) {
    int n = -1;
    EXPECT_EQ(ember_model_tuning(m, nullptr, 0, &n), EMBER_OK);
    std::vector<ember_tuning_entry> v((size_t)std::max(n, 0));
    if (n > 0) { EXPECT_EQ(ember_model_tuning(m, v.data(), n, &n), EMBER_OK); }
    return v;
}

const char *OpName(ember_tune_op op) {
    return op == EMBER_TUNE_GEMM ? "gemm" : op == EMBER_TUNE_FFN_IN ? "ffn_in"
           : op == EMBER_TUNE_ATTENTION ? "attention" : "pdl";
}

// The table of choices and every candidate's time, as the GPU check prints it.
void PrintTuning(const std::vector<ember_tuning_entry> &v) {
    static const char *status[] = {"ok", "WRONG", "unavailable", "not run"};
    for (const ember_tuning_entry &e : v) {
        printf("    %-9s %-4s %-44s -> %s\n", OpName(e.op), DtName(e.dtype), e.shape,
               e.candidates[e.choice].name);
        for (int i = 0; i < e.n_candidates; i++) {
            const ember_tuning_candidate &c = e.candidates[i];
            printf("        %-16s %-11s %9.2f us  rel %.2g\n", c.name, status[c.status], c.time_us,
                   c.rel_diff);
        }
    }
}

// Entries other than PDL's (made when a shape's graph is captured, on GPUs that have it).
size_t NotPdl(const std::vector<ember_tuning_entry> &v) {
    return (size_t)std::count_if(v.begin(), v.end(),
                                 [](const ember_tuning_entry &e) { return e.op != EMBER_TUNE_PDL; });
}

bool Emulated() {
    cudaDeviceProp p;
    return cudaGetDeviceProperties(&p, 0) == cudaSuccess && strstr(p.name, "emulation");
}

// Sets environment variables for the test's duration (the emulation's knobs).
struct EnvGuard {
    std::vector<std::string> names;
    EnvGuard(std::initializer_list<std::pair<const char *, const char *>> kv) {
        for (auto &p : kv) {
            setenv(p.first, p.second, 1);
            names.push_back(p.first);
        }
    }
    ~EnvGuard() {
        for (auto &n : names) unsetenv(n.c_str());
    }
};

ember_config TuneConfig() {
    ember_config c = TinyConfig(EMBER_ACT_GELU, true);
    c.hidden_size = 64;
    c.num_attention_heads = 2;  // head size 32
    c.intermediate_size = 128;
    return c;
}

const std::string kTunePathStr = "/tmp/ember_test_tuning_" + std::to_string(getpid()) + ".txt";
const char *const kTunePath = kTunePathStr.c_str();

TEST(CudaTuning, TimedChoicesMatchCpuAndRepeatBitIdentical) {
    REQUIRE_CUDA_DEVICE();
    const ember_config c = TuneConfig();
    Model cpu = MakeModel(c, EMBER_BACKEND_REFERENCE, EMBER_DTYPE_F32, 4, 40);
    for (ember_dtype dt : kDtypes) {
        SCOPED_TRACE(DtName(dt));
        Model gpu = MakeModel(c, EMBER_BACKEND_CUDA, dt, 4, 40, 1, 7, 1);
        ASSERT_TRUE(cpu && gpu);
        Batch x = WithIds("holes", 3, 13, RandomHoles(3, 13, 0.7, 5), c, 6);
        Outs ref, first;
        ASSERT_EQ(RunCpu(cpu.get(), x, 0, true, false, &ref), EMBER_OK);
        ASSERT_EQ(RunCuda(gpu.get(), x, 0, true, false, &first), EMBER_OK) << ember_last_error();
        EXPECT_TRUE(Close(first.last, ref.last, dt));
        EXPECT_TRUE(Close(first.pooled, ref.pooled, dt));
        const std::vector<ember_tuning_entry> tuned = Tuning(gpu.get());
        PrintTuning(tuned);
        int gemms = 0;
        for (const ember_tuning_entry &e : tuned) {
            SCOPED_TRACE(e.shape);
            EXPECT_EQ(e.source, EMBER_TUNE_TIMED);
            ASSERT_GE(e.n_candidates, 1);
            ASSERT_LT(e.choice, e.n_candidates);
            EXPECT_EQ(e.candidates[0].status, EMBER_CANDIDATE_OK);
            EXPECT_GE(e.candidates[0].time_us, 0.f);
            EXPECT_EQ(e.candidates[e.choice].status, EMBER_CANDIDATE_OK);
            gemms += e.op == EMBER_TUNE_GEMM;
        }
        EXPECT_EQ(gemms, 5) << "qkv, attention output, FFN in and out, pooler";
        // later calls: a graph captured, then replayed; the same choices, so the same bits
        for (int call = 1; call < 4; call++) {
            Outs again;
            ASSERT_EQ(RunCuda(gpu.get(), x, 0, true, false, &again), EMBER_OK);
            ExpectSame(again, first, "after tuning");
        }
        EXPECT_EQ(NotPdl(Tuning(gpu.get())), tuned.size()) << "nothing tuned twice";
        EXPECT_LE(Tuning(gpu.get()).size(), tuned.size() + 1) << "PDL at the capture, at most";
        // another shape adds its own entries; padding removal times nothing of its GEMMs
        Batch y = WithIds("no mask", 1, 7, {}, c, 8);
        Outs o;
        ASSERT_EQ(RunCuda(gpu.get(), y, 0, true, false, &o), EMBER_OK);
        const size_t after_second = Tuning(gpu.get()).size();
        EXPECT_GT(after_second, tuned.size());
        Batch z = WithIds("packed", 4, 11, RandomHoles(4, 11, 0.5, 9), c, 10);
        Outs zr, zg;
        ASSERT_EQ(RunCpu(cpu.get(), z, EMBER_FORWARD_SKIP_MASKED, true, false, &zr), EMBER_OK);
        ASSERT_EQ(RunCuda(gpu.get(), z, EMBER_FORWARD_SKIP_MASKED, true, false, &zg), EMBER_OK);
        EXPECT_TRUE(Close(Rows(zg.last, z, c.hidden_size, true), Rows(zr.last, z, c.hidden_size, true), dt));
        const std::string packed_n = "N=" + std::to_string(CountValid(z)) + " ";
        ASSERT_TRUE(CountValid(z) != 39 && CountValid(z) != 7) << "a padded shape's N";
        for (const ember_tuning_entry &e : Tuning(gpu.get()))
            EXPECT_FALSE(e.op == EMBER_TUNE_GEMM && std::string(e.shape).rfind(packed_n, 0) == 0)
                << e.shape;
    }
}

TEST(CudaTuning, OffRecordsTheDefaults) {
    REQUIRE_CUDA_DEVICE();
    const ember_config c = TuneConfig();
    Model a = MakeModel(c, EMBER_BACKEND_CUDA, EMBER_DTYPE_F16, 4, 40, 1, 7, 0);
    Model b = MakeModel(c, EMBER_BACKEND_CUDA, EMBER_DTYPE_F16, 4, 40, 0, 7, 0);
    ASSERT_TRUE(a && b);
    Batch x = WithIds("holes", 3, 13, RandomHoles(3, 13, 0.7, 5), c, 6);
    Outs oa, ob;
    ASSERT_EQ(RunCuda(a.get(), x, 0, true, false, &oa), EMBER_OK);
    ASSERT_EQ(RunCuda(b.get(), x, 0, true, false, &ob), EMBER_OK);
    ExpectSame(oa, ob, "two models with tuning off");
    const auto v = Tuning(a.get());
    EXPECT_FALSE(v.empty());
    for (const ember_tuning_entry &e : v) {
        EXPECT_EQ(e.source, EMBER_TUNE_FIXED) << e.shape;
        EXPECT_EQ(e.choice, 0) << e.shape;
        EXPECT_EQ(e.candidates[0].status, EMBER_CANDIDATE_NOT_RUN);
    }
}

TEST(CudaTuning, SavedChoicesLoadIntoAnotherModel) {
    REQUIRE_CUDA_DEVICE();
    const ember_config c = TuneConfig();
    Model a = MakeModel(c, EMBER_BACKEND_CUDA, EMBER_DTYPE_BF16, 4, 40, 1, 7, 1);
    Model b = MakeModel(c, EMBER_BACKEND_CUDA, EMBER_DTYPE_BF16, 4, 40, 1, 7, 1);
    ASSERT_TRUE(a && b);
    Batch x = WithIds("holes", 3, 13, RandomHoles(3, 13, 0.7, 5), c, 6);
    Outs oa, ob;
    ASSERT_EQ(RunCuda(a.get(), x, 0, true, false, &oa), EMBER_OK);
    ASSERT_EQ(ember_model_tuning_save(a.get(), kTunePath), EMBER_OK) << ember_last_error();
    // hostile files first: clear errors, nothing imported, the model still serves
    const std::string good = ReadFile(kTunePath);
    WriteFile(kTunePath, good.substr(0, good.size() / 2));
    EXPECT_EQ(ember_model_tuning_load(b.get(), kTunePath), EMBER_ERR_FORMAT);
    std::string other = good;
    other.replace(other.find("device ") + 7, 0, "other ");
    WriteFile(kTunePath, other);
    EXPECT_EQ(ember_model_tuning_load(b.get(), kTunePath), EMBER_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(ember_last_error()).find("nothing imported"), std::string::npos);
    EXPECT_TRUE(Tuning(b.get()).empty());
    WriteFile(kTunePath, good);
    ASSERT_EQ(ember_model_tuning_load(b.get(), kTunePath), EMBER_OK) << ember_last_error();
    remove(kTunePath);
    const auto imported = Tuning(b.get());
    ASSERT_EQ(imported.size(), Tuning(a.get()).size());
    for (const ember_tuning_entry &e : imported) EXPECT_EQ(e.source, EMBER_TUNE_IMPORTED);
    // b runs a's choices (checked against the defaults on this call) without timing them
    ASSERT_EQ(RunCuda(b.get(), x, 0, true, false, &ob), EMBER_OK) << ember_last_error();
    ExpectSame(ob, oa, "imported choices");
    const auto used = Tuning(b.get());
    ASSERT_EQ(used.size(), imported.size());
    const auto mine = Tuning(a.get());
    for (size_t i = 0; i < used.size(); i++) {
        EXPECT_EQ(used[i].source, EMBER_TUNE_IMPORTED);
        EXPECT_EQ(used[i].choice, mine[i].choice) << used[i].shape;
        EXPECT_EQ(used[i].candidates[0].time_us, -1.f) << "not timed";
    }
}

TEST(CudaTuning, ReserveShapesTunesAhead) {
    REQUIRE_CUDA_DEVICE();
    const ember_config c = TuneConfig();
    Model m = MakeModel(c, EMBER_BACKEND_CUDA, EMBER_DTYPE_F16, 1, 8, 1, 7, 1);
    ASSERT_TRUE(m);
    const ember_shape shapes[] = {{3, 13, 1, 0}, {1, 7, 0, 0}, {4, 11, 1, EMBER_FORWARD_SKIP_MASKED}};
    ASSERT_EQ(ember_model_reserve_shapes(m.get(), shapes, 3), EMBER_OK) << ember_last_error();
    const size_t n = Tuning(m.get()).size();
    EXPECT_GE(n, 2u * 5) << "the GEMMs of both padded shapes";
    Outs o;
    ASSERT_EQ(RunCuda(m.get(), WithIds("a", 3, 13, RandomHoles(3, 13, 0.7, 5), c, 6), 0, true, false, &o), EMBER_OK);
    ASSERT_EQ(RunCuda(m.get(), WithIds("b", 1, 7, {}, c, 8), 0, true, false, &o), EMBER_OK);
    EXPECT_EQ(Tuning(m.get()).size(), n) << "the calls found every choice made";
}

// ---- the emulation's fake timings decide -----------------------------------------------------

// Not GPU tests (no REQUIRE_CUDA_DEVICE: tools/gpu-check.sh expects every GPU test to run on
// a GPU): they need the emulation's fake timings and skip anywhere else.
#define REQUIRE_EMULATION() \
    if (!Emulated()) GTEST_SKIP() << "needs the emulation's fake timings (tools/emu)"

// Every GEMM entry's choice, the pooler's and the others'.
std::vector<int> GemmChoices(ember_model *m) {
    std::vector<int> v;
    for (const ember_tuning_entry &e : Tuning(m))
        if (e.op == EMBER_TUNE_GEMM) v.push_back(e.choice);
    return v;
}

TEST(CudaTuningEmu, FastestCorrectAlgorithmWins) {
    REQUIRE_EMULATION();
    const ember_config c = TuneConfig();
    Model cpu = MakeModel(c, EMBER_BACKEND_REFERENCE, EMBER_DTYPE_F32, 4, 40);
    Batch x = WithIds("holes", 3, 13, RandomHoles(3, 13, 0.7, 5), c, 6);
    Outs ref;
    ASSERT_EQ(RunCpu(cpu.get(), x, 0, true, false, &ref), EMBER_OK);
    struct Case {
        const char *times, *wrong, *fail, *algos;
        int want;
        const char *why;
    } cases[] = {
        {"10,9,3,8,2,7,6,5", "4", "", "8", 2, "the fastest (4) is wrong: the next one"},
        {"10,9,3,8,2,7,6,5", "4", "2", "8", 7, "4 wrong, 2 cannot run"},
        {"10,9.8", "", "", "2", 0, "within the noise margin: the default stays"},
        {"10,9,8", "", "", "1", 0, "one algorithm"},
        {"1,9,8", "", "", "8", 0, "the default is fastest"},
    };
    for (const Case &k : cases) {
        SCOPED_TRACE(k.why);
        EnvGuard env{{"EMU_LT_TIMES", k.times}, {"EMU_LT_WRONG", k.wrong}, {"EMU_LT_FAIL", k.fail},
                     {"EMU_LT_ALGOS", k.algos}};
        Model gpu = MakeModel(c, EMBER_BACKEND_CUDA, EMBER_DTYPE_F16, 4, 40, 1, 7, 1);
        Outs o;
        ASSERT_EQ(RunCuda(gpu.get(), x, 0, true, false, &o), EMBER_OK) << ember_last_error();
        EXPECT_TRUE(Close(o.last, ref.last, EMBER_DTYPE_F16));
        for (int ch : GemmChoices(gpu.get())) EXPECT_EQ(ch, k.want);
        for (const ember_tuning_entry &e : Tuning(gpu.get())) {
            if (e.op != EMBER_TUNE_GEMM) continue;
            EXPECT_EQ(e.n_candidates, atoi(k.algos)) << e.shape;
            if (*k.wrong) {
                EXPECT_EQ(e.candidates[4].status, EMBER_CANDIDATE_WRONG) << e.shape;
                EXPECT_GT(e.candidates[4].rel_diff, ember_tune_tolerance(EMBER_TUNE_GEMM, EMBER_DTYPE_F16));
            }
            if (*k.fail) { EXPECT_EQ(e.candidates[2].status, EMBER_CANDIDATE_UNAVAILABLE) << e.shape; }
            if (k.want == 2) {  // the fake times come back: 3 us of matmul plus launches
                EXPECT_GE(e.candidates[2].time_us, 3.f);
                EXPECT_LT(e.candidates[2].time_us, 5.5f);
            }
        }
        Outs again;  // the winner again, in a graph: the same bits
        for (int call = 0; call < 3; call++) {
            ASSERT_EQ(RunCuda(gpu.get(), x, 0, true, false, &again), EMBER_OK);
            ExpectSame(again, o, "replayed");
        }
    }
}

TEST(CudaTuningEmu, ImportedChoiceThatFailsTheCheckIsDropped) {
    REQUIRE_EMULATION();
    const ember_config c = TuneConfig();
    Batch x = WithIds("holes", 3, 13, RandomHoles(3, 13, 0.7, 5), c, 6);
    {
        EnvGuard env{{"EMU_LT_TIMES", "10,9,8,7,2"}};
        Model a = MakeModel(c, EMBER_BACKEND_CUDA, EMBER_DTYPE_F32, 4, 40, 1, 7, 1);
        Outs o;
        ASSERT_EQ(RunCuda(a.get(), x, 0, true, false, &o), EMBER_OK);
        for (int ch : GemmChoices(a.get())) EXPECT_EQ(ch, 4);
        ASSERT_EQ(ember_model_tuning_save(a.get(), kTunePath), EMBER_OK);
    }
    // on the "fleet machine" algorithm 4 computes something else
    EnvGuard env{{"EMU_LT_WRONG", "4"}};
    Model b = MakeModel(c, EMBER_BACKEND_CUDA, EMBER_DTYPE_F32, 4, 40, 1, 7, 1);
    Model off = MakeModel(c, EMBER_BACKEND_CUDA, EMBER_DTYPE_F32, 4, 40, 1, 7, 0);
    ASSERT_EQ(ember_model_tuning_load(b.get(), kTunePath), EMBER_OK) << ember_last_error();
    remove(kTunePath);
    Outs ob, ooff;
    ASSERT_EQ(RunCuda(b.get(), x, 0, true, false, &ob), EMBER_OK);
    ASSERT_EQ(RunCuda(off.get(), x, 0, true, false, &ooff), EMBER_OK);
    ExpectSame(ob, ooff, "the defaults, after the imported choice failed its check");
    for (const ember_tuning_entry &e : Tuning(b.get())) {
        if (e.op != EMBER_TUNE_GEMM) continue;
        EXPECT_EQ(e.choice, 0) << e.shape;
        EXPECT_EQ(e.candidates[4].status, EMBER_CANDIDATE_WRONG) << e.shape;
    }
}

// cuDNN's candidates in the emulation: the host model of the backend API (tools/emu/mockdnn.cc)
// runs the graphs host/cuda_cudnn.c builds. Fake times make cuDNN faster than cuBLASLt + the
// activation kernel and than ember's attention kernel; a masked batch still costs it ember's
// kernel for the sequences cuDNN's lengths cannot express, so there ember's kernel stays.
struct EntryCase {
    const char *name;
    Batch x;
    unsigned flags;
};

std::vector<EntryCase> CudnnCases(const ember_config &c) {
    // right padded (cuDNN's lengths), a hole, fully masked (ember's kernel after cuDNN)
    const auto mixed = MaskOf({"1111111111100", "1101111111111", "0000000000000"});
    return {{"holes", WithIds("holes", 3, 13, mixed, c, 6), 0},
            {"right padded", WithIds("right", 2, 9, RightPadded({9, 4}, 9), c, 7), 0},
            {"no mask", WithIds("nomask", 1, 7, {}, c, 8), 0},
            {"packed", WithIds("packed", 4, 11, RandomHoles(4, 11, 0.5, 9), c, 10), EMBER_FORWARD_SKIP_MASKED}};
}

const ember_tuning_entry *Find(const std::vector<ember_tuning_entry> &v, ember_tune_op op, const char *shape_part) {
    for (const ember_tuning_entry &e : v)
        if (e.op == op && strstr(e.shape, shape_part)) return &e;
    return nullptr;
}
// A pointer into a temporary (Find(Tuning(m), ...)) would dangle: name the vector first.
const ember_tuning_entry *Find(std::vector<ember_tuning_entry> &&, ember_tune_op, const char *) = delete;

TEST(CudaTuningEmu, CudnnCandidatesAreCheckedAndWinWhenFaster) {
    REQUIRE_EMULATION();
    const char *why = "";
    if (!ember_cudnn_version(&why)) GTEST_SKIP() << "no cuDNN model loaded: " << why;
    EnvGuard env{{"EMU_DNN_TIME", "2"},
                 {"EMU_KERNEL_TIMES", "attention_kernel:20,attention_mma_kernel:20"}};
    const ember_config c = TuneConfig();
    Model cpu = MakeModel(c, EMBER_BACKEND_REFERENCE, EMBER_DTYPE_F32, 4, 40);
    for (ember_dtype dt : {EMBER_DTYPE_F16, EMBER_DTYPE_BF16}) {
        SCOPED_TRACE(DtName(dt));
        Model gpu = MakeModel(c, EMBER_BACKEND_CUDA, dt, 4, 40, 1, 7, 1);
        for (const EntryCase &k : CudnnCases(c)) {
            SCOPED_TRACE(k.name);
            Outs ref, first, again;
            ASSERT_EQ(RunCpu(cpu.get(), k.x, k.flags, true, false, &ref), EMBER_OK);
            ASSERT_EQ(RunCuda(gpu.get(), k.x, k.flags, true, false, &first), EMBER_OK) << ember_last_error();
            EXPECT_TRUE(Close(Rows(first.last, k.x, c.hidden_size, true), Rows(ref.last, k.x, c.hidden_size, true), dt));
            EXPECT_TRUE(Close(first.pooled, ref.pooled, dt));
            for (int call = 0; call < 3; call++) {  // plain, captured, replayed: the same bits
                ASSERT_EQ(RunCuda(gpu.get(), k.x, k.flags, true, false, &again), EMBER_OK);
                ExpectSame(again, first, "after tuning");
            }
        }
        const auto v = Tuning(gpu.get());
        PrintTuning(v);
        struct {
            ember_tune_op op;
            const char *shape;
            int want;
        } expect[] = {{EMBER_TUNE_FFN_IN, "N=39 ", 1},       {EMBER_TUNE_FFN_IN, "N=18 ", 1},
                      {EMBER_TUNE_FFN_IN, "N=7 ", 1},        {EMBER_TUNE_ATTENTION, "B=3 S=13", 0},
                      {EMBER_TUNE_ATTENTION, "B=2 S=9", 0},  {EMBER_TUNE_ATTENTION, "B=1 S=7", 1},
                      {EMBER_TUNE_ATTENTION, "B=4 S=11", 1}};
        for (const auto &x : expect) {
            const ember_tuning_entry *e = Find(v, x.op, x.shape);
            ASSERT_NE(e, nullptr) << x.shape;
            SCOPED_TRACE(e->shape);
            EXPECT_EQ(e->choice, x.want);
            // cuDNN ran and matched ember's output, also where it lost on time (a masked batch)
            EXPECT_EQ(e->candidates[1].status, EMBER_CANDIDATE_OK);
            EXPECT_LE(e->candidates[1].rel_diff, ember_tune_tolerance(x.op, dt));
        }
        ASSERT_NE(Find(v, EMBER_TUNE_ATTENTION, "B=4 S=11"), nullptr);
        EXPECT_NE(strstr(Find(v, EMBER_TUNE_ATTENTION, "B=4 S=11")->shape, "packed"), nullptr);
    }
}

TEST(CudaTuningEmu, WrongOrRefusedCudnnIsNeverUsed) {
    REQUIRE_EMULATION();
    const char *why = "";
    if (!ember_cudnn_version(&why)) GTEST_SKIP() << "no cuDNN model loaded: " << why;
    const ember_config c = TuneConfig();
    Model cpu = MakeModel(c, EMBER_BACKEND_REFERENCE, EMBER_DTYPE_F32, 4, 40);
    for (const char *mode : {"wrong", "refuse"}) {
        SCOPED_TRACE(mode);
        EnvGuard env{{"EMU_DNN", mode}, {"EMU_DNN_TIME", "0"}};
        Model gpu = MakeModel(c, EMBER_BACKEND_CUDA, EMBER_DTYPE_F16, 4, 40, 1, 7, 1);
        for (const EntryCase &k : CudnnCases(c)) {
            Outs ref, got;
            ASSERT_EQ(RunCpu(cpu.get(), k.x, k.flags, true, false, &ref), EMBER_OK);
            ASSERT_EQ(RunCuda(gpu.get(), k.x, k.flags, true, false, &got), EMBER_OK) << ember_last_error();
            EXPECT_TRUE(Close(Rows(got.last, k.x, c.hidden_size, true), Rows(ref.last, k.x, c.hidden_size, true),
                              EMBER_DTYPE_F16)) << k.name;
        }
        const ember_candidate_status want =
            !strcmp(mode, "wrong") ? EMBER_CANDIDATE_WRONG : EMBER_CANDIDATE_UNAVAILABLE;
        int seen = 0;
        for (const ember_tuning_entry &e : Tuning(gpu.get())) {
            if (e.op == EMBER_TUNE_GEMM) continue;
            seen++;
            EXPECT_EQ(e.choice, 0) << e.shape;
            EXPECT_EQ(e.candidates[1].status, want) << e.shape;
        }
        EXPECT_EQ(seen, 3 + 4) << "FFN of the three padded shapes, attention of all four";
    }
}

// cuDNN's candidates with tuning on, whatever this machine has: without cuDNN (a GPU machine
// without it, or the emulation's run with EMBER_CUDNN_LIB pointing nowhere) they are reported
// unavailable; with it (a GPU machine, or the emulation's model) each was checked, and one that
// won matched ember's output. Either way the outputs match the CPU reference.
TEST(CudaTuning, CudnnCandidatesAreSafeWhetherPresentOrNot) {
    REQUIRE_CUDA_DEVICE();
    const char *why = "";
    const long dnn = ember_cudnn_version(&why);
    printf("    cuDNN: %s\n", dnn ? std::to_string(dnn).c_str() : why);
    const ember_config c = TuneConfig();
    Model cpu = MakeModel(c, EMBER_BACKEND_REFERENCE, EMBER_DTYPE_F32, 4, 40);
    Model gpu = MakeModel(c, EMBER_BACKEND_CUDA, EMBER_DTYPE_BF16, 4, 40, 1, 7, 1);
    for (const EntryCase &k : CudnnCases(c)) {
        Outs ref, got, again;
        ASSERT_EQ(RunCpu(cpu.get(), k.x, k.flags, true, false, &ref), EMBER_OK);
        ASSERT_EQ(RunCuda(gpu.get(), k.x, k.flags, true, false, &got), EMBER_OK) << ember_last_error();
        EXPECT_TRUE(Close(Rows(got.last, k.x, c.hidden_size, true), Rows(ref.last, k.x, c.hidden_size, true),
                          EMBER_DTYPE_BF16)) << k.name;
        EXPECT_TRUE(Close(got.pooled, ref.pooled, EMBER_DTYPE_BF16)) << k.name;
        ASSERT_EQ(RunCuda(gpu.get(), k.x, k.flags, true, false, &again), EMBER_OK);
        ExpectSame(again, got, k.name);
    }
    const auto v = Tuning(gpu.get());
    PrintTuning(v);
    int seen = 0;
    for (const ember_tuning_entry &e : v) {
        if (e.op == EMBER_TUNE_GEMM || e.op == EMBER_TUNE_PDL) continue;
        SCOPED_TRACE(e.shape);
        seen++;
        const ember_tuning_candidate &d = e.candidates[1];
        if (!dnn) {
            EXPECT_EQ(e.choice, 0);
            EXPECT_EQ(d.status, EMBER_CANDIDATE_UNAVAILABLE);
        }
        if (e.choice == 1) {
            EXPECT_EQ(d.status, EMBER_CANDIDATE_OK);
            EXPECT_LE(d.rel_diff, ember_tune_tolerance(e.op, EMBER_DTYPE_BF16));
        }
    }
    EXPECT_EQ(seen, 3 + 4) << "FFN of the three padded shapes, attention of all four";
}

// ---- programmatic dependent launch (kernels/pdl.cuh; ember.h, EMBER_TUNE_PDL) -----------------
// The same kernels in the same order with the PDL attribute or without: the same bits, on a
// GPU (where it is a real test only at compute capability 9.0+) and in the emulation, which
// also counts the launches that carried the attribute and aborts if a thread of such a kernel
// returns without the grid-dependency wait.

// Kernels the emulation ran with the PDL attribute so far; -1 outside the emulation.
long EmuPdlLaunches() {
    using Fn = void (*)(long *, long *);
    static const Fn f = (Fn)dlsym(RTLD_DEFAULT, "emu_pdl_counts");
    if (!f) return -1;
    long launches = 0, waits = 0;
    f(&launches, &waits);
    return launches;
}

ember_config PdlConfig() {
    ember_config c = TuneConfig();
    c.max_position_embeddings = 128;
    return c;
}

// A model made with EMBER_PDL set to `pdl` (read at load).
Model PdlModel(const char *pdl, ember_dtype dt, int graphs, int tuning) {
    EnvGuard env{{"EMBER_PDL", pdl}};
    return MakeModel(PdlConfig(), EMBER_BACKEND_CUDA, dt, 3, 97, graphs, 7, tuning);
}

TEST(CudaPdl, ForcedOnIsBitIdenticalToOff) {
    REQUIRE_CUDA_DEVICE();
    cudaDeviceProp p;
    CUDA_OK(cudaGetDeviceProperties(&p, 0));
    if (p.major < 9)
        printf("    compute capability %d.%d: no PDL here, both models launch plainly\n", p.major, p.minor);
    const ember_config c = PdlConfig();
    const bool emu = EmuPdlLaunches() >= 0;
    for (ember_dtype dt : {EMBER_DTYPE_F32, EMBER_DTYPE_BF16}) {
        SCOPED_TRACE(DtName(dt));
        Model on = PdlModel("on", dt, 1, 0), on_plain = PdlModel("on", dt, 0, 0);
        Model off = PdlModel("off", dt, 1, 0);
        ASSERT_TRUE(on && on_plain && off);
        const GraphShape shapes[] = {{1, 1, true, false, true}, {2, 7, false, true, false},
                                     {3, 97, true, false, true}};
        uint32_t seed = 300;
        for (const GraphShape &g : shapes)
            for (int call = 0; call < 4; call++) {  // launched, captured, replayed, replayed
                SCOPED_TRACE(::testing::Message() << "B=" << g.B << " S=" << g.S << " call " << call);
                Batch x = ShapeBatch(g, c, seed += 10);
                Outs a, b, r;
                const long l0 = EmuPdlLaunches();
                ASSERT_EQ(RunCuda(off.get(), x, 0, g.pooler, false, &r), EMBER_OK) << ember_last_error();
                const long l1 = EmuPdlLaunches();
                ASSERT_EQ(RunCuda(on.get(), x, 0, g.pooler, false, &a), EMBER_OK) << ember_last_error();
                const long l2 = EmuPdlLaunches();
                ASSERT_EQ(RunCuda(on_plain.get(), x, 0, g.pooler, false, &b), EMBER_OK);
                const long l3 = EmuPdlLaunches();
                ExpectSame(a, r, "PDL on (graphs) vs off");
                ExpectSame(b, r, "PDL on (plain launches) vs off");
                if (emu) {
                    EXPECT_EQ(l1, l0) << "PDL off: no launch carries the attribute";
                    EXPECT_GT(l2, l1) << "PDL on: the forward's kernels carry it";
                    EXPECT_GT(l3, l2);
                }
            }
        // the paths without graphs: hidden_states, padding removal
        Batch x = ShapeBatch({3, 97, true, true, true}, c, 7);
        Outs a, r;
        ASSERT_EQ(RunCuda(on.get(), x, 0, true, true, &a), EMBER_OK);
        ASSERT_EQ(RunCuda(off.get(), x, 0, true, true, &r), EMBER_OK);
        ExpectSame(a, r, "hidden_states");
        ASSERT_EQ(RunCuda(on.get(), x, EMBER_FORWARD_SKIP_MASKED, true, false, &a), EMBER_OK);
        ASSERT_EQ(RunCuda(off.get(), x, EMBER_FORWARD_SKIP_MASKED, true, false, &r), EMBER_OK);
        ExpectSame(a, r, "skip_masked");
    }
}

// A copy of the PDL entry of `v` whose shape contains `shape`, if any (a copy: `v` is often
// the temporary that Tuning() returns).
std::optional<ember_tuning_entry> PdlEntry(const std::vector<ember_tuning_entry> &v,
                                           const char *shape) {
    for (const ember_tuning_entry &e : v)
        if (e.op == EMBER_TUNE_PDL && strstr(e.shape, shape)) return e;
    return std::nullopt;
}

// With fake times that make PDL launches cheaper (or dearer), the shape's capture times both
// graphs and keeps the faster; a tie keeps the default (off). Every call gives the bits of a
// model with tuning off.
TEST(CudaPdlEmu, TunerKeepsTheFasterLaunch) {
    REQUIRE_EMULATION();
    const ember_config c = PdlConfig();
    struct {
        const char *us;
        int want;
    } cases[] = {{"-0.5", 1}, {"0.5", 0}, {"0", 0}};
    for (const auto &k : cases) {
        SCOPED_TRACE(::testing::Message() << "EMU_PDL_US=" << k.us);
        EnvGuard env{{"EMU_PDL_US", k.us}, {"EMU_LT_ALGOS", "1"}};
        // off: the same op choices (the same fake times), PDL forced off; fixed: tuning off
        Model gpu = PdlModel("", EMBER_DTYPE_F16, 1, 1), off = PdlModel("off", EMBER_DTYPE_F16, 1, 1);
        Model fixed = PdlModel("", EMBER_DTYPE_F16, 1, 0);
        ASSERT_TRUE(gpu && off && fixed);
        Batch x = WithIds("x", 2, 7, RandomHoles(2, 7, 0.7, 5), c, 6);
        Outs first, again, ref;
        ASSERT_EQ(RunCuda(gpu.get(), x, 0, true, false, &first), EMBER_OK) << ember_last_error();
        EXPECT_FALSE(PdlEntry(Tuning(gpu.get()), "B=2 S=7").has_value()) << "first call: no graph yet";
        ASSERT_EQ(RunCuda(gpu.get(), x, 0, true, false, &again), EMBER_OK) << ember_last_error();
        ExpectSame(again, first, "captured");
        const auto v = Tuning(gpu.get());
        PrintTuning(v);
        std::optional<ember_tuning_entry> e = PdlEntry(v, "B=2 S=7 masked (graph)");
        ASSERT_TRUE(e.has_value());
        EXPECT_EQ(e->source, EMBER_TUNE_TIMED);
        EXPECT_EQ(e->n_candidates, 2);
        EXPECT_EQ(e->choice, k.want);
        for (int i = 0; i < 2; i++) {
            EXPECT_EQ(e->candidates[i].status, EMBER_CANDIDATE_OK) << i;
            EXPECT_GT(e->candidates[i].time_us, 0.f) << i;
        }
        EXPECT_EQ(e->candidates[1].rel_diff, 0.f) << "the same bits";
        const float d = e->candidates[1].time_us - e->candidates[0].time_us, us = (float)atof(k.us);
        if (us == 0) { EXPECT_EQ(d, 0.f); }
        else { EXPECT_GT(d / us, 5.f) << "every kernel of the forward costs EMU_PDL_US more: " << d; }
        // replays: the kept graph, PDL launches only when it won; the bits of tuning off
        for (int call = 0; call < 2; call++) {
            const long l0 = EmuPdlLaunches();
            ASSERT_EQ(RunCuda(gpu.get(), x, 0, true, false, &again), EMBER_OK);
            EXPECT_EQ(EmuPdlLaunches() > l0, k.want == 1) << "call " << call;
            ExpectSame(again, first, "replayed");
        }
        for (int call = 0; call < 3; call++) {
            ASSERT_EQ(RunCuda(off.get(), x, 0, true, false, &ref), EMBER_OK);
            ExpectSame(first, ref, "PDL tuned vs EMBER_PDL=off");
            ASSERT_EQ(RunCuda(fixed.get(), x, 0, true, false, &ref), EMBER_OK);
        }
        EXPECT_FALSE(PdlEntry(Tuning(off.get()), "B=2").has_value()) << "EMBER_PDL=off: nothing to tune";
        std::optional<ember_tuning_entry> f = PdlEntry(Tuning(fixed.get()), "B=2 S=7");
        ASSERT_TRUE(f.has_value());
        EXPECT_EQ(f->source, EMBER_TUNE_FIXED);
        EXPECT_EQ(f->choice, 0) << "EMBER_TUNE=off: PDL off";
    }
}

// A PDL choice travels in the tuning file (version 2) and is checked against PDL off, bit for
// bit, at the importing model's capture before it is used.
TEST(CudaPdlEmu, SavedChoiceLoadsAndIsCheckedFirst) {
    REQUIRE_EMULATION();
    const ember_config c = PdlConfig();
    EnvGuard env{{"EMU_PDL_US", "-0.5"}, {"EMU_LT_ALGOS", "1"}};
    Batch x = WithIds("x", 1, 7, {}, c, 9);
    Model a = PdlModel("", EMBER_DTYPE_BF16, 1, 1), b = PdlModel("", EMBER_DTYPE_BF16, 1, 1);
    ASSERT_TRUE(a && b);
    Outs oa, ob;
    for (int call = 0; call < 2; call++) ASSERT_EQ(RunCuda(a.get(), x, 0, true, false, &oa), EMBER_OK);
    ASSERT_TRUE(PdlEntry(Tuning(a.get()), "B=1 S=7 no mask").has_value());
    ASSERT_EQ(PdlEntry(Tuning(a.get()), "B=1 S=7")->choice, 1);
    ASSERT_EQ(ember_model_tuning_save(a.get(), kTunePath), EMBER_OK) << ember_last_error();
    const std::string text = ReadFile(kTunePath);
    EXPECT_EQ(text.rfind("ember-tuning 2\n", 0), 0u) << text;
    EXPECT_NE(text.find("\nentry 3 2 1 7 0 "), std::string::npos) << text;
    ASSERT_EQ(ember_model_tuning_load(b.get(), kTunePath), EMBER_OK) << ember_last_error();
    remove(kTunePath);
    std::optional<ember_tuning_entry> e = PdlEntry(Tuning(b.get()), "B=1 S=7");
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->source, EMBER_TUNE_IMPORTED);
    EXPECT_EQ(e->choice, 1);
    EXPECT_EQ(e->candidates[1].status, EMBER_CANDIDATE_NOT_RUN);
    for (int call = 0; call < 3; call++) {  // launched, captured (checked), replayed
        const long l0 = EmuPdlLaunches();
        ASSERT_EQ(RunCuda(b.get(), x, 0, true, false, &ob), EMBER_OK) << ember_last_error();
        if (call > 0) { EXPECT_GT(EmuPdlLaunches(), l0) << "call " << call; }
        ExpectSame(ob, oa, "imported choices");
    }
    e = PdlEntry(Tuning(b.get()), "B=1 S=7");
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->choice, 1);
    EXPECT_EQ(e->candidates[1].status, EMBER_CANDIDATE_OK) << "checked against off";
    EXPECT_EQ(e->candidates[1].rel_diff, 0.f);
    EXPECT_EQ(e->candidates[1].time_us, -1.f) << "not timed";
}

// Before compute capability 9.0 PDL is never used, forced or tuned, and never a candidate.
TEST(CudaPdlEmu, NeverBeforeSm90) {
    REQUIRE_EMULATION();
    const ember_config c = PdlConfig();
    EnvGuard env{{"EMU_CC_MAJOR", "8"}, {"EMU_LT_ALGOS", "1"}, {"EMU_PDL_US", "-0.5"}};
    Model forced = PdlModel("on", EMBER_DTYPE_F16, 1, 1), tuned = PdlModel("", EMBER_DTYPE_F16, 1, 1);
    ASSERT_TRUE(forced && tuned);
    Batch x = WithIds("x", 2, 7, RandomHoles(2, 7, 0.7, 3), c, 4);
    const long l0 = EmuPdlLaunches();
    for (int call = 0; call < 3; call++) {
        Outs a, b;
        ASSERT_EQ(RunCuda(forced.get(), x, 0, true, false, &a), EMBER_OK) << ember_last_error();
        ASSERT_EQ(RunCuda(tuned.get(), x, 0, true, false, &b), EMBER_OK) << ember_last_error();
        ExpectSame(a, b, "sm_80");
    }
    EXPECT_EQ(EmuPdlLaunches(), l0) << "no launch with the attribute (the emulation refuses it before 9.0)";
    EXPECT_EQ(NotPdl(Tuning(tuned.get())), Tuning(tuned.get()).size()) << "no PDL entry";
    EXPECT_FALSE(Tuning(tuned.get()).empty());
}

}  // namespace

#endif  // EMBER_WITH_CUDA
