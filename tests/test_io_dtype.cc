// Half-precision inputs and outputs at the C API: ember_inputs.embeds_dtype,
// ember_outputs.dtype, ember_embed_tokens_as. Against the f32 path of the same model: half
// outputs must be exactly the f32 outputs rounded to nearest even (CPU: the f32 computation;
// CUDA: a model's f32 outputs are its dt values widened, so rounding them is lossless for
// odt = dt), half inputs exactly their widened values; and, through the tolerance table, the
// CUDA outputs in every dtype stay close to the CPU reference.
#include <cmath>
#include <cstring>
#include <random>

#include "kernels/ops.h"
#include "tests/ember_test.h"
#include "tests/tolerances.h"
#ifdef EMBER_WITH_CUDA
#include "tests/cuda_test.h"
#endif

using namespace ember_test;

namespace {

using Bytes = std::vector<uint8_t>;

size_t Size(ember_dtype dt) { return dt == EMBER_DTYPE_F32 ? 4 : 2; }
const char *Name(ember_dtype dt) {
    return dt == EMBER_DTYPE_F32 ? "f32" : dt == EMBER_DTYPE_F16 ? "f16" : "bf16";
}
constexpr ember_dtype kAll[] = {EMBER_DTYPE_F32, EMBER_DTYPE_F16, EMBER_DTYPE_BF16};

Bytes Convert(const Bytes &src, ember_dtype from, ember_dtype to) {
    const size_t n = src.size() / Size(from);
    Bytes out(n * Size(to));
    ember_ref_convert(out.data(), to, src.data(), from, (int64_t)n);
    return out;
}

Bytes F32Bytes(const std::vector<float> &v) {
    Bytes b(v.size() * 4);
    memcpy(b.data(), v.data(), b.size());
    return b;
}

std::vector<float> Widen(const Bytes &b, ember_dtype dt) {
    Bytes f = Convert(b, dt, EMBER_DTYPE_F32);
    std::vector<float> v(f.size() / 4);
    memcpy(v.data(), f.data(), f.size());
    return v;
}

// H = 72 (not a power of two), 2 layers, a pooler; B x S = 3 x 7 with holes in the mask.
ember_config Config() {
    ember_config c = {};
    c.vocab_size = 97;
    c.hidden_size = 72;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 6;
    c.intermediate_size = 100;
    c.max_position_embeddings = 32;
    c.type_vocab_size = 2;
    c.layer_norm_eps = 1e-12;
    c.hidden_act = EMBER_ACT_GELU;
    c.has_pooler = 1;
    return c;
}

struct Batch {
    int B = 3, S = 7;
    std::vector<int32_t> ids, mask, types;
    std::vector<float> embeds;  // [B,S,H], values exactly representable in bf16 (so in f16 too)
};

Batch MakeBatch(int H) {
    Batch x;
    std::mt19937 rng(17);
    const int N = x.B * x.S;
    for (int t = 0; t < N; t++) {
        x.ids.push_back((int32_t)(rng() % 97));
        x.types.push_back((int32_t)(rng() % 2));
        x.mask.push_back(t % x.S < 5 - t / x.S || t % x.S == 6 ? 1 : 0);  // holes, ragged
    }
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> e((size_t)N * H);
    for (float &v : e) v = nd(rng);
    x.embeds = Widen(Convert(F32Bytes(e), EMBER_DTYPE_F32, EMBER_DTYPE_BF16), EMBER_DTYPE_BF16);
    return x;
}

struct Out {
    Bytes last, pool, hidden;
};

enum Entry { kIds, kEmbeds, kEmbeddingOutput };

// Host buffers for the CPU backend; a CUDA model gets device copies (upload, poison, download).
struct Buffers {
    virtual ~Buffers() = default;
    virtual const void *In(const void *p, size_t bytes) = 0;
    virtual void *Out(size_t bytes) = 0;
    virtual Bytes Get(const void *p, size_t bytes) = 0;
};

struct HostBuffers : Buffers {
    std::vector<Bytes> keep;
    const void *In(const void *p, size_t) override { return p; }
    void *Out(size_t bytes) override {
        keep.emplace_back(bytes, 0xFF);  // NaN in f32, f16 and bf16
        return keep.back().data();
    }
    Bytes Get(const void *p, size_t bytes) override {
        const uint8_t *b = static_cast<const uint8_t *>(p);
        return Bytes(b, b + bytes);
    }
};

ember_status Forward(ember_model *m, Buffers &buf, const Batch &x, Entry entry, ember_dtype edt,
                 ember_dtype odt, unsigned flags, Out *o) {
    ember_config c;
    ember_model_config(m, &c);
    const int H = c.hidden_size, L = c.num_hidden_layers, N = x.B * x.S;
    const size_t os = Size(odt);
    Bytes e = Convert(F32Bytes(x.embeds), EMBER_DTYPE_F32, edt);
    ember_inputs in = {};
    in.batch = x.B;
    in.seq_len = x.S;
    in.attention_mask = (const int32_t *)buf.In(x.mask.data(), N * 4);
    in.flags = flags;
    in.embeds_dtype = edt;
    if (entry == kIds) in.input_ids = (const int32_t *)buf.In(x.ids.data(), N * 4);
    else if (entry == kEmbeds) in.inputs_embeds = (const float *)buf.In(e.data(), e.size());
    else in.embedding_output = (const float *)buf.In(e.data(), e.size());
    if (entry != kEmbeddingOutput) in.token_type_ids = (const int32_t *)buf.In(x.types.data(), N * 4);
    ember_outputs out = {};
    out.dtype = odt;
    out.last_hidden_state = (float *)buf.Out((size_t)N * H * os);
    out.pooler_output = (float *)buf.Out((size_t)x.B * H * os);
    out.hidden_states = (float *)buf.Out((size_t)(L + 1) * N * H * os);
    const ember_status st = ember_forward(m, &in, &out, nullptr);
    if (st != EMBER_OK) return st;
    o->last = buf.Get(out.last_hidden_state, (size_t)N * H * os);
    o->pool = buf.Get(out.pooler_output, (size_t)x.B * H * os);
    o->hidden = buf.Get(out.hidden_states, (size_t)(L + 1) * N * H * os);
    return EMBER_OK;
}

Model Random(ember_backend be, ember_dtype dt) {
    ember_load_options opt;
    ember_load_options_init(&opt);
    opt.backend = be;
    opt.compute_dtype = dt;
    opt.max_batch = 4;
    opt.max_seq_len = 8;
    const ember_config c = Config();
    ember_model *m = nullptr;
    ember_status st = ember_model_init_random(&c, 23, &opt, &m);
    EXPECT_EQ(st, EMBER_OK) << Why(st);
    return Model(m);
}

// odt outputs are the f32 outputs rounded; and nothing is left unwritten (no NaN).
void ExpectRounded(const Out &f32, const Out &half, ember_dtype odt, const std::string &what) {
    EXPECT_EQ(half.last, Convert(f32.last, EMBER_DTYPE_F32, odt)) << what << " last_hidden_state";
    EXPECT_EQ(half.pool, Convert(f32.pool, EMBER_DTYPE_F32, odt)) << what << " pooler_output";
    EXPECT_EQ(half.hidden, Convert(f32.hidden, EMBER_DTYPE_F32, odt)) << what << " hidden_states";
    for (const Bytes *b : {&half.last, &half.pool, &half.hidden})
        for (float v : Widen(*b, odt)) ASSERT_TRUE(std::isfinite(v)) << what;
}

// ---- the host conversion itself, on values whose rounding is known ----------------------------

TEST(IoDtype, RefConvertRoundsToNearestEven) {
    struct C {
        float f;
        uint16_t h, bf;
    };
    const C cases[] = {
        {1.0f, 0x3C00, 0x3F80},
        {-2.0f, 0xC000, 0xC000},
        {65504.0f, 0x7BFF, 0x4780},           // largest half
        {65520.0f, 0x7C00, 0x4780},           // half: ties away to Inf; bf16 rounds to even
        {1e6f, 0x7C00, 0x4974},               // half overflow
        {0x1p-24f, 0x0001, 0x3380},           // smallest half subnormal
        {0x1p-25f, 0x0000, 0x3300},           // tie: to even (0)
        {0x1.8p-24f, 0x0002, 0x33C0},         // tie: to even (2)
        {0x1p-14f, 0x0400, 0x3880},           // smallest half normal
        {1.0f + 0x1p-11f, 0x3C00, 0x3F80},    // half tie to even (down)
        {1.0f + 0x3p-11f, 0x3C02, 0x3F80},    // half tie to even (up)
        {1.0f + 0x1p-8f, 0x3C04, 0x3F80},     // bf16 tie to even (down)
        {1.0f + 0x3p-8f, 0x3C0C, 0x3F82},     // bf16 tie to even (up)
        {INFINITY, 0x7C00, 0x7F80},
        {-INFINITY, 0xFC00, 0xFF80},
    };
    for (const C &c : cases) {
        uint16_t h, bf;
        ember_ref_convert(&h, EMBER_DTYPE_F16, &c.f, EMBER_DTYPE_F32, 1);
        ember_ref_convert(&bf, EMBER_DTYPE_BF16, &c.f, EMBER_DTYPE_F32, 1);
        EXPECT_EQ(h, c.h) << c.f;
        EXPECT_EQ(bf, c.bf) << c.f;
    }
    const float nan = std::nanf("");
    uint16_t h, bf;
    ember_ref_convert(&h, EMBER_DTYPE_F16, &nan, EMBER_DTYPE_F32, 1);
    ember_ref_convert(&bf, EMBER_DTYPE_BF16, &nan, EMBER_DTYPE_F32, 1);
    EXPECT_TRUE(std::isnan(ember_f16_to_f32(h)) && std::isnan(ember_bf16_to_f32(bf)));
    // every finite half survives the round trip through f32
    for (uint32_t v = 0; v < 0x10000; v++) {
        const uint16_t x = (uint16_t)v;
        if ((x & 0x7C00) == 0x7C00) continue;
        float f;
        uint16_t back;
        ember_ref_convert(&f, EMBER_DTYPE_F32, &x, EMBER_DTYPE_F16, 1);
        ember_ref_convert(&back, EMBER_DTYPE_F16, &f, EMBER_DTYPE_F32, 1);
        ASSERT_EQ(back, x);
    }
}

// ---- CPU (both backends: the conversions are their shared driver's) -----------------------------

class IoDtypeCpu : public ::testing::TestWithParam<ember_backend> {};
INSTANTIATE_TEST_SUITE_P(Cpu, IoDtypeCpu, ::testing::Values(EMBER_BACKEND_CPU, EMBER_BACKEND_REFERENCE),
                         [](const ::testing::TestParamInfo<ember_backend> &i) {
                             return BackendName(i.param);
                         });

TEST_P(IoDtypeCpu, HalfOutputsAreTheF32OutputsRounded) {
    Model m = Random(GetParam(), EMBER_DTYPE_F32);
    ASSERT_TRUE(m);
    const Batch x = MakeBatch(Config().hidden_size);
    HostBuffers buf;
    for (unsigned flags : {0u, (unsigned)EMBER_FORWARD_SKIP_MASKED}) {
        Out f32;
        ASSERT_EQ(Forward(m.get(), buf, x, kIds, EMBER_DTYPE_F32, EMBER_DTYPE_F32, flags, &f32),
                  EMBER_OK) << ember_last_error();
        for (ember_dtype odt : {EMBER_DTYPE_F16, EMBER_DTYPE_BF16}) {
            Out h;
            ASSERT_EQ(Forward(m.get(), buf, x, kIds, EMBER_DTYPE_F32, odt, flags, &h), EMBER_OK)
                << ember_last_error();
            ExpectRounded(f32, h, odt, std::string(Name(odt)) + (flags ? " packed" : ""));
        }
    }
}

TEST_P(IoDtypeCpu, HalfInputsAreTheirWidenedValues) {
    Model m = Random(GetParam(), EMBER_DTYPE_F32);
    ASSERT_TRUE(m);
    const Batch x = MakeBatch(Config().hidden_size);
    HostBuffers buf;
    for (Entry entry : {kEmbeds, kEmbeddingOutput})
        for (unsigned flags : {0u, (unsigned)EMBER_FORWARD_SKIP_MASKED}) {
            Out f32;
            ASSERT_EQ(Forward(m.get(), buf, x, entry, EMBER_DTYPE_F32, EMBER_DTYPE_F32, flags, &f32),
                      EMBER_OK);
            for (ember_dtype edt : {EMBER_DTYPE_F16, EMBER_DTYPE_BF16}) {
                Out h;
                ASSERT_EQ(Forward(m.get(), buf, x, entry, edt, EMBER_DTYPE_F32, flags, &h), EMBER_OK)
                    << ember_last_error();
                EXPECT_EQ(h.last, f32.last) << Name(edt) << " entry " << entry << " flags " << flags;
                EXPECT_EQ(h.hidden, f32.hidden) << Name(edt) << " entry " << entry;
            }
        }
}

TEST_P(IoDtypeCpu, EmbedTokensAs) {
    Model m = Random(GetParam(), EMBER_DTYPE_F32);
    ASSERT_TRUE(m);
    const int H = Config().hidden_size;
    const std::vector<int32_t> ids = {0, 96, 5, 5, 41, 7, 13};
    std::vector<float> f32 = Poisoned(ids.size() * H);
    ASSERT_EQ(ember_embed_tokens(m.get(), ids.data(), (int64_t)ids.size(), f32.data(), nullptr),
              EMBER_OK);
    for (ember_dtype odt : kAll) {
        Bytes got(ids.size() * H * Size(odt), 0xFF);
        ASSERT_EQ(ember_embed_tokens_as(m.get(), ids.data(), (int64_t)ids.size(), odt, got.data(),
                                        0, nullptr),
                  EMBER_OK) << ember_last_error();
        EXPECT_EQ(got, Convert(F32Bytes(f32), EMBER_DTYPE_F32, odt)) << Name(odt);
    }
}

TEST(IoDtype, BadDtypesAndHalfNaNAreRejected) {
    Model m = Random(EMBER_BACKEND_CPU, EMBER_DTYPE_F32);
    ASSERT_TRUE(m);
    const Batch x = MakeBatch(Config().hidden_size);
    HostBuffers buf;
    Out before, after, junk;
    ASSERT_EQ(Forward(m.get(), buf, x, kIds, EMBER_DTYPE_F32, EMBER_DTYPE_F16, 0, &before), EMBER_OK);
    EXPECT_EQ(Forward(m.get(), buf, x, kEmbeds, (ember_dtype)7, EMBER_DTYPE_F32, 0, &junk),
              EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(ember_last_error()).find("inputs.embeds_dtype = 7"), std::string::npos);
    EXPECT_EQ(Forward(m.get(), buf, x, kIds, EMBER_DTYPE_F32, (ember_dtype)-1, 0, &junk),
              EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(ember_last_error()).find("outputs.dtype = -1"), std::string::npos);
    uint16_t out[72];
    EXPECT_EQ(ember_embed_tokens_as(m.get(), x.ids.data(), 1, (ember_dtype)3, out, 0, nullptr),
              EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_embed_tokens_as(m.get(), x.ids.data(), 1, EMBER_DTYPE_F16, out, 0x4, nullptr),
              EMBER_ERR_INVALID_ARGUMENT);
    // a NaN in f16 inputs_embeds is named like an f32 one, and nothing is written
    const int H = Config().hidden_size;
    Bytes e = Convert(F32Bytes(x.embeds), EMBER_DTYPE_F32, EMBER_DTYPE_F16);
    const uint16_t qnan = 0x7E00;
    memcpy(e.data() + ((size_t)(1 * x.S + 2) * H + 3) * 2, &qnan, 2);
    std::vector<float> h = Poisoned((size_t)x.B * x.S * H);
    ember_inputs in = {};
    in.batch = x.B;
    in.seq_len = x.S;
    in.inputs_embeds = (const float *)e.data();
    in.embeds_dtype = EMBER_DTYPE_F16;
    ember_outputs o = {};
    o.last_hidden_state = h.data();
    EXPECT_EQ(ember_forward(m.get(), &in, &o, nullptr), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(ember_last_error()).find("inputs_embeds[1][2][3] = nan"), std::string::npos)
        << ember_last_error();
    for (float v : h) ASSERT_TRUE(std::isnan(v));
    ASSERT_EQ(Forward(m.get(), buf, x, kIds, EMBER_DTYPE_F32, EMBER_DTYPE_F16, 0, &after), EMBER_OK);
    EXPECT_EQ(after.last, before.last);
}

}  // namespace

// ---- CUDA ---------------------------------------------------------------------------------------
#ifdef EMBER_WITH_CUDA
namespace {

struct DeviceBuffers : Buffers {
    std::vector<void *> keep;
    ~DeviceBuffers() override {
        for (void *p : keep) cudaFree(p);
    }
    void *Alloc(size_t bytes) {
        void *p = nullptr;
        CUDA_OK(cudaMalloc(&p, bytes ? bytes : 1));
        keep.push_back(p);
        return p;
    }
    const void *In(const void *p, size_t bytes) override {
        void *d = Alloc(bytes);
        CUDA_OK(cudaMemcpy(d, p, bytes, cudaMemcpyHostToDevice));
        return d;
    }
    void *Out(size_t bytes) override {
        void *d = Alloc(bytes);
        CUDA_OK(cudaMemset(d, 0xFF, bytes));
        return d;
    }
    Bytes Get(const void *p, size_t bytes) override {
        Bytes b(bytes);
        CUDA_OK(cudaDeviceSynchronize());
        CUDA_OK(cudaMemcpy(b.data(), p, bytes, cudaMemcpyDeviceToHost));
        return b;
    }
};

double RelL2(const std::vector<float> &a, const std::vector<float> &ref) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); i++) {
        num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    return std::sqrt(num / den);
}

// The table's bound for the coarser of compute and output dtype (relative L2); f32 both ways
// is checked against kCudaF32Abs elementwise by the existing CudaModel tests, and here too.
double Bound(ember_dtype dt, ember_dtype odt) {
    if (dt == EMBER_DTYPE_BF16 || odt == EMBER_DTYPE_BF16) return ember_tol::kCudaBf16RelL2;
    if (dt == EMBER_DTYPE_F16 || odt == EMBER_DTYPE_F16) return ember_tol::kCudaF16RelL2;
    return 0;
}

TEST(CudaIoDtype, OutputsInEveryDtypeAreTheF32OutputsRounded) {
    REQUIRE_CUDA_DEVICE();
    const Batch x = MakeBatch(Config().hidden_size);
    Model cpu = Random(EMBER_BACKEND_REFERENCE, EMBER_DTYPE_F32);
    HostBuffers hb;
    Out ref;
    ASSERT_EQ(Forward(cpu.get(), hb, x, kIds, EMBER_DTYPE_F32, EMBER_DTYPE_F32, 0, &ref), EMBER_OK);
    for (ember_dtype dt : kAll) {
        Model m = Random(EMBER_BACKEND_CUDA, dt);
        ASSERT_TRUE(m);
        // twice per shape: the second call of a shape replays a CUDA graph
        for (unsigned flags : {0u, 0u, (unsigned)EMBER_FORWARD_SKIP_MASKED}) {
            DeviceBuffers db;
            Out f32;
            ASSERT_EQ(Forward(m.get(), db, x, kIds, EMBER_DTYPE_F32, EMBER_DTYPE_F32, flags, &f32),
                      EMBER_OK) << ember_last_error();
            for (ember_dtype odt : kAll) {
                SCOPED_TRACE(::testing::Message() << "compute " << Name(dt) << " out " << Name(odt)
                                                  << " flags " << flags);
                Out o;
                ASSERT_EQ(Forward(m.get(), db, x, kIds, EMBER_DTYPE_F32, odt, flags, &o), EMBER_OK)
                    << ember_last_error();
                ExpectRounded(f32, o, odt, "");
                const std::vector<float> got = Widen(o.last, odt), want = Widen(ref.last, EMBER_DTYPE_F32);
                if (Bound(dt, odt) > 0) {
                    // masked rows of a packed call are 0 by contract: compare the others
                    std::vector<float> g, w;
                    const int H = Config().hidden_size;
                    for (size_t t = 0; t < x.mask.size(); t++)
                        if (!flags || x.mask[t])
                            for (int k = 0; k < H; k++) g.push_back(got[t * H + k]), w.push_back(want[t * H + k]);
                    EXPECT_LE(RelL2(g, w), Bound(dt, odt));
                    // token 0 of every row is valid: the packed pooler reads the same rows
                    EXPECT_LE(RelL2(Widen(o.pool, odt), Widen(ref.pool, EMBER_DTYPE_F32)),
                              Bound(dt, odt));
                }
            }
        }
    }
}

TEST(CudaIoDtype, HalfInputsAreTheirWidenedValues) {
    REQUIRE_CUDA_DEVICE();
    const Batch x = MakeBatch(Config().hidden_size);
    for (ember_dtype dt : kAll) {
        Model m = Random(EMBER_BACKEND_CUDA, dt);
        ASSERT_TRUE(m);
        for (Entry entry : {kEmbeds, kEmbeddingOutput})
            for (unsigned flags : {0u, (unsigned)EMBER_FORWARD_SKIP_MASKED}) {
                DeviceBuffers db;
                Out f32;
                ASSERT_EQ(Forward(m.get(), db, x, entry, EMBER_DTYPE_F32, dt, flags, &f32), EMBER_OK);
                for (ember_dtype edt : {EMBER_DTYPE_F16, EMBER_DTYPE_BF16}) {
                    SCOPED_TRACE(::testing::Message() << Name(dt) << " embeds " << Name(edt)
                                                      << " entry " << entry << " flags " << flags);
                    Out h;
                    ASSERT_EQ(Forward(m.get(), db, x, entry, edt, dt, flags, &h), EMBER_OK)
                        << ember_last_error();
                    EXPECT_EQ(h.last, f32.last);
                    EXPECT_EQ(h.hidden, f32.hidden);
                    EXPECT_EQ(h.pool, f32.pool);
                }
            }
    }
}

// A half pipeline end to end: ids -> embed_tokens_as(dt) -> inputs_embeds in dt -> outputs in
// dt, bit-identical to ids -> outputs in dt; and the ASYNC gather reports a bad id at sync.
TEST(CudaIoDtype, EmbedTokensAsFeedsBackBitIdentical) {
    REQUIRE_CUDA_DEVICE();
    const Batch x = MakeBatch(Config().hidden_size);
    const int H = Config().hidden_size, N = x.B * x.S;
    for (ember_dtype dt : kAll) {
        SCOPED_TRACE(Name(dt));
        Model m = Random(EMBER_BACKEND_CUDA, dt);
        ASSERT_TRUE(m);
        DeviceBuffers db;
        const int32_t *ids = (const int32_t *)db.In(x.ids.data(), N * 4);
        void *emb = db.Out((size_t)N * H * Size(dt));
        ASSERT_EQ(ember_embed_tokens_as(m.get(), ids, N, dt, emb, EMBER_FORWARD_ASYNC, nullptr),
                  EMBER_OK) << ember_last_error();
        ASSERT_EQ(ember_model_sync(m.get(), nullptr), EMBER_OK) << ember_last_error();
        Batch y = x;
        y.embeds = Widen(db.Get(emb, (size_t)N * H * Size(dt)), dt);
        Out a, b;
        ASSERT_EQ(Forward(m.get(), db, x, kIds, EMBER_DTYPE_F32, dt, 0, &a), EMBER_OK);
        ASSERT_EQ(Forward(m.get(), db, y, kEmbeds, dt, dt, 0, &b), EMBER_OK) << ember_last_error();
        EXPECT_EQ(a.last, b.last);
        EXPECT_EQ(a.pool, b.pool);
        EXPECT_EQ(a.hidden, b.hidden);
        std::vector<int32_t> bad = x.ids;
        bad[4] = 97;
        const int32_t *dbad = (const int32_t *)db.In(bad.data(), N * 4);
        ASSERT_EQ(ember_embed_tokens_as(m.get(), dbad, N, dt, emb, EMBER_FORWARD_ASYNC, nullptr),
                  EMBER_OK);
        EXPECT_EQ(ember_model_sync(m.get(), nullptr), EMBER_ERR_OUT_OF_RANGE);
        EXPECT_EQ(ember_embed_tokens_as(m.get(), dbad, N, dt, emb, 0, nullptr),
                  EMBER_ERR_OUT_OF_RANGE);
    }
}

TEST(CudaIoDtype, NaNInHalfEmbedsIsReported) {
    REQUIRE_CUDA_DEVICE();
    const Batch x = MakeBatch(Config().hidden_size);
    const int H = Config().hidden_size;
    Model m = Random(EMBER_BACKEND_CUDA, EMBER_DTYPE_F16);
    ASSERT_TRUE(m);
    Batch y = x;
    y.embeds[(size_t)(2 * x.S + 6) * H + 71] = std::nanf("");
    for (ember_dtype edt : {EMBER_DTYPE_F16, EMBER_DTYPE_BF16}) {
        DeviceBuffers db;
        Out o;
        EXPECT_EQ(Forward(m.get(), db, y, kEmbeds, edt, EMBER_DTYPE_F16, 0, &o),
                  EMBER_ERR_INVALID_ARGUMENT) << Name(edt);
        EXPECT_NE(std::string(ember_last_error()).find("NaN or Inf"), std::string::npos);
        ASSERT_EQ(Forward(m.get(), db, x, kEmbeds, edt, EMBER_DTYPE_F16, 0, &o), EMBER_OK);
    }
}

}  // namespace
#endif
