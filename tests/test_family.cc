// The BERT family beyond the HF goldens (test_golden.cc runs those): what each family reports,
// the family's input rules and their errors, padding removal with the heads, random models of
// every family (these on both CPU backends, and the fast one against the reference),
// tokenizers that are not WordPiece, and `ember classify` / `ember rerank` against
// tests/data/goldens/cli.json (HF's pipelines and sentence-transformers' CrossEncoder).
#include <cmath>
#include <filesystem>
#include <map>

#include "kernels/ops.h"
#include "tests/ember_test.h"

using namespace ember_test;
namespace fs = std::filesystem;

namespace {

// A path in the test temporary folder, the pid in its name: ctest runs the tests as parallel
// processes, and other checkouts on the machine run the same tests.
fs::path Tmp(const std::string &name) {
    return fs::path(::testing::TempDir()) / (name + "_" + std::to_string(getpid()));
}

ember_model *Family(const std::string &name, ember_backend backend) {
    static std::map<std::pair<std::string, ember_backend>, Model> cache;
    const auto key = std::make_pair(name, backend);
    auto it = cache.find(key);
    if (it == cache.end())
        it = cache.emplace(key, LoadCpu(DataPath("models/" + name), 4, 32, backend)).first;
    return it->second.get();
}

// The tests that run a model, on both CPU backends (the fast path and the reference).
class FamilyCpu : public ::testing::TestWithParam<ember_backend> {
  protected:
    ember_model *M(const std::string &name) const { return Family(name, GetParam()); }
    bool Reference() const { return GetParam() == EMBER_BACKEND_REFERENCE; }
};

INSTANTIATE_TEST_SUITE_P(Cpu, FamilyCpu, ::testing::Values(EMBER_BACKEND_CPU, EMBER_BACKEND_REFERENCE),
                         [](const ::testing::TestParamInfo<ember_backend> &i) {
                             return BackendName(i.param);
                         });

ember_config Cfg(ember_model *m) {
    ember_config c{};
    EXPECT_EQ(ember_model_config(m, &c), EMBER_OK);
    return c;
}

// A forward with host buffers; logits when the model has a head.
struct Pass {
    ember_status st;
    std::vector<float> last, logits, hidden;
};

Pass Forward(ember_model *m, int B, int S, const std::vector<int32_t> &ids,
            const std::vector<int32_t> &mask = {}, const std::vector<int32_t> &types = {},
            const std::vector<int32_t> &pos = {}, const std::vector<float> &embeds = {},
            unsigned flags = 0, bool hidden_states = false) {
    const ember_config c = Cfg(m);
    Pass r;
    r.last = Poisoned((size_t)B * S * c.hidden_size);
    if (hidden_states) r.hidden = Poisoned((size_t)(c.num_hidden_layers + 1) * B * S * c.hidden_size);
    const size_t rows = c.head == EMBER_HEAD_TOKEN_CLASSIFICATION ? (size_t)B * S : (size_t)B;
    r.logits = c.head != EMBER_HEAD_NONE ? Poisoned(rows * c.num_labels) : std::vector<float>();
    ember_inputs in{};
    in.batch = B;
    in.seq_len = S;
    in.input_ids = ids.empty() ? nullptr : ids.data();
    in.inputs_embeds = embeds.empty() ? nullptr : embeds.data();
    in.attention_mask = mask.empty() ? nullptr : mask.data();
    in.token_type_ids = types.empty() ? nullptr : types.data();
    in.position_ids = pos.empty() ? nullptr : pos.data();
    in.flags = flags;
    ember_outputs out{};
    out.last_hidden_state = r.last.data();
    out.logits = r.logits.empty() ? nullptr : r.logits.data();
    out.hidden_states = r.hidden.empty() ? nullptr : r.hidden.data();
    r.st = ember_forward(m, &in, &out, nullptr);
    return r;
}

std::vector<int32_t> Ids(int n, int vocab, int avoid, uint32_t seed) {
    std::vector<int32_t> v((size_t)n);
    for (int i = 0; i < n; i++) {
        v[i] = (int32_t)((seed + 7919u * (uint32_t)i) % (uint32_t)vocab);
        if (v[i] == avoid) v[i] = (avoid + 1) % vocab;
    }
    return v;
}

// ---- what each family reports -----------------------------------------------------------------

TEST_P(FamilyCpu, ConfigAndLabelsOfEveryModel) {
    struct Want {
        const char *model;
        ember_arch arch;
        ember_head head;
        int labels, E, H, types, pad;
        const char *label0;
    } wants[] = {
        {"bert-seqcls", EMBER_ARCH_BERT, EMBER_HEAD_SEQUENCE_CLASSIFICATION, 3, 36, 36, 2, 0, "negative"},
        {"bert-tokcls", EMBER_ARCH_BERT, EMBER_HEAD_TOKEN_CLASSIFICATION, 5, 28, 28, 3, 0, "LABEL_0"},
        {"roberta-seqcls", EMBER_ARCH_ROBERTA, EMBER_HEAD_SEQUENCE_CLASSIFICATION, 2, 40, 40, 1, 1,
         "LABEL_0"},
        {"xlmr-tokcls", EMBER_ARCH_XLM_ROBERTA, EMBER_HEAD_TOKEN_CLASSIFICATION, 7, 32, 32, 1, 3, "O"},
        {"distilbert-seqcls", EMBER_ARCH_DISTILBERT, EMBER_HEAD_SEQUENCE_CLASSIFICATION, 2, 32, 32, 0,
         0, "LABEL_0"},
        {"distilbert-tokcls", EMBER_ARCH_DISTILBERT, EMBER_HEAD_TOKEN_CLASSIFICATION, 4, 24, 24, 0, 0,
         "O"},
        {"electra-seqcls", EMBER_ARCH_ELECTRA, EMBER_HEAD_SEQUENCE_CLASSIFICATION, 1, 24, 40, 2, 0,
         "LABEL_0"},
        {"electra-tokcls", EMBER_ARCH_ELECTRA, EMBER_HEAD_TOKEN_CLASSIFICATION, 3, 40, 24, 3, 0,
         "LABEL_0"},
        {"tiny-odd", EMBER_ARCH_BERT, EMBER_HEAD_NONE, 0, 72, 72, 3, 0, nullptr},
    };
    for (const Want &w : wants) {
        SCOPED_TRACE(w.model);
        ember_model *m = std::string(w.model) == "tiny-odd" ? nullptr : M(w.model);
        Model own;
        if (!m) own = LoadCpu(DataPath("models/tiny-odd"), 1, 4, GetParam()), m = own.get();
        ASSERT_NE(m, nullptr);
        const ember_config c = Cfg(m);
        EXPECT_EQ(c.arch, w.arch);
        EXPECT_EQ(c.head, w.head);
        EXPECT_EQ(c.num_labels, w.labels);
        EXPECT_EQ(c.embedding_size, w.E);
        EXPECT_EQ(c.hidden_size, w.H);
        EXPECT_EQ(c.type_vocab_size, w.types);
        EXPECT_EQ(c.pad_token_id, w.pad);
        EXPECT_EQ(c.has_pooler, std::string(w.model) == "bert-seqcls" || !w.label0);
        if (w.label0) {
            EXPECT_STREQ(ember_model_label(m, 0), w.label0);
            EXPECT_NE(ember_model_label(m, w.labels - 1), nullptr);
        }
        EXPECT_EQ(ember_model_label(m, w.labels), nullptr);
        EXPECT_EQ(ember_model_label(m, -1), nullptr);
        int64_t rows = -1, cols = -1;
        ASSERT_EQ(ember_table_shape(m, EMBER_TABLE_WORD, &rows, &cols), EMBER_OK);
        EXPECT_EQ(cols, w.E);
        ASSERT_EQ(ember_table_shape(m, EMBER_TABLE_TOKEN_TYPE, &rows, &cols), EMBER_OK);
        EXPECT_EQ(rows, w.types);
        std::vector<float> types = Poisoned((size_t)(rows * cols) + 1);
        EXPECT_EQ(ember_table_copy(m, EMBER_TABLE_TOKEN_TYPE, types.data(), types.size(), nullptr),
                  EMBER_OK)
            << ember_last_error();
    }
    EXPECT_STREQ(ember_model_label(nullptr, 0), nullptr);
    EXPECT_STREQ(ember_model_label(M("bert-seqcls"), 2), "positive");
    EXPECT_STREQ(ember_arch_name(EMBER_ARCH_XLM_ROBERTA), "xlm-roberta");
    EXPECT_STREQ(ember_arch_name((ember_arch)42), "unknown");
}

// ---- the family's input rules -----------------------------------------------------------------

// Each rejected request: the status, a message naming the rule, and the model unchanged.
TEST_P(FamilyCpu, InputRulesAreCheckedAndTheModelStaysUsable) {
    ember_model *rob = M("roberta-seqcls");  // P 26, padding_idx 1: at most 24 tokens
    const ember_config rc = Cfg(rob);
    const Pass before = Forward(rob, 2, 7, Ids(14, rc.vocab_size, 1, 3));
    ASSERT_EQ(before.st, EMBER_OK) << ember_last_error();

    Pass r = Forward(rob, 1, 25, Ids(25, rc.vocab_size, 1, 4));
    EXPECT_EQ(r.st, EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(ember_last_error()).find("pad_token_id + 1 = 2"), std::string::npos)
        << ember_last_error();
    std::vector<int32_t> pos(25);
    for (int s = 0; s < 25; s++) pos[s] = s;
    r = Forward(rob, 1, 25, Ids(25, rc.vocab_size, 1, 4), {}, {}, pos);
    EXPECT_EQ(r.st, EMBER_OK) << "explicit position_ids are used as given: " << ember_last_error();
    r = Forward(rob, 1, 27, Ids(27, rc.vocab_size, 1, 4), {}, {}, std::vector<int32_t>(27, 0));
    EXPECT_EQ(r.st, EMBER_ERR_INVALID_ARGUMENT) << "beyond max_position_embeddings";
    EXPECT_TRUE(BitIdentical(Forward(rob, 2, 7, Ids(14, rc.vocab_size, 1, 3)).logits, before.logits));

    ember_model *dis = M("distilbert-seqcls");
    const ember_config dc = Cfg(dis);
    const Pass dbefore = Forward(dis, 1, 5, Ids(5, dc.vocab_size, 0, 5));
    r = Forward(dis, 1, 5, Ids(5, dc.vocab_size, 0, 5), {}, std::vector<int32_t>(5, 0));
    EXPECT_EQ(r.st, EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(ember_last_error()).find("distilbert has no token types"),
              std::string::npos)
        << ember_last_error();
    EXPECT_TRUE(BitIdentical(Forward(dis, 1, 5, Ids(5, dc.vocab_size, 0, 5)).logits, dbefore.logits));

    // logits from a model without a head: the architecture is named
    Model plain = LoadCpu(DataPath("models/prefixed-gamma"), 1, 4, GetParam());
    std::vector<float> h(4 * 64), lg(8);
    std::vector<int32_t> ids = {1, 2, 3, 4};
    ember_inputs in{};
    in.batch = 1;
    in.seq_len = 4;
    in.input_ids = ids.data();
    ember_outputs out{};
    out.last_hidden_state = h.data();
    out.logits = lg.data();
    EXPECT_EQ(ember_forward(plain.get(), &in, &out, nullptr), EMBER_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(ember_last_error()).find("\"BertForMaskedLM\""), std::string::npos)
        << ember_last_error();
}

// RoBERTa: inputs_embeds take the sequential positions, ids the padding rule. They agree (bit for
// bit) when no id is the pad id, and differ, as in HF, when one is.
TEST_P(FamilyCpu, RobertaPositionsOfIdsAndOfEmbeds) {
    for (const char *name : {"roberta-seqcls", "xlmr-tokcls", "electra-seqcls", "distilbert-tokcls"}) {
        SCOPED_TRACE(name);
        ember_model *m = M(name);
        const ember_config c = Cfg(m);
        const int B = 2, S = 9;
        std::vector<int32_t> ids = Ids(B * S, c.vocab_size, c.pad_token_id, 11);
        std::vector<float> emb = Poisoned((size_t)B * S * c.embedding_size);
        ASSERT_EQ(ember_embed_tokens(m, ids.data(), B * S, emb.data(), nullptr), EMBER_OK);
        const Pass a = Forward(m, B, S, ids), b = Forward(m, B, S, {}, {}, {}, {}, emb);
        ASSERT_EQ(a.st, EMBER_OK) << ember_last_error();
        ASSERT_EQ(b.st, EMBER_OK) << ember_last_error();
        EXPECT_TRUE(BitIdentical(a.last, b.last));
        EXPECT_TRUE(BitIdentical(a.logits, b.logits));
        ids[4] = c.pad_token_id;  // a pad id inside row 0
        ASSERT_EQ(ember_embed_tokens(m, ids.data(), B * S, emb.data(), nullptr), EMBER_OK);
        const Pass a2 = Forward(m, B, S, ids), b2 = Forward(m, B, S, {}, {}, {}, {}, emb);
        const bool roberta = c.arch == EMBER_ARCH_ROBERTA || c.arch == EMBER_ARCH_XLM_ROBERTA;
        EXPECT_EQ(BitIdentical(a2.last, b2.last), !roberta);
        // row 1 has no pad id: the same either way
        const size_t row = (size_t)S * c.hidden_size;
        EXPECT_TRUE(std::equal(a2.last.begin() + row, a2.last.end(), b2.last.begin() + row));
    }
}

// Padding removal with the heads: valid rows, token logits of valid tokens and sequence logits
// (token 0 valid) are those of the padded run: bit for bit on the reference, within kCpuFastAbs on
// the fast path (sgemm's result for a row depends on its place in the matrix); masked rows 0.
TEST_P(FamilyCpu, SkipMaskedMatchesThePaddedRunForValidTokens) {
    const double tol = Reference() ? 0.0 : ember_tol::kCpuFastAbs;
    for (const char *name : {"bert-seqcls", "bert-tokcls", "roberta-seqcls", "xlmr-tokcls",
                             "distilbert-seqcls", "distilbert-tokcls", "electra-seqcls",
                             "electra-tokcls"}) {
        SCOPED_TRACE(name);
        ember_model *m = M(name);
        const ember_config c = Cfg(m);
        const int B = 3, S = 11, H = c.hidden_size, L = c.num_labels;
        const std::vector<int> len = {11, 4, 7};
        std::vector<int32_t> ids = Ids(B * S, c.vocab_size, c.pad_token_id, 21), mask(B * S, 0);
        for (int b = 0; b < B; b++)
            for (int s = 0; s < S; s++) {
                mask[b * S + s] = s < len[b];
                if (s >= len[b]) ids[b * S + s] = c.pad_token_id;
            }
        std::vector<int32_t> types;
        if (c.type_vocab_size > 0) types = Ids(B * S, c.type_vocab_size, -1, 5);
        const Pass a = Forward(m, B, S, ids, mask, types);
        const Pass b = Forward(m, B, S, ids, mask, types, {}, {}, EMBER_FORWARD_SKIP_MASKED);
        ASSERT_EQ(a.st, EMBER_OK) << ember_last_error();
        ASSERT_EQ(b.st, EMBER_OK) << ember_last_error();
        for (int t = 0; t < B * S; t++) {
            const bool valid = mask[t];
            for (int i = 0; i < H; i++) {
                if (valid) ASSERT_LE(std::fabs(b.last[(size_t)t * H + i] - a.last[(size_t)t * H + i]), tol) << t;
                else ASSERT_EQ(b.last[(size_t)t * H + i], 0.f) << t;
            }
            if (c.head == EMBER_HEAD_TOKEN_CLASSIFICATION && valid) {
                for (int l = 0; l < L; l++)
                    ASSERT_LE(std::fabs(b.logits[(size_t)t * L + l] - a.logits[(size_t)t * L + l]), tol) << t;
            }
        }
        if (c.head == EMBER_HEAD_SEQUENCE_CLASSIFICATION) {
            if (Reference()) EXPECT_TRUE(BitIdentical(a.logits, b.logits));
            else EXPECT_TRUE(AllClose(b.logits, a.logits, ember_tol::kCpuFastAbs, ember_tol::kCpuFastRel));
        }
    }
}

// Half outputs (ember_outputs.dtype) and half inputs_embeds (ember_inputs.embeds_dtype) with
// the family: logits in F16 / BF16 are the f32 logits rounded once, and E-wide half embeddings
// (ELECTRA) give the outputs of their widened values.
TEST_P(FamilyCpu, HalfOutputsAndInputsEmbeds) {
    for (const char *name : {"electra-seqcls", "electra-tokcls", "xlmr-tokcls", "distilbert-seqcls"}) {
        SCOPED_TRACE(name);
        ember_model *m = M(name);
        const ember_config c = Cfg(m);
        const int B = 2, S = 6, E = c.embedding_size, N = B * S;
        std::vector<int32_t> ids = Ids(N, c.vocab_size, c.pad_token_id, 41), mask(N, 1);
        mask[N - 1] = mask[N - 2] = 0;
        const Pass ref = Forward(m, B, S, ids, mask, {}, {}, {}, EMBER_FORWARD_SKIP_MASKED);
        ASSERT_EQ(ref.st, EMBER_OK) << ember_last_error();
        for (ember_dtype odt : {EMBER_DTYPE_F16, EMBER_DTYPE_BF16}) {
            std::vector<uint16_t> last(ref.last.size()), logits(ref.logits.size()), want(logits.size());
            ember_inputs in{};
            in.batch = B;
            in.seq_len = S;
            in.input_ids = ids.data();
            in.attention_mask = mask.data();
            in.flags = EMBER_FORWARD_SKIP_MASKED;
            ember_outputs out{};
            out.dtype = odt;
            out.last_hidden_state = (float *)last.data();
            out.logits = (float *)logits.data();
            ASSERT_EQ(ember_forward(m, &in, &out, nullptr), EMBER_OK) << ember_last_error();
            ember_ref_convert(want.data(), odt, ref.logits.data(), EMBER_DTYPE_F32, (int64_t)want.size());
            EXPECT_EQ(logits, want) << "logits in dtype " << odt;
        }
        // E-wide embeddings given in half precision: the outputs of the widened values
        std::vector<float> emb((size_t)N * E);
        ASSERT_EQ(ember_embed_tokens(m, ids.data(), N, emb.data(), nullptr), EMBER_OK);
        for (ember_dtype edt : {EMBER_DTYPE_F16, EMBER_DTYPE_BF16}) {
            std::vector<uint16_t> half(emb.size());
            ember_ref_convert(half.data(), edt, emb.data(), EMBER_DTYPE_F32, (int64_t)emb.size());
            std::vector<float> widened(emb.size());
            ember_ref_convert(widened.data(), EMBER_DTYPE_F32, half.data(), edt, (int64_t)emb.size());
            const Pass a = Forward(m, B, S, {}, mask, {}, {}, widened);
            Pass b;
            b.last = Poisoned(a.last.size());
            b.logits = Poisoned(a.logits.size());
            ember_inputs in{};
            in.batch = B;
            in.seq_len = S;
            in.inputs_embeds = (const float *)half.data();
            in.embeds_dtype = edt;
            in.attention_mask = mask.data();
            ember_outputs out{};
            out.last_hidden_state = b.last.data();
            out.logits = b.logits.data();
            ASSERT_EQ(ember_forward(m, &in, &out, nullptr), EMBER_OK) << ember_last_error();
            EXPECT_TRUE(BitIdentical(a.last, b.last));
            EXPECT_TRUE(BitIdentical(a.logits, b.logits));
        }
    }
}

// ---- random models of every family ------------------------------------------------------------

ember_config RandomConfig(ember_arch arch, ember_head head) {
    ember_config c{};
    c.vocab_size = 53;
    c.hidden_size = 24;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 3;
    c.intermediate_size = 40;
    c.max_position_embeddings = 20;
    c.type_vocab_size = arch == EMBER_ARCH_DISTILBERT ? 0 : 2;
    c.pad_token_id = arch == EMBER_ARCH_ROBERTA || arch == EMBER_ARCH_XLM_ROBERTA ? 1 : 0;
    c.layer_norm_eps = 1e-5;
    c.hidden_act = EMBER_ACT_GELU;
    c.has_pooler = arch == EMBER_ARCH_BERT;
    c.arch = arch;
    c.embedding_size = arch == EMBER_ARCH_ELECTRA ? 16 : 0;
    c.head = head;
    c.num_labels = head == EMBER_HEAD_NONE ? 0 : 4;
    return c;
}

TEST_P(FamilyCpu, RandomModelsOfEveryFamilyAndHead) {
    for (ember_arch arch : {EMBER_ARCH_BERT, EMBER_ARCH_ROBERTA, EMBER_ARCH_XLM_ROBERTA,
                            EMBER_ARCH_DISTILBERT, EMBER_ARCH_ELECTRA})
        for (ember_head head : {EMBER_HEAD_NONE, EMBER_HEAD_SEQUENCE_CLASSIFICATION,
                                EMBER_HEAD_TOKEN_CLASSIFICATION}) {
            SCOPED_TRACE(::testing::Message() << ember_arch_name(arch) << " head " << (int)head);
            const ember_config c = RandomConfig(arch, head);
            ember_load_options opt;
            ember_load_options_init(&opt);
            opt.backend = GetParam();
            ember_model *raw = nullptr;
            ASSERT_EQ(ember_model_init_random(&c, 3, &opt, &raw), EMBER_OK) << ember_last_error();
            Model m(raw);
            const ember_config got = Cfg(m.get());
            EXPECT_EQ(got.embedding_size, arch == EMBER_ARCH_ELECTRA ? 16 : 24);
            if (head != EMBER_HEAD_NONE) {
                EXPECT_STREQ(ember_model_label(m.get(), 3), "LABEL_3");
            }
            std::vector<int32_t> ids = Ids(2 * 7, c.vocab_size, c.pad_token_id, 9);
            const Pass r = Forward(m.get(), 2, 7, ids);
            ASSERT_EQ(r.st, EMBER_OK) << ember_last_error();
            for (float v : r.logits) ASSERT_TRUE(std::isfinite(v));
            for (float v : r.last) ASSERT_TRUE(std::isfinite(v));
        }
}

TEST(Family, RandomModelConfigsAreChecked) {
    struct Bad {
        const char *what;
        void (*edit)(ember_config *);
        const char *needle;
    } bads[] = {
        {"arch out of range", [](ember_config *c) { c->arch = (ember_arch)9; }, "ember_arch"},
        {"head out of range", [](ember_config *c) { c->head = (ember_head)5; }, "ember_head"},
        {"DistilBERT with token types",
         [](ember_config *c) { c->arch = EMBER_ARCH_DISTILBERT, c->type_vocab_size = 2, c->has_pooler = 0; },
         "no token types"},
        {"embedding_size outside ELECTRA", [](ember_config *c) { c->embedding_size = 16; },
         "embeddings_project"},
        {"embedding_size negative",
         [](ember_config *c) { c->arch = EMBER_ARCH_ELECTRA, c->embedding_size = -3, c->has_pooler = 0; },
         "embedding_size"},
        {"a head without labels", [](ember_config *c) { c->num_labels = 0; }, "num_labels"},
        {"labels without a head",
         [](ember_config *c) { c->head = EMBER_HEAD_NONE, c->num_labels = 3; }, "num_labels"},
        {"BERT sequence head without pooler", [](ember_config *c) { c->has_pooler = 0; }, "pooler"},
        {"a pooler in ELECTRA", [](ember_config *c) { c->arch = EMBER_ARCH_ELECTRA; }, "no pooler"},
        {"RoBERTa padding_idx at the table end",
         [](ember_config *c) { c->arch = EMBER_ARCH_ROBERTA, c->pad_token_id = 19; }, "pad_token_id"},
    };
    for (const Bad &b : bads) {
        SCOPED_TRACE(b.what);
        ember_config c = RandomConfig(EMBER_ARCH_BERT, EMBER_HEAD_SEQUENCE_CLASSIFICATION);
        b.edit(&c);
        ember_model *m = nullptr;
        EXPECT_EQ(ember_model_init_random(&c, 1, nullptr, &m), EMBER_ERR_CONFIG);
        EXPECT_EQ(m, nullptr);
        EXPECT_NE(std::string(ember_last_error()).find(b.needle), std::string::npos)
            << ember_last_error();
    }
}

// ---- the fast CPU backend against the reference ------------------------------------------------

// Uniform in [-1, 1), reproducible.
std::vector<float> Uniform(size_t n, uint32_t seed) {
    std::vector<float> v(n);
    uint32_t x = seed * 2654435761u + 1u;
    for (float &f : v) {
        x = x * 1664525u + 1013904223u;
        f = (float)((x >> 8) * (2.0 / 16777216.0) - 1.0);
    }
    return v;
}

struct Worst {
    double hidden = 0.0, logits = 0.0;
};

// One batch on both backends: ids with pad ids inside rows (RoBERTa's positions), a mask with
// holes and, for B > 1, a fully masked last row, token types where the family has them, and
// E-wide inputs_embeds; with and without padding removal. Hidden states and logits within
// kCpuFastAbs, masked rows of a packed run exactly 0.
void CompareBackends(ember_model *fast, ember_model *ref, int B, int S, uint32_t seed, Worst *w) {
    const ember_config c = Cfg(fast);
    const int N = B * S, H = c.hidden_size;
    std::vector<int32_t> ids = Ids(N, c.vocab_size, -1, seed), mask(N, 1), types;
    for (int t = 2; t < N; t += 5) ids[t] = c.pad_token_id;
    for (int t = 1; t < N; t += 3) mask[t] = 0;
    if (B > 1)
        for (int s = 0; s < S; s++) mask[(B - 1) * S + s] = 0;
    if (c.type_vocab_size > 0) types = Ids(N, c.type_vocab_size, -1, seed + 1);
    const std::vector<float> embeds = Uniform((size_t)N * c.embedding_size, seed + 2);
    for (bool use_embeds : {false, true})
        for (unsigned flags : {0u, (unsigned)EMBER_FORWARD_SKIP_MASKED}) {
            SCOPED_TRACE(::testing::Message() << "B " << B << " S " << S
                                              << (use_embeds ? " inputs_embeds" : " input_ids")
                                              << (flags ? " skip_masked" : ""));
            const std::vector<int32_t> &i = use_embeds ? std::vector<int32_t>() : ids;
            const std::vector<float> &e = use_embeds ? embeds : std::vector<float>();
            const Pass f = Forward(fast, B, S, i, mask, types, {}, e, flags, true);
            const Pass r = Forward(ref, B, S, i, mask, types, {}, e, flags, true);
            ASSERT_EQ(f.st, EMBER_OK) << ember_last_error();
            ASSERT_EQ(r.st, EMBER_OK) << ember_last_error();
            EXPECT_TRUE(AllClose(f.hidden, r.hidden, ember_tol::kCpuFastAbs, ember_tol::kCpuFastRel))
                << "hidden_states";
            EXPECT_TRUE(AllClose(f.logits, r.logits, ember_tol::kCpuFastAbs, ember_tol::kCpuFastRel))
                << "logits";
            for (int t = 0; t < N && flags; t++) {
                if (mask[t]) continue;
                for (int h = 0; h < H; h++) ASSERT_EQ(f.last[(size_t)t * H + h], 0.f) << t;
            }
            w->hidden = std::max(w->hidden, MaxDiff(f.hidden, r.hidden));
            w->logits = std::max(w->logits, MaxDiff(f.logits, r.logits));
        }
}

// The family's checkpoints, and random models of every family and head at odd sizes (head size
// 15, intermediate 97, ELECTRA's E below and above H; S = 1, 7, 97).
TEST(FastCpu, FamilyMatchesReference) {
    Worst w;
    for (const char *name : {"bert-seqcls", "bert-tokcls", "roberta-seqcls", "xlmr-tokcls",
                             "distilbert-seqcls", "distilbert-tokcls", "electra-seqcls",
                             "electra-tokcls"}) {
        SCOPED_TRACE(name);
        CompareBackends(Family(name, EMBER_BACKEND_CPU), Family(name, EMBER_BACKEND_REFERENCE), 3,
                        11, 51, &w);
    }
    struct Shape {
        ember_arch arch;
        ember_head head;
        int E;
    };
    for (Shape sh : {Shape{EMBER_ARCH_BERT, EMBER_HEAD_SEQUENCE_CLASSIFICATION, 0},
                     Shape{EMBER_ARCH_ROBERTA, EMBER_HEAD_TOKEN_CLASSIFICATION, 0},
                     Shape{EMBER_ARCH_XLM_ROBERTA, EMBER_HEAD_SEQUENCE_CLASSIFICATION, 0},
                     Shape{EMBER_ARCH_DISTILBERT, EMBER_HEAD_TOKEN_CLASSIFICATION, 0},
                     Shape{EMBER_ARCH_DISTILBERT, EMBER_HEAD_SEQUENCE_CLASSIFICATION, 0},
                     Shape{EMBER_ARCH_ELECTRA, EMBER_HEAD_SEQUENCE_CLASSIFICATION, 36},
                     Shape{EMBER_ARCH_ELECTRA, EMBER_HEAD_TOKEN_CLASSIFICATION, 72}}) {
        SCOPED_TRACE(::testing::Message() << ember_arch_name(sh.arch) << " head " << (int)sh.head);
        ember_config c = RandomConfig(sh.arch, sh.head);
        c.vocab_size = 211;
        c.hidden_size = 60;
        c.num_attention_heads = 4;
        c.intermediate_size = 97;
        c.max_position_embeddings = 128;
        c.embedding_size = sh.E;
        c.num_labels = 5;
        Model m[2];
        for (int k = 0; k < 2; k++) {
            ember_load_options opt;
            ember_load_options_init(&opt);
            opt.backend = k ? EMBER_BACKEND_REFERENCE : EMBER_BACKEND_CPU;
            opt.max_batch = 3;
            opt.max_seq_len = 97;
            ember_model *raw = nullptr;
            ASSERT_EQ(ember_model_init_random(&c, 17, &opt, &raw), EMBER_OK) << ember_last_error();
            m[k].reset(raw);
        }
        CompareBackends(m[0].get(), m[1].get(), 1, 1, 61, &w);
        CompareBackends(m[0].get(), m[1].get(), 3, 7, 62, &w);
        CompareBackends(m[0].get(), m[1].get(), 2, 97, 63, &w);
    }
    printf("    fast vs reference, the family: max |diff| hidden states %.3g, logits %.3g\n",
           w.hidden, w.logits);
}

// ---- tokenizers that are not WordPiece -------------------------------------------------------

TEST(Family, TokenizerThatIsNotWordPieceIsNamed) {
    const fs::path dir = Tmp("ember_family_tokenizers");
    fs::remove_all(dir);
    fs::create_directories(dir);
    ember_tokenizer *tok = nullptr;
    EXPECT_EQ(ember_tokenizer_load(dir.c_str(), nullptr, &tok), EMBER_ERR_IO) << "nothing there";
    WriteFile((dir / "tokenizer.json").string(), "{\"model\": {\"type\": \"Unigram\"}}");
    EXPECT_EQ(ember_tokenizer_load(dir.c_str(), nullptr, &tok), EMBER_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(ember_last_error()).find("Unigram"), std::string::npos) << ember_last_error();
    WriteFile((dir / "merges.txt").string(), "#version: 0.2\n");
    EXPECT_EQ(ember_tokenizer_load(dir.c_str(), nullptr, &tok), EMBER_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(ember_last_error()).find("byte-level BPE"), std::string::npos)
        << ember_last_error();
    EXPECT_EQ(tok, nullptr);
    fs::remove_all(dir);
}

// ---- ember classify / ember rerank --------------------------------------------------------------

std::string Q(const std::string &s) {
    std::string r = "'";
    for (char ch : s) r += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
    return r + "'";
}

struct Cli {
    int code;
    std::string out, err;
};

Cli RunCli(const std::string &args) {
    const fs::path err = Tmp("ember_family_cli_stderr.txt");
    CommandResult c = RunCommand(std::string(EMBER_CLI_PATH) + " " + args + " 2>" + Q(err.string()));
    Cli r{c.code, c.out, ReadFile(err.string())};
    fs::remove(err);
    return r;
}

struct JsonDeleter {
    void operator()(json_t *j) const { json_decref(j); }
};
using Json = std::unique_ptr<json_t, JsonDeleter>;

Json CliGolden(const char *key) {
    Json all(json_load_file(DataPath("goldens/cli.json").c_str(), 0, nullptr));
    EXPECT_TRUE(all) << "tests/data/goldens/cli.json";
    return Json(json_incref(json_object_get(all.get(), key)));
}

std::string Texts(json_t *arr) {
    std::string s;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) s += " " + Q(json_string_value(v));
    return s;
}

std::vector<Json> Lines(const std::string &out) {
    std::vector<Json> v;
    size_t a = 0, b;
    while ((b = out.find('\n', a)) != std::string::npos) {
        v.emplace_back(json_loadb(out.data() + a, b - a, 0, nullptr));
        EXPECT_TRUE(v.back()) << out.substr(a, b - a);
        a = b + 1;
    }
    return v;
}

double Num(json_t *j) { return json_number_value(j); }

// `ember classify --format jsonl` on the texts of golden `key`: the golden and one JSON object
// per text.
struct JsonlRun {
    Json golden;
    std::vector<Json> lines;
};

JsonlRun ClassifyJsonl(const char *key) {
    JsonlRun run{CliGolden(key), {}};
    json_t *texts = json_object_get(run.golden.get(), "texts");
    const std::string model = DataPath(json_string_value(json_object_get(run.golden.get(), "model_dir")));
    Cli r = RunCli("classify --format jsonl --model " + Q(model) + " --" + Texts(texts));
    EXPECT_EQ(r.code, 0) << r.err;
    run.lines = Lines(r.out);
    EXPECT_EQ(run.lines.size(), json_array_size(texts));
    if (run.lines.size() != json_array_size(texts)) run.lines.clear();
    return run;
}

// Scores as HF's text-classification pipeline gives them (softmax; HF tokenizer ids).
TEST(CliClassify, SequenceScoresMatchTheHfPipeline) {
    JsonlRun run = ClassifyJsonl("classify");
    ASSERT_FALSE(run.lines.empty());
    json_t *g = run.golden.get(), *texts = json_object_get(g, "texts");
    const std::vector<Json> &lines = run.lines;
    json_t *labels = json_object_get(g, "labels");
    for (size_t i = 0; i < lines.size(); i++) {
        SCOPED_TRACE(json_string_value(json_array_get(texts, i)));
        json_t *want = json_array_get(json_object_get(g, "scores"), i);
        json_t *got = json_object_get(lines[i].get(), "scores");
        size_t best = 0;
        for (size_t l = 0; l < json_array_size(want); l++) {
            const char *name = json_string_value(json_array_get(labels, l));
            EXPECT_NEAR(Num(json_object_get(got, name)), Num(json_array_get(want, l)), 1e-5) << name;
            if (Num(json_array_get(want, l)) > Num(json_array_get(want, best))) best = l;
        }
        EXPECT_STREQ(json_string_value(json_object_get(lines[i].get(), "label")),
                     json_string_value(json_array_get(labels, best)));
    }
    // the text format: best label, score, text
    const std::string model = DataPath(json_string_value(json_object_get(g, "model_dir")));
    Cli r = RunCli("classify --model " + Q(model) + " " + Q("this movie was very good !"));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out.rfind("negative\t0.69312", 0), 0u) << r.out;
}

// Token classification: every word piece's label is the argmax of HF's logits.
TEST(CliClassify, TokenLabelsMatchHf) {
    JsonlRun run = ClassifyJsonl("classify_tokens");
    ASSERT_FALSE(run.lines.empty());
    json_t *g = run.golden.get();
    const std::vector<Json> &lines = run.lines;
    json_t *labels = json_object_get(g, "labels");
    for (size_t i = 0; i < lines.size(); i++) {
        json_t *toks = json_array_get(json_object_get(g, "tokens"), i);
        json_t *logits = json_array_get(json_object_get(g, "logits"), i);
        json_t *got = json_object_get(lines[i].get(), "tokens");
        ASSERT_EQ(json_array_size(got) + 2, json_array_size(toks)) << "[CLS] and [SEP] are not shown";
        for (size_t k = 0; k < json_array_size(got); k++) {
            json_t *row = json_array_get(logits, k + 1);
            size_t best = 0;
            double mx = -1e30, sum = 0;
            for (size_t l = 0; l < json_array_size(row); l++) mx = std::max(mx, Num(json_array_get(row, l)));
            for (size_t l = 0; l < json_array_size(row); l++) {
                sum += std::exp(Num(json_array_get(row, l)) - mx);
                if (Num(json_array_get(row, l)) > Num(json_array_get(row, best))) best = l;
            }
            json_t *t = json_array_get(got, k);
            EXPECT_STREQ(json_string_value(json_object_get(t, "token")),
                         json_string_value(json_array_get(toks, k + 1)));
            EXPECT_STREQ(json_string_value(json_object_get(t, "label")),
                         json_string_value(json_array_get(labels, best)));
            EXPECT_NEAR(Num(json_object_get(t, "score")), 1.0 / sum, 1e-5);
        }
    }
}

// CrossEncoder.rank's order and scores (sigmoid of the logit) for the same query and documents.
TEST(CliRerank, OrderAndScoresMatchCrossEncoder) {
    Json g = CliGolden("rerank");
    const std::string model = DataPath(json_string_value(json_object_get(g.get(), "model_dir")));
    const std::string query = json_string_value(json_object_get(g.get(), "query"));
    json_t *ranked = json_object_get(g.get(), "ranked");
    Cli r = RunCli("rerank --format jsonl --model " + Q(model) + " --query " + Q(query) + " --" +
                   Texts(json_object_get(g.get(), "docs")));
    ASSERT_EQ(r.code, 0) << r.err;
    std::vector<Json> lines = Lines(r.out);
    ASSERT_EQ(lines.size(), json_array_size(ranked));
    for (size_t k = 0; k < lines.size(); k++) {
        json_t *want = json_array_get(ranked, k);
        EXPECT_EQ(json_integer_value(json_object_get(lines[k].get(), "corpus_id")),
                  json_integer_value(json_object_get(want, "corpus_id")));
        EXPECT_NEAR(Num(json_object_get(lines[k].get(), "score")), Num(json_object_get(want, "score")),
                    1e-5);
    }
    // --top-k, text format
    r = RunCli("rerank --top-k 2 --model " + Q(model) + " --query " + Q(query) + " --" +
               Texts(json_object_get(g.get(), "docs")));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2);
    EXPECT_NE(r.out.find("\t3\tmany people live in paris\n"), std::string::npos) << r.out;
}

// A model's own activation (config_sentence_transformers.json) replaces the sigmoid.
TEST(CliRerank, ActivationFromTheModelsSentenceTransformersConfig) {
    Json g = CliGolden("rerank");
    const fs::path dir = Tmp("ember_family_ce");
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (auto &e : fs::directory_iterator(DataPath(json_string_value(json_object_get(g.get(), "model_dir")))))
        fs::copy_file(e.path(), dir / e.path().filename());
    const std::string args = "rerank --format jsonl --model " + Q(dir.string()) + " --query " +
                             Q(json_string_value(json_object_get(g.get(), "query"))) + " --" +
                             Texts(json_object_get(g.get(), "docs"));
    WriteFile((dir / "config_sentence_transformers.json").string(),
              "{\"activation_fn\": \"torch.nn.modules.linear.Identity\"}");
    Cli r = RunCli(args);
    ASSERT_EQ(r.code, 0) << r.err;
    std::vector<Json> lines = Lines(r.out);
    json_t *ranked = json_object_get(g.get(), "ranked");
    ASSERT_EQ(lines.size(), json_array_size(ranked));
    for (size_t k = 0; k < lines.size(); k++) {  // the logit: the sigmoid's inverse
        const double p = Num(json_object_get(json_array_get(ranked, k), "score"));
        EXPECT_NEAR(Num(json_object_get(lines[k].get(), "score")), std::log(p / (1 - p)), 1e-4);
    }
    WriteFile((dir / "config_sentence_transformers.json").string(),
              "{\"activation_fn\": \"torch.nn.modules.activation.Softmax\"}");
    r = RunCli(args);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("Softmax"), std::string::npos) << r.err;
    fs::remove_all(dir);
}

// RoBERTa's route from the command line: ids tokenized elsewhere, logits from ember forward.
TEST(CliForward, LogitsOfAHeadModel) {
    for (const char *name : {"roberta-seqcls", "electra-tokcls"}) {
        SCOPED_TRACE(name);
        const std::string in = DataPath(std::string("goldens/") + name + "/inputs_embeds.safetensors");
        const fs::path out = Tmp("ember_family_forward.safetensors");
        Cli r = RunCli("forward --quiet --logits --model " + Q(DataPath(std::string("models/") + name)) +
                       " --inputs " + Q(in) + " --output " + Q(out.string()));
        ASSERT_EQ(r.code, 0) << r.err;
        StFile got = OpenSt(out.string()), want = OpenSt(in);
        ASSERT_TRUE(got && want);
        EXPECT_TRUE(AllClose(ReadF32(got.get(), "logits"), ReadF32(want.get(), "expected.logits"),
                             ember_tol::kHfAbs, ember_tol::kHfRel));
        EXPECT_EQ(ember_st_find(got.get(), "logits")->ndim,
                  std::string(name) == "electra-tokcls" ? 3 : 2);
        fs::remove(out);
    }
    Cli r = RunCli("forward --quiet --logits --model " + Q(DataPath("models/tiny-odd")) + " --inputs " +
                   Q(DataPath("goldens/tiny-odd/basic_ids.safetensors")) + " --output /dev/null");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("no head"), std::string::npos) << r.err;
}

TEST(CliClassify, ModelsItCannotServeAreRefusedClearly) {
    struct Case {
        std::string args;
        int code;
        const char *needle;
    } cases[] = {
        {"classify --model " + Q(DataPath("models/xlmr-tokcls")) + " hello", 1, "SentencePiece"},
        {"classify --model " + Q(DataPath("models/roberta-seqcls")) + " hello", 1, "byte-level BPE"},
        {"rerank --model " + Q(DataPath("models/bert-seqcls")) + " --query q d", 1, "3 labels"},
        {"rerank --model " + Q(DataPath("models/bert-tokcls")) + " --query q d", 1,
         "no sequence-classification head"},
        {"classify --model " + Q(DataPath("models/tiny-odd")) + " hello", 1, "no classification head"},
        {"rerank --model " + Q(DataPath("models/electra-seqcls")) + " d", 2, "--query"},
        {"classify --model " + Q(DataPath("models/bert-seqcls")), 2, "no TEXTs"},
        {"classify --model " + Q(DataPath("models/bert-seqcls")) + " --batch 0 x", 2, "--batch"},
        {"classify --model " + Q(DataPath("models/bert-seqcls")) + " --max-length 1 x", 2,
         "--max-length"},
        {"rerank --model " + Q(DataPath("models/electra-seqcls")) + " --max-length 2 --query q d",
         1, "no room"},
    };
    for (const Case &c : cases) {
        SCOPED_TRACE(c.args);
        Cli r = RunCli(c.args);
        EXPECT_EQ(r.code, c.code) << r.err;
        EXPECT_NE(r.err.find(c.needle), std::string::npos) << r.err;
        EXPECT_EQ(r.out, "");
    }
}

}  // namespace
