// Attention: the CPU reference's packed form against its padded form (CPU only, always runs);
// on a GPU, the tensor-core kernel (kernels/attention_mma.cu, called directly) and the SIMT
// kernel (kernels/attention.cu), padded with every kind of mask and packed, against the CPU
// reference on inputs rounded to the kernel's dtype first; packed vs padded; determinism;
// dispatch and fallback of the public entries; no writes outside the output. GPU tests skip
// (never pass) without a device.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "tests/ember_test.h"

using namespace ember_test;

namespace {

std::vector<float> Uniform(size_t n, uint32_t seed, float lo, float hi) {
    std::mt19937 g(seed);
    std::uniform_real_distribution<float> u(lo, hi);
    std::vector<float> v(n);
    for (float &x : v) x = u(g);
    return v;
}

std::vector<int32_t> CuSeqlens(const std::vector<int> &lens) {
    std::vector<int32_t> cu(1, 0);
    for (int l : lens) cu.push_back(cu.back() + l);
    return cu;
}

// ---- CPU reference only ----------------------------------------------------------------------

// A packed sequence is a padded one with its padding masked: the shared code must give the very
// same bits on the valid rows (masked keys get weight exp(-FLT_MAX - max) = 0 exactly).
TEST(AttentionRef, PackedEqualsPaddedWithRightPaddingBitForBit) {
    const int NH = 3, HD = 8, H = NH * HD, S = 32;
    const std::vector<int> lens = {5, 0, 17, 1, 32, 9};
    const int B = (int)lens.size();
    const std::vector<int32_t> cu = CuSeqlens(lens);
    const int T = cu.back();
    const std::vector<float> packed = Uniform((size_t)T * 3 * H, 11, -1.f, 1.f);
    std::vector<float> padded = Uniform((size_t)B * S * 3 * H, 12, -3.f, 3.f);  // padding: garbage
    std::vector<int32_t> mask((size_t)B * S, 0);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < lens[b]; i++) {
            std::copy_n(&packed[(size_t)(cu[b] + i) * 3 * H], 3 * H,
                        &padded[((size_t)b * S + i) * 3 * H]);
            mask[(size_t)b * S + i] = 1;
        }
    std::vector<double> scratch(S);
    std::vector<float> out_packed = Poisoned((size_t)T * H),
                       out_padded = Poisoned((size_t)B * S * H);
    ember_ref_attention_packed(out_packed.data(), packed.data(), cu.data(), B, NH, HD,
                               scratch.data());
    ember_ref_attention(out_padded.data(), padded.data(), mask.data(), B, S, NH, HD,
                        scratch.data());
    for (int b = 0; b < B; b++)
        for (int i = 0; i < lens[b]; i++) {
            const float *p = &out_packed[(size_t)(cu[b] + i) * H],
                        *q = &out_padded[((size_t)b * S + i) * H];
            for (int c = 0; c < H; c++) ASSERT_FALSE(std::isnan(p[c])) << "b " << b << " row " << i;
            ASSERT_EQ(std::memcmp(p, q, sizeof(float) * H), 0) << "sequence " << b << " row " << i;
        }
}

// Empty sequences (first, middle, last, all) have no rows and disturb nothing around them.
TEST(AttentionRef, PackedHandlesEmptySequences) {
    const int NH = 2, HD = 4, H = NH * HD;
    const std::vector<int> lens = {0, 3, 0, 0, 4, 1, 0};
    const int B = (int)lens.size();
    const std::vector<int32_t> cu = CuSeqlens(lens);
    const int T = cu.back();
    const std::vector<float> qkv = Uniform((size_t)T * 3 * H, 21, -1.f, 1.f);
    std::vector<double> scratch(4);
    std::vector<float> out = Poisoned((size_t)(T + 1) * H);  // one sentinel row after T
    ember_ref_attention_packed(out.data(), qkv.data(), cu.data(), B, NH, HD, scratch.data());
    for (int b = 0; b < B; b++) {
        if (lens[b] == 0) continue;
        std::vector<float> one = Poisoned((size_t)lens[b] * H);
        ember_ref_attention(one.data(), &qkv[(size_t)cu[b] * 3 * H], nullptr, 1, lens[b], NH, HD,
                            scratch.data());
        EXPECT_TRUE(BitIdentical(
            std::vector<float>(&out[(size_t)cu[b] * H], &out[(size_t)cu[b + 1] * H]), one))
            << "sequence " << b;
    }
    for (int c = 0; c < H; c++)
        EXPECT_TRUE(std::isnan(out[(size_t)T * H + c])) << "sentinel written";

    const std::vector<int32_t> none = {0, 0, 0, 0};  // a batch of three empty sequences
    std::vector<float> untouched = Poisoned(H);
    ember_ref_attention_packed(untouched.data(), nullptr, none.data(), 3, NH, HD, scratch.data());
    for (float x : untouched) EXPECT_TRUE(std::isnan(x));
}

}  // namespace

#ifndef EMBER_WITH_CUDA

TEST(AttentionCuda, NotBuilt) {
    GTEST_SKIP() << "the CUDA backend is not built (configure with -DEMBER_CUDA=ON)";
}

#else

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "tests/cuda_test.h"

namespace {

// x rounded to dt (nearest even), as the kernels store it.
float RoundTo(float x, ember_dtype dt) {
    if (dt == EMBER_DTYPE_F16) return __half2float(__float2half_rn(x));
    if (dt == EMBER_DTYPE_BF16) return __bfloat162float(__float2bfloat16_rn(x));
    return x;
}

// Host values in dt's storage, and those values widened back (what the reference must see).
std::vector<uint8_t> Encode(const std::vector<float> &v, ember_dtype dt,
                            std::vector<float> *rounded) {
    std::vector<uint8_t> raw(v.size() * DtSize(dt));
    if (rounded) rounded->resize(v.size());
    for (size_t i = 0; i < v.size(); i++) {
        if (dt == EMBER_DTYPE_F32) {
            std::memcpy(&raw[4 * i], &v[i], 4);
        } else if (dt == EMBER_DTYPE_F16) {
            const __half h = __float2half_rn(v[i]);
            std::memcpy(&raw[2 * i], &h, 2);
        } else {
            const __nv_bfloat16 h = __float2bfloat16_rn(v[i]);
            std::memcpy(&raw[2 * i], &h, 2);
        }
        if (rounded) (*rounded)[i] = RoundTo(v[i], dt);
    }
    return raw;
}

std::vector<float> Decode(const std::vector<uint8_t> &raw, ember_dtype dt) {
    const size_t n = raw.size() / DtSize(dt);
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) {
        if (dt == EMBER_DTYPE_F32) {
            std::memcpy(&v[i], &raw[4 * i], 4);
        } else if (dt == EMBER_DTYPE_F16) {
            __half h;
            std::memcpy(&h, &raw[2 * i], 2);
            v[i] = __half2float(h);
        } else {
            __nv_bfloat16 h;
            std::memcpy(&h, &raw[2 * i], 2);
            v[i] = __bfloat162float(h);
        }
    }
    return v;
}

// Device bytes with a guard zone after them; everything starts as 0xFF bytes (NaN in f32, f16
// and bf16), so an element never written cannot pass and a write past the end is seen.
// `offset` shifts the usable region (to make a pointer that is not 16-byte aligned).
struct DevBytes {
    static constexpr size_t kGuard = 512;
    uint8_t *base = nullptr;
    size_t bytes = 0, offset = 0;
    explicit DevBytes(size_t n, size_t off = 0) : bytes(n), offset(off) {
        CUDA_OK(cudaMalloc((void **)&base, n + off + kGuard));
        CUDA_OK(cudaMemset(base, 0xFF, n + off + kGuard));
    }
    DevBytes(const DevBytes &) = delete;
    DevBytes &operator=(const DevBytes &) = delete;
    ~DevBytes() { cudaFree(base); }
    void *p() const { return base + offset; }
    void Upload(const std::vector<uint8_t> &h) {
        CUDA_OK(cudaMemcpy(p(), h.data(), std::min(h.size(), bytes), cudaMemcpyHostToDevice));
    }
    std::vector<uint8_t> Download() const {
        std::vector<uint8_t> h(bytes);
        CUDA_OK(cudaDeviceSynchronize());
        if (bytes) CUDA_OK(cudaMemcpy(h.data(), p(), bytes, cudaMemcpyDeviceToHost));
        return h;
    }
    // Bytes before the region (when offset > 0) and the guard after it are still 0xFF.
    bool Untouched() const {
        std::vector<uint8_t> h(offset + bytes + kGuard);
        CUDA_OK(cudaDeviceSynchronize());
        CUDA_OK(cudaMemcpy(h.data(), base, h.size(), cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < offset; i++)
            if (h[i] != 0xFF) return false;
        for (size_t i = offset + bytes; i < h.size(); i++)
            if (h[i] != 0xFF) return false;
        return true;
    }
};

template <typename T> std::vector<uint8_t> Bytes(const std::vector<T> &v) {
    std::vector<uint8_t> b(v.size() * sizeof(T));
    if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
    return b;
}

// Which kernel: the tensor-core one, the SIMT one, or whatever the public entry picks.
enum class Impl { Mma, Simt, Auto };
const char *ImplName(Impl i) { return i == Impl::Mma ? "mma" : i == Impl::Simt ? "simt" : "auto"; }

ember_status RunAttention(Impl impl, void *out, const void *qkv, const int32_t *mask,
                          const int32_t *cu, int B, int S, int NH, int HD, ember_dtype dt) {
    switch (impl) {
    case Impl::Mma: return ember_cuda_attention_mma(out, qkv, mask, cu, B, S, NH, HD, dt, nullptr);
    case Impl::Simt:
        return ember_cuda_attention_simt(out, qkv, mask, cu, B, S, NH, HD, dt, nullptr);
    case Impl::Auto:
        return cu ? ember_cuda_attention_packed(out, qkv, cu, B, S, NH, HD, dt, nullptr)
                  : ember_cuda_attention(out, qkv, mask, B, S, NH, HD, dt, nullptr);
    }
    return EMBER_ERR_INTERNAL;
}

// The (impl, dtype) pairs every case runs: the tensor-core kernel has f16 and bf16 only.
struct Variant {
    Impl impl;
    ember_dtype dt;
};
const Variant kVariants[] = {{Impl::Mma, EMBER_DTYPE_F16},  {Impl::Mma, EMBER_DTYPE_BF16},
                             {Impl::Simt, EMBER_DTYPE_F32}, {Impl::Simt, EMBER_DTYPE_F16},
                             {Impl::Simt, EMBER_DTYPE_BF16}};

double Floor(ember_dtype dt) {
    return dt == EMBER_DTYPE_F32 ? ember_tol::kAttnF32Floor
           : dt == EMBER_DTYPE_F16 ? ember_tol::kAttnF16Floor
                                   : ember_tol::kAttnBf16Floor;
}

// FlashAttention's rule: max |got - ref| <= factor * max |round_dt(ref) - ref| + floor(dt), where
// ref is the reference on the same dt-rounded inputs. NaN fails.
::testing::AssertionResult FlashClose(const std::vector<float> &got, const std::vector<float> &ref,
                                      ember_dtype dt) {
    if (got.size() != ref.size())
        return ::testing::AssertionFailure() << "size " << got.size() << " != " << ref.size();
    double lp = 0, err = 0, num = 0, den = 0;
    size_t worst = 0, nans = 0, first_nan = 0;
    for (size_t i = 0; i < ref.size(); i++) {
        lp = std::max(lp, std::fabs((double)RoundTo(ref[i], dt) - ref[i]));
        if (std::isnan(got[i])) {
            if (nans++ == 0) first_nan = i;
            continue;
        }
        const double d = std::fabs((double)got[i] - ref[i]);
        if (d > err) err = d, worst = i;
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    const double limit = ember_tol::kAttnLowpFactor * lp + Floor(dt);
    char buf[400];
    snprintf(buf, sizeof buf,
             "max |err| %.3g at [%zu] (got %.8g, ref %.8g); limit %.3g = %.1f x %.3g "
             "(ref rounded to %s) + %.3g; rel L2 %.3g; %zu NaN%s",
             err, worst, ref.empty() ? 0.0 : (double)got[worst],
             ref.empty() ? 0.0 : (double)ref[worst], limit, ember_tol::kAttnLowpFactor, lp,
             DtName(dt), Floor(dt), den > 0 ? std::sqrt(num / den) : 0.0, nans,
             nans ? (" (first at [" + std::to_string(first_nan) + "])").c_str() : "");
    if (nans == 0 && err <= limit) {
        if (std::getenv("EMBER_TEST_VERBOSE")) printf("      %s\n", buf);
        return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << buf;
}

enum class MaskKind { None, RightPad, Holes, FullyMasked, LastKeyOnly };
const char *MaskName(MaskKind m) {
    switch (m) {
    case MaskKind::None: return "nomask";
    case MaskKind::RightPad: return "rightpad";
    case MaskKind::Holes: return "holes";
    case MaskKind::FullyMasked: return "fullymasked";
    case MaskKind::LastKeyOnly: return "lastkeyonly";
    }
    return "?";
}

// (B,S) of 0/1. RightPad: sequence 0 full, 1 of length 1, the rest random lengths. Holes: 30%
// of keys masked at random. FullyMasked: sequence 0 all masked (uniform average of V over S
// keys), the others with holes. LastKeyOnly: sequence 0 attends only its last key, the others
// right-padded.
std::vector<int32_t> MakeMask(MaskKind kind, int B, int S, uint32_t seed) {
    std::vector<int32_t> m;
    if (kind == MaskKind::None) return m;
    m.assign((size_t)B * S, 1);
    std::mt19937 g(seed);
    auto right_pad = [&](int b) {
        const int len = b == 0 ? S : b == 1 ? 1 : 1 + (int)(g() % (unsigned)S);
        for (int i = len; i < S; i++) m[(size_t)b * S + i] = 0;
    };
    auto holes = [&](int b) {
        for (int i = 0; i < S; i++) m[(size_t)b * S + i] = g() % 10 < 3 ? 0 : 1;
    };
    for (int b = 0; b < B; b++) {
        switch (kind) {
        case MaskKind::RightPad: right_pad(b); break;
        case MaskKind::Holes: holes(b); break;
        case MaskKind::FullyMasked:
            if (b == 0) std::fill_n(&m[0], S, 0);
            else holes(b);
            break;
        case MaskKind::LastKeyOnly:
            if (b == 0) {
                std::fill_n(&m[0], S, 0);
                m[S - 1] = 1;
            } else {
                right_pad(b);
            }
            break;
        case MaskKind::None: break;
        }
    }
    return m;
}

// qkv rows of 3H: q and k uniform in [-qk, qk], v in [-1, 1].
std::vector<float> MakeQkv(int rows, int H, float qk, uint32_t seed) {
    std::vector<float> v = Uniform((size_t)rows * 3 * H, seed, -1.f, 1.f);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < 2 * H; c++) v[(size_t)r * 3 * H + c] *= qk;
    return v;
}

// ---- padded (B,S) with a mask ----------------------------------------------------------------

struct PaddedCase {
    int B, S, NH, HD;
    MaskKind mask;
    float qk;
};

std::string PaddedName(const ::testing::TestParamInfo<PaddedCase> &i) {
    const PaddedCase &c = i.param;
    return "B" + std::to_string(c.B) + "_S" + std::to_string(c.S) + "_NH" + std::to_string(c.NH) +
           "_HD" + std::to_string(c.HD) + "_" + MaskName(c.mask) +
           (c.qk != 1.f ? "_qk" + std::to_string((int)c.qk) : "");
}

class AttentionPadded : public ::testing::TestWithParam<PaddedCase> {};

TEST_P(AttentionPadded, MatchesReference) {
    REQUIRE_CUDA_DEVICE();
    const PaddedCase c = GetParam();
    const int H = c.NH * c.HD;
    const uint32_t seed =
        (uint32_t)(c.B * 7919 + c.S * 131 + c.HD * 17 + (int)c.mask * 3 + (int)c.qk);
    const std::vector<float> qkv = MakeQkv(c.B * c.S, H, c.qk, seed);
    const std::vector<int32_t> mask = MakeMask(c.mask, c.B, c.S, seed + 1);
    DevBytes dmask(mask.size() * 4);
    dmask.Upload(Bytes(mask));
    const int32_t *m = mask.empty() ? nullptr : (const int32_t *)dmask.p();
    std::vector<double> scratch(c.S);

    ember_dtype ref_dt = (ember_dtype)-1;
    std::vector<float> ref;
    for (const Variant &v : kVariants) {
        SCOPED_TRACE(std::string(ImplName(v.impl)) + " " + DtName(v.dt));
        std::vector<float> rounded;
        DevBytes dqkv(qkv.size() * DtSize(v.dt));
        dqkv.Upload(Encode(qkv, v.dt, &rounded));
        if (v.dt != ref_dt) {  // one reference per dtype, shared by the kernels
            ref.assign((size_t)c.B * c.S * H, 0.f);
            ember_ref_attention(ref.data(), rounded.data(), mask.empty() ? nullptr : mask.data(),
                                c.B, c.S, c.NH, c.HD, scratch.data());
            ref_dt = v.dt;
        }
        DevBytes dout((size_t)c.B * c.S * H * DtSize(v.dt));
        const ember_status st =
            RunAttention(v.impl, dout.p(), dqkv.p(), m, nullptr, c.B, c.S, c.NH, c.HD, v.dt);
        ASSERT_EQ(st, EMBER_OK) << Why(st);
        EXPECT_TRUE(FlashClose(Decode(dout.Download(), v.dt), ref, v.dt));
        EXPECT_TRUE(dout.Untouched()) << "write past the end of out";
    }
}

// Every S, B and mask kind appears; both head sizes; NH up to 16; q/k of +-8 twice. The CPU
// reference dominates the run time (about 4 B NH S^2 HD flops in double per dtype).
const PaddedCase kPaddedCases[] = {
    {1, 1, 2, 64, MaskKind::None, 1.f},
    {32, 1, 2, 32, MaskKind::FullyMasked, 1.f},
    {3, 7, 3, 32, MaskKind::Holes, 1.f},
    {3, 7, 2, 64, MaskKind::LastKeyOnly, 1.f},
    {3, 97, 2, 64, MaskKind::RightPad, 1.f},
    {3, 97, 2, 32, MaskKind::FullyMasked, 1.f},
    {3, 128, 2, 32, MaskKind::LastKeyOnly, 1.f},
    {3, 128, 2, 64, MaskKind::Holes, 1.f},
    {32, 128, 2, 64, MaskKind::RightPad, 1.f},
    {3, 384, 1, 64, MaskKind::FullyMasked, 1.f},
    {3, 384, 1, 32, MaskKind::Holes, 8.f},
    {2, 512, 2, 64, MaskKind::None, 1.f},
    {2, 512, 1, 64, MaskKind::RightPad, 8.f},
    {1, 512, 16, 32, MaskKind::Holes, 1.f},
    {32, 512, 1, 64, MaskKind::RightPad, 1.f},
};
INSTANTIATE_TEST_SUITE_P(Cases, AttentionPadded, ::testing::ValuesIn(kPaddedCases), PaddedName);

// ---- packed (padding removed) ----------------------------------------------------------------

struct PackedCase {
    const char *name;
    std::vector<int> lens;
    int max_len, NH, HD;
    float qk;
};

std::string PackedName(const ::testing::TestParamInfo<PackedCase> &i) { return i.param.name; }

class AttentionPacked : public ::testing::TestWithParam<PackedCase> {};

TEST_P(AttentionPacked, MatchesReference) {
    REQUIRE_CUDA_DEVICE();
    const PackedCase &c = GetParam();
    const int B = (int)c.lens.size(), H = c.NH * c.HD;
    const std::vector<int32_t> cu = CuSeqlens(c.lens);
    const int T = cu.back();
    const std::vector<float> qkv = MakeQkv(T, H, c.qk, (uint32_t)(T * 31 + c.HD + c.max_len));
    DevBytes dcu(cu.size() * 4);
    dcu.Upload(Bytes(cu));
    std::vector<double> scratch(std::max(1, c.max_len));

    ember_dtype ref_dt = (ember_dtype)-1;
    std::vector<float> ref;
    for (const Variant &v : kVariants) {
        SCOPED_TRACE(std::string(ImplName(v.impl)) + " " + DtName(v.dt));
        std::vector<float> rounded;
        DevBytes dqkv(qkv.size() * DtSize(v.dt));
        dqkv.Upload(Encode(qkv, v.dt, &rounded));
        if (v.dt != ref_dt) {
            ref.assign((size_t)T * H, 0.f);
            ember_ref_attention_packed(ref.data(), rounded.data(), cu.data(), B, c.NH, c.HD,
                                       scratch.data());
            ref_dt = v.dt;
        }
        DevBytes dout((size_t)T * H * DtSize(v.dt));
        const ember_status st =
            RunAttention(v.impl, dout.p(), dqkv.p(), nullptr, (const int32_t *)dcu.p(), B,
                         c.max_len, c.NH, c.HD, v.dt);
        ASSERT_EQ(st, EMBER_OK) << Why(st);
        EXPECT_TRUE(FlashClose(Decode(dout.Download(), v.dt), ref, v.dt));
        EXPECT_TRUE(dout.Untouched()) << "write past the end of out";
    }
}

std::vector<int> RandomLens(int B, int max_len, uint32_t seed) {
    std::mt19937 g(seed);
    std::vector<int> l(B);
    for (int &x : l) x = (int)(g() % (unsigned)(max_len + 1));
    l[0] = 0;  // always one empty and one full sequence
    l[B - 1] = max_len;
    return l;
}

const PackedCase kPackedCases[] = {
    {"mixed_HD64", {0, 1, 5, 64, 97, 0, 128}, 128, 2, 64, 1.f},
    {"mixed_HD32", {7, 0, 128, 1, 65, 63}, 128, 3, 32, 1.f},
    {"len1_and_512_HD32", {1, 512}, 512, 2, 32, 1.f},
    {"len512_and_1_HD64_qk8", {512, 1}, 512, 2, 64, 8.f},
    {"B32_random_HD64", RandomLens(32, 200, 5), 200, 2, 64, 1.f},
    {"max_len_above_every_length", {3, 50, 17}, 128, 2, 64, 1.f},
    {"single_token", {1}, 1, 4, 32, 1.f},
};
INSTANTIATE_TEST_SUITE_P(Cases, AttentionPacked, ::testing::ValuesIn(kPackedCases), PackedName);

// ---- cross-checks --------------------------------------------------------------------------

// The packed output equals the padded output (right-padding mask, garbage in the padding) on
// the valid rows, for each kernel: same tiles, and masked keys contribute exact zeros.
TEST(AttentionCuda, PackedEqualsPaddedOnValidRows) {
    REQUIRE_CUDA_DEVICE();
    const int NH = 2, HD = 64, H = NH * HD, S = 160;
    const std::vector<int> lens = {160, 1, 0, 77, 128, 129};
    const int B = (int)lens.size();
    const std::vector<int32_t> cu = CuSeqlens(lens);
    const int T = cu.back();
    const std::vector<float> packed = MakeQkv(T, H, 1.f, 41);
    std::vector<float> padded = MakeQkv(B * S, H, 2.f, 42);
    std::vector<int32_t> mask((size_t)B * S, 0);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < lens[b]; i++) {
            std::copy_n(&packed[(size_t)(cu[b] + i) * 3 * H], 3 * H,
                        &padded[((size_t)b * S + i) * 3 * H]);
            mask[(size_t)b * S + i] = 1;
        }
    DevBytes dcu(cu.size() * 4), dmask(mask.size() * 4);
    dcu.Upload(Bytes(cu));
    dmask.Upload(Bytes(mask));
    for (const Variant &v : kVariants) {
        SCOPED_TRACE(std::string(ImplName(v.impl)) + " " + DtName(v.dt));
        DevBytes dp(packed.size() * DtSize(v.dt)), dd(padded.size() * DtSize(v.dt));
        dp.Upload(Encode(packed, v.dt, nullptr));
        dd.Upload(Encode(padded, v.dt, nullptr));
        DevBytes op((size_t)T * H * DtSize(v.dt)), od((size_t)B * S * H * DtSize(v.dt));
        ember_status st = RunAttention(v.impl, op.p(), dp.p(), nullptr, (const int32_t *)dcu.p(), B,
                                       S, NH, HD, v.dt);
        ASSERT_EQ(st, EMBER_OK) << Why(st);
        st = RunAttention(v.impl, od.p(), dd.p(), (const int32_t *)dmask.p(), nullptr, B, S, NH, HD,
                          v.dt);
        ASSERT_EQ(st, EMBER_OK) << Why(st);
        const std::vector<float> a = Decode(op.Download(), v.dt), d = Decode(od.Download(), v.dt);
        std::vector<float> valid;
        for (int b = 0; b < B; b++)
            valid.insert(valid.end(), &d[(size_t)b * S * H], &d[((size_t)b * S + lens[b]) * H]);
        EXPECT_TRUE(FlashClose(a, valid, v.dt));
    }
}

// Two runs on the same inputs give the same bits (no atomics, fixed reduction order).
TEST(AttentionCuda, Deterministic) {
    REQUIRE_CUDA_DEVICE();
    const int B = 3, S = 200, NH = 2, HD = 64, H = NH * HD;
    const std::vector<float> qkv = MakeQkv(B * S, H, 1.f, 51);
    const std::vector<int32_t> mask = MakeMask(MaskKind::Holes, B, S, 52);
    const std::vector<int32_t> cu = CuSeqlens({200, 0, 57});
    DevBytes dmask(mask.size() * 4), dcu(cu.size() * 4);
    dmask.Upload(Bytes(mask));
    dcu.Upload(Bytes(cu));
    for (const Variant &v : kVariants) {
        SCOPED_TRACE(std::string(ImplName(v.impl)) + " " + DtName(v.dt));
        DevBytes dqkv(qkv.size() * DtSize(v.dt));
        dqkv.Upload(Encode(qkv, v.dt, nullptr));
        for (int packed = 0; packed < 2; packed++) {
            const int32_t *m = packed ? nullptr : (const int32_t *)dmask.p();
            const int32_t *c = packed ? (const int32_t *)dcu.p() : nullptr;
            const size_t rows = packed ? (size_t)cu.back() : (size_t)B * S;
            DevBytes o1(rows * H * DtSize(v.dt)), o2(rows * H * DtSize(v.dt));
            ASSERT_EQ(RunAttention(v.impl, o1.p(), dqkv.p(), m, c, B, S, NH, HD, v.dt), EMBER_OK)
                << ember_last_error();
            ASSERT_EQ(RunAttention(v.impl, o2.p(), dqkv.p(), m, c, B, S, NH, HD, v.dt), EMBER_OK)
                << ember_last_error();
            EXPECT_TRUE(o1.Download() == o2.Download()) << (packed ? "packed" : "padded");
        }
    }
}

// The public entries choose the tensor-core kernel where it applies (unless EMBER_ATTENTION=simt)
// and the SIMT kernel elsewhere, bit for bit; the tensor-core entry refuses what it cannot do.
TEST(AttentionCuda, DispatchAndFallback) {
    REQUIRE_CUDA_DEVICE();
    const char *env = std::getenv("EMBER_ATTENTION");
    const bool simt_forced = env && std::strcmp(env, "simt") == 0;
    const int B = 2, S = 70, NH = 2;
    for (int HD : {32, 64, 48}) {
        for (ember_dtype dt : {EMBER_DTYPE_F16, EMBER_DTYPE_BF16, EMBER_DTYPE_F32}) {
            for (size_t offset : {0, 2}) {  // 2 bytes: qkv and out not 16-byte aligned
                if (offset && dt == EMBER_DTYPE_F32) continue;
                SCOPED_TRACE("HD " + std::to_string(HD) + " " + DtName(dt) + " offset " +
                             std::to_string(offset));
                const int H = NH * HD;
                const std::vector<float> qkv = MakeQkv(B * S, H, 1.f, 61 + HD);
                const std::vector<int32_t> mask = MakeMask(MaskKind::Holes, B, S, 62);
                std::vector<float> rounded, ref((size_t)B * S * H);
                std::vector<double> scratch(S);
                DevBytes dqkv(qkv.size() * DtSize(dt), offset), dmask(mask.size() * 4);
                dqkv.Upload(Encode(qkv, dt, &rounded));
                dmask.Upload(Bytes(mask));
                ember_ref_attention(ref.data(), rounded.data(), mask.data(), B, S, NH, HD,
                                    scratch.data());
                const size_t out_bytes = (size_t)B * S * H * DtSize(dt);
                DevBytes auto_out(out_bytes, offset), mma_out(out_bytes, offset),
                    simt_out(out_bytes, offset);
                const int32_t *m = (const int32_t *)dmask.p();
                const bool mma_ok =
                    (dt != EMBER_DTYPE_F32) && (HD == 32 || HD == 64) && offset == 0;
                EXPECT_EQ(ember_cuda_attention_mma_supported(mma_out.p(), dqkv.p(), S, NH, HD, dt),
                          mma_ok ? 1 : 0);
                ASSERT_EQ(
                    RunAttention(Impl::Auto, auto_out.p(), dqkv.p(), m, nullptr, B, S, NH, HD, dt),
                    EMBER_OK)
                    << ember_last_error();
                EXPECT_TRUE(FlashClose(Decode(auto_out.Download(), dt), ref, dt));
                EXPECT_TRUE(auto_out.Untouched()) << "write outside out";
                ASSERT_EQ(
                    RunAttention(Impl::Simt, simt_out.p(), dqkv.p(), m, nullptr, B, S, NH, HD, dt),
                    EMBER_OK)
                    << ember_last_error();
                const ember_status st =
                    RunAttention(Impl::Mma, mma_out.p(), dqkv.p(), m, nullptr, B, S, NH, HD, dt);
                if (!mma_ok) {
                    EXPECT_EQ(st, EMBER_ERR_UNSUPPORTED);
                    EXPECT_TRUE(auto_out.Download() == simt_out.Download())
                        << "fallback is not the SIMT kernel";
                    continue;
                }
                ASSERT_EQ(st, EMBER_OK) << ember_last_error();
                const auto expect = simt_forced ? simt_out.Download() : mma_out.Download();
                EXPECT_TRUE(auto_out.Download() == expect)
                    << "ember_cuda_attention did not run the "
                    << (simt_forced ? "SIMT" : "tensor-core") << " kernel";
            }
        }
    }
}

// Empty work: B, S or NH of 0 and an all-empty packed batch write nothing and succeed.
TEST(AttentionCuda, EmptyWorkWritesNothing) {
    REQUIRE_CUDA_DEVICE();
    const std::vector<int32_t> cu = {0, 0, 0, 0};
    DevBytes dcu(cu.size() * 4), qkv(64), out(64);
    dcu.Upload(Bytes(cu));
    for (Impl impl : {Impl::Mma, Impl::Simt, Impl::Auto}) {
        SCOPED_TRACE(ImplName(impl));
        EXPECT_EQ(RunAttention(impl, out.p(), qkv.p(), nullptr, (const int32_t *)dcu.p(), 3, 16, 2,
                               32, EMBER_DTYPE_F16),
                  EMBER_OK)
            << ember_last_error();
        EXPECT_EQ(
            RunAttention(impl, out.p(), qkv.p(), nullptr, nullptr, 0, 16, 2, 32, EMBER_DTYPE_F16),
            EMBER_OK);
        EXPECT_EQ(
            RunAttention(impl, out.p(), qkv.p(), nullptr, nullptr, 2, 0, 2, 32, EMBER_DTYPE_F16),
            EMBER_OK);
        EXPECT_EQ(
            RunAttention(impl, out.p(), qkv.p(), nullptr, nullptr, 2, 16, 0, 32, EMBER_DTYPE_F16),
            EMBER_OK);
        const std::vector<uint8_t> o = out.Download();
        EXPECT_TRUE(std::all_of(o.begin(), o.end(), [](uint8_t x) { return x == 0xFF; }));
        EXPECT_TRUE(out.Untouched());
    }
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

}  // namespace

#endif
