// ember's two CPU backends (the fast path and the reference) against outputs HuggingFace
// transformers itself produced (tests/data, made by tools/make_goldens.py), plus the
// inputs_embeds pitfall.
#include <map>

#include "tests/ember_test.h"

using namespace ember_test;

namespace {

ember_model *CachedModel(const std::string &dir, ember_backend backend) {
    static std::map<std::pair<std::string, ember_backend>, Model> cache;
    const auto key = std::make_pair(dir, backend);
    auto it = cache.find(key);
    if (it == cache.end()) it = cache.emplace(key, LoadCpu(DataPath(dir), 8, 64, backend)).first;
    return it->second.get();
}

const auto kCpuBackends = ::testing::Values(EMBER_BACKEND_CPU, EMBER_BACKEND_REFERENCE);


struct Outputs {
    std::vector<float> last, pooled, hidden, logits;
};

// Run one forward from the inputs stored in `f`, with `entry` overriding which tensor is
// the entry point (to feed e.g. wrong_inputs_embeds as inputs_embeds).
ember_status RunCase(ember_model *m, ember_st_file *f, const char *entry_tensor, const char *entry,
                     bool want_pooler, bool want_hidden, Outputs *o, bool want_logits = false) {
    ember_config cfg;
    ember_model_config(m, &cfg);
    const ember_st_tensor *t = ember_st_find(f, entry_tensor);
    if (!t) {
        ADD_FAILURE() << "entry tensor " << entry_tensor << " missing";
        return EMBER_ERR_INTERNAL;
    }
    const int B = (int)t->shape[0], S = (int)t->shape[1], H = cfg.hidden_size;
    std::vector<int32_t> ids, mask = ReadI32(f, "attention_mask"),
                              types = ReadI32(f, "token_type_ids"), pos = ReadI32(f, "position_ids");
    std::vector<float> embeds;
    ember_inputs in{};
    in.batch = B;
    in.seq_len = S;
    if (!strcmp(entry, "input_ids")) {
        ids = ReadI32(f, entry_tensor);
        in.input_ids = ids.data();
    } else {
        embeds = ReadF32(f, entry_tensor);
        if (!strcmp(entry, "inputs_embeds")) in.inputs_embeds = embeds.data();
        else in.embedding_output = embeds.data();
    }
    in.attention_mask = mask.empty() ? nullptr : mask.data();
    in.token_type_ids = types.empty() ? nullptr : types.data();
    in.position_ids = pos.empty() ? nullptr : pos.data();
    o->last = Poisoned((size_t)B * S * H);
    o->pooled = want_pooler ? Poisoned((size_t)B * H) : std::vector<float>();
    o->hidden = want_hidden ? Poisoned((size_t)(cfg.num_hidden_layers + 1) * B * S * H)
                            : std::vector<float>();
    const size_t rows = cfg.head == EMBER_HEAD_TOKEN_CLASSIFICATION ? (size_t)B * S : (size_t)B;
    o->logits = want_logits ? Poisoned(rows * cfg.num_labels) : std::vector<float>();
    ember_outputs out{};
    out.last_hidden_state = o->last.data();
    out.pooler_output = want_pooler ? o->pooled.data() : nullptr;
    out.hidden_states = want_hidden ? o->hidden.data() : nullptr;
    out.logits = want_logits ? o->logits.data() : nullptr;
    return ember_forward(m, &in, &out, nullptr);
}

class Golden : public ::testing::TestWithParam<std::tuple<GoldenCase, ember_backend>> {};

TEST_P(Golden, MatchesHuggingFace) {
    const GoldenCase &g = std::get<0>(GetParam());
    ember_model *m = CachedModel(g.model_dir, std::get<1>(GetParam()));
    ASSERT_NE(m, nullptr);
    StFile f = OpenSt(DataPath(g.file));
    ASSERT_TRUE(f);
    Outputs o;
    ember_status st = RunCase(m, f.get(), g.entry.c_str(), g.entry.c_str(), g.pooler,
                              g.hidden_states, &o, g.logits);
    ASSERT_EQ(st, EMBER_OK) << Why(st);
    EXPECT_TRUE(AllClose(o.last, ReadF32(f.get(), "expected.last_hidden_state"), ember_tol::kHfAbs,
                         ember_tol::kHfRel))
        << "last_hidden_state";
    if (g.pooler) {
        EXPECT_TRUE(AllClose(o.pooled, ReadF32(f.get(), "expected.pooler_output"), ember_tol::kHfAbs,
                             ember_tol::kHfRel))
            << "pooler_output";
    }
    if (g.hidden_states) {
        EXPECT_TRUE(AllClose(o.hidden, ReadF32(f.get(), "expected.hidden_states"), ember_tol::kHfAbs,
                             ember_tol::kHfRel))
            << "hidden_states";
    }
    if (g.logits) {
        EXPECT_TRUE(AllClose(o.logits, ReadF32(f.get(), "expected.logits"), ember_tol::kHfAbs,
                             ember_tol::kHfRel))
            << "logits";
    }
}

std::string CaseName(const ::testing::TestParamInfo<std::tuple<GoldenCase, ember_backend>> &info) {
    const GoldenCase &g = std::get<0>(info.param);
    std::string n = g.model + "_" + g.name + "_" + BackendName(std::get<1>(info.param));
    for (char &c : n)
        if (!isalnum((unsigned char)c)) c = '_';
    return n;
}

INSTANTIATE_TEST_SUITE_P(HF, Golden, ::testing::Combine(::testing::ValuesIn(LoadManifest()), kCpuBackends),
                         CaseName);

TEST(Golden, ManifestCoversEveryModelAndCase) {
    auto cases = LoadManifest();
    ASSERT_GE(cases.size(), 100u) << "tests/data/goldens/manifest.json missing or short";
    std::map<std::string, int> per_model;
    int logits = 0;
    for (auto &c : cases) per_model[c.model]++, logits += c.logits;
    EXPECT_EQ(per_model.size(), 12u);  // 4 BertModel + 8 of the family with heads
    EXPECT_GE(logits, 64);
}

// --- the pitfall the library exists to make impossible -----------------------------------

class Pitfall : public ::testing::TestWithParam<std::tuple<std::string, ember_backend>> {
  protected:
    const std::string &Name() const { return std::get<0>(GetParam()); }
    ember_model *M() const { return CachedModel("models/" + Name(), std::get<1>(GetParam())); }
};

// forward(input_ids) and forward(inputs_embeds = ember_embed_tokens(ids)) are bit-identical.
TEST_P(Pitfall, IdsAndGatheredEmbedsAreBitIdentical) {
    ember_model *m = M();
    StFile f = OpenSt(DataPath("goldens/" + Name() + "/pitfall.safetensors"));
    ember_config cfg;
    ember_model_config(m, &cfg);
    std::vector<int32_t> ids = ReadI32(f.get(), "input_ids");
    std::vector<int32_t> mask = ReadI32(f.get(), "attention_mask");
    const ember_st_tensor *t = ember_st_find(f.get(), "input_ids");
    const int B = (int)t->shape[0], S = (int)t->shape[1], H = cfg.hidden_size;

    std::vector<float> embeds = Poisoned((size_t)B * S * H);
    ASSERT_EQ(ember_embed_tokens(m, ids.data(), (int64_t)B * S, embeds.data(), nullptr), EMBER_OK)
        << ember_last_error();
    std::vector<float> a = Poisoned((size_t)B * S * H), b = Poisoned((size_t)B * S * H);
    ember_inputs in{};
    in.batch = B;
    in.seq_len = S;
    in.attention_mask = mask.empty() ? nullptr : mask.data();
    ember_outputs out{};
    in.input_ids = ids.data();
    out.last_hidden_state = a.data();
    ASSERT_EQ(ember_forward(m, &in, &out, nullptr), EMBER_OK) << ember_last_error();
    in.input_ids = nullptr;
    in.inputs_embeds = embeds.data();
    out.last_hidden_state = b.data();
    ASSERT_EQ(ember_forward(m, &in, &out, nullptr), EMBER_OK) << ember_last_error();
    EXPECT_TRUE(BitIdentical(a, b)) << "sum |ids - embeds| = " << SumAbsDiff(a, b);
    EXPECT_TRUE(AllClose(a, ReadF32(f.get(), "expected.last_hidden_state"), ember_tol::kHfAbs,
                         ember_tol::kHfRel));
}

// hidden_states[0] already has position + type embeddings and LayerNorm applied. Fed as
// inputs_embeds they are applied twice and the output is wrong (HF does the same: we match
// HF's wrong answer too); fed as embedding_output it is right.
TEST_P(Pitfall, HiddenStates0IsAnEmbeddingOutputNotAnInputsEmbeds) {
    ember_model *m = M();
    StFile f = OpenSt(DataPath("goldens/" + Name() + "/pitfall.safetensors"));
    std::vector<float> right = ReadF32(f.get(), "expected.last_hidden_state");
    Outputs wrong, good;
    ASSERT_EQ(RunCase(m, f.get(), "wrong_inputs_embeds", "inputs_embeds", false, false, &wrong),
              EMBER_OK)
        << ember_last_error();
    ASSERT_EQ(RunCase(m, f.get(), "wrong_inputs_embeds", "embedding_output", false, false, &good),
              EMBER_OK)
        << ember_last_error();
    double diff = SumAbsDiff(wrong.last, right);
    EXPECT_GT(diff, 10.0) << "feeding hidden_states[0] as inputs_embeds should NOT match";
    EXPECT_TRUE(AllClose(wrong.last, ReadF32(f.get(), "expected.wrong_last_hidden_state"),
                         ember_tol::kHfAbs, ember_tol::kHfRel))
        << "the wrong usage should still reproduce HF's (wrong) output";
    EXPECT_TRUE(AllClose(good.last, right, ember_tol::kHfAbs, ember_tol::kHfRel))
        << "hidden_states[0] as embedding_output must match";
    printf("    %s (%s): sum |wrong - right| = %.1f\n", Name().c_str(),
           BackendName(std::get<1>(GetParam())).c_str(), diff);
}

INSTANTIATE_TEST_SUITE_P(
    HF, Pitfall,
    ::testing::Combine(::testing::Values("tiny-odd", "prefixed-gamma", "gelu-new-sharded", "relu-f16"),
                       kCpuBackends),
    [](const ::testing::TestParamInfo<std::tuple<std::string, ember_backend>> &i) {
        std::string n = std::get<0>(i.param) + "_" + BackendName(std::get<1>(i.param));
        for (char &c : n)
            if (c == '-') c = '_';
        return n;
    });

}  // namespace

// --- a real pretrained checkpoint --------------------------------------------------------

// all-MiniLM-L6-v2 as saved by transformers 4.8 (with the embeddings.position_ids buffer),
// fetched by tools/fetch-minilm.sh; HF's outputs for 7 tokenized sentences are committed.
TEST(RealCheckpoint, MiniLmMatchesHuggingFace) {
    const char *env = getenv("EMBER_MINILM_DIR");
    std::string dir = env ? env : std::string(EMBER_SOURCE_DIR) + "/.pydeps/all-MiniLM-L6-v2";
    FILE *probe = fopen((dir + "/model.safetensors").c_str(), "rb");
    if (!probe) GTEST_SKIP() << dir << " absent: run tools/fetch-minilm.sh";
    fclose(probe);
    for (ember_backend backend : {EMBER_BACKEND_CPU, EMBER_BACKEND_REFERENCE}) {
        SCOPED_TRACE(BackendName(backend));
        Model m = LoadCpu(dir, 8, 16, backend);
        ASSERT_TRUE(m);
        StFile f = OpenSt(DataPath("minilm/sentences.safetensors"));
        Outputs o;
        ASSERT_EQ(RunCase(m.get(), f.get(), "input_ids", "input_ids", true, false, &o), EMBER_OK)
            << ember_last_error();
        EXPECT_TRUE(AllClose(o.last, ReadF32(f.get(), "expected.last_hidden_state"),
                             ember_tol::kHfAbs, ember_tol::kHfRel));
        EXPECT_TRUE(AllClose(o.pooled, ReadF32(f.get(), "expected.pooler_output"),
                             ember_tol::kHfAbs, ember_tol::kHfRel));
    }
}
