// The CUDA backend: every CUDA op against its CPU twin (kernels/ops.h) on random inputs, the
// whole model CUDA vs the CPU reference (EMBER_BACKEND_REFERENCE) in f32/f16/bf16, HF goldens on the GPU, bit identity of input_ids
// vs inputs_embeds, determinism, device-detected bad inputs. Every GPU test skips (never
// passes) on a machine without a CUDA device.
#include "tests/ember_test.h"

using namespace ember_test;

namespace {

// Runs with or without a GPU build: without a device, asking for CUDA is a clear error.
TEST(CudaNoDevice, InitRandomReportsNoDevice) {
    if (ember_cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
    ember_config c{};
    c.vocab_size = 50;
    c.hidden_size = 32;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 2;
    c.intermediate_size = 64;
    c.max_position_embeddings = 16;
    c.type_vocab_size = 2;
    c.layer_norm_eps = 1e-12;
    c.hidden_act = EMBER_ACT_GELU;
    ember_load_options opt;
    ember_load_options_init(&opt);
    opt.backend = EMBER_BACKEND_CUDA;
    opt.compute_dtype = EMBER_DTYPE_F16;
    ember_model *m = nullptr;
    ember_status st = ember_model_init_random(&c, 1, &opt, &m);
    EXPECT_EQ(st, EMBER_ERR_NO_DEVICE) << Why(st);
    EXPECT_EQ(m, nullptr);
    const std::string msg = ember_last_error();
    EXPECT_NE(msg.find("no CUDA device"), std::string::npos) << msg;
}

}  // namespace

#ifndef EMBER_WITH_CUDA

TEST(Cuda, NotBuilt) { GTEST_SKIP() << "the CUDA backend is not built (configure with -DEMBER_CUDA=ON)"; }

#else

#include <algorithm>
#include <cfloat>
#include <random>
#include <set>

#include "host/model.h"
#include "kernels/ops.h"
#include "tests/cuda_test.h"

namespace {

// Device buffer of n elements of `size` bytes, poisoned with 0xFF bytes (NaN in f32, f16 and
// bf16) so that an element a kernel never writes cannot pass.
struct Dev {
    void *p = nullptr;
    size_t n = 0, size = 0;
    Dev() = default;
    Dev(size_t n_, size_t size_) : n(n_), size(size_) {
        CUDA_OK(cudaMalloc(&p, std::max<size_t>(1, n * size)));
        Poison();
    }
    Dev(const Dev &) = delete;
    Dev &operator=(const Dev &) = delete;
    Dev(Dev &&o) noexcept : p(o.p), n(o.n), size(o.size) { o.p = nullptr; }
    Dev &operator=(Dev &&o) noexcept {
        std::swap(p, o.p);
        n = o.n;
        size = o.size;
        return *this;
    }
    ~Dev() {
        if (p) cudaFree(p);
    }
    void Poison() { CUDA_OK(cudaMemset(p, 0xFF, std::max<size_t>(1, n * size))); }
    template <typename T> T *as() const { return static_cast<T *>(p); }
};

template <typename T> Dev Upload(const std::vector<T> &h) {
    Dev d(h.size(), sizeof(T));
    CUDA_OK(cudaMemcpy(d.p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}

std::vector<float> DownloadF32(const void *p, size_t n) {
    std::vector<float> h(n);
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaMemcpy(h.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
}

// A device array in dtype dt made from host f32 values; *rounded gets the values it holds,
// widened back to f32 (what the CPU reference must see).
Dev ToDt(const std::vector<float> &h, ember_dtype dt, std::vector<float> *rounded) {
    Dev f = Upload(h);
    Dev d(h.size(), DtSize(dt));
    EXPECT_EQ(ember_cuda_convert(d.p, dt, f.p, EMBER_DTYPE_F32, (int64_t)h.size(), nullptr), EMBER_OK)
        << ember_last_error();
    if (rounded) {
        Dev back(h.size(), 4);
        EXPECT_EQ(ember_cuda_convert(back.p, EMBER_DTYPE_F32, d.p, dt, (int64_t)h.size(), nullptr),
                  EMBER_OK);
        *rounded = DownloadF32(back.p, h.size());
    }
    return d;
}

// The f32 values of a device array in dtype dt.
std::vector<float> FromDt(const Dev &d, ember_dtype dt) {
    Dev back(d.n, 4);
    EXPECT_EQ(ember_cuda_convert(back.p, EMBER_DTYPE_F32, d.p, dt, (int64_t)d.n, nullptr), EMBER_OK)
        << ember_last_error();
    return DownloadF32(back.p, d.n);
}

std::vector<float> Random(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
    std::mt19937 g(seed);
    std::uniform_real_distribution<float> u(lo, hi);
    std::vector<float> v(n);
    for (auto &x : v) x = u(g);
    return v;
}

std::vector<int32_t> RandomInts(size_t n, int limit, uint32_t seed) {
    std::mt19937 g(seed);
    std::uniform_int_distribution<int> u(0, limit - 1);
    std::vector<int32_t> v(n);
    for (auto &x : v) x = u(g);
    return v;
}

// Mask (B,S): about 30% zeros; batch entry 0 fully masked when `full_row`; never all zero
// elsewhere.
std::vector<int32_t> RandomMask(int B, int S, bool full_row, uint32_t seed) {
    std::mt19937 g(seed);
    std::bernoulli_distribution keep(0.7);
    std::vector<int32_t> m((size_t)B * S);
    for (int b = 0; b < B; b++) {
        for (int s = 0; s < S; s++) m[(size_t)b * S + s] = keep(g) ? 1 : 0;
        m[(size_t)b * S] = 1;
        if (full_row && b == 0)
            for (int s = 0; s < S; s++) m[(size_t)s] = 0;
    }
    return m;
}

// Relative L2 error ||a - e|| / ||e||, with the first mismatches (|diff| > tol * rms(e)) and
// NaN failing, for the 16-bit comparisons.
::testing::AssertionResult RelL2Close(const std::vector<float> &a, const std::vector<float> &e,
                                      double tol) {
    if (a.size() != e.size())
        return ::testing::AssertionFailure() << "size " << a.size() << " != " << e.size();
    double num = 0.0, den = 0.0, max_abs = 0.0;
    size_t nan = 0;
    for (size_t i = 0; i < a.size(); i++) {
        if (std::isnan(a[i]) || std::isnan(e[i])) {
            nan++;
            continue;
        }
        double d = (double)a[i] - e[i];
        num += d * d;
        den += (double)e[i] * e[i];
        max_abs = std::max(max_abs, std::fabs(d));
    }
    const double rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
    if (nan == 0 && rel <= tol) return ::testing::AssertionSuccess();
    const double rms = std::sqrt(den / std::max<size_t>(1, a.size()));
    std::string first;
    int shown = 0;
    for (size_t i = 0; i < a.size() && shown < 5; i++) {
        double d = std::fabs((double)a[i] - e[i]);
        if (std::isnan(a[i]) || std::isnan(e[i]) || d > tol * rms * 4) {
            char buf[160];
            snprintf(buf, sizeof buf, "  [%zu] got %.7g expected %.7g\n", i, a[i], e[i]);
            first += buf;
            shown++;
        }
    }
    return ::testing::AssertionFailure()
           << "relative L2 " << rel << " > " << tol << " (" << rel / tol << "x the limit), "
           << nan << " NaN, max |diff| " << max_abs << " of " << a.size() << " elements\n"
           << first;
}

// The comparison for dtype dt: absolute for f32 (O(1) outputs), relative L2 for 16-bit.
::testing::AssertionResult Close(const std::vector<float> &a, const std::vector<float> &e,
                                 ember_dtype dt) {
    if (dt == EMBER_DTYPE_F32) return AllClose(a, e, ember_tol::kCudaF32Abs, 0.0);
    return RelL2Close(a, e, dt == EMBER_DTYPE_F16 ? ember_tol::kCudaF16RelL2 : ember_tol::kCudaBf16RelL2);
}

// Logits: as Close for f32; absolute bounds for f16 / bf16 (tests/tolerances.h).
::testing::AssertionResult LogitsClose(const std::vector<float> &a, const std::vector<float> &e,
                                       ember_dtype dt) {
    if (dt == EMBER_DTYPE_F32) return Close(a, e, dt);
    return AllClose(a, e, dt == EMBER_DTYPE_F16 ? ember_tol::kCudaF16LogitsAbs
                                                : ember_tol::kCudaBf16LogitsAbs, 0.0);
}

struct ErrFlag {
    Dev d{1, sizeof(int)};
    ErrFlag() { Reset(); }
    void Reset() { CUDA_OK(cudaMemset(d.p, 0, sizeof(int))); }
    int Get() {
        int v = -1;
        CUDA_OK(cudaDeviceSynchronize());
        CUDA_OK(cudaMemcpy(&v, d.p, sizeof v, cudaMemcpyDeviceToHost));
        return v;
    }
    int *ptr() { return d.as<int>(); }
};

// ---- ops ------------------------------------------------------------------------------------

TEST(CudaOps, GatherIsExactAndFlagsBadIds) {
    REQUIRE_CUDA_DEVICE();
    const int V = 301, H = 100;
    const int64_t n = 97;
    for (ember_dtype dt : kDtypes) {
        SCOPED_TRACE(DtName(dt));
        std::vector<float> word;
        Dev dword = ToDt(Random((size_t)V * H, 1), dt, &word);
        std::vector<int32_t> ids = RandomInts(n, V, 2);
        Dev did = Upload(ids);
        Dev out(n * H, 4);
        ErrFlag err;
        ASSERT_EQ(ember_cuda_gather(out.as<float>(), EMBER_DTYPE_F32, did.as<int32_t>(), n, dword.p, H, V, dt,
                                    err.ptr(), nullptr),
                  EMBER_OK)
            << ember_last_error();
        std::vector<float> ref(n * H);
        ember_ref_gather(ref.data(), ids.data(), n, word.data(), H);
        EXPECT_TRUE(BitIdentical(DownloadF32(out.p, n * H), ref));
        EXPECT_EQ(err.Get(), 0);
        ids[5] = V;
        ids[9] = -3;
        Dev bad = Upload(ids);
        ASSERT_EQ(ember_cuda_gather(out.as<float>(), EMBER_DTYPE_F32, bad.as<int32_t>(), n, dword.p, H, V, dt,
                                    err.ptr(), nullptr),
                  EMBER_OK);
        EXPECT_EQ(err.Get(), EMBER_BAD_ID);
    }
}

struct EmbedCase {
    int B, S, H, V, P, T;
    bool embeds, types, positions;
};

TEST(CudaOps, EmbedLayerNormMatchesReference) {
    REQUIRE_CUDA_DEVICE();
    const EmbedCase cases[] = {
        {1, 1, 768, 1000, 512, 2, false, false, false}, {3, 7, 384, 500, 64, 2, false, true, true},
        {32, 7, 36, 50, 16, 3, true, true, false},      {2, 97, 100, 77, 128, 2, true, false, true},
        {1, 512, 768, 300, 512, 2, false, true, false}, {3, 128, 1024, 64, 128, 4, false, true, true},
    };
    uint32_t seed = 10;
    for (const EmbedCase &c : cases)
        for (ember_dtype dt : kDtypes) {
            SCOPED_TRACE(::testing::Message() << DtName(dt) << " B=" << c.B << " S=" << c.S
                                              << " H=" << c.H << (c.embeds ? " embeds" : " ids"));
            const int64_t N = (int64_t)c.B * c.S;
            std::vector<float> word, pos, type;
            Dev dword = ToDt(Random((size_t)c.V * c.H, seed++), dt, &word);
            Dev dpos = ToDt(Random((size_t)c.P * c.H, seed++, -0.5f, 0.5f), dt, &pos);
            Dev dtype = ToDt(Random((size_t)c.T * c.H, seed++, -0.5f, 0.5f), dt, &type);
            std::vector<float> gamma = Random(c.H, seed++, 0.8f, 1.2f), beta = Random(c.H, seed++);
            Dev dg = Upload(gamma), db = Upload(beta);
            std::vector<int32_t> ids = RandomInts(N, c.V, seed++);
            std::vector<int32_t> types = RandomInts(N, c.T, seed++);
            std::vector<int32_t> positions = RandomInts(N, c.P, seed++);
            std::vector<float> embeds = Random(N * c.H, seed++);
            Dev did = Upload(ids), dty = Upload(types), dps = Upload(positions), dem = Upload(embeds);
            Dev out(N * c.H, DtSize(dt));
            ErrFlag err;
            ASSERT_EQ(ember_cuda_embed_layernorm(
                          out.p, c.embeds ? nullptr : did.as<int32_t>(),
                          c.embeds ? dem.as<float>() : nullptr, EMBER_DTYPE_F32,
                          c.types ? dty.as<int32_t>() : nullptr,
                          c.positions ? dps.as<int32_t>() : nullptr, dword.p, dpos.p, dtype.p,
                          dg.as<float>(), db.as<float>(), c.B, c.S, c.H, c.V, c.P, c.T, 1e-12, dt,
                          err.ptr(), nullptr),
                      EMBER_OK)
                << ember_last_error();
            std::vector<float> ref(N * c.H);
            ember_ref_embed_layernorm(ref.data(), c.embeds ? nullptr : ids.data(),
                                      c.embeds ? embeds.data() : nullptr,
                                      c.types ? types.data() : nullptr,
                                      c.positions ? positions.data() : nullptr, word.data(),
                                      pos.data(), type.data(), gamma.data(), beta.data(), c.B, c.S,
                                      c.H, 1e-12);
            EXPECT_TRUE(Close(FromDt(out, dt), ref, dt));
            EXPECT_EQ(err.Get(), 0);
        }
}

TEST(CudaOps, EmbedLayerNormClampsAndFlagsEachKind) {
    REQUIRE_CUDA_DEVICE();
    const int B = 2, S = 5, H = 64, V = 20, P = 8, T = 2;
    const int64_t N = B * S;
    Dev word = ToDt(Random((size_t)V * H, 1), EMBER_DTYPE_F32, nullptr);
    Dev pos = ToDt(Random((size_t)P * H, 2), EMBER_DTYPE_F32, nullptr);
    Dev type = ToDt(Random((size_t)T * H, 3), EMBER_DTYPE_F32, nullptr);
    Dev g = Upload(Random(H, 4)), b = Upload(Random(H, 5));
    struct Bad {
        int which;  // 0 id, 1 type, 2 position
        int32_t value;
        int bit;
    } bads[] = {{0, V, EMBER_BAD_ID},          {0, -1, EMBER_BAD_ID},
                {1, T, EMBER_BAD_TOKEN_TYPE},  {1, -7, EMBER_BAD_TOKEN_TYPE},
                {2, P, EMBER_BAD_POSITION},    {2, -1, EMBER_BAD_POSITION}};
    for (const Bad &bad : bads) {
        std::vector<int32_t> ids = RandomInts(N, V, 6), types = RandomInts(N, T, 7),
                             positions = RandomInts(N, P, 8);
        (bad.which == 0 ? ids : bad.which == 1 ? types : positions)[7] = bad.value;
        Dev di = Upload(ids), dt = Upload(types), dp = Upload(positions);
        Dev out(N * H, 4);
        ErrFlag err;
        ASSERT_EQ(ember_cuda_embed_layernorm(out.p, di.as<int32_t>(), nullptr, EMBER_DTYPE_F32,
                                             dt.as<int32_t>(),
                                             dp.as<int32_t>(), word.p, pos.p, type.p, g.as<float>(),
                                             b.as<float>(), B, S, H, V, P, T, 1e-12,
                                             EMBER_DTYPE_F32, err.ptr(), nullptr),
                  EMBER_OK);
        EXPECT_EQ(err.Get(), bad.bit) << "kind " << bad.which << " value " << bad.value;
        std::vector<float> o = DownloadF32(out.p, N * H);
        EXPECT_TRUE(std::none_of(o.begin(), o.end(), [](float x) { return std::isnan(x); }));
    }
}

struct LinearCase {
    int N, IN, OUT;
    bool bias;
    int ld_mult;  // ld_in = IN * ld_mult (> 1: strided rows, like the pooler)
};

TEST(CudaOps, LinearMatchesReference) {
    REQUIRE_CUDA_DEVICE();
    const LinearCase cases[] = {
        {1, 768, 2304, true, 1},  {7, 384, 1152, true, 1},  {97, 768, 768, false, 1},
        {384, 384, 1536, true, 1}, {128, 3072, 768, false, 1}, {13, 37, 101, true, 1},
        {3, 48, 48, true, 5},     {32, 768, 768, false, 7}, {512, 64, 192, true, 1},
    };
    Dev ws(32 << 20, 1);
    ember_cuda_gemm *g = nullptr;
    ASSERT_EQ(ember_cuda_gemm_create(&g, ws.p, 32 << 20), EMBER_OK) << ember_last_error();
    uint32_t seed = 100;
    for (const LinearCase &c : cases)
        for (ember_dtype dt : kDtypes) {
            SCOPED_TRACE(::testing::Message() << DtName(dt) << " N=" << c.N << " IN=" << c.IN
                                              << " OUT=" << c.OUT << " bias=" << c.bias
                                              << " ld=" << c.IN * c.ld_mult);
            const int64_t ld = (int64_t)c.IN * c.ld_mult;
            const float wr = 1.f / std::sqrt((float)c.IN) * std::sqrt(3.f);
            std::vector<float> in_full, w, b;
            Dev din = ToDt(Random((size_t)c.N * ld, seed++), dt, &in_full);
            Dev dw = ToDt(Random((size_t)c.OUT * c.IN, seed++, -wr, wr), dt, &w);
            Dev dbias = ToDt(Random(c.OUT, seed++, -0.5f, 0.5f), dt, &b);
            Dev out(c.N * c.OUT, DtSize(dt));
            ASSERT_EQ(ember_cuda_linear(out.p, din.p, dw.p, c.bias ? dbias.p : nullptr, c.N, c.IN,
                                        c.OUT, ld, dt, g, nullptr),
                      EMBER_OK)
                << ember_last_error();
            std::vector<float> in((size_t)c.N * c.IN);  // the rows the GEMM reads
            for (int t = 0; t < c.N; t++)
                std::copy_n(in_full.begin() + t * ld, c.IN, in.begin() + (size_t)t * c.IN);
            std::vector<float> ref((size_t)c.N * c.OUT);
            ember_ref_linear(ref.data(), in.data(), w.data(), c.bias ? b.data() : nullptr, c.N,
                             c.IN, c.OUT);
            EXPECT_TRUE(Close(FromDt(out, dt), ref, dt));
        }
    ember_cuda_gemm_destroy(g);
}

TEST(CudaOps, BiasActMatchesReference) {
    REQUIRE_CUDA_DEVICE();
    struct {
        int N, C;
    } shapes[] = {{7, 3072}, {97, 1536}, {3, 37}, {1, 8}};
    const ember_activation acts[] = {EMBER_ACT_GELU, EMBER_ACT_GELU_TANH, EMBER_ACT_RELU};
    uint32_t seed = 200;
    for (auto s : shapes)
        for (ember_activation act : acts)
            for (ember_dtype dt : kDtypes)
                for (bool bias : {true, false}) {
                    SCOPED_TRACE(::testing::Message() << DtName(dt) << " N=" << s.N << " C=" << s.C
                                                      << " act=" << act << " bias=" << bias);
                    std::vector<float> x, b;
                    Dev dx = ToDt(Random((size_t)s.N * s.C, seed++, -4.f, 4.f), dt, &x);
                    Dev db = ToDt(Random(s.C, seed++), dt, &b);
                    ASSERT_EQ(ember_cuda_bias_act(dx.p, bias ? db.p : nullptr, s.N, s.C, act, dt,
                                                  nullptr),
                              EMBER_OK)
                        << ember_last_error();
                    ember_ref_bias_act(x.data(), bias ? b.data() : nullptr, s.N, s.C, act);
                    EXPECT_TRUE(Close(FromDt(dx, dt), x, dt));
                }
}

TEST(CudaOps, BiasResidualLayerNormMatchesReference) {
    REQUIRE_CUDA_DEVICE();
    struct {
        int N, H;
        bool bias, alias, f32_out;
    } cases[] = {{1, 768, true, false, true},    {97, 384, true, true, false},
                 {384, 768, false, false, true}, {7, 36, true, false, true},
                 {5, 100, true, true, true},     {32, 1024, true, false, false},
                 {3, 4096, true, false, true},   {2, 16384, true, true, true}};  // > 48 KB row
    uint32_t seed = 300;
    for (auto c : cases)
        for (ember_dtype dt : kDtypes) {
            SCOPED_TRACE(::testing::Message() << DtName(dt) << " N=" << c.N << " H=" << c.H
                                              << " bias=" << c.bias << " alias=" << c.alias);
            const size_t n = (size_t)c.N * c.H;
            std::vector<float> x, r, b;
            Dev dx = ToDt(Random(n, seed++, -3.f, 3.f), dt, &x);
            Dev dr = ToDt(Random(n, seed++), dt, &r);
            Dev db = ToDt(Random(c.H, seed++), dt, &b);
            std::vector<float> gamma = Random(c.H, seed++, 0.5f, 1.5f), beta = Random(c.H, seed++);
            Dev dg = Upload(gamma), dbeta = Upload(beta);
            Dev out(n, DtSize(dt)), of32(n, 4);
            void *o = c.alias ? dr.p : out.p;
            ASSERT_EQ(ember_cuda_bias_residual_layernorm(
                          o, c.f32_out ? of32.as<float>() : nullptr, EMBER_DTYPE_F32, dx.p, c.bias ? db.p : nullptr,
                          dr.p, dg.as<float>(), dbeta.as<float>(), c.N, c.H, 1e-12, dt, nullptr),
                      EMBER_OK)
                << ember_last_error();
            std::vector<float> ref(n);
            ember_ref_bias_residual_layernorm(ref.data(), x.data(), c.bias ? b.data() : nullptr,
                                              r.data(), gamma.data(), beta.data(), c.N, c.H, 1e-12);
            std::vector<float> got = FromDt(c.alias ? dr : out, dt);
            EXPECT_TRUE(Close(got, ref, dt));
            if (c.f32_out) { EXPECT_TRUE(BitIdentical(DownloadF32(of32.p, n), got)) << "out_f32"; }
        }
}

struct AttnCase {
    int B, S, NH, HD;
    int mask;  // 0 none, 1 random, 2 random with a fully masked sequence
};

void PrintTo(const AttnCase &c, std::ostream *os) {
    *os << "B" << c.B << "_S" << c.S << "_NH" << c.NH << "_HD" << c.HD << "_mask" << c.mask;
}

class CudaAttention : public ::testing::TestWithParam<AttnCase> {};

TEST_P(CudaAttention, MatchesReference) {
    REQUIRE_CUDA_DEVICE();
    const AttnCase c = GetParam();
    const int H = c.NH * c.HD;
    const size_t n_qkv = (size_t)c.B * c.S * 3 * H, n_out = (size_t)c.B * c.S * H;
    std::vector<int32_t> mask = RandomMask(c.B, c.S, c.mask == 2, 7 + c.S);
    Dev dmask = Upload(mask);
    std::vector<double> scratch(c.S);
    for (ember_dtype dt : kDtypes) {
        SCOPED_TRACE(DtName(dt));
        std::vector<float> qkv;
        // Scores of O(1..10): wide enough that the softmax is far from uniform.
        Dev dqkv = ToDt(Random(n_qkv, 11 + c.S * 3 + c.HD, -2.f, 2.f), dt, &qkv);
        Dev out(n_out, DtSize(dt));
        const int32_t *m = c.mask ? dmask.as<int32_t>() : nullptr;
        ASSERT_EQ(ember_cuda_attention(out.p, dqkv.p, m, c.B, c.S, c.NH, c.HD, dt, nullptr),
                  EMBER_OK)
            << ember_last_error();
        std::vector<float> ref(n_out);
        ember_ref_attention(ref.data(), qkv.data(), c.mask ? mask.data() : nullptr, c.B, c.S, c.NH,
                            c.HD, scratch.data());
        std::vector<float> got = FromDt(out, dt);
        EXPECT_TRUE(Close(got, ref, dt));
        if (c.mask == 2 && dt == EMBER_DTYPE_F32) {
            // Fully masked sequence 0: every query gets the plain mean of V over all S keys.
            for (int h = 0; h < c.NH; h++)
                for (int d = 0; d < c.HD; d++) {
                    double mean = 0;
                    for (int j = 0; j < c.S; j++) mean += qkv[(size_t)j * 3 * H + 2 * H + h * c.HD + d];
                    mean /= c.S;
                    EXPECT_NEAR(got[(size_t)(c.S - 1) * H + h * c.HD + d], mean, ember_tol::kCudaF32Abs);
                }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaAttention,
    ::testing::Values(AttnCase{1, 1, 12, 64, 0}, AttnCase{3, 7, 12, 64, 2}, AttnCase{1, 97, 12, 32, 1},
                      AttnCase{32, 7, 12, 32, 2}, AttnCase{2, 128, 12, 64, 1},
                      AttnCase{1, 384, 12, 32, 0}, AttnCase{1, 512, 12, 64, 1},
                      AttnCase{3, 97, 4, 12, 2}, AttnCase{3, 33, 3, 16, 1}, AttnCase{2, 65, 2, 8, 2},
                      AttnCase{2, 70, 2, 36, 1}, AttnCase{1, 40, 2, 128, 2},
                      AttnCase{1, 20, 1, 256, 1}, AttnCase{2, 129, 6, 64, 2}),
    [](const ::testing::TestParamInfo<AttnCase> &i) {
        std::ostringstream os;
        PrintTo(i.param, &os);
        return os.str();
    });

TEST(CudaOps, CheckMaskFlagsValuesOtherThanZeroAndOne) {
    REQUIRE_CUDA_DEVICE();
    std::vector<int32_t> m = RandomMask(3, 50, true, 3);
    Dev ok = Upload(m);
    ErrFlag err;
    ASSERT_EQ(ember_cuda_check_mask(ok.as<int32_t>(), (int64_t)m.size(), err.ptr(), nullptr), EMBER_OK);
    EXPECT_EQ(err.Get(), 0);
    m[77] = 2;
    Dev bad = Upload(m);
    ASSERT_EQ(ember_cuda_check_mask(bad.as<int32_t>(), (int64_t)m.size(), err.ptr(), nullptr), EMBER_OK);
    EXPECT_EQ(err.Get(), EMBER_BAD_MASK);
}

TEST(CudaOps, PoolerMatchesReference) {
    REQUIRE_CUDA_DEVICE();
    struct {
        int B, S, H;
    } cases[] = {{1, 1, 768}, {3, 7, 384}, {32, 5, 36}, {3, 128, 100}};
    Dev ws(32 << 20, 1);
    ember_cuda_gemm *g = nullptr;
    ASSERT_EQ(ember_cuda_gemm_create(&g, ws.p, 32 << 20), EMBER_OK) << ember_last_error();
    uint32_t seed = 400;
    for (auto c : cases)
        for (ember_dtype dt : kDtypes) {
            SCOPED_TRACE(::testing::Message() << DtName(dt) << " B=" << c.B << " S=" << c.S
                                              << " H=" << c.H);
            const float wr = std::sqrt(3.f / c.H);
            std::vector<float> hidden, w, b;
            Dev dh = ToDt(Random((size_t)c.B * c.S * c.H, seed++), dt, &hidden);
            Dev dw = ToDt(Random((size_t)c.H * c.H, seed++, -wr, wr), dt, &w);
            Dev db = ToDt(Random(c.H, seed++), dt, &b);
            Dev scratch((size_t)c.B * c.H, DtSize(dt)), out((size_t)c.B * c.H, 4);
            ASSERT_EQ(ember_cuda_pooler(out.as<float>(), EMBER_DTYPE_F32, dh.p, dw.p, db.p, c.B, c.S, c.H, scratch.p,
                                        dt, g, nullptr),
                      EMBER_OK)
                << ember_last_error();
            std::vector<float> ref((size_t)c.B * c.H);
            ember_ref_pooler(ref.data(), hidden.data(), w.data(), b.data(), c.B, c.S, c.H);
            EXPECT_TRUE(Close(DownloadF32(out.p, ref.size()), ref, dt));
        }
    ember_cuda_gemm_destroy(g);
}

// The heads' dense layer: every activation, token-0 rows (ld = S*H) and every row, odd sizes.
TEST(CudaOps, DenseMatchesReference) {
    REQUIRE_CUDA_DEVICE();
    struct {
        int N, IN, OUT;
        int64_t ld;
        ember_head_act act;
    } cases[] = {{3, 36, 36, 7 * 36, EMBER_HEAD_ACT_TANH}, {1, 768, 1, 768, EMBER_HEAD_ACT_NONE},
                 {97, 40, 9, 40, EMBER_HEAD_ACT_NONE}, {5, 33, 33, 2 * 33, EMBER_HEAD_ACT_GELU},
                 {4, 100, 100, 100, EMBER_HEAD_ACT_RELU}};
    uint32_t seed = 500;
    for (auto c : cases)
        for (ember_dtype dt : kDtypes) {
            SCOPED_TRACE(::testing::Message() << DtName(dt) << " N=" << c.N << " IN=" << c.IN
                                              << " OUT=" << c.OUT << " act=" << (int)c.act);
            const float wr = std::sqrt(3.f / c.IN);
            std::vector<float> in = Random((size_t)(c.N - 1) * c.ld + c.IN, seed++), w, b;
            Dev din = Upload(in);
            Dev dw = ToDt(Random((size_t)c.OUT * c.IN, seed++, -wr, wr), dt, &w);
            Dev db = ToDt(Random(c.OUT, seed++), dt, &b);
            Dev out((size_t)c.N * c.OUT, 4);
            ASSERT_EQ(ember_cuda_dense(out.p, EMBER_DTYPE_F32, din.p, EMBER_DTYPE_F32, c.ld, dw.p,
                                       db.p, c.N, c.IN, c.OUT, c.act, dt, nullptr),
                      EMBER_OK)
                << ember_last_error();
            std::vector<float> ref((size_t)c.N * c.OUT);
            ember_ref_dense(ref.data(), in.data(), c.ld, w.data(), b.data(), c.N, c.IN, c.OUT,
                            c.act);
            // f32 inputs and accumulation whatever dt: the weights were rounded for both sides
            EXPECT_TRUE(AllClose(DownloadF32(out.p, ref.size()), ref, ember_tol::kCudaF32Abs, 0.0));
        }
}

// RoBERTa's default positions: pad ids keep padding_idx, others count from it; no ids: the
// sequential rule.
TEST(CudaOps, PositionIdsMatchReference) {
    REQUIRE_CUDA_DEVICE();
    for (int pad : {0, 1, 5}) {
        const int B = 7, S = 33;
        std::vector<int32_t> ids = RandomInts((size_t)B * S, 8, 600 + pad);  // many pad ids
        std::vector<int32_t> ref((size_t)B * S), got((size_t)B * S);
        Dev d_ids = Upload(ids), d_out((size_t)B * S, 4);
        for (bool with_ids : {true, false}) {
            d_out.Poison();
            ASSERT_EQ(ember_cuda_position_ids(d_out.as<int32_t>(), with_ids ? d_ids.as<int32_t>() : nullptr,
                                              B, S, pad, nullptr),
                      EMBER_OK);
            CUDA_OK(cudaDeviceSynchronize());
            CUDA_OK(cudaMemcpy(got.data(), d_out.p, got.size() * 4, cudaMemcpyDeviceToHost));
            ember_ref_position_ids(ref.data(), with_ids ? ids.data() : nullptr, B, S, pad);
            EXPECT_EQ(got, ref) << "pad " << pad << (with_ids ? " ids" : " embeds");
        }
    }
}

// ---- the whole model ------------------------------------------------------------------------

struct ModelCase {
    const char *name;
    int V, H, L, NH, I, P, T;
    ember_activation act;
    bool pooler;
    int B, S;
};

const ModelCase kModels[] = {
    {"base_L1_B1_S128", 1000, 768, 1, 12, 3072, 512, 2, EMBER_ACT_GELU, true, 1, 128},
    {"minilm_L2_B3_S97", 500, 384, 2, 12, 1536, 512, 2, EMBER_ACT_GELU, true, 3, 97},
    {"odd_hd12_tanh_B3_S7", 99, 48, 2, 4, 100, 64, 3, EMBER_ACT_GELU_TANH, true, 3, 7},
    {"relu_hd16_B32_S5", 77, 32, 3, 2, 64, 40, 2, EMBER_ACT_RELU, false, 32, 5},
    {"hd8_B2_S33", 60, 16, 2, 2, 40, 33, 2, EMBER_ACT_GELU, true, 2, 33},
};

ember_config Config(const ModelCase &c) {
    ember_config cfg{};
    cfg.vocab_size = c.V;
    cfg.hidden_size = c.H;
    cfg.num_hidden_layers = c.L;
    cfg.num_attention_heads = c.NH;
    cfg.intermediate_size = c.I;
    cfg.max_position_embeddings = c.P;
    cfg.type_vocab_size = c.T;
    cfg.layer_norm_eps = 1e-12;
    cfg.hidden_act = c.act;
    cfg.has_pooler = c.pooler;
    return cfg;
}

// A random model of cfg with a workspace for B x S tokens.
Model MakeRandom(const ember_config &cfg, int B, int S, ember_backend backend, ember_dtype dt,
                 uint64_t seed) {
    ember_load_options opt;
    ember_load_options_init(&opt);
    opt.backend = backend;
    opt.compute_dtype = dt;
    opt.max_batch = B;
    opt.max_seq_len = S;
    ember_model *m = nullptr;
    ember_status st = ember_model_init_random(&cfg, seed, &opt, &m);
    EXPECT_EQ(st, EMBER_OK) << Why(st);
    return Model(m);
}

Model MakeModel(const ModelCase &c, ember_backend backend, ember_dtype dt, uint64_t seed = 42) {
    return MakeRandom(Config(c), c.B, c.S, backend, dt, seed);
}

// Host-side inputs of a forward, uploaded for the GPU.
struct Inputs {
    int B, S;
    std::vector<int32_t> ids, mask, types, positions;
    std::vector<float> embeds, embedding_output;
};

Inputs MakeInputs(const ModelCase &c, uint32_t seed) {
    Inputs x;
    x.B = c.B;
    x.S = c.S;
    const size_t N = (size_t)c.B * c.S;
    x.ids = RandomInts(N, c.V, seed);
    x.mask = RandomMask(c.B, c.S, c.B > 1, seed + 1);
    x.types = RandomInts(N, c.T, seed + 2);
    x.positions = RandomInts(N, c.P, seed + 3);
    return x;
}

struct Outputs {
    std::vector<float> last, pooled, hidden, logits;
};

// One forward; the model's backend decides where the buffers live. Entry: "ids", "embeds",
// "embedding_output". The returned status is the forward's. `flags`: ember_inputs.flags;
// logits: also the head's logits.
ember_status Forward(ember_model *m, const Inputs &x, const char *entry, bool types_pos, bool pooler,
                 bool hidden, Outputs *o, cudaStream_t stream = nullptr, bool logits = false,
                 unsigned flags = 0) {
    ember_config cfg;
    ember_model_config(m, &cfg);
    const size_t N = (size_t)x.B * x.S, H = (size_t)cfg.hidden_size, L = (size_t)cfg.num_hidden_layers;
    const size_t NL = (cfg.head == EMBER_HEAD_TOKEN_CLASSIFICATION ? N : (size_t)x.B) *
                      (size_t)cfg.num_labels;
    const bool cuda = ember_model_backend(m) == EMBER_BACKEND_CUDA;
    ember_inputs in{};
    in.batch = x.B;
    in.seq_len = x.S;
    Dev d_ids, d_mask, d_types, d_pos, d_emb, d_last, d_pool, d_hid;
    auto place = [&](const auto &v, Dev *d) -> const void * {
        if (v.empty()) return nullptr;
        if (!cuda) return v.data();
        *d = Upload(v);
        return d->p;
    };
    const std::string e = entry;
    if (e == "ids") in.input_ids = (const int32_t *)place(x.ids, &d_ids);
    if (e == "embeds") in.inputs_embeds = (const float *)place(x.embeds, &d_emb);
    if (e == "embedding_output") in.embedding_output = (const float *)place(x.embedding_output, &d_emb);
    in.attention_mask = (const int32_t *)place(x.mask, &d_mask);
    in.flags = flags;
    if (types_pos) {
        in.token_type_ids = (const int32_t *)place(x.types, &d_types);
        in.position_ids = (const int32_t *)place(x.positions, &d_pos);
    }
    o->last = Poisoned(N * H);
    o->pooled = pooler ? Poisoned(x.B * H) : std::vector<float>();
    o->hidden = hidden ? Poisoned((L + 1) * N * H) : std::vector<float>();
    o->logits = logits ? Poisoned(NL) : std::vector<float>();
    Dev d_logits;
    ember_outputs out{};
    if (logits) {
        if (cuda) d_logits = Dev(NL, 4);
        out.logits = cuda ? d_logits.as<float>() : o->logits.data();
    }
    if (cuda) {
        d_last = Dev(N * H, 4);
        out.last_hidden_state = d_last.as<float>();
        if (pooler) {
            d_pool = Dev(x.B * H, 4);
            out.pooler_output = d_pool.as<float>();
        }
        if (hidden) {
            d_hid = Dev((L + 1) * N * H, 4);
            out.hidden_states = d_hid.as<float>();
        }
    } else {
        out.last_hidden_state = o->last.data();
        out.pooler_output = pooler ? o->pooled.data() : nullptr;
        out.hidden_states = hidden ? o->hidden.data() : nullptr;
    }
    ember_status st = ember_forward(m, &in, &out, (ember_stream)stream);
    if (cuda && st == EMBER_OK) {
        o->last = DownloadF32(d_last.p, N * H);
        if (pooler) o->pooled = DownloadF32(d_pool.p, x.B * H);
        if (hidden) o->hidden = DownloadF32(d_hid.p, (L + 1) * N * H);
        if (logits) o->logits = DownloadF32(d_logits.p, NL);
    }
    return st;
}

struct ModelParam {
    ModelCase c;
    ember_dtype dt;
};

void PrintTo(const ModelParam &p, std::ostream *os) { *os << p.c.name << "_" << DtName(p.dt); }

class CudaModel : public ::testing::TestWithParam<ModelParam> {};

TEST_P(CudaModel, MatchesCpuBackend) {
    REQUIRE_CUDA_DEVICE();
    const ModelCase &c = GetParam().c;
    const ember_dtype dt = GetParam().dt;
    Model cpu = MakeModel(c, EMBER_BACKEND_REFERENCE, EMBER_DTYPE_F32);
    Model gpu = MakeModel(c, EMBER_BACKEND_CUDA, dt);
    ASSERT_TRUE(cpu && gpu);
    Inputs x = MakeInputs(c, 5);
    for (bool types_pos : {false, true}) {
        SCOPED_TRACE(types_pos ? "with token types and positions" : "defaults");
        Outputs a, b;
        ASSERT_EQ(Forward(cpu.get(), x, "ids", types_pos, c.pooler, true, &a), EMBER_OK) << ember_last_error();
        ASSERT_EQ(Forward(gpu.get(), x, "ids", types_pos, c.pooler, true, &b), EMBER_OK) << ember_last_error();
        EXPECT_TRUE(Close(b.last, a.last, dt)) << "last_hidden_state";
        EXPECT_TRUE(Close(b.hidden, a.hidden, dt)) << "hidden_states";
        if (c.pooler) { EXPECT_TRUE(Close(b.pooled, a.pooled, dt)) << "pooler_output"; }
        // last_hidden_state is hidden_states[L] exactly.
        const size_t NH = b.last.size();
        EXPECT_TRUE(BitIdentical(b.last, std::vector<float>(b.hidden.end() - NH, b.hidden.end())));
    }
    // embedding_output entry: hidden_states[0] of the CPU run, fed back.
    Outputs a0;
    ASSERT_EQ(Forward(cpu.get(), x, "ids", false, false, true, &a0), EMBER_OK);
    x.embedding_output.assign(a0.hidden.begin(), a0.hidden.begin() + a0.last.size());
    Outputs a, b;
    ASSERT_EQ(Forward(cpu.get(), x, "embedding_output", false, c.pooler, false, &a), EMBER_OK);
    ASSERT_EQ(Forward(gpu.get(), x, "embedding_output", false, c.pooler, false, &b), EMBER_OK)
        << ember_last_error();
    EXPECT_TRUE(Close(b.last, a.last, dt)) << "embedding_output entry";
}

TEST_P(CudaModel, IdsAndGatheredEmbedsAreBitIdentical) {
    REQUIRE_CUDA_DEVICE();
    const ModelCase &c = GetParam().c;
    Model gpu = MakeModel(c, EMBER_BACKEND_CUDA, GetParam().dt);
    ASSERT_TRUE(gpu);
    Inputs x = MakeInputs(c, 9);
    const size_t N = (size_t)c.B * c.S;
    Dev d_ids = Upload(x.ids), d_emb(N * c.H, 4);
    ASSERT_EQ(ember_embed_tokens(gpu.get(), d_ids.as<int32_t>(), (int64_t)N, d_emb.as<float>(), nullptr),
              EMBER_OK)
        << ember_last_error();
    x.embeds = DownloadF32(d_emb.p, N * c.H);
    // The gather widens the table exactly: it equals the table copy's rows.
    std::vector<float> word = Poisoned((size_t)c.V * c.H);
    Dev d_word(word.size(), 4);
    ASSERT_EQ(ember_table_copy(gpu.get(), EMBER_TABLE_WORD, d_word.as<float>(), word.size(), nullptr),
              EMBER_OK);
    word = DownloadF32(d_word.p, word.size());
    for (size_t t = 0; t < N; t += 7)
        ASSERT_TRUE(std::equal(x.embeds.begin() + t * c.H, x.embeds.begin() + (t + 1) * c.H,
                               word.begin() + (size_t)x.ids[t] * c.H));
    Outputs a, b;
    ASSERT_EQ(Forward(gpu.get(), x, "ids", true, c.pooler, true, &a), EMBER_OK) << ember_last_error();
    ASSERT_EQ(Forward(gpu.get(), x, "embeds", true, c.pooler, true, &b), EMBER_OK) << ember_last_error();
    EXPECT_TRUE(BitIdentical(a.last, b.last)) << "sum |ids - embeds| = " << SumAbsDiff(a.last, b.last);
    EXPECT_TRUE(BitIdentical(a.hidden, b.hidden));
    if (c.pooler) { EXPECT_TRUE(BitIdentical(a.pooled, b.pooled)); }
}

TEST_P(CudaModel, RepeatedRunsAreBitIdentical) {
    REQUIRE_CUDA_DEVICE();
    const ModelCase &c = GetParam().c;
    Model gpu = MakeModel(c, EMBER_BACKEND_CUDA, GetParam().dt);
    ASSERT_TRUE(gpu);
    Inputs x = MakeInputs(c, 13);
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    Outputs a, b;
    ASSERT_EQ(Forward(gpu.get(), x, "ids", true, c.pooler, true, &a), EMBER_OK) << ember_last_error();
    ASSERT_EQ(Forward(gpu.get(), x, "ids", true, c.pooler, true, &b, s), EMBER_OK) << ember_last_error();
    CUDA_OK(cudaStreamDestroy(s));
    EXPECT_TRUE(BitIdentical(a.last, b.last));
    EXPECT_TRUE(BitIdentical(a.hidden, b.hidden));
    if (c.pooler) { EXPECT_TRUE(BitIdentical(a.pooled, b.pooled)); }
}

// The caller's output buffers may lie anywhere (here 4 bytes past an allocation's start):
// the bits must not depend on it (a vectorised path chosen by the caller's alignment would
// change the reduction order).
TEST_P(CudaModel, UnalignedOutputsGiveTheSameBits) {
    REQUIRE_CUDA_DEVICE();
    const ModelCase &c = GetParam().c;
    Model gpu = MakeModel(c, EMBER_BACKEND_CUDA, GetParam().dt);
    ASSERT_TRUE(gpu);
    Inputs x = MakeInputs(c, 17);
    Outputs a;
    ASSERT_EQ(Forward(gpu.get(), x, "ids", true, false, true, &a), EMBER_OK) << ember_last_error();
    const size_t N = (size_t)c.B * c.S, H = (size_t)c.H, L = (size_t)c.L;
    Dev ids = Upload(x.ids), mask = Upload(x.mask), types = Upload(x.types), pos = Upload(x.positions);
    Dev last(N * H + 1, 4), hid((L + 1) * N * H + 1, 4);
    ember_inputs in{};
    in.batch = c.B;
    in.seq_len = c.S;
    in.input_ids = ids.as<int32_t>();
    in.attention_mask = mask.as<int32_t>();
    in.token_type_ids = types.as<int32_t>();
    in.position_ids = pos.as<int32_t>();
    ember_outputs out{};
    out.last_hidden_state = last.as<float>() + 1;
    out.hidden_states = hid.as<float>() + 1;
    ASSERT_EQ(ember_forward(gpu.get(), &in, &out, nullptr), EMBER_OK) << ember_last_error();
    EXPECT_TRUE(BitIdentical(DownloadF32(out.last_hidden_state, N * H), a.last));
    EXPECT_TRUE(BitIdentical(DownloadF32(out.hidden_states, (L + 1) * N * H), a.hidden));
}

std::vector<ModelParam> ModelParams() {
    std::vector<ModelParam> v;
    for (const ModelCase &c : kModels)
        for (ember_dtype dt : kDtypes) v.push_back({c, dt});
    return v;
}

INSTANTIATE_TEST_SUITE_P(Random, CudaModel, ::testing::ValuesIn(ModelParams()),
                         [](const ::testing::TestParamInfo<ModelParam> &i) {
                             return std::string(i.param.c.name) + "_" + DtName(i.param.dt);
                         });

// Bad values are found on the device, reported by kind, and the model stays usable.
TEST(CudaModelErrors, DeviceDetectedBadInputs) {
    REQUIRE_CUDA_DEVICE();
    const ModelCase &c = kModels[2];
    Model gpu = MakeModel(c, EMBER_BACKEND_CUDA, EMBER_DTYPE_F32);
    ASSERT_TRUE(gpu);
    Inputs good = MakeInputs(c, 21);
    Outputs before;
    ASSERT_EQ(Forward(gpu.get(), good, "ids", true, c.pooler, false, &before), EMBER_OK) << ember_last_error();
    struct Bad {
        const char *what;
        std::vector<int32_t> Inputs::*field;
        int32_t value;
        ember_status st;
    } bads[] = {
        {"input_ids", &Inputs::ids, c.V, EMBER_ERR_OUT_OF_RANGE},
        {"input_ids", &Inputs::ids, -1, EMBER_ERR_OUT_OF_RANGE},
        {"token_type_ids", &Inputs::types, c.T, EMBER_ERR_OUT_OF_RANGE},
        {"position_ids", &Inputs::positions, c.P, EMBER_ERR_OUT_OF_RANGE},
        {"attention_mask", &Inputs::mask, 2, EMBER_ERR_INVALID_ARGUMENT},
    };
    for (const Bad &bad : bads) {
        SCOPED_TRACE(::testing::Message() << bad.what << " = " << bad.value);
        Inputs x = good;
        (x.*bad.field)[4] = bad.value;
        Outputs o;
        ember_status st = Forward(gpu.get(), x, "ids", true, c.pooler, false, &o);
        EXPECT_EQ(st, bad.st) << Why(st);
        EXPECT_NE(std::string(ember_last_error()).find(bad.what), std::string::npos)
            << ember_last_error();
        Outputs after;
        ASSERT_EQ(Forward(gpu.get(), good, "ids", true, c.pooler, false, &after), EMBER_OK)
            << ember_last_error();
        EXPECT_TRUE(BitIdentical(before.last, after.last));
    }
    // ember_embed_tokens validates on the device too.
    std::vector<int32_t> ids = good.ids;
    ids[1] = c.V + 5;
    Dev d_ids = Upload(ids), d_out(ids.size() * c.H, 4);
    ember_status st = ember_embed_tokens(gpu.get(), d_ids.as<int32_t>(), (int64_t)ids.size(),
                                         d_out.as<float>(), nullptr);
    EXPECT_EQ(st, EMBER_ERR_OUT_OF_RANGE) << Why(st);
}

TEST(CudaModelErrors, CapacityAndReserve) {
    REQUIRE_CUDA_DEVICE();
    ModelCase c = kModels[2];
    Model gpu = MakeModel(c, EMBER_BACKEND_CUDA, EMBER_DTYPE_F32);
    ASSERT_TRUE(gpu);
    size_t wb = 0, sb0 = 0, sb1 = 0;
    ASSERT_EQ(ember_model_memory(gpu.get(), &wb, &sb0), EMBER_OK);
    EXPECT_GT(wb, 0u);
    EXPECT_GT(sb0, 0u);
    ModelCase big = c;
    big.B = c.B * 4;
    big.S = c.S * 3;
    Inputs x = MakeInputs(big, 3);
    Outputs o;
    ember_status st = Forward(gpu.get(), x, "ids", true, false, false, &o);
    EXPECT_EQ(st, EMBER_ERR_CAPACITY) << Why(st);
    ASSERT_EQ(ember_model_reserve(gpu.get(), big.B, big.S), EMBER_OK) << ember_last_error();
    ASSERT_EQ(ember_model_memory(gpu.get(), &wb, &sb1), EMBER_OK);
    EXPECT_GT(sb1, sb0);
    ASSERT_EQ(Forward(gpu.get(), x, "ids", true, false, false, &o), EMBER_OK) << ember_last_error();
    Model cpu = MakeModel(big, EMBER_BACKEND_REFERENCE, EMBER_DTYPE_F32);
    Outputs r;
    ASSERT_EQ(Forward(cpu.get(), x, "ids", true, false, false, &r), EMBER_OK);
    EXPECT_TRUE(Close(o.last, r.last, EMBER_DTYPE_F32));
}

TEST(CudaModelErrors, TableCopyMatchesCpuTables) {
    REQUIRE_CUDA_DEVICE();
    const ModelCase &c = kModels[2];
    Model cpu = MakeModel(c, EMBER_BACKEND_REFERENCE, EMBER_DTYPE_F32);
    for (ember_dtype dt : kDtypes) {
        Model gpu = MakeModel(c, EMBER_BACKEND_CUDA, dt);
        ASSERT_TRUE(gpu);
        for (ember_table t : {EMBER_TABLE_WORD, EMBER_TABLE_POSITION, EMBER_TABLE_TOKEN_TYPE}) {
            int64_t rows, cols;
            ASSERT_EQ(ember_table_shape(gpu.get(), t, &rows, &cols), EMBER_OK);
            const size_t n = (size_t)(rows * cols);
            std::vector<float> ref(n);
            ASSERT_EQ(ember_table_copy(cpu.get(), t, ref.data(), n, nullptr), EMBER_OK);
            Dev d(n, 4);
            ASSERT_EQ(ember_table_copy(gpu.get(), t, d.as<float>(), n, nullptr), EMBER_OK)
                << ember_last_error();
            std::vector<float> got = DownloadF32(d.p, n);
            if (dt == EMBER_DTYPE_F32) {
                EXPECT_TRUE(BitIdentical(got, ref)) << "table " << t;
            } else {
                std::vector<float> rounded;
                ToDt(ref, dt, &rounded);
                EXPECT_TRUE(BitIdentical(got, rounded)) << DtName(dt) << " table " << t;
            }
        }
    }
}

// ---- HF goldens on the GPU ---------------------------------------------------------------------

// Every golden case of tests/data (HF float32 outputs) through the CUDA backend: f32 with the
// HF tolerance, f16/bf16 within twice HF's own f16/bf16 error on these checkpoints.
TEST(CudaGolden, MatchesHuggingFace) {
    REQUIRE_CUDA_DEVICE();
    const std::vector<GoldenCase> cases = LoadManifest();
    ASSERT_GE(cases.size(), 100u) << "tests/data/goldens/manifest.json missing or short";
    int ran = 0;
    for (const GoldenCase &g : cases) {
        const std::string &model_dir = g.model_dir, &file = g.file, &entry = g.entry;
        const bool pooler = g.pooler, hidden = g.hidden_states, logits = g.logits;
        StFile f = OpenSt(DataPath(file));
        ASSERT_TRUE(f);
        Inputs x{};
        const ember_st_tensor *t = ember_st_find(f.get(), entry.c_str());
        ASSERT_NE(t, nullptr) << file;
        x.B = (int)t->shape[0];
        x.S = (int)t->shape[1];
        x.mask = ReadI32(f.get(), "attention_mask");
        x.types = ReadI32(f.get(), "token_type_ids");
        x.positions = ReadI32(f.get(), "position_ids");
        const char *run_entry = "ids";
        if (entry == "input_ids") x.ids = ReadI32(f.get(), "input_ids");
        else if (entry == "inputs_embeds") x.embeds = ReadF32(f.get(), "inputs_embeds"), run_entry = "embeds";
        else x.embedding_output = ReadF32(f.get(), "embedding_output"), run_entry = "embedding_output";
        for (ember_dtype dt : kDtypes) {
            SCOPED_TRACE(::testing::Message() << file << " " << DtName(dt));
            ember_load_options opt;
            ember_load_options_init(&opt);
            opt.backend = EMBER_BACKEND_CUDA;
            opt.compute_dtype = dt;
            opt.max_batch = x.B;
            opt.max_seq_len = x.S;
            ember_model *m = nullptr;
            ember_status st = ember_model_load(DataPath(model_dir).c_str(), &opt, &m);
            ASSERT_EQ(st, EMBER_OK) << Why(st);
            Model gpu(m);
            Outputs o;
            st = Forward(gpu.get(), x, run_entry, true, pooler, hidden, &o, nullptr, logits);
            ASSERT_EQ(st, EMBER_OK) << Why(st);
            auto check = [&](const std::vector<float> &got, const char *name) {
                std::vector<float> want = ReadF32(f.get(), (std::string("expected.") + name).c_str());
                if (dt == EMBER_DTYPE_F32)
                    EXPECT_TRUE(AllClose(got, want, ember_tol::kHfAbs, ember_tol::kHfRel)) << name;
                else
                    EXPECT_TRUE(RelL2Close(got, want,
                                           dt == EMBER_DTYPE_F16 ? ember_tol::kCudaGoldenF16RelL2
                                                                 : ember_tol::kCudaGoldenBf16RelL2))
                        << name;
            };
            check(o.last, "last_hidden_state");
            if (pooler) check(o.pooled, "pooler_output");
            if (hidden) check(o.hidden, "hidden_states");
            if (logits && dt == EMBER_DTYPE_F32) check(o.logits, "logits");
            if (logits && dt != EMBER_DTYPE_F32) {
                EXPECT_TRUE(LogitsClose(o.logits, ReadF32(f.get(), "expected.logits"), dt)) << "logits";
            }
        }
        ran++;
    }
    EXPECT_GE(ran, 100);
}

// ---- the list of GPU tests -----------------------------------------------------------------

// The GPU tests of this binary, by full gtest name: every test whose body calls
// REQUIRE_CUDA_DEVICE() (cuda_test.h registers its class before main), matched with the
// registered tests (TEST_P instances "Prefix/Suite.Name/param" too). Runs without a GPU.
// With EMBER_GPU_TEST_LIST=FILE it writes the names there, one a line: tools/gpu-check.sh
// runs exactly these on a GPU machine and checks that gtest ran as many.
TEST(GpuTestList, EveryMarkedTestIsRegistered) {
    std::set<std::string> marked;
    for (const std::string &c : GpuTestClasses()) marked.insert(c.substr(c.rfind(':') + 1));
    std::set<std::string> matched;
    std::vector<std::string> names;
    const ::testing::UnitTest &ut = *::testing::UnitTest::GetInstance();
    for (int i = 0; i < ut.total_test_suite_count(); i++) {
        const ::testing::TestSuite &ts = *ut.GetTestSuite(i);
        const std::string suite = ts.name();
        const std::string bare_suite = suite.substr(suite.find('/') + 1);  // "Prefix/Suite"
        for (int j = 0; j < ts.total_test_count(); j++) {
            const std::string name = ts.GetTestInfo(j)->name();
            const std::string cls = bare_suite + "_" + name.substr(0, name.find('/')) + "_Test";
            if (!marked.count(cls)) continue;
            matched.insert(cls);
            names.push_back(suite + "." + name);
        }
    }
    for (const std::string &c : marked)
        EXPECT_TRUE(matched.count(c)) << "REQUIRE_CUDA_DEVICE() in " << c
                                      << ", which is no TEST body: put it first in the test itself";
    EXPECT_GE(names.size(), 100u) << "too few GPU tests found: is REQUIRE_CUDA_DEVICE() marking them?";
    if (const char *path = std::getenv("EMBER_GPU_TEST_LIST")) {
        std::ofstream out(path, std::ios::trunc);
        for (const std::string &n : names) out << n << "\n";
        ASSERT_TRUE(out.good()) << "cannot write " << path;
    }
    printf("%zu GPU tests from %zu marked test bodies\n", names.size(), marked.size());
}

// ---- the family on random weights: CUDA vs CPU ------------------------------------------------

struct FamilyCase {
    const char *name;
    ember_arch arch;
    ember_head head;
    int V, E, H, NH, I, P, T, labels, pad, B, S;
};

const FamilyCase kFamily[] = {
    {"roberta_seq_B3_S13", EMBER_ARCH_ROBERTA, EMBER_HEAD_SEQUENCE_CLASSIFICATION, 90, 48, 48, 4, 80,
     40, 1, 3, 1, 3, 13},
    {"xlmr_tok_B2_S37", EMBER_ARCH_XLM_ROBERTA, EMBER_HEAD_TOKEN_CLASSIFICATION, 70, 32, 32, 2, 64,
     50, 1, 7, 2, 2, 37},
    {"distilbert_seq_B5_S7", EMBER_ARCH_DISTILBERT, EMBER_HEAD_SEQUENCE_CLASSIFICATION, 60, 36, 36, 3,
     52, 16, 0, 2, 0, 5, 7},
    {"electra_small_seq_B3_S11", EMBER_ARCH_ELECTRA, EMBER_HEAD_SEQUENCE_CLASSIFICATION, 80, 24, 40,
     5, 64, 32, 2, 1, 0, 3, 11},
    {"electra_gen_tok_B2_S9", EMBER_ARCH_ELECTRA, EMBER_HEAD_TOKEN_CLASSIFICATION, 50, 64, 32, 2, 48,
     20, 3, 5, 0, 2, 9},
    {"bert_seq_B4_S5", EMBER_ARCH_BERT, EMBER_HEAD_SEQUENCE_CLASSIFICATION, 40, 32, 32, 2, 40, 8, 2,
     3, 0, 4, 5},
};

Model MakeFamily(const FamilyCase &c, ember_backend backend, ember_dtype dt) {
    ember_config cfg{};
    cfg.vocab_size = c.V;
    cfg.hidden_size = c.H;
    cfg.embedding_size = c.E;
    cfg.num_hidden_layers = 2;
    cfg.num_attention_heads = c.NH;
    cfg.intermediate_size = c.I;
    cfg.max_position_embeddings = c.P;
    cfg.type_vocab_size = c.T;
    cfg.pad_token_id = c.pad;
    cfg.layer_norm_eps = 1e-5;
    cfg.hidden_act = EMBER_ACT_GELU;
    cfg.has_pooler = c.arch == EMBER_ARCH_BERT;
    cfg.arch = c.arch;
    cfg.head = c.head;
    cfg.num_labels = c.labels;
    return MakeRandom(cfg, c.B, c.S, backend, dt, 77);
}

struct FamilyParam {
    FamilyCase c;
    ember_dtype dt;
};

void PrintTo(const FamilyParam &p, std::ostream *os) { *os << p.c.name << "_" << DtName(p.dt); }

class CudaFamily : public ::testing::TestWithParam<FamilyParam> {};

// Ids with pad ids inside rows (RoBERTa's positions), a mask with holes, and every entry point,
// with and without padding removal: the family's embeddings, projection and heads on the GPU
// against the CPU reference.
TEST_P(CudaFamily, MatchesCpuBackend) {
    REQUIRE_CUDA_DEVICE();
    const FamilyCase &c = GetParam().c;
    const ember_dtype dt = GetParam().dt;
    Model cpu = MakeFamily(c, EMBER_BACKEND_REFERENCE, EMBER_DTYPE_F32);
    Model gpu = MakeFamily(c, EMBER_BACKEND_CUDA, dt);
    ASSERT_TRUE(cpu && gpu);
    Inputs x{};
    x.B = c.B;
    x.S = c.S;
    x.ids = RandomInts((size_t)c.B * c.S, c.V, 31);
    for (size_t t = 3; t < x.ids.size(); t += 5) x.ids[t] = c.pad;
    x.mask = RandomMask(c.B, c.S, false, 32);
    if (c.T > 0) x.types = RandomInts((size_t)c.B * c.S, c.T, 33);
    x.embeds = Random((size_t)c.B * c.S * c.E, 34);
    for (const char *entry : {"ids", "embeds"})
        for (unsigned flags : {0u, (unsigned)EMBER_FORWARD_SKIP_MASKED}) {
            SCOPED_TRACE(::testing::Message() << entry << " flags " << flags);
            Outputs a, b;
            ASSERT_EQ(Forward(cpu.get(), x, entry, true, false, true, &a, nullptr, true, flags),
                      EMBER_OK)
                << ember_last_error();
            ASSERT_EQ(Forward(gpu.get(), x, entry, true, false, true, &b, nullptr, true, flags),
                      EMBER_OK)
                << ember_last_error();
            EXPECT_TRUE(Close(b.last, a.last, dt)) << "last_hidden_state";
            EXPECT_TRUE(Close(b.hidden, a.hidden, dt)) << "hidden_states";
            EXPECT_TRUE(LogitsClose(b.logits, a.logits, dt)) << "logits";
        }
}

// Half outputs (ember_outputs.dtype) and half inputs_embeds (embeds_dtype, E wide) with the
// family on the GPU: logits in F16 / BF16 are the model's f32 logits rounded once, and half
// embeddings give the outputs of their widened values, bit for bit.
TEST_P(CudaFamily, HalfLogitsAndHalfEmbeds) {
    REQUIRE_CUDA_DEVICE();
    const FamilyCase &c = GetParam().c;
    Model gpu = MakeFamily(c, EMBER_BACKEND_CUDA, GetParam().dt);
    ASSERT_TRUE(gpu);
    const size_t N = (size_t)c.B * c.S, E = (size_t)c.E, H = (size_t)c.H;
    const size_t NL = (c.head == EMBER_HEAD_TOKEN_CLASSIFICATION ? N : (size_t)c.B) * c.labels;
    std::vector<int32_t> ids = RandomInts(N, c.V, 41), mask = RandomMask(c.B, c.S, false, 42);
    std::vector<float> embeds = Random(N * E, 43);
    Dev d_ids = Upload(ids), d_mask = Upload(mask), last(N * H, 4), f32(NL, 4);
    auto run = [&](const void *emb, ember_dtype edt, void *logits, ember_dtype odt) {
        ember_inputs in{};
        in.batch = c.B;
        in.seq_len = c.S;
        in.input_ids = emb ? nullptr : d_ids.as<int32_t>();
        in.inputs_embeds = (const float *)emb;
        in.embeds_dtype = edt;
        in.attention_mask = d_mask.as<int32_t>();
        ember_outputs out{};
        out.dtype = odt;
        out.last_hidden_state = last.as<float>();
        out.logits = (float *)logits;
        return ember_forward(gpu.get(), &in, &out, nullptr);
    };
    ASSERT_EQ(run(nullptr, EMBER_DTYPE_F32, f32.p, EMBER_DTYPE_F32), EMBER_OK) << ember_last_error();
    const std::vector<float> ref = DownloadF32(f32.p, NL);
    for (ember_dtype odt : {EMBER_DTYPE_F16, EMBER_DTYPE_BF16}) {
        Dev half(NL, 2);
        ASSERT_EQ(run(nullptr, EMBER_DTYPE_F32, half.p, odt), EMBER_OK) << ember_last_error();
        std::vector<float> rounded;
        ToDt(ref, odt, &rounded);
        EXPECT_TRUE(BitIdentical(FromDt(half, odt), rounded)) << "logits in " << DtName(odt);
    }
    for (ember_dtype edt : {EMBER_DTYPE_F16, EMBER_DTYPE_BF16}) {
        std::vector<float> widened;
        Dev half = ToDt(embeds, edt, &widened);
        Dev wide = Upload(widened), a(NL, 4), b(NL, 4);
        ASSERT_EQ(run(wide.p, EMBER_DTYPE_F32, a.p, EMBER_DTYPE_F32), EMBER_OK) << ember_last_error();
        const std::vector<float> la = DownloadF32(last.p, N * H);
        ASSERT_EQ(run(half.p, edt, b.p, EMBER_DTYPE_F32), EMBER_OK) << ember_last_error();
        EXPECT_TRUE(BitIdentical(DownloadF32(last.p, N * H), la)) << "embeds in " << DtName(edt);
        EXPECT_TRUE(BitIdentical(DownloadF32(b.p, NL), DownloadF32(a.p, NL)));
    }
}

// The whole forward as one CUDA graph (the second call of a shape captures it, later calls
// replay it) with the family's E-wide embeddings and heads: every call, with new buffers, gives
// the bits of a plain call (one that asks for hidden_states, which never runs as a graph).
TEST_P(CudaFamily, GraphReplayWithLogitsIsBitIdentical) {
    REQUIRE_CUDA_DEVICE();
    const FamilyCase &c = GetParam().c;
    Model gpu = MakeFamily(c, EMBER_BACKEND_CUDA, GetParam().dt);
    ASSERT_TRUE(gpu);
    Inputs x{};
    x.B = c.B;
    x.S = c.S;
    x.ids = RandomInts((size_t)c.B * c.S, c.V, 51);
    x.mask = RandomMask(c.B, c.S, false, 52);
    if (c.T > 0) x.types = RandomInts((size_t)c.B * c.S, c.T, 53);
    x.embeds = Random((size_t)c.B * c.S * c.E, 54);
    for (const char *entry : {"ids", "embeds"}) {
        Outputs plain;
        ASSERT_EQ(Forward(gpu.get(), x, entry, true, false, true, &plain, nullptr, true), EMBER_OK)
            << ember_last_error();
        for (int call = 0; call < 4; call++) {
            SCOPED_TRACE(::testing::Message() << entry << " call " << call);
            Outputs o;
            ASSERT_EQ(Forward(gpu.get(), x, entry, true, false, false, &o, nullptr, true), EMBER_OK)
                << ember_last_error();
            EXPECT_TRUE(BitIdentical(o.last, plain.last)) << "last_hidden_state";
            EXPECT_TRUE(BitIdentical(o.logits, plain.logits)) << "logits";
        }
    }
    ember_cuda_graph_stats st{};
    ASSERT_EQ(ember_cuda_graph_stats_get(gpu.get(), &st), EMBER_OK);
    EXPECT_EQ(st.captured, 2) << "one graph per entry point";
    EXPECT_GE(st.replayed, 4);
}

std::vector<FamilyParam> FamilyParams() {
    std::vector<FamilyParam> v;
    for (const FamilyCase &c : kFamily)
        for (ember_dtype dt : kDtypes) v.push_back({c, dt});
    return v;
}

INSTANTIATE_TEST_SUITE_P(Random, CudaFamily, ::testing::ValuesIn(FamilyParams()),
                         [](const ::testing::TestParamInfo<FamilyParam> &i) {
                             return std::string(i.param.c.name) + "_" + DtName(i.param.dt);
                         });

}  // namespace

#endif  // EMBER_WITH_CUDA
