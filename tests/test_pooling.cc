// ember_pool against a direct double reference (sentence-transformers' formulas), its argument
// checks, the CUDA twin against the CPU, and ember_pooling_config_load on crafted directories.
#include <filesystem>
#include <fstream>
#include <random>

#include "tests/ember_test.h"
#include "weights/st_config.h"
#ifdef EMBER_WITH_CUDA
#include "tests/cuda_test.h"
#endif

using namespace ember_test;
namespace fs = std::filesystem;

namespace {

// A random model whose only use is to carry hidden_size and a backend for ember_pool.
Model PoolModel(int H, ember_backend backend = EMBER_BACKEND_CPU) {
    ember_config c = {};
    c.vocab_size = 8;
    c.hidden_size = H;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 1;  // fewest heads whose size the CUDA backend takes (<= 256)
    while (H / c.num_attention_heads > 256 || H % c.num_attention_heads) c.num_attention_heads++;
    c.intermediate_size = 4;
    c.max_position_embeddings = 8;
    c.type_vocab_size = 1;
    c.layer_norm_eps = 1e-12;
    c.hidden_act = EMBER_ACT_GELU;
    ember_load_options opt;
    ember_load_options_init(&opt);
    opt.backend = backend;
    opt.max_batch = 1;
    opt.max_seq_len = 1;
    ember_model *m = nullptr;
    ember_status st = ember_model_init_random(&c, 1, &opt, &m);
    EXPECT_EQ(st, EMBER_OK) << Why(st);
    return Model(m);
}

// sentence-transformers' Pooling + Normalize written out in double, token by token.
std::vector<float> Reference(const std::vector<float> &h, const std::vector<int32_t> &mask, int B,
                             int S, int H, ember_pooling mode, bool normalize) {
    std::vector<float> out((size_t)B * H);
    for (int b = 0; b < B; b++) {
        std::vector<double> v(H, 0.0);
        if (mode == EMBER_POOL_CLS) {
            for (int i = 0; i < H; i++) v[i] = h[((size_t)b * S) * H + i];
        } else if (mode == EMBER_POOL_MAX) {
            for (int i = 0; i < H; i++) v[i] = -INFINITY;
            for (int s = 0; s < S; s++)
                for (int i = 0; i < H; i++) {
                    bool on = mask.empty() || mask[b * S + s];
                    v[i] = std::max(v[i], on ? (double)h[((size_t)b * S + s) * H + i] : -1e9);
                }
        } else {
            double n = 0.0;
            for (int s = 0; s < S; s++) {
                double w = mask.empty() ? 1.0 : mask[b * S + s];
                n += w;
                for (int i = 0; i < H; i++) v[i] += w * h[((size_t)b * S + s) * H + i];
            }
            for (int i = 0; i < H; i++) v[i] /= std::max(n, 1e-9);
        }
        double norm = 0.0;
        for (int i = 0; i < H; i++) norm += v[i] * v[i];
        norm = std::max(std::sqrt(norm), 1e-12);
        for (int i = 0; i < H; i++) out[(size_t)b * H + i] = (float)(normalize ? v[i] / norm : v[i]);
    }
    return out;
}

struct PoolCase {
    int B, S, H;
};
// Odd sizes, S = 1, a real model's H (384) and one not divisible by 4.
constexpr PoolCase kCases[] = {{1, 1, 8}, {3, 7, 37}, {5, 97, 384}, {2, 13, 130}, {4, 1, 3}};

// Random hidden states in [-2, 2) and a mask with holes, one row fully masked when B > 2.
void MakeInputs(const PoolCase &c, uint32_t seed, std::vector<float> *h, std::vector<int32_t> *mask) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-2.f, 2.f);
    h->resize((size_t)c.B * c.S * c.H);
    for (float &x : *h) x = u(rng);
    mask->assign((size_t)c.B * c.S, 1);
    for (int b = 0; b < c.B; b++) {
        int len = 1 + (int)(rng() % c.S);  // right padding ...
        for (int s = len; s < c.S; s++) (*mask)[b * c.S + s] = 0;
        if (c.S > 3 && b % 2) (*mask)[b * c.S + 1] = 0;  // ... and a hole
    }
    if (c.B > 2) std::fill(mask->begin() + (c.B - 1) * c.S, mask->begin() + c.B * c.S, 0);
}

const ember_pooling kModes[] = {EMBER_POOL_MEAN, EMBER_POOL_CLS, EMBER_POOL_MAX};
const char *ModeName(ember_pooling m) {
    return m == EMBER_POOL_MEAN ? "mean" : m == EMBER_POOL_CLS ? "cls" : "max";
}

TEST(Pool, MatchesDoubleReference) {
    for (const PoolCase &c : kCases) {
        Model m = PoolModel(c.H);
        ASSERT_TRUE(m);
        std::vector<float> h;
        std::vector<int32_t> mask;
        MakeInputs(c, 17 + c.S, &h, &mask);
        for (ember_pooling mode : kModes)
            for (int norm = 0; norm < 2; norm++)
                for (int with_mask = 0; with_mask < 2; with_mask++) {
                    std::vector<int32_t> mk = with_mask ? mask : std::vector<int32_t>();
                    std::vector<float> got = Poisoned((size_t)c.B * c.H);
                    ember_status st = ember_pool(m.get(), h.data(), with_mask ? mk.data() : nullptr,
                                                 c.B, c.S, mode, norm, got.data(), nullptr);
                    ASSERT_EQ(st, EMBER_OK) << Why(st);
                    EXPECT_TRUE(AllClose(got, Reference(h, mk, c.B, c.S, c.H, mode, norm),
                                         ember_tol::kPoolAbs, ember_tol::kPoolRel))
                        << "B " << c.B << " S " << c.S << " H " << c.H << " " << ModeName(mode)
                        << " normalize " << norm << " mask " << with_mask;
                }
    }
}

TEST(Pool, EmptyRowFollowsSentenceTransformers) {
    // No valid token: mean is 0 / clamp(0, 1e-9) = 0; max is -1e9 everywhere; normalising
    // the zero vector keeps it zero (eps 1e-12).
    const int S = 3, H = 5;
    Model m = PoolModel(H);
    std::vector<float> h(S * H, 0.5f), out(H);
    std::vector<int32_t> mask(S, 0);
    ASSERT_EQ(ember_pool(m.get(), h.data(), mask.data(), 1, S, EMBER_POOL_MEAN, 1, out.data(), nullptr),
              EMBER_OK);
    for (float x : out) EXPECT_EQ(x, 0.f);
    ASSERT_EQ(ember_pool(m.get(), h.data(), mask.data(), 1, S, EMBER_POOL_MAX, 0, out.data(), nullptr),
              EMBER_OK);
    for (float x : out) EXPECT_EQ(x, -1e9f);
    ASSERT_EQ(ember_pool(m.get(), h.data(), mask.data(), 1, S, EMBER_POOL_CLS, 0, out.data(), nullptr),
              EMBER_OK);
    for (float x : out) EXPECT_EQ(x, 0.5f) << "CLS is row 0 whatever the mask";
}

TEST(Pool, NormalizedRowsHaveUnitNorm) {
    const PoolCase c = {4, 9, 384};
    Model m = PoolModel(c.H);
    std::vector<float> h, out((size_t)c.B * c.H);
    std::vector<int32_t> mask;
    MakeInputs(c, 5, &h, &mask);
    mask[(c.B - 1) * c.S] = 1;  // no empty row here
    for (ember_pooling mode : kModes) {
        ASSERT_EQ(ember_pool(m.get(), h.data(), mask.data(), c.B, c.S, mode, 1, out.data(), nullptr),
                  EMBER_OK);
        for (int b = 0; b < c.B; b++) {
            double n = 0.0;
            for (int i = 0; i < c.H; i++) n += (double)out[b * c.H + i] * out[b * c.H + i];
            EXPECT_NEAR(std::sqrt(n), 1.0, 1e-6) << ModeName(mode) << " row " << b;
        }
    }
}

TEST(Pool, RejectsBadArguments) {
    const int B = 2, S = 3, H = 4;
    Model m = PoolModel(H);
    std::vector<float> h(B * S * H, 1.f), out(B * H);
    std::vector<int32_t> mask(B * S, 1);
    auto pool = [&](ember_model *mm, const float *hh, const int32_t *mk, int b, int s, int mode,
                    int norm, float *o, ember_stream st) {
        return ember_pool(mm, hh, mk, b, s, (ember_pooling)mode, norm, o, st);
    };
    struct Bad {
        ember_status st;
        const char *msg;
    };
    auto expect = [](ember_status got, Bad want) {
        EXPECT_EQ(got, want.st) << Why(got);
        EXPECT_NE(std::string(ember_last_error()).find(want.msg), std::string::npos)
            << ember_last_error();
    };
    expect(pool(nullptr, h.data(), nullptr, B, S, 0, 0, out.data(), nullptr),
           {EMBER_ERR_INVALID_ARGUMENT, "model is NULL"});
    expect(pool(m.get(), nullptr, nullptr, B, S, 0, 0, out.data(), nullptr),
           {EMBER_ERR_INVALID_ARGUMENT, "hidden is NULL"});
    expect(pool(m.get(), h.data(), nullptr, B, S, 0, 0, nullptr, nullptr),
           {EMBER_ERR_INVALID_ARGUMENT, "out is NULL"});
    expect(pool(m.get(), h.data(), nullptr, 0, S, 0, 0, out.data(), nullptr),
           {EMBER_ERR_INVALID_ARGUMENT, "batch = 0"});
    expect(pool(m.get(), h.data(), nullptr, B, -1, 0, 0, out.data(), nullptr),
           {EMBER_ERR_INVALID_ARGUMENT, "seq_len = -1"});
    expect(pool(m.get(), h.data(), nullptr, B, S, 3, 0, out.data(), nullptr),
           {EMBER_ERR_INVALID_ARGUMENT, "mode = 3 is not an ember_pooling"});
    expect(pool(m.get(), h.data(), nullptr, B, S, -1, 0, out.data(), nullptr),
           {EMBER_ERR_INVALID_ARGUMENT, "mode = -1"});
    expect(pool(m.get(), h.data(), nullptr, B, S, 0, 2, out.data(), nullptr),
           {EMBER_ERR_INVALID_ARGUMENT, "normalize = 2"});
    expect(pool(m.get(), h.data(), nullptr, B, S, 0, 0, out.data(), (ember_stream)0x10),
           {EMBER_ERR_INVALID_ARGUMENT, "stream must be NULL"});
    mask[4] = 2;
    expect(pool(m.get(), h.data(), mask.data(), B, S, 0, 0, out.data(), nullptr),
           {EMBER_ERR_INVALID_ARGUMENT, "attention_mask[1][1] = 2"});
    mask[4] = -1;
    expect(pool(m.get(), h.data(), mask.data(), B, S, 2, 1, out.data(), nullptr),
           {EMBER_ERR_INVALID_ARGUMENT, "attention_mask[1][1] = -1"});
    // still usable, and the error is cleared by the next call
    mask[4] = 1;
    std::vector<float> got = Poisoned(B * H);
    ASSERT_EQ(pool(m.get(), h.data(), mask.data(), B, S, 0, 0, got.data(), nullptr), EMBER_OK);
    EXPECT_STREQ(ember_last_error(), "");
    for (float x : got) EXPECT_EQ(x, 1.f);
}

#ifdef EMBER_WITH_CUDA
TEST(CudaPool, MatchesCpuReference) {
    REQUIRE_CUDA_DEVICE();
    for (const PoolCase &c : kCases) {
        Model cpu = PoolModel(c.H, EMBER_BACKEND_REFERENCE), gpu = PoolModel(c.H, EMBER_BACKEND_CUDA);
        ASSERT_TRUE(cpu && gpu);
        std::vector<float> h;
        std::vector<int32_t> mask;
        MakeInputs(c, 99 + c.H, &h, &mask);
        const size_t nh = h.size() * 4, nm = mask.size() * 4, no = (size_t)c.B * c.H * 4;
        float *dh, *dout;
        int32_t *dmask;
        CUDA_OK(cudaMalloc((void **)&dh, nh));
        CUDA_OK(cudaMalloc((void **)&dmask, nm));
        CUDA_OK(cudaMalloc((void **)&dout, no + 4));
        CUDA_OK(cudaMemcpy(dh, h.data(), nh, cudaMemcpyHostToDevice));
        CUDA_OK(cudaMemcpy(dmask, mask.data(), nm, cudaMemcpyHostToDevice));
        for (ember_pooling mode : kModes)
            for (int norm = 0; norm < 2; norm++)
                for (int with_mask = 0; with_mask < 2; with_mask++)
                    for (int misalign = 0; misalign < 2; misalign++) {  // float4 and scalar paths
                        float *o = dout + misalign;
                        CUDA_OK(cudaMemset(dout, 0xff, no + 4));  // NaN
                        std::vector<float> want((size_t)c.B * c.H), got = Poisoned(want.size());
                        const int32_t *mk = with_mask ? mask.data() : nullptr;
                        ASSERT_EQ(ember_pool(cpu.get(), h.data(), mk, c.B, c.S, mode, norm,
                                             want.data(), nullptr), EMBER_OK);
                        ember_status st = ember_pool(gpu.get(), dh, with_mask ? dmask : nullptr, c.B,
                                                     c.S, mode, norm, o, nullptr);
                        ASSERT_EQ(st, EMBER_OK) << Why(st);
                        CUDA_OK(cudaMemcpy(got.data(), o, no, cudaMemcpyDeviceToHost));
                        EXPECT_TRUE(AllClose(got, want, ember_tol::kCudaPoolAbs,
                                             ember_tol::kCudaPoolRel))
                            << "B " << c.B << " S " << c.S << " H " << c.H << " "
                            << ModeName(mode) << " normalize " << norm << " mask " << with_mask
                            << " misaligned " << misalign;
                    }
        CUDA_OK(cudaFree(dh));
        CUDA_OK(cudaFree(dmask));
        CUDA_OK(cudaFree(dout));
    }
}

TEST(CudaPool, RejectsBadArguments) {
    REQUIRE_CUDA_DEVICE();
    Model m = PoolModel(8, EMBER_BACKEND_CUDA);
    float *d;
    CUDA_OK(cudaMalloc((void **)&d, 64 * 4));
    EXPECT_EQ(ember_pool(m.get(), d, nullptr, 1, 1, (ember_pooling)5, 0, d + 8, nullptr),
              EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_pool(m.get(), nullptr, nullptr, 1, 1, EMBER_POOL_MEAN, 0, d, nullptr),
              EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_pool(m.get(), d, nullptr, 1, 1, EMBER_POOL_MEAN, 0, d + 8, nullptr), EMBER_OK);
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaFree(d));
}
#endif

// ---- ember_pooling_config_load --------------------------------------------------------------

class PoolingConfig : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::path(::testing::TempDir()) /
               (std::string("ember_stcfg_") +
                ::testing::UnitTest::GetInstance()->current_test_info()->name() + "_" +
                std::to_string(getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }
    void Write(const std::string &rel, const std::string &text) {
        fs::path p = dir_ / rel;
        fs::create_directories(p.parent_path());
        std::ofstream(p) << text;
    }
    // modules.json with Transformer, Pooling at 1_Pooling and, if asked, Normalize.
    void StModel(const std::string &pooling_cfg, bool normalize = true) {
        std::string mods =
            R"([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"})";
        if (normalize)
            mods += R"(, {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})";
        Write("modules.json", mods + "]");
        Write("1_Pooling/config.json", pooling_cfg);
    }
    // A Pooling config.json: the dimension sentence-transformers requires, then `body`.
    static std::string Cfg(const std::string &body) {
        return "{\"word_embedding_dimension\": 384, " + body + "}";
    }
    ember_status Load(ember_pooling_config *c) { return ember_pooling_config_load(dir_.c_str(), c); }
    void ExpectError(ember_status want, const std::vector<std::string> &parts) {
        ember_pooling_config c;
        ember_status st = Load(&c);
        EXPECT_EQ(st, want) << Why(st);
        for (const std::string &p : parts)
            EXPECT_NE(std::string(ember_last_error()).find(p), std::string::npos)
                << "'" << p << "' not in: " << ember_last_error();
    }
    fs::path dir_;
};

TEST_F(PoolingConfig, PlainHfDirectoryGivesDefaults) {
    Write("config.json", "{}");
    ember_pooling_config c;
    c.mode = EMBER_POOL_MAX;
    c.normalize = 1;
    c.max_seq_length = 7;
    c.do_lower_case = 1;
    strcpy(c.transformer_path, "x");
    ASSERT_EQ(Load(&c), EMBER_OK) << ember_last_error();
    EXPECT_EQ(c.mode, EMBER_POOL_MEAN);
    EXPECT_EQ(c.normalize, 0);
    EXPECT_EQ(c.max_seq_length, 0);
    EXPECT_EQ(c.do_lower_case, 0);
    EXPECT_STREQ(c.transformer_path, "");
}

TEST_F(PoolingConfig, EveryLegacyModeAndNormalizeWithoutFolder) {
    const struct {
        const char *key;
        ember_pooling mode;
    } modes[] = {{"pooling_mode_mean_tokens", EMBER_POOL_MEAN},
                 {"pooling_mode_cls_token", EMBER_POOL_CLS},
                 {"pooling_mode_max_tokens", EMBER_POOL_MAX}};
    for (const auto &m : modes)
        for (int norm = 0; norm < 2; norm++) {
            std::string cfg = R"({"word_embedding_dimension": 384, "pooling_mode_mean_sqrt_len_tokens": false)";
            for (const auto &k : modes)
                cfg += std::string(", \"") + k.key + "\": " + (k.key == m.key ? "true" : "false");
            cfg += "}";
            StModel(cfg, norm);  // no 2_Normalize folder, as in the all-MiniLM-L6-v2 wheel
            ember_pooling_config c;
            ASSERT_EQ(Load(&c), EMBER_OK) << m.key << ": " << ember_last_error();
            EXPECT_EQ(c.mode, m.mode) << m.key;
            EXPECT_EQ(c.normalize, norm) << m.key;
        }
}

TEST_F(PoolingConfig, NewStylePoolingModeAndMaxSeqLength) {
    const char *names[] = {"\"mean\"", "\"cls\"", "[\"max\"]"};
    const ember_pooling want[] = {EMBER_POOL_MEAN, EMBER_POOL_CLS, EMBER_POOL_MAX};
    Write("sentence_bert_config.json", R"({"max_seq_length": 256, "do_lower_case": false})");
    for (int i = 0; i < 3; i++) {
        StModel(std::string(R"({"embedding_dimension": 384, "include_prompt": true, "pooling_mode": )") +
                names[i] + "}");
        Write("2_Normalize/config.json", R"({"module_input_name": "sentence_embedding"})");
        ember_pooling_config c;
        ASSERT_EQ(Load(&c), EMBER_OK) << ember_last_error();
        EXPECT_EQ(c.mode, want[i]) << names[i];
        EXPECT_EQ(c.normalize, 1);
        EXPECT_EQ(c.max_seq_length, 256);
    }
}

TEST_F(PoolingConfig, AllFlagsFalseMeansMean) {
    StModel(Cfg(R"("pooling_mode_cls_token": false, "pooling_mode_mean_tokens": false)"), false);
    ember_pooling_config c;
    ASSERT_EQ(Load(&c), EMBER_OK) << ember_last_error();
    EXPECT_EQ(c.mode, EMBER_POOL_MEAN);
}

TEST_F(PoolingConfig, UnsupportedModesNameTheKey) {
    for (const char *key : {"pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                            "pooling_mode_lasttoken"}) {
        StModel(Cfg(std::string(R"("pooling_mode_mean_tokens": false, ")") + key + "\": true"));
        ExpectError(EMBER_ERR_UNSUPPORTED, {key, "1_Pooling/config.json"});
    }
    StModel(Cfg(R"("pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true)"));
    ExpectError(EMBER_ERR_UNSUPPORTED, {"pooling_mode_mean_tokens", "pooling_mode_cls_token"});
    StModel(Cfg(R"("pooling_mode": "lasttoken")"));
    ExpectError(EMBER_ERR_UNSUPPORTED, {"lasttoken"});
    StModel(Cfg(R"("pooling_mode": ["cls", "mean"])"));
    ExpectError(EMBER_ERR_UNSUPPORTED, {"pooling_mode", "2 modes"});
}

TEST_F(PoolingConfig, MalformedJsonNamesTheFile) {
    Write("modules.json", "[{\"idx\": 0,");
    ExpectError(EMBER_ERR_FORMAT, {"modules.json", "invalid JSON"});
    StModel(Cfg("\"pooling_mode_mean_tokens\": tru"));
    ExpectError(EMBER_ERR_FORMAT, {"1_Pooling/config.json"});
    StModel(Cfg(R"("pooling_mode_mean_tokens": true)"));
    Write("sentence_bert_config.json", "{max_seq_length: 5}");
    ExpectError(EMBER_ERR_FORMAT, {"sentence_bert_config.json"});
    Write("sentence_bert_config.json", R"({"max_seq_length": "long"})");
    ExpectError(EMBER_ERR_FORMAT, {"sentence_bert_config.json", "max_seq_length"});
    Write("sentence_bert_config.json", R"({"max_seq_length": 0})");
    ExpectError(EMBER_ERR_CONFIG, {"max_seq_length", "= 0"});
    Write("sentence_bert_config.json", "{}");
    Write("modules.json", R"({"path": "1_Pooling"})");
    ExpectError(EMBER_ERR_FORMAT, {"modules.json", "not a JSON array"});
    Write("modules.json", R"([{"path": "1_Pooling"}])");
    ExpectError(EMBER_ERR_FORMAT, {"modules.json", "module 0"});
}

TEST_F(PoolingConfig, ModulePathsStayInsideTheDirectory) {
    for (const char *p : {"..", "../1_Pooling", "1_Pooling/../../x", "/etc", "C:\\x", "a\\..\\b"}) {
        Write("modules.json", std::string(R"([{"idx": 1, "name": "1", "path": ")") +
                                  (std::string(p) == "C:\\x" ? "C:\\\\x"
                                   : std::string(p) == "a\\..\\b" ? "a\\\\..\\\\b" : p) +
                                  R"(", "type": "sentence_transformers.models.Pooling"}])");
        ExpectError(EMBER_ERR_FORMAT, {"modules.json", "module 0"});
    }
}

TEST_F(PoolingConfig, MissingPoolingConfigAndOtherModules) {
    Write("modules.json",
          R"([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
              {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}])");
    ExpectError(EMBER_ERR_IO, {"1_Pooling/config.json"});
    StModel(Cfg(R"("pooling_mode_mean_tokens": true)"));
    Write("modules.json",
          R"([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
              {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
              {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}])");
    ExpectError(EMBER_ERR_UNSUPPORTED, {"sentence_transformers.models.Dense"});
    Write("modules.json",
          R"([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}])");
    ExpectError(EMBER_ERR_UNSUPPORTED, {"no sentence_transformers Pooling module"});
    Write("modules.json",
          R"([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
              {"idx": 1, "name": "1", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
              {"idx": 2, "name": "2", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}])");
    ExpectError(EMBER_ERR_UNSUPPORTED, {"Normalize module before the Pooling"});
}

TEST_F(PoolingConfig, ModeNamesAndFlagsReadAsSentenceTransformersReadsThem) {
    // "pooling_mode": sentence-transformers before 6 lower-cased it; 6 takes it as written (and
    // rejects "MEAN"): where they accept, they agree
    const struct {
        const char *body;
        ember_status st;
        ember_pooling mode;
        const char *needle;
    } cases[] = {
        {R"("pooling_mode": "MEAN")", EMBER_OK, EMBER_POOL_MEAN, ""},
        {R"("pooling_mode": "Cls")", EMBER_OK, EMBER_POOL_CLS, ""},
        {R"("pooling_mode": "MAX", "pooling_mode_mean_tokens": true)", EMBER_OK, EMBER_POOL_MAX, ""},
        {R"("pooling_mode": ["max"])", EMBER_OK, EMBER_POOL_MAX, ""},
        {R"("pooling_mode": ["MAX"])", EMBER_ERR_FORMAT, EMBER_POOL_MEAN, "\"MAX\" is not a sentence-transformers pooling mode"},
        {R"("pooling_mode": "sum")", EMBER_ERR_FORMAT, EMBER_POOL_MEAN, "\"sum\" is not"},
        {R"("pooling_mode": [])", EMBER_ERR_FORMAT, EMBER_POOL_MEAN, "lists 0 modes"},
        {R"("pooling_mode": "Mean_Sqrt_Len_Tokens")", EMBER_ERR_UNSUPPORTED, EMBER_POOL_MEAN, "mean_sqrt_len_tokens"},
        // flags: Python's truth value (1, 2, "yes" are true; 0, null, "" are false)
        {R"("pooling_mode_cls_token": 1, "pooling_mode_mean_tokens": 0)", EMBER_OK, EMBER_POOL_CLS, ""},
        {R"("pooling_mode_max_tokens": "yes", "pooling_mode_mean_tokens": null)", EMBER_OK, EMBER_POOL_MAX, ""},
        {R"("pooling_mode_mean_tokens": 2, "pooling_mode_cls_token": "")", EMBER_OK, EMBER_POOL_MEAN, ""},
        {R"("include_prompt": false)", EMBER_OK, EMBER_POOL_MEAN, ""},
        // an absent mean flag is true before 6 (cls + mean concatenated), false in 6 (cls)
        {R"("pooling_mode_cls_token": true)", EMBER_ERR_UNSUPPORTED, EMBER_POOL_MEAN,
         "\"pooling_mode_mean_tokens\" is absent"},
        {R"("pooling_mode_max_tokens": 1, "pooling_mode_mean_tokens": 1, "pooling_mode_cls_token": 1)",
         EMBER_ERR_UNSUPPORTED, EMBER_POOL_MEAN, "\"pooling_mode_cls_token\" and \"pooling_mode_max_tokens\" and \"pooling_mode_mean_tokens\" are all true"},
        // Pooling(**config): its own keys only, and the dimension is required
        {R"("pooling_mode": "mean", "pooling_fn": "x")", EMBER_ERR_FORMAT, EMBER_POOL_MEAN,
         "\"pooling_fn\" is not a Pooling setting"},
    };
    for (const auto &c : cases) {
        SCOPED_TRACE(c.body);
        StModel(Cfg(c.body), false);
        ember_pooling_config got;
        ember_status st = Load(&got);
        EXPECT_EQ(st, c.st) << ember_last_error();
        if (st == EMBER_OK && c.st == EMBER_OK) {
            EXPECT_EQ(got.mode, c.mode);
        }
        if (c.st != EMBER_OK) {
            EXPECT_NE(std::string(ember_last_error()).find(c.needle), std::string::npos) << ember_last_error();
        }
    }
    StModel(R"({"pooling_mode": "mean"})", false);
    ExpectError(EMBER_ERR_FORMAT, {"1_Pooling/config.json", "no \"word_embedding_dimension\""});
}

TEST_F(PoolingConfig, EmptyPoolingPathReadsTheModelRootLikeSentenceTransformers) {
    // Pooling at "" reads <model>/config.json: the BERT config there is not a Pooling config
    // (sentence-transformers: TypeError), and is never silently mean pooling
    Write("config.json", R"({"model_type": "bert", "vocab_size": 10, "hidden_size": 8})");
    Write("modules.json",
          R"([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
              {"idx": 1, "name": "1", "path": "", "type": "sentence_transformers.models.Pooling"}])");
    ExpectError(EMBER_ERR_FORMAT, {"config.json", "is not a Pooling setting", "the module's path is \"\""});
    // with the Transformer in a folder, the root config.json may be the Pooling one: read it
    Write("config.json", R"({"word_embedding_dimension": 8, "pooling_mode": "cls"})");
    Write("modules.json",
          R"([{"idx": 0, "name": "0", "path": "0_BERT", "type": "sentence_transformers.models.Transformer"},
              {"idx": 1, "name": "1", "path": "", "type": "sentence_transformers.models.Pooling"}])");
    ember_pooling_config c;
    ASSERT_EQ(Load(&c), EMBER_OK) << ember_last_error();
    EXPECT_EQ(c.mode, EMBER_POOL_CLS);
    EXPECT_STREQ(c.transformer_path, "0_BERT");
}

TEST_F(PoolingConfig, TransformerPathHoldsItsSentenceBertConfig) {
    StModel(Cfg(R"("pooling_mode": "mean")"), false);
    Write("modules.json",
          R"([{"idx": 0, "name": "0", "path": "0_BERT", "type": "sentence_transformers.models.Transformer"},
              {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}])");
    Write("sentence_bert_config.json", R"({"max_seq_length": 99})");  // not the Transformer's
    Write("0_BERT/sentence_bert_config.json", R"({"max_seq_length": 12, "do_lower_case": 1})");
    ember_pooling_config c;
    ASSERT_EQ(Load(&c), EMBER_OK) << ember_last_error();
    EXPECT_STREQ(c.transformer_path, "0_BERT");
    EXPECT_EQ(c.max_seq_length, 12);
    EXPECT_EQ(c.do_lower_case, 1);
    // the older names, first found in sentence-transformers' order
    fs::remove(dir_ / "0_BERT/sentence_bert_config.json");
    Write("0_BERT/sentence_xlnet_config.json", R"({"max_seq_length": 7})");
    Write("0_BERT/sentence_roberta_config.json", R"({"max_seq_length": 5, "do_lower_case": "false"})");
    ASSERT_EQ(Load(&c), EMBER_OK) << ember_last_error();
    EXPECT_EQ(c.max_seq_length, 5);
    EXPECT_EQ(c.do_lower_case, 1) << "\"false\" is a true value for Python";
    // what ember cannot pass on is named
    Write("0_BERT/sentence_bert_config.json", R"({"max_seq_length": 5, "tokenizer_args": {"do_lower_case": false}})");
    ExpectError(EMBER_ERR_UNSUPPORTED, {"sentence_bert_config.json", "\"tokenizer_args\""});
    Write("0_BERT/sentence_bert_config.json", R"({"model_args": {}, "config_args": null, "do_lower_case": false})");
    ASSERT_EQ(Load(&c), EMBER_OK) << ember_last_error();
    EXPECT_EQ(c.do_lower_case, 0);
    // a plain HF directory: sentence-transformers reads no sentence_bert_config.json
    fs::remove(dir_ / "modules.json");
    ASSERT_EQ(Load(&c), EMBER_OK) << ember_last_error();
    EXPECT_EQ(c.max_seq_length, 0);
    EXPECT_STREQ(c.transformer_path, "");
}

TEST_F(PoolingConfig, ModulesJsonStructure) {
    StModel(Cfg(R"("pooling_mode": "mean")"), false);
    const std::string T = R"({"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"})";
    const std::string P = R"({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"})";
    // a repeated name: sentence-transformers keeps the later module in the earlier one's place
    Write("modules.json", "[" + T + ", " + P + R"(, {"idx": 2, "name": "1", "path": "", "type": "sentence_transformers.models.Normalize"}])");
    ExpectError(EMBER_ERR_UNSUPPORTED, {"modules 1 and 2 have the same \"name\""});
    Write("modules.json", "[" + T + R"(, {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}])");
    ExpectError(EMBER_ERR_FORMAT, {"module 1", "\"name\""});
    Write("modules.json", "[" + P + "]");
    ExpectError(EMBER_ERR_UNSUPPORTED, {"module 0 is a \"sentence_transformers.models.Pooling\""});
    Write("modules.json", "[" + T + R"(, {"idx": 1, "name": "x", "path": "", "type": "sentence_transformers.models.Transformer"}, )" + P + "]");
    ExpectError(EMBER_ERR_UNSUPPORTED, {"module 1 is a Transformer"});
}

TEST(SbertLower, IsPythonStrLower) {
    // expected bytes from CPython 3.11's str.lower()
    const struct {
        const char *in, *out;
    } cases[] = {
        {"HELLO World", "hello world"},
        {"\xc4\xb0STANBUL", "i\xcc\x87stanbul"},                        // U+0130
        {"\xce\x9f\xce\x94\xce\x9f\xce\xa3", "\xce\xbf\xce\xb4\xce\xbf\xcf\x82"},  // final sigma
        {"\xce\xa3\xce\x91", "\xcf\x83\xce\xb1"},
        {"\xce\xa3", "\xcf\x83"},
        {"\xce\x91\xce\xa3.", "\xce\xb1\xcf\x82."},
        {"\xce\x91\xce\xa3'\xce\x91", "\xce\xb1\xcf\x83'\xce\xb1"},   // ' is case-ignorable
        {"\xce\x91\xcc\x81\xce\xa3 \xce\xa3\xce\x91", "\xce\xb1\xcc\x81\xcf\x82 \xcf\x83\xce\xb1"},
        {"\xc7\x85", "\xc7\x86"},                                      // Lt
        {"\xe2\x84\xaa", "k"},                                         // Kelvin sign
        {"\xe1\xba\x9e", "\xc3\x9f"},
        {"\xe2\x85\xab", "\xe2\x85\xbb"},
        {"abc\xc2\xaa\xce\xa3", "abc\xc2\xaa\xcf\x82"},
        {"", ""},
    };
    for (const auto &c : cases) {
        char *out = nullptr;
        size_t n = 0;
        ASSERT_EQ(ember_sbert_lower(c.in, strlen(c.in), &out, &n), EMBER_OK) << ember_last_error();
        EXPECT_EQ(std::string(out, n), c.out) << c.in;
        EXPECT_EQ(strlen(out), n);
        free(out);
    }
    char *out = nullptr;
    size_t n = 0;
    EXPECT_EQ(ember_sbert_lower("ab\xc3", 3, &out, &n), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(out, nullptr);
}

TEST_F(PoolingConfig, BadArguments) {
    ember_pooling_config c;
    EXPECT_EQ(ember_pooling_config_load(nullptr, &c), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_pooling_config_load(dir_.c_str(), nullptr), EMBER_ERR_INVALID_ARGUMENT);
    ExpectError(EMBER_OK, {});
    EXPECT_EQ(ember_pooling_config_load((dir_ / "nope").c_str(), &c), EMBER_ERR_IO);
    EXPECT_NE(std::string(ember_last_error()).find("nope"), std::string::npos);
}

TEST_F(PoolingConfig, AllMiniLmL6V2) {
    const std::string dir = std::string(EMBER_SOURCE_DIR) + "/.pydeps/all-MiniLM-L6-v2";
    if (!fs::exists(dir + "/modules.json"))
        GTEST_SKIP() << dir << "/modules.json absent: run tools/fetch-minilm.sh";
    ember_pooling_config c;
    ASSERT_EQ(ember_pooling_config_load(dir.c_str(), &c), EMBER_OK) << ember_last_error();
    EXPECT_EQ(c.mode, EMBER_POOL_MEAN);
    EXPECT_EQ(c.normalize, 1);
    EXPECT_EQ(c.max_seq_length, 256);
}

}  // namespace
