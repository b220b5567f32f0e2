// Bad forward inputs: each returns a clear status and message, and the model still works
// afterwards (the same valid forward gives the same bits as before the error).
#include "tests/ember_test.h"

using namespace ember_test;

namespace {

class BadInput : public ::testing::Test {
protected:
    void SetUp() override {
        m_ = LoadCpu(DataPath("models/tiny-odd"), 4, 16);
        ASSERT_TRUE(m_);
        ember_model_config(m_.get(), &cfg_);
        // random valid inputs, never zeros
        uint32_t s = 12345;
        auto rnd = [&s](int n) { s = s * 1664525u + 1013904223u; return (int)((s >> 8) % (uint32_t)n); };
        ids_.resize(B * S);
        types_.resize(B * S);
        pos_.resize(B * S);
        mask_.assign(B * S, 1);
        for (int i = 0; i < B * S; i++) {
            ids_[i] = 1 + rnd(cfg_.vocab_size - 1);
            types_[i] = rnd(cfg_.type_vocab_size);
            pos_[i] = rnd(cfg_.max_position_embeddings);
        }
        mask_[B * S - 1] = 0;
        reference_ = Run();
        saved_ = {ids_, types_, pos_, mask_};
    }

    ember_inputs Inputs() {
        ember_inputs in{};
        in.batch = B;
        in.seq_len = S;
        in.input_ids = ids_.data();
        in.token_type_ids = types_.data();
        in.position_ids = pos_.data();
        in.attention_mask = mask_.data();
        return in;
    }

    std::vector<float> Run() {
        std::vector<float> out = Poisoned((size_t)B * S * cfg_.hidden_size);
        ember_inputs in = Inputs();
        ember_outputs o{};
        o.last_hidden_state = out.data();
        ember_status st = ember_forward(m_.get(), &in, &o, nullptr);
        EXPECT_EQ(st, EMBER_OK) << Why(st);
        return out;
    }

    // The failed call said `want` and mentioned `needle`; the model is still usable.
    void ExpectFailure(ember_status got, ember_status want, const char *needle) {
        EXPECT_EQ(got, want) << Why(got);
        EXPECT_NE(std::string(ember_last_error()).find(needle), std::string::npos)
            << "message '" << ember_last_error() << "' should mention '" << needle << "'";
        ids_ = saved_[0];
        types_ = saved_[1];
        pos_ = saved_[2];
        mask_ = saved_[3];
        EXPECT_TRUE(BitIdentical(Run(), reference_)) << "model changed after a failed call";
    }

    ember_status Forward(const ember_inputs &in) {
        std::vector<float> out = Poisoned((size_t)B * S * cfg_.hidden_size + 4096);
        ember_outputs o{};
        o.last_hidden_state = out.data();
        return ember_forward(m_.get(), &in, &o, nullptr);
    }

    static constexpr int B = 3, S = 7;
    Model m_;
    ember_config cfg_{};
    std::vector<int32_t> ids_, types_, pos_, mask_;
    std::vector<std::vector<int32_t>> saved_;  // the valid inputs, restored after each failure
    std::vector<float> reference_;
};

TEST_F(BadInput, NegativeId) {
    ids_[4] = -1;
    ExpectFailure(Forward(Inputs()), EMBER_ERR_OUT_OF_RANGE, "input_ids[0][4] = -1");
}

TEST_F(BadInput, IdAtVocabSize) {
    ids_[9] = cfg_.vocab_size;
    ExpectFailure(Forward(Inputs()), EMBER_ERR_OUT_OF_RANGE, "input_ids[1][2]");
    ids_[9] = ids_[9] % 200 + 1;
    EXPECT_FALSE(BitIdentical(Run(), reference_)) << "changing an id should change the output";
}

TEST_F(BadInput, TokenTypeAtTypeVocabSize) {
    types_[3] = cfg_.type_vocab_size;
    ExpectFailure(Forward(Inputs()), EMBER_ERR_OUT_OF_RANGE, "token_type_ids[0][3]");
}

TEST_F(BadInput, PositionIdOutOfRange) {
    pos_[20] = cfg_.max_position_embeddings;
    ExpectFailure(Forward(Inputs()), EMBER_ERR_OUT_OF_RANGE, "position_ids[2][6]");
    pos_[20] = -3;
    ExpectFailure(Forward(Inputs()), EMBER_ERR_OUT_OF_RANGE, "position_ids[2][6] = -3");
}

TEST_F(BadInput, MaskValueNotZeroOrOne) {
    mask_[2] = 2;
    ExpectFailure(Forward(Inputs()), EMBER_ERR_INVALID_ARGUMENT, "attention_mask[0][2] = 2");
}

TEST_F(BadInput, SeqLenBeyondMaxPositions) {
    ember_inputs in = Inputs();
    in.batch = 1;
    in.seq_len = cfg_.max_position_embeddings + 1;
    std::vector<int32_t> ids(in.seq_len, 3);
    in.input_ids = ids.data();
    in.token_type_ids = in.position_ids = in.attention_mask = nullptr;
    ExpectFailure(Forward(in), EMBER_ERR_INVALID_ARGUMENT, "max_position_embeddings");
}

TEST_F(BadInput, ZeroBatchOrLength) {
    ember_inputs in = Inputs();
    in.batch = 0;
    ExpectFailure(Forward(in), EMBER_ERR_INVALID_ARGUMENT, "batch = 0");
    in = Inputs();
    in.seq_len = 0;
    ExpectFailure(Forward(in), EMBER_ERR_INVALID_ARGUMENT, "seq_len = 0");
    in.seq_len = -5;
    ExpectFailure(Forward(in), EMBER_ERR_INVALID_ARGUMENT, "seq_len = -5");
}

TEST_F(BadInput, NullPointers) {
    ember_inputs in = Inputs();
    std::vector<float> out((size_t)B * S * cfg_.hidden_size);
    ember_outputs o{};
    o.last_hidden_state = out.data();
    ExpectFailure(ember_forward(nullptr, &in, &o, nullptr), EMBER_ERR_INVALID_ARGUMENT, "model");
    ExpectFailure(ember_forward(m_.get(), nullptr, &o, nullptr), EMBER_ERR_INVALID_ARGUMENT, "inputs");
    ExpectFailure(ember_forward(m_.get(), &in, nullptr, nullptr), EMBER_ERR_INVALID_ARGUMENT,
                  "outputs");
    ember_outputs none{};
    ExpectFailure(ember_forward(m_.get(), &in, &none, nullptr), EMBER_ERR_INVALID_ARGUMENT,
                  "last_hidden_state");
    ExpectFailure(ember_embed_tokens(m_.get(), nullptr, 3, out.data(), nullptr),
                  EMBER_ERR_INVALID_ARGUMENT, "input_ids");
    ExpectFailure(ember_embed_tokens(m_.get(), ids_.data(), 0, out.data(), nullptr),
                  EMBER_ERR_INVALID_ARGUMENT, "n_tokens");
}

TEST_F(BadInput, NoEntryPointOrSeveral) {
    ember_inputs in = Inputs();
    in.input_ids = nullptr;
    ExpectFailure(Forward(in), EMBER_ERR_INVALID_ARGUMENT, "exactly one of");
    std::vector<float> embeds((size_t)B * S * cfg_.hidden_size, 0.5f);
    in = Inputs();
    in.inputs_embeds = embeds.data();
    ExpectFailure(Forward(in), EMBER_ERR_INVALID_ARGUMENT, "got 2");
    in.embedding_output = embeds.data();
    ExpectFailure(Forward(in), EMBER_ERR_INVALID_ARGUMENT, "got 3");
    in.input_ids = nullptr;
    in.inputs_embeds = nullptr;  // embedding_output alone is fine
    EXPECT_EQ(Forward(in), EMBER_OK) << ember_last_error();
}

TEST_F(BadInput, BeyondWorkspaceThenReserve) {
    const int b = 5, s = 16;  // 80 tokens > 4 x 16
    std::vector<int32_t> ids((size_t)b * s, 11);
    ember_inputs in{};
    in.batch = b;
    in.seq_len = s;
    in.input_ids = ids.data();
    std::vector<float> out = Poisoned((size_t)b * s * cfg_.hidden_size);
    ember_outputs o{};
    o.last_hidden_state = out.data();
    ExpectFailure(ember_forward(m_.get(), &in, &o, nullptr), EMBER_ERR_CAPACITY,
                  "ember_model_reserve");
    size_t wb0 = 0, ws0 = 0, wb1 = 0, ws1 = 0;
    ASSERT_EQ(ember_model_memory(m_.get(), &wb0, &ws0), EMBER_OK);
    ASSERT_EQ(ember_model_reserve(m_.get(), b, s), EMBER_OK) << ember_last_error();
    ASSERT_EQ(ember_model_memory(m_.get(), &wb1, &ws1), EMBER_OK);
    EXPECT_EQ(wb0, wb1);
    EXPECT_GT(ws1, ws0);
    EXPECT_EQ(ember_forward(m_.get(), &in, &o, nullptr), EMBER_OK) << ember_last_error();
    for (float v : out) ASSERT_TRUE(std::isfinite(v));
    EXPECT_TRUE(BitIdentical(Run(), reference_)) << "a bigger workspace changed the results";
    ExpectFailure(ember_model_reserve(m_.get(), 1, cfg_.max_position_embeddings + 1),
                  EMBER_ERR_INVALID_ARGUMENT, "max_position_embeddings");
}

TEST_F(BadInput, StreamOnCpuBackend) {
    ember_inputs in = Inputs();
    std::vector<float> out((size_t)B * S * cfg_.hidden_size);
    ember_outputs o{};
    o.last_hidden_state = out.data();
    ExpectFailure(ember_forward(m_.get(), &in, &o, (ember_stream)0x1), EMBER_ERR_INVALID_ARGUMENT,
                  "stream");
}

TEST_F(BadInput, EmbedTokensOutOfRange) {
    std::vector<int32_t> ids = {1, 2, cfg_.vocab_size + 4};
    std::vector<float> out(3 * (size_t)cfg_.hidden_size);
    ExpectFailure(ember_embed_tokens(m_.get(), ids.data(), 3, out.data(), nullptr),
                  EMBER_ERR_OUT_OF_RANGE, "input_ids[2]");
}

TEST(Api, PoolerRequestedWithoutPooler) {
    Model m = LoadCpu(DataPath("models/gelu-new-sharded"), 2, 8);
    ASSERT_TRUE(m);
    ember_config c;
    ember_model_config(m.get(), &c);
    EXPECT_EQ(c.has_pooler, 0);
    std::vector<int32_t> ids = {5, 6, 7};
    std::vector<float> h(3 * (size_t)c.hidden_size), p((size_t)c.hidden_size);
    ember_inputs in{};
    in.batch = 1;
    in.seq_len = 3;
    in.input_ids = ids.data();
    ember_outputs o{};
    o.last_hidden_state = h.data();
    o.pooler_output = p.data();
    ember_status st = ember_forward(m.get(), &in, &o, nullptr);
    EXPECT_EQ(st, EMBER_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(ember_last_error()).find("pooler"), std::string::npos);
    o.pooler_output = nullptr;
    EXPECT_EQ(ember_forward(m.get(), &in, &o, nullptr), EMBER_OK) << ember_last_error();
}

TEST(Api, CpuBackendIsF32Only) {
    ember_load_options opt;
    ember_load_options_init(&opt);
    opt.compute_dtype = EMBER_DTYPE_F16;
    ember_model *m = nullptr;
    ember_status st = ember_model_load(DataPath("models/tiny-odd").c_str(), &opt, &m);
    EXPECT_EQ(st, EMBER_ERR_UNSUPPORTED);
    EXPECT_EQ(m, nullptr);
    EXPECT_NE(std::string(ember_last_error()).find("f32"), std::string::npos);
}

TEST(Api, BadLoadOptions) {
    ember_load_options opt;
    ember_load_options_init(&opt);
    opt.max_batch = 0;
    ember_model *m = nullptr;
    EXPECT_EQ(ember_model_load(DataPath("models/tiny-odd").c_str(), &opt, &m),
              EMBER_ERR_INVALID_ARGUMENT);
    ember_load_options_init(&opt);
    opt.backend = (ember_backend)7;
    EXPECT_EQ(ember_model_load(DataPath("models/tiny-odd").c_str(), &opt, &m),
              EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_model_load(nullptr, nullptr, &m), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_model_load(DataPath("models/tiny-odd").c_str(), nullptr, nullptr),
              EMBER_ERR_INVALID_ARGUMENT);
}

TEST(Api, StatusStringsAreDistinct) {
    for (int a = EMBER_OK; a <= EMBER_ERR_INTERNAL; a++)
        for (int b = a + 1; b <= EMBER_ERR_INTERNAL; b++)
            EXPECT_STRNE(ember_status_string((ember_status)a), ember_status_string((ember_status)b));
    EXPECT_NE(ember_status_string((ember_status)999), nullptr);
}

TEST(Api, EmbeddingTablesReadable) {
    Model m = LoadCpu(DataPath("models/tiny-odd"), 1, 4);
    ember_config c;
    ember_model_config(m.get(), &c);
    int64_t rows = 0, cols = 0;
    ASSERT_EQ(ember_table_shape(m.get(), EMBER_TABLE_WORD, &rows, &cols), EMBER_OK);
    EXPECT_EQ(rows, c.vocab_size);
    EXPECT_EQ(cols, c.hidden_size);
    std::vector<float> word = Poisoned((size_t)(rows * cols));
    ASSERT_EQ(ember_table_copy(m.get(), EMBER_TABLE_WORD, word.data(), word.size(), nullptr), EMBER_OK);
    // the table equals what ember_embed_tokens gathers, and what the checkpoint holds
    std::vector<int32_t> ids = {0, 17, c.vocab_size - 1};
    std::vector<float> g = Poisoned(3 * (size_t)cols);
    ASSERT_EQ(ember_embed_tokens(m.get(), ids.data(), 3, g.data(), nullptr), EMBER_OK);
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < cols; i++) ASSERT_EQ(g[t * cols + i], word[ids[t] * cols + i]);
    StFile f = OpenSt(DataPath("models/tiny-odd/model.safetensors"));
    EXPECT_TRUE(BitIdentical(word, ReadF32(f.get(), "embeddings.word_embeddings.weight")));
    ASSERT_EQ(ember_table_shape(m.get(), EMBER_TABLE_POSITION, &rows, &cols), EMBER_OK);
    EXPECT_EQ(rows, c.max_position_embeddings);
    std::vector<float> small(10);
    EXPECT_EQ(ember_table_copy(m.get(), EMBER_TABLE_TOKEN_TYPE, small.data(), small.size(), nullptr),
              EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_table_shape(m.get(), (ember_table)9, &rows, &cols), EMBER_ERR_INVALID_ARGUMENT);
}

TEST(Api, RandomModelIsDeterministicAndValidated) {
    ember_config c{};
    c.vocab_size = 97;
    c.hidden_size = 40;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.intermediate_size = 52;
    c.max_position_embeddings = 20;
    c.type_vocab_size = 2;
    c.layer_norm_eps = 1e-12;
    c.hidden_act = EMBER_ACT_GELU;
    c.has_pooler = 1;
    ember_model *a = nullptr, *b = nullptr;
    ASSERT_EQ(ember_model_init_random(&c, 7, nullptr, &a), EMBER_OK) << ember_last_error();
    ASSERT_EQ(ember_model_init_random(&c, 7, nullptr, &b), EMBER_OK) << ember_last_error();
    Model ma(a), mb(b);
    std::vector<float> wa(97 * 40), wb(97 * 40);
    ember_table_copy(a, EMBER_TABLE_WORD, wa.data(), wa.size(), nullptr);
    ember_table_copy(b, EMBER_TABLE_WORD, wb.data(), wb.size(), nullptr);
    EXPECT_TRUE(BitIdentical(wa, wb));
    c.num_attention_heads = 3;  // 40 % 3 != 0
    ember_model *bad = nullptr;
    EXPECT_EQ(ember_model_init_random(&c, 7, nullptr, &bad), EMBER_ERR_CONFIG);
    EXPECT_EQ(bad, nullptr);
    EXPECT_NE(std::string(ember_last_error()).find("num_attention_heads"), std::string::npos);
}

// Without a GPU (or without the CUDA backend built) asking for CUDA is a clear error and
// the CPU backend keeps working.
TEST(Api, CudaBackendWithoutDevice) {
    if (ember_cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
    ember_load_options opt;
    ember_load_options_init(&opt);
    opt.backend = EMBER_BACKEND_CUDA;
    ember_model *m = nullptr;
    ember_status st = ember_model_load(DataPath("models/tiny-odd").c_str(), &opt, &m);
    EXPECT_EQ(st, EMBER_ERR_NO_DEVICE) << Why(st);
    EXPECT_EQ(m, nullptr);
    EXPECT_NE(std::string(ember_last_error()).find("no CUDA device"), std::string::npos)
        << ember_last_error();
    Model cpu = LoadCpu(DataPath("models/tiny-odd"), 1, 4);
    EXPECT_TRUE(cpu);
}

}  // namespace
