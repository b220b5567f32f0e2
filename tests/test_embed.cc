// Text to sentence embedding with a real checkpoint, all-MiniLM-L6-v2: ember's tokenizer,
// forward and ember_pool against sentence-transformers' own encode() on 50 sentences
// (tests/data/minilm/st_golden.safetensors, tools/make_st_golden.py). Needs the checkpoint
// from tools/fetch-minilm.sh; without it the tests are skipped, never passed.
#include <filesystem>

#include "tests/ember_test.h"
#ifdef EMBER_WITH_CUDA
#include "tests/cuda_test.h"
#endif

using namespace ember_test;
namespace fs = std::filesystem;

namespace {

const std::string kModelDir = std::string(EMBER_SOURCE_DIR) + "/.pydeps/all-MiniLM-L6-v2";

#define REQUIRE_MINILM()                                                                        \
    do {                                                                                        \
        if (!fs::exists(kModelDir + "/model.safetensors") ||                                    \
            !fs::exists(kModelDir + "/modules.json"))                                           \
            GTEST_SKIP() << kModelDir << " (with modules.json) is absent: run tools/fetch-minilm.sh"; \
    } while (0)

struct Golden {
    std::vector<std::string> sentences;
    std::vector<int32_t> ids, lengths;  // ids [N, S] padded
    std::vector<float> emb;             // [N, H]
    int S = 0, H = 0;
};

Golden LoadGolden() {
    Golden g;
    StFile f = OpenSt(DataPath("minilm/st_golden.safetensors"));
    if (!f) return g;
    json_t *j = json_loads(ember_st_metadata(f.get(), "sentences"), 0, nullptr);
    size_t i;
    json_t *s;
    json_array_foreach(j, i, s) g.sentences.push_back(json_string_value(s));
    json_decref(j);
    g.ids = ReadI32(f.get(), "input_ids");
    g.lengths = ReadI32(f.get(), "lengths");
    g.emb = ReadF32(f.get(), "embedding");
    g.S = (int)ember_st_find(f.get(), "input_ids")->shape[1];
    g.H = (int)ember_st_find(f.get(), "embedding")->shape[1];
    return g;
}

struct TokDeleter {
    void operator()(ember_tokenizer *t) const { ember_tokenizer_free(t); }
};
using Tokenizer = std::unique_ptr<ember_tokenizer, TokDeleter>;

Tokenizer LoadTokenizer() {
    ember_tokenizer *t = nullptr;
    ember_status st = ember_tokenizer_load(kModelDir.c_str(), nullptr, &t);
    EXPECT_EQ(st, EMBER_OK) << Why(st);
    return Tokenizer(t);
}

double Cosine(const float *a, const float *b, int H) {
    double d = 0, na = 0, nb = 0;
    for (int i = 0; i < H; i++) {
        d += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    return d / std::sqrt(na * nb);
}

double MaxAbs(const float *a, const float *b, int H) {
    double m = 0;
    for (int i = 0; i < H; i++) m = std::max(m, std::fabs((double)a[i] - b[i]));
    return m;
}

TEST(Embed, TokenizerMatchesSentenceTransformers) {
    REQUIRE_MINILM();
    Golden g = LoadGolden();
    ASSERT_EQ(g.sentences.size(), 50u);
    Tokenizer tok = LoadTokenizer();
    ASSERT_TRUE(tok);
    for (size_t i = 0; i < g.sentences.size(); i++) {
        const char *text = g.sentences[i].c_str();
        ember_encoding enc;
        ember_status st = ember_tokenizer_encode(tok.get(), 1, &text, nullptr, 256, &enc);
        ASSERT_EQ(st, EMBER_OK) << Why(st);
        std::vector<int32_t> got(enc.input_ids, enc.input_ids + enc.seq_len);
        std::vector<int32_t> want(g.ids.begin() + i * g.S, g.ids.begin() + i * g.S + g.lengths[i]);
        EXPECT_EQ(got, want) << "sentence " << i << ": " << g.sentences[i];
        EXPECT_EQ(enc.truncated[0] > 0, i == g.sentences.size() - 1) << "sentence " << i;
        ember_encoding_free(&enc);
    }
}

// Both CPU backends: the fast path (EMBER_BACKEND_CPU) and the reference.
class EmbedCpu : public ::testing::TestWithParam<ember_backend> {};
INSTANTIATE_TEST_SUITE_P(Cpu, EmbedCpu, ::testing::Values(EMBER_BACKEND_CPU, EMBER_BACKEND_REFERENCE),
                         [](const ::testing::TestParamInfo<ember_backend> &i) {
                             return BackendName(i.param);
                         });

// Every sentence alone (no padding), CPU f32: the bound per sentence.
TEST_P(EmbedCpu, MatchesSentenceTransformers) {
    REQUIRE_MINILM();
    Golden g = LoadGolden();
    Tokenizer tok = LoadTokenizer();
    Model m = LoadCpu(kModelDir, 1, 256, GetParam());
    ASSERT_TRUE(tok && m);
    ember_pooling_config pc;
    ASSERT_EQ(ember_pooling_config_load(kModelDir.c_str(), &pc), EMBER_OK) << ember_last_error();
    ASSERT_EQ(pc.max_seq_length, 256);
    const int H = g.H;
    double worst_cos = 1.0, worst_abs = 0.0;
    int worst_i = -1;
    for (size_t i = 0; i < g.sentences.size(); i++) {
        const char *text = g.sentences[i].c_str();
        ember_encoding enc;
        ASSERT_EQ(ember_tokenizer_encode(tok.get(), 1, &text, nullptr, pc.max_seq_length, &enc),
                  EMBER_OK);
        std::vector<float> h = Poisoned((size_t)enc.seq_len * H), e = Poisoned(H);
        ember_inputs in = {};
        in.batch = 1;
        in.seq_len = enc.seq_len;
        in.input_ids = enc.input_ids;
        in.attention_mask = enc.attention_mask;
        in.token_type_ids = enc.token_type_ids;
        ember_outputs out = {};
        out.last_hidden_state = h.data();
        ember_status st = ember_forward(m.get(), &in, &out, nullptr);
        ASSERT_EQ(st, EMBER_OK) << Why(st);
        st = ember_pool(m.get(), h.data(), enc.attention_mask, 1, enc.seq_len, pc.mode,
                        pc.normalize, e.data(), nullptr);
        ASSERT_EQ(st, EMBER_OK) << Why(st);
        ember_encoding_free(&enc);
        const float *want = g.emb.data() + i * H;
        double cos = Cosine(e.data(), want, H), mx = MaxAbs(e.data(), want, H);
        EXPECT_GE(cos, ember_tol::kStMinCosine) << "sentence " << i << ": " << g.sentences[i];
        EXPECT_LE(mx, ember_tol::kStMaxAbs) << "sentence " << i << ": " << g.sentences[i];
        if (cos < worst_cos) worst_cos = cos, worst_i = (int)i;
        worst_abs = std::max(worst_abs, mx);
    }
    printf("  %s vs sentence-transformers: worst 1 - cosine %.3g (sentence %d), max |diff| %.3g\n",
           BackendName(GetParam()).c_str(), 1.0 - worst_cos, worst_i, worst_abs);
}

// One padded batch (short and long sentences together) gives the same rows as the singles:
// pooling skips the padding and attention gives masked keys weight 0.
TEST_P(EmbedCpu, PaddedBatchMatchesSentenceTransformers) {
    REQUIRE_MINILM();
    Golden g = LoadGolden();
    Tokenizer tok = LoadTokenizer();
    // short ones only (the 256-token sentence is checked alone above; the CPU reference is slow)
    const std::vector<int> pick = {0, 1, 33, 39, 40, 47, 48};  // ..., "a", ""
    Model m = LoadCpu(kModelDir, (int)pick.size(), 64, GetParam());
    ASSERT_TRUE(tok && m);
    std::vector<const char *> texts;
    for (int i : pick) texts.push_back(g.sentences[i].c_str());
    ember_encoding enc;
    ASSERT_EQ(ember_tokenizer_encode(tok.get(), (int)texts.size(), texts.data(), nullptr, 256, &enc),
              EMBER_OK);
    ASSERT_GT(enc.seq_len, 15);
    const int B = enc.batch, S = enc.seq_len, H = g.H;
    std::vector<float> h = Poisoned((size_t)B * S * H), e = Poisoned((size_t)B * H);
    ember_inputs in = {};
    in.batch = B;
    in.seq_len = S;
    in.input_ids = enc.input_ids;
    in.attention_mask = enc.attention_mask;
    ember_outputs out = {};
    out.last_hidden_state = h.data();
    ASSERT_EQ(ember_forward(m.get(), &in, &out, nullptr), EMBER_OK) << ember_last_error();
    ASSERT_EQ(ember_pool(m.get(), h.data(), enc.attention_mask, B, S, EMBER_POOL_MEAN, 1, e.data(),
                         nullptr), EMBER_OK) << ember_last_error();
    for (int k = 0; k < B; k++) {
        const float *want = g.emb.data() + (size_t)pick[k] * H;
        EXPECT_GE(Cosine(e.data() + (size_t)k * H, want, H), ember_tol::kStMinCosine) << pick[k];
        EXPECT_LE(MaxAbs(e.data() + (size_t)k * H, want, H), ember_tol::kStMaxAbs) << pick[k];
    }
    ember_encoding_free(&enc);
}

#ifdef EMBER_WITH_CUDA
// The same through the CUDA backend, f32 / f16 / bf16, in one padded batch of all 50.
TEST(CudaEmbed, MatchesSentenceTransformersEveryDtype) {
    REQUIRE_CUDA_DEVICE();
    REQUIRE_MINILM();
    Golden g = LoadGolden();
    Tokenizer tok = LoadTokenizer();
    ASSERT_TRUE(tok);
    std::vector<const char *> texts;
    for (const std::string &s : g.sentences) texts.push_back(s.c_str());
    ember_encoding enc;
    ASSERT_EQ(ember_tokenizer_encode(tok.get(), (int)texts.size(), texts.data(), nullptr, 256, &enc),
              EMBER_OK);
    const int B = enc.batch, S = enc.seq_len, H = g.H;
    const size_t nt = (size_t)B * S * 4;
    int32_t *d_ids, *d_mask;
    float *d_h, *d_e;
    CUDA_OK(cudaMalloc((void **)&d_ids, nt));
    CUDA_OK(cudaMalloc((void **)&d_mask, nt));
    CUDA_OK(cudaMalloc((void **)&d_h, (size_t)B * S * H * 4));
    CUDA_OK(cudaMalloc((void **)&d_e, (size_t)B * H * 4));
    CUDA_OK(cudaMemcpy(d_ids, enc.input_ids, nt, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(d_mask, enc.attention_mask, nt, cudaMemcpyHostToDevice));
    for (ember_dtype dt : kDtypes) {
        ember_load_options opt;
        ember_load_options_init(&opt);
        opt.backend = EMBER_BACKEND_CUDA;
        opt.compute_dtype = dt;
        opt.max_batch = B;
        opt.max_seq_len = S;
        ember_model *raw = nullptr;
        ASSERT_EQ(ember_model_load(kModelDir.c_str(), &opt, &raw), EMBER_OK) << ember_last_error();
        Model m(raw);
        ember_inputs in = {};
        in.batch = B;
        in.seq_len = S;
        in.input_ids = d_ids;
        in.attention_mask = d_mask;
        ember_outputs out = {};
        out.last_hidden_state = d_h;
        CUDA_OK(cudaMemset(d_e, 0xff, (size_t)B * H * 4));
        ASSERT_EQ(ember_forward(m.get(), &in, &out, nullptr), EMBER_OK) << ember_last_error();
        ASSERT_EQ(ember_pool(m.get(), d_h, d_mask, B, S, EMBER_POOL_MEAN, 1, d_e, nullptr), EMBER_OK)
            << ember_last_error();
        std::vector<float> e((size_t)B * H);
        CUDA_OK(cudaMemcpy(e.data(), d_e, e.size() * 4, cudaMemcpyDeviceToHost));
        const double min_cos = dt == EMBER_DTYPE_F32   ? ember_tol::kStCudaF32MinCosine
                               : dt == EMBER_DTYPE_F16 ? ember_tol::kStCudaF16MinCosine
                                                       : ember_tol::kStCudaBf16MinCosine;
        double worst = 1.0;
        for (int k = 0; k < B; k++) {
            const float *want = g.emb.data() + (size_t)k * H;
            const double cos = Cosine(e.data() + (size_t)k * H, want, H);
            worst = std::min(worst, cos);
            EXPECT_GE(cos, min_cos) << DtName(dt) << " sentence " << k << ": " << g.sentences[k];
            if (dt == EMBER_DTYPE_F32) {
                EXPECT_LE(MaxAbs(e.data() + (size_t)k * H, want, H), ember_tol::kCudaF32Abs) << k;
            }
        }
        printf("  CUDA %s: worst cosine vs sentence-transformers %.7f\n", DtName(dt), worst);
    }
    ember_encoding_free(&enc);
    CUDA_OK(cudaFree(d_ids));
    CUDA_OK(cudaFree(d_mask));
    CUDA_OK(cudaFree(d_h));
    CUDA_OK(cudaFree(d_e));
}
#endif

}  // namespace
