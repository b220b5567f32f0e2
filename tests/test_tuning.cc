// The tuning table on the CPU (host/tune.c): mode parsing, the choice among timed candidates
// with fake timings, the output check, the table, the report, and the tuning file as hostile
// input; then the public API on a CPU model. The CUDA side (candidates timed on a device, or
// in the emulation with fake timings) is in tests/test_tuning_cuda.cc.
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>

#include "host/tune.h"
#include "tests/ember_test.h"
#include "tests/tolerances.h"

using namespace ember_test;

namespace {

ember_tuning_candidate Cand(ember_candidate_status st, float us) {
    ember_tuning_candidate c{};
    c.status = st;
    c.time_us = us;
    c.rel_diff = 0.f;
    return c;
}

constexpr auto OK = EMBER_CANDIDATE_OK;
constexpr auto WRONG = EMBER_CANDIDATE_WRONG;
constexpr auto GONE = EMBER_CANDIDATE_UNAVAILABLE;

TEST(TuneMode, OptionThenEnvironment) {
    int mode = -5;
    EXPECT_EQ(ember_tune_mode(0, "on", &mode), EMBER_OK);
    EXPECT_EQ(mode, 0) << "an explicit option wins over the environment";
    EXPECT_EQ(ember_tune_mode(1, "off", &mode), EMBER_OK);
    EXPECT_EQ(mode, 1);
    for (const char *on : {(const char *)nullptr, "", "on", "1"}) {
        mode = -5;
        EXPECT_EQ(ember_tune_mode(-1, on, &mode), EMBER_OK);
        EXPECT_EQ(mode, 1) << (on ? on : "(unset)");
    }
    for (const char *off : {"off", "0"}) {
        mode = -5;
        EXPECT_EQ(ember_tune_mode(-1, off, &mode), EMBER_OK);
        EXPECT_EQ(mode, 0) << off;
    }
    EXPECT_EQ(ember_tune_mode(-1, "fast", &mode), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(ember_last_error()).find("EMBER_TUNE=fast"), std::string::npos)
        << ember_last_error();
    EXPECT_EQ(ember_tune_mode(2, nullptr, &mode), EMBER_ERR_INVALID_ARGUMENT);
}

TEST(TunePick, FastestCorrectCandidateWins) {
    // the fastest wins only when it is correct
    ember_tuning_candidate a[] = {Cand(OK, 10), Cand(OK, 8), Cand(WRONG, 1), Cand(OK, 6),
                                  Cand(GONE, 0.5f), Cand(OK, 7)};
    EXPECT_EQ(ember_tune_pick(a, 6), 3);
    // the default keeps near ties (within EMBER_TUNE_MARGIN)
    ember_tuning_candidate b[] = {Cand(OK, 10), Cand(OK, 9.8f), Cand(OK, 9.75f)};
    EXPECT_EQ(ember_tune_pick(b, 3), 0);
    ember_tuning_candidate c[] = {Cand(OK, 10), Cand(OK, 9.6f)};
    EXPECT_EQ(ember_tune_pick(c, 2), 1);
    // nothing else correct, or the default alone
    ember_tuning_candidate d[] = {Cand(OK, 10), Cand(WRONG, 1), Cand(GONE, 1)};
    EXPECT_EQ(ember_tune_pick(d, 3), 0);
    EXPECT_EQ(ember_tune_pick(d, 1), 0);
    // a default that was not timed (or a NaN time) never gives way
    ember_tuning_candidate e[] = {Cand(OK, NAN), Cand(OK, 1)};
    EXPECT_EQ(ember_tune_pick(e, 2), 0);
    ember_tuning_candidate f[] = {Cand(OK, 10), Cand(OK, NAN), Cand(OK, -1), Cand(OK, 5)};
    EXPECT_EQ(ember_tune_pick(f, 4), 3);
    // equal times: the lower index
    ember_tuning_candidate g[] = {Cand(OK, 10), Cand(OK, 5), Cand(OK, 5)};
    EXPECT_EQ(ember_tune_pick(g, 3), 1);
}

TEST(TunePick, Median) {
    float a[] = {5, 1, 3};
    EXPECT_EQ(ember_tune_median(a, 3), 3.f);
    float b[] = {4, 1, 3, 2};
    EXPECT_EQ(ember_tune_median(b, 4), 2.5f);
    float c[] = {7};
    EXPECT_EQ(ember_tune_median(c, 1), 7.f);
}

// Host rounding to f16 / bf16 (round to nearest even) for building test outputs.
uint16_t ToBf16(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    b += 0x7FFFu + ((b >> 16) & 1u);
    return (uint16_t)(b >> 16);
}
uint16_t ToF16(float f) {  // normal range and NaN only, enough here
    if (std::isnan(f)) return 0x7E00;
    uint32_t b;
    memcpy(&b, &f, 4);
    const uint32_t sign = (b >> 16) & 0x8000u;
    int32_t exp = (int32_t)((b >> 23) & 0xFF) - 127 + 15;
    uint32_t man = b & 0x7FFFFFu;
    uint32_t h = sign | ((uint32_t)exp << 10) | (man >> 13);
    const uint32_t rest = man & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    return (uint16_t)h;
}

std::vector<uint8_t> Encode(const std::vector<float> &v, ember_dtype dt) {
    std::vector<uint8_t> out(v.size() * (dt == EMBER_DTYPE_F32 ? 4 : 2));
    for (size_t i = 0; i < v.size(); i++) {
        if (dt == EMBER_DTYPE_F32) {
            memcpy(&out[4 * i], &v[i], 4);
        } else {
            const uint16_t h = dt == EMBER_DTYPE_F16 ? ToF16(v[i]) : ToBf16(v[i]);
            memcpy(&out[2 * i], &h, 2);
        }
    }
    return out;
}

TEST(TuneCompare, BoundsPerDtype) {
    std::mt19937 g(3);
    std::uniform_real_distribution<float> u(-2.f, 2.f);
    std::vector<float> ref(997);
    for (float &x : ref) x = u(g);
    for (ember_dtype dt : {EMBER_DTYPE_F32, EMBER_DTYPE_F16, EMBER_DTYPE_BF16}) {
        SCOPED_TRACE(dt);
        const double tol = ember_tune_tolerance(EMBER_TUNE_GEMM, dt);
        const auto r = Encode(ref, dt);
        double rel = -1;
        char why[128];
        EXPECT_EQ(ember_tune_compare(r.data(), r.data(), ref.size(), dt, tol, &rel, why, sizeof why), 1);
        EXPECT_EQ(rel, 0.0);
        // a tenth of the bound passes, three times the bound fails and says so
        for (double scale : {0.1, 3.0}) {
            std::vector<float> got = ref;
            for (float &x : got) x *= (float)(1.0 + scale * tol);
            const auto gg = Encode(got, dt);
            const int ok = ember_tune_compare(r.data(), gg.data(), ref.size(), dt, tol, &rel, why,
                                              sizeof why);
            if (dt != EMBER_DTYPE_F32 && scale < 1) {
                // 16-bit storage: a tiny scale may round away entirely or move one ulp
                EXPECT_LE(rel, tol);
            }
            EXPECT_EQ(ok, scale < 1) << "scale " << scale << ": rel " << rel << " " << why;
            if (!ok) { EXPECT_NE(std::string(why).find("relative L2"), std::string::npos); }
        }
        // NaN never passes, in either output
        std::vector<float> bad = ref;
        bad[500] = NAN;
        const auto b = Encode(bad, dt);
        EXPECT_EQ(ember_tune_compare(r.data(), b.data(), ref.size(), dt, 1e9, &rel, why, sizeof why), 0);
        EXPECT_TRUE(std::isinf(rel));
        EXPECT_NE(std::string(why).find("element 500"), std::string::npos) << why;
        EXPECT_EQ(ember_tune_compare(b.data(), r.data(), ref.size(), dt, 1e9, &rel, nullptr, 0), 0);
    }
    // an all-zero default: absolute L2
    std::vector<float> z(10, 0.f), s(10, 0.f);
    s[3] = 1e-7f;
    double rel;
    EXPECT_EQ(ember_tune_compare(z.data(), s.data(), 10, EMBER_DTYPE_F32, 1e-5, &rel, nullptr, 0), 1);
    s[3] = 1.f;
    EXPECT_EQ(ember_tune_compare(z.data(), s.data(), 10, EMBER_DTYPE_F32, 1e-5, &rel, nullptr, 0), 0);
}

// f16 values decode as IEEE says: distances between known neighbours come out exactly.
TEST(TuneCompare, F16Decoding) {
    struct {
        uint16_t ref, got;
        double rel;
    } cases[] = {{0x3C00, 0x3C01, 1.0 / 1024},  // 1 and 1 + 2^-10
                 {0x0001, 0x0002, 1.0},         // smallest subnormal and twice it
                 {0x7BFF, 0xFBFF, 2.0},         // 65504 and -65504
                 {0xC000, 0xC000, 0.0}};        // -2
    for (const auto &c : cases) {
        double rel = -1;
        ember_tune_compare(&c.ref, &c.got, 1, EMBER_DTYPE_F16, 10, &rel, nullptr, 0);
        EXPECT_DOUBLE_EQ(rel, c.rel) << std::hex << c.ref << " " << c.got;
    }
    const uint16_t inf = 0x7C00, one = 0x3C00;
    double rel;
    EXPECT_EQ(ember_tune_compare(&one, &inf, 1, EMBER_DTYPE_F16, 1e9, &rel, nullptr, 0), 0)
        << "Inf is not a finite output";
    const uint16_t bf_one = 0x3F80, bf_next = 0x3F81;  // bf16 1 and 1 + 2^-7
    ember_tune_compare(&bf_one, &bf_next, 1, EMBER_DTYPE_BF16, 10, &rel, nullptr, 0);
    EXPECT_DOUBLE_EQ(rel, 1.0 / 128);
}

// The library's candidate bounds are never looser than what the tests accept end to end.
TEST(TuneCompare, BoundsWithinTheTestsTolerances) {
    for (int op : {EMBER_TUNE_GEMM, EMBER_TUNE_FFN_IN, EMBER_TUNE_ATTENTION}) {
        EXPECT_LE(ember_tune_tolerance(op, EMBER_DTYPE_F32), ember_tol::kCudaF32Abs);
        EXPECT_LE(ember_tune_tolerance(op, EMBER_DTYPE_F16), ember_tol::kCudaF16RelL2);
        EXPECT_LE(ember_tune_tolerance(op, EMBER_DTYPE_BF16), ember_tol::kCudaBf16RelL2);
        EXPECT_GT(ember_tune_tolerance(op, EMBER_DTYPE_F16), 0.0);
    }
}

ember_tune_key GemmKey(int N, int dt = EMBER_DTYPE_F16) {
    ember_tune_key k{};
    k.op = EMBER_TUNE_GEMM;
    k.dtype = dt;
    k.p[0] = N;
    k.p[1] = 384;
    k.p[2] = 1536;
    k.p[3] = 384;
    k.p[4] = 1;
    k.p[5] = 1 + EMBER_ACT_GELU;
    k.p[6] = 0x8888;
    return k;
}

// A key of `op` in dt with parameters p (the others 0).
ember_tune_key Key(int op, int dt, std::initializer_list<int64_t> p) {
    ember_tune_key k{};
    k.op = op;
    k.dtype = dt;
    int i = 0;
    for (int64_t v : p) k.p[i++] = v;
    return k;
}

ember_tune_key AttnKey(int B, int S, int mode) {
    return Key(EMBER_TUNE_ATTENTION, EMBER_DTYPE_BF16, {B, S, 12, 64, mode});
}

ember_tune_record Rec(const ember_tune_key &k, int choice) {
    ember_tune_record r{};
    r.key = k;
    r.choice = choice;
    r.source = EMBER_TUNE_TIMED;
    r.n_cand = ember_tune_op_candidates(k.op);
    for (int i = 0; i < r.n_cand; i++) {
        ember_tune_candidate_name(k.op, i, r.cand[i].name, sizeof r.cand[i].name);
        r.cand[i] = Cand(OK, 10.f - (float)i);
        ember_tune_candidate_name(k.op, i, r.cand[i].name, sizeof r.cand[i].name);
    }
    return r;
}

ember_status Put(ember_tuner *t, ember_tune_record r) { return ember_tuner_put(t, &r); }

struct Tuner {
    ember_tuner t;
    Tuner(const char *device = "NVIDIA H100 80GB HBM3", int lt = 130100, int dnn = 91900) {
        ember_tuner_init(&t, 1);
        snprintf(t.device, sizeof t.device, "%s", device);
        t.cc_major = 9;
        t.cc_minor = 0;
        t.lt_version = lt;
        t.dnn_version = dnn;
    }
    ~Tuner() { ember_tuner_free(&t); }
};

TEST(TuneTable, PutFindReplaceAndCapacity) {
    Tuner x;
    ember_tune_key k8 = GemmKey(8);
    EXPECT_EQ(ember_tuner_find(&x.t, &k8), nullptr);
    for (int i = 1; i <= 100; i++) ASSERT_EQ(Put(&x.t, Rec(GemmKey(i), i % 8)), EMBER_OK);
    EXPECT_EQ(x.t.n, 100);
    ember_tune_key k = GemmKey(37);
    ASSERT_NE(ember_tuner_find(&x.t, &k), nullptr);
    EXPECT_EQ(ember_tuner_find(&x.t, &k)->choice, 37 % 8);
    // keys differ in every field
    for (int f = 0; f < 2 + EMBER_TUNE_PARAMS; f++) {
        ember_tune_key o = k;
        if (f == 0) o.op = EMBER_TUNE_FFN_IN;
        else if (f == 1) o.dtype = EMBER_DTYPE_BF16;
        else o.p[f - 2] += 1000;
        EXPECT_FALSE(ember_tune_key_equal(&o, &k)) << "field " << f;
        EXPECT_EQ(ember_tuner_find(&x.t, &o), nullptr) << "field " << f;
    }
    ASSERT_EQ(Put(&x.t, Rec(k, 0)), EMBER_OK);
    EXPECT_EQ(x.t.n, 100) << "replaced, not added";
    EXPECT_EQ(ember_tuner_find(&x.t, &k)->choice, 0);
    for (int i = 101; i <= EMBER_TUNE_MAX_RECORDS; i++)
        ASSERT_EQ(Put(&x.t, Rec(GemmKey(i), 1)), EMBER_OK);
    EXPECT_FALSE(ember_tuner_has_room(&x.t));
    EXPECT_EQ(Put(&x.t, Rec(GemmKey(999999), 1)),
              EMBER_ERR_CAPACITY);
    EXPECT_EQ(Put(&x.t, Rec(GemmKey(5), 2)), EMBER_OK)
        << "a known key is still replaced when full";
}

TEST(TuneTable, ReportNamesShapesAndCandidates) {
    Tuner x;
    ASSERT_EQ(Put(&x.t, Rec(GemmKey(4096), 3)), EMBER_OK);
    ASSERT_EQ(Put(&x.t, Rec(AttnKey(32, 128, EMBER_TUNE_ATTN_MASKED), 1)), EMBER_OK);
    int count = -1;
    ember_tuner_report(&x.t, nullptr, 0, &count);
    EXPECT_EQ(count, 2);
    ember_tuning_entry e[3];
    memset(e, 0xAB, sizeof e);
    ember_tuner_report(&x.t, e, 1, &count);
    EXPECT_EQ(count, 2);
    EXPECT_EQ(e[0].op, EMBER_TUNE_GEMM);
    EXPECT_STREQ(e[0].shape, "N=4096 IN=384 OUT=1536 bias gelu");
    EXPECT_EQ(e[0].choice, 3);
    EXPECT_EQ(e[0].n_candidates, 8);
    EXPECT_STREQ(e[0].candidates[3].name, "cublaslt#3");
    unsigned char untouched[sizeof e[1]];
    memset(untouched, 0xAB, sizeof untouched);
    EXPECT_EQ(memcmp(&e[1], untouched, sizeof e[1]), 0) << "cap respected";
    ember_tuner_report(&x.t, e, 3, &count);
    EXPECT_EQ(e[1].op, EMBER_TUNE_ATTENTION);
    EXPECT_STREQ(e[1].shape, "B=32 S=128 heads=12 head_size=64 masked");
    EXPECT_STREQ(e[1].candidates[1].name, "cudnn-sdpa");
    EXPECT_EQ(e[1].dtype, EMBER_DTYPE_BF16);
}

std::string Text(const ember_tuner &t) {
    char *p = nullptr;
    size_t n = 0;
    EXPECT_EQ(ember_tuner_format(&t, &p, &n), EMBER_OK);
    std::string s(p ? p : "", n);
    free(p);
    return s;
}

// A table with one record of each op.
void Fill(Tuner *x) {
    ember_tune_key f{};
    f.op = EMBER_TUNE_FFN_IN;
    f.dtype = EMBER_DTYPE_F16;
    f.p[0] = 97;
    f.p[1] = 768;
    f.p[2] = 3072;
    f.p[3] = 1 + EMBER_ACT_GELU;
    ASSERT_EQ(Put(&x->t, Rec(GemmKey(4096), 5)), EMBER_OK);
    ASSERT_EQ(Put(&x->t, Rec(f, 1)), EMBER_OK);
    ASSERT_EQ(Put(&x->t, Rec(AttnKey(1, 7, EMBER_TUNE_ATTN_PACKED), 0)), EMBER_OK);
}

TEST(TuneFile, RoundTripImportsEveryChoice) {
    Tuner a;
    Fill(&a);
    const std::string text = Text(a.t);
    EXPECT_EQ(text.rfind("ember-tuning 1\ndevice NVIDIA H100 80GB HBM3\ncc 9.0\n", 0), 0u) << text;
    Tuner b;
    ASSERT_EQ(ember_tuner_parse(&b.t, text.data(), text.size(), "t"), EMBER_OK) << ember_last_error();
    ASSERT_EQ(b.t.n, 3);
    for (int i = 0; i < 3; i++) {
        EXPECT_TRUE(ember_tune_key_equal(&a.t.rec[i].key, &b.t.rec[i].key));
        EXPECT_EQ(b.t.rec[i].choice, a.t.rec[i].choice);
        EXPECT_EQ(b.t.rec[i].source, EMBER_TUNE_IMPORTED);
        EXPECT_EQ(b.t.rec[i].checked, a.t.rec[i].choice == 0) << "non-default choices are checked at first use";
        EXPECT_EQ(b.t.rec[i].cand[0].status, EMBER_CANDIDATE_NOT_RUN);
    }
    EXPECT_EQ(Text(b.t), text) << "the same text again";
    // CRLF line ends and trailing empty lines are accepted
    std::string crlf;
    for (char ch : text) crlf += ch == '\n' ? std::string("\r\n") : std::string(1, ch);
    Tuner c;
    EXPECT_EQ(ember_tuner_parse(&c.t, (crlf + "\n\n").data(), crlf.size() + 2, "t"), EMBER_OK) << ember_last_error();
    EXPECT_EQ(c.t.n, 3);
    // save + load through a file
    const std::string path = "/tmp/ember_tuning_" + std::to_string(getpid()) + ".txt";
    ASSERT_EQ(ember_tuner_save(&a.t, path.c_str()), EMBER_OK) << ember_last_error();
    EXPECT_EQ(ReadFile(path), text);
    Tuner d;
    ASSERT_EQ(ember_tuner_load(&d.t, path.c_str()), EMBER_OK) << ember_last_error();
    EXPECT_EQ(d.t.n, 3);
    remove(path.c_str());
    EXPECT_EQ(ember_tuner_load(&d.t, path.c_str()), EMBER_ERR_IO);
    EXPECT_EQ(ember_tuner_save(&a.t, "/nonexistent-dir/x"), EMBER_ERR_IO);
}

// Every malformed variant is EMBER_ERR_FORMAT naming its line, and imports nothing.
TEST(TuneFile, MalformedFilesAreRejectedByLine) {
    Tuner a;
    Fill(&a);
    const std::string good = Text(a.t);
    auto replace = [&](const std::string &from, const std::string &to) {
        std::string s = good;
        const size_t at = s.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        return at == std::string::npos ? s : s.replace(at, from.size(), to);
    };
    struct Case {
        std::string name, text, want;
    };
    std::vector<Case> cases = {
        {"empty", "", "ends early"},
        {"other format", "{\"json\": 1}\n", ":1: not an ember tuning file"},
        {"version 3", replace("ember-tuning 1", "ember-tuning 3"), "version 3"},
        {"version 0", replace("ember-tuning 1", "ember-tuning 0"), "version 0"},
        {"PDL entry in version 1", replace("entry 2 2 1 7 12 64 2 0 0 0 0", "entry 3 2 1 7 1 0 0 0 0 0 0"),
         ":9: a PDL entry (op 3) in a version 1 file"},
        {"no device", replace("device NVIDIA H100 80GB HBM3", "device "), ":2: expected \"device"},
        {"control char in device", replace("H100", "H\x01" "00"), ":2:"},
        {"bad cc", replace("cc 9.0", "cc 9"), ":3:"},
        {"cc junk", replace("cc 9.0", "cc 9.0x"), ":3:"},
        {"negative version", replace("cublaslt 130100", "cublaslt -1"), ":4:"},
        {"huge count", replace("entries 3", "entries 99999999"), ":6:"},
        {"count too high", replace("entries 3", "entries 4"), ":10: expected \"entry"},
        {"count too low", replace("entries 3", "entries 2"), ":9: expected \"end\""},
        {"truncated", good.substr(0, good.rfind("entry")), "ends early"},
        {"no end", good.substr(0, good.size() - 4), "expected \"end\""},
        {"text after end", good + "entry 0 0\n", "text after \"end\""},
        {"unknown op", replace("entry 2 2", "entry 7 2"), ":9: unknown op 7"},
        {"bad dtype", replace("entry 2 2", "entry 2 3"), ":9: dtype 3"},
        {"choice too big", replace(" 1536 384 1 1 34952 0 5", " 1536 384 1 1 34952 0 8"), "choice 8"},
        {"zero size", replace("entry 0 1 4096", "entry 0 1 0"), ":7: GEMM sizes"},
        {"ld below IN", replace(" 1536 384 1 1 34952", " 1536 383 1 1 34952"), ":7: GEMM ld_in"},
        {"alignment nibble 9", replace(" 1 1 34952 0 5", " 1 1 34953 0 5"), ":7: GEMM alignments"},
        {"bias 2", replace(" 1536 384 1 1 34952", " 1536 384 2 1 34952"), ":7: GEMM bias"},
        {"unused parameter set", replace(" 34952 0 5", " 34952 9 5"), ":7: parameter 7"},
        {"head size 300", replace("entry 2 2 1 7 12 64", "entry 2 2 1 7 12 300"), ":9: attention head size"},
        {"attention mode 3", replace("entry 2 2 1 7 12 64 2", "entry 2 2 1 7 12 64 3"), ":9: attention mode"},
        {"overflowing number", replace("entry 0 1 4096", "entry 0 1 99999999999999999999"), ":7:"},
        {"beyond int", replace("entry 0 1 4096", "entry 0 1 2147483648"), ":7:"},
        {"missing field", replace(" 34952 0 5", " 34952 5"), ":7:"},
        {"extra field", replace(" 34952 0 5", " 34952 0 5 1"), ":7:"},
        {"double space", replace("entry 0 1", "entry  0 1"), ":7:"},
        {"trailing space", replace(" 34952 0 5\n", " 34952 0 5 \n"), ":7:"},
        {"NUL byte", replace("H100", std::string("H1\0" "0", 4)), "NUL"},
        {"long line", replace("device NVIDIA", "device " + std::string(300, 'A')), ":2: line too long"},
    };
    {  // the GEMM line twice
        const size_t s = good.find("entry 0"), e = good.find('\n', s);
        std::string dup = replace("entries 3", "entries 4");
        dup.insert(dup.find("end\n"), good.substr(s, e - s + 1));
        cases.push_back({"duplicate", dup, ":10: the same op and shape as line 7"});
    }
    for (const Case &c : cases) {
        SCOPED_TRACE(c.name);
        Tuner b;
        ASSERT_EQ(Put(&b.t, Rec(GemmKey(1), 2)), EMBER_OK);
        EXPECT_EQ(ember_tuner_parse(&b.t, c.text.data(), c.text.size(), "f.txt"), EMBER_ERR_FORMAT);
        const std::string msg = ember_last_error();
        EXPECT_NE(msg.find("f.txt"), std::string::npos) << msg;
        EXPECT_NE(msg.find(c.want), std::string::npos) << msg;
        EXPECT_EQ(b.t.n, 1) << "nothing imported";
        EXPECT_EQ(b.t.rec[0].choice, 2);
    }
}

ember_tune_key PdlKey(int B, int S, int mask) { return Key(EMBER_TUNE_PDL, EMBER_DTYPE_F16, {B, S, mask}); }

TEST(TunePdl, ModeNamesShapeAndBound) {
    int mode = 5;
    for (const char *a : {(const char *)nullptr, "", "auto"}) {
        ASSERT_EQ(ember_tune_pdl_mode(a, &mode), EMBER_OK);
        EXPECT_EQ(mode, -1) << (a ? a : "(unset)");
    }
    for (const char *on : {"on", "1"}) {
        ASSERT_EQ(ember_tune_pdl_mode(on, &mode), EMBER_OK);
        EXPECT_EQ(mode, 1) << on;
    }
    for (const char *off : {"off", "0"}) {
        ASSERT_EQ(ember_tune_pdl_mode(off, &mode), EMBER_OK);
        EXPECT_EQ(mode, 0) << off;
    }
    EXPECT_EQ(ember_tune_pdl_mode("yes", &mode), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(ember_last_error()).find("EMBER_PDL=yes"), std::string::npos);
    EXPECT_EQ(ember_tune_op_candidates(EMBER_TUNE_PDL), 2);
    char name[32];
    ember_tune_candidate_name(EMBER_TUNE_PDL, 0, name, sizeof name);
    EXPECT_STREQ(name, "off");
    ember_tune_candidate_name(EMBER_TUNE_PDL, 1, name, sizeof name);
    EXPECT_STREQ(name, "on");
    char shape[96];
    const ember_tune_key k = PdlKey(1, 128, 0), m = PdlKey(3, 97, 1);
    ember_tune_describe(&k, shape, sizeof shape);
    EXPECT_STREQ(shape, "B=1 S=128 no mask (graph)");
    ember_tune_describe(&m, shape, sizeof shape);
    EXPECT_STREQ(shape, "B=3 S=97 masked (graph)");
    // the two launches run the same kernels in the same order: nothing but the same bits
    for (ember_dtype dt : {EMBER_DTYPE_F32, EMBER_DTYPE_F16, EMBER_DTYPE_BF16})
        EXPECT_EQ(ember_tune_tolerance(EMBER_TUNE_PDL, dt), 0.0);
    const float a[3] = {1.f, -2.f, 3.f}, b[3] = {1.f, -2.f, std::nextafter(3.f, 4.f)};
    double rel = -1;
    EXPECT_EQ(ember_tune_compare(a, a, 3, EMBER_DTYPE_F32, 0.0, &rel, nullptr, 0), 1);
    EXPECT_EQ(ember_tune_compare(a, b, 3, EMBER_DTYPE_F32, 0.0, &rel, nullptr, 0), 0)
        << "one ulp apart is WRONG for PDL";
}

// Files without PDL entries stay version 1 (what ember wrote before PDL, and what an ember
// that knows only version 1 reads); a PDL entry makes the file version 2, which round-trips.
TEST(TuneFile, PdlEntriesMakeVersion2AndOldFilesStillLoad) {
    Tuner a;
    Fill(&a);
    const std::string v1 = Text(a.t);
    EXPECT_EQ(v1.rfind("ember-tuning 1\n", 0), 0u) << v1;
    ASSERT_EQ(Put(&a.t, Rec(PdlKey(1, 128, 0), 1)), EMBER_OK);
    ASSERT_EQ(Put(&a.t, Rec(PdlKey(3, 97, 1), 0)), EMBER_OK);
    const std::string v2 = Text(a.t);
    EXPECT_EQ(v2.rfind("ember-tuning 2\n", 0), 0u) << v2;
    EXPECT_NE(v2.find("\nentry 3 1 1 128 0 0 0 0 0 0 1\n"), std::string::npos) << v2;
    Tuner b;
    ASSERT_EQ(ember_tuner_parse(&b.t, v2.data(), v2.size(), "v2"), EMBER_OK) << ember_last_error();
    ASSERT_EQ(b.t.n, 5);
    const ember_tune_key k = PdlKey(1, 128, 0);
    const ember_tune_record *r = ember_tuner_find(&b.t, &k);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->choice, 1);
    EXPECT_EQ(r->source, EMBER_TUNE_IMPORTED);
    EXPECT_EQ(r->checked, 0) << "PDL on is checked against off at its first use";
    EXPECT_EQ(r->n_cand, 2);
    EXPECT_STREQ(r->cand[1].name, "on");
    EXPECT_EQ(Text(b.t), v2);
    // a version 1 file as ember wrote it before PDL existed, verbatim
    const std::string old =
        "ember-tuning 1\ndevice NVIDIA H100 80GB HBM3\ncc 9.0\ncublaslt 130100\ncudnn 91900\n"
        "entries 2\nentry 0 1 4096 384 1536 384 1 1 34952 0 5\n"
        "entry 2 2 1 7 12 64 2 0 0 0 1\nend\n";
    Tuner c;
    ASSERT_EQ(ember_tuner_parse(&c.t, old.data(), old.size(), "old"), EMBER_OK) << ember_last_error();
    EXPECT_EQ(c.t.n, 2);
    EXPECT_EQ(c.t.rec[0].choice, 5);
    EXPECT_EQ(c.t.rec[1].choice, 1);
    EXPECT_EQ(Text(c.t), old) << "written back as version 1";
    // PDL keys are checked like the others
    struct {
        const char *from, *to, *want;
    } bad[] = {{"entry 3 1 1 128 0", "entry 3 1 1 128 2", "PDL mask"},
               {"entry 3 1 1 128 0", "entry 3 1 0 128 0", "PDL batch"},
               {"entry 3 1 1 128 0 0", "entry 3 1 1 128 0 7", "parameter 3"},
               {"entry 3 1 1 128 0 0 0 0 0 0 1", "entry 3 1 1 128 0 0 0 0 0 0 2", "choice 2"}};
    for (const auto &x : bad) {
        std::string t = v2;
        const size_t at = t.find(x.from);
        ASSERT_NE(at, std::string::npos) << x.from;
        t.replace(at, strlen(x.from), x.to);
        Tuner d;
        EXPECT_EQ(ember_tuner_parse(&d.t, t.data(), t.size(), "f"), EMBER_ERR_FORMAT) << x.to;
        EXPECT_NE(std::string(ember_last_error()).find(x.want), std::string::npos) << ember_last_error();
        EXPECT_EQ(d.t.n, 0);
    }
}

TEST(TuneFile, OversizedFileIsRejected) {
    const std::string path = "/tmp/ember_tuning_big_" + std::to_string(getpid()) + ".txt";
    WriteFile(path, "ember-tuning 1\n" + std::string((1u << 20), '#'));
    Tuner t;
    EXPECT_EQ(ember_tuner_load(&t.t, path.c_str()), EMBER_ERR_FORMAT);
    EXPECT_NE(std::string(ember_last_error()).find("larger than"), std::string::npos);
    remove(path.c_str());
}

// A file from another GPU or other libraries: a clear message, nothing imported.
TEST(TuneFile, OtherGpuOrLibrariesAreIgnoredWithAMessage) {
    Tuner a;
    Fill(&a);
    const std::string text = Text(a.t);
    struct {
        Tuner *t;
        const char *want;
    } cases[] = {{new Tuner("NVIDIA H200"), "tuned on NVIDIA H100 80GB HBM3"},
                 {new Tuner("NVIDIA H100 80GB HBM3", 130200), "cuBLASLt 130100"},
                 {new Tuner("NVIDIA H100 80GB HBM3", 130100, 0), "cuDNN 91900"}};
    for (auto &c : cases) {
        EXPECT_EQ(ember_tuner_parse(&c.t->t, text.data(), text.size(), "f"), EMBER_ERR_UNSUPPORTED);
        EXPECT_NE(std::string(ember_last_error()).find(c.want), std::string::npos) << ember_last_error();
        EXPECT_NE(std::string(ember_last_error()).find("nothing imported"), std::string::npos);
        EXPECT_EQ(c.t->t.n, 0);
        delete c.t;
    }
    Tuner cc;
    cc.t.cc_minor = 1;
    EXPECT_EQ(ember_tuner_parse(&cc.t, text.data(), text.size(), "f"), EMBER_ERR_UNSUPPORTED);
}

// Random damage to a valid file never crashes and never half-imports (ASan/UBSan builds check
// the memory side): the table is either unchanged or holds the file's three records.
TEST(TuneFile, RandomDamageIsRejectedCleanly) {
    Tuner a;
    Fill(&a);
    const std::string good = Text(a.t);
    std::mt19937 g(11);
    const char alphabet[] = "0123456789 -.\n\rabcdefgintry\xff";
    int ok = 0, rejected = 0;
    for (int trial = 0; trial < 3000; trial++) {
        std::string s = good;
        const int edits = 1 + (int)(g() % 4);
        for (int e = 0; e < edits; e++) {
            const size_t at = g() % s.size();
            switch (g() % 3) {
            case 0: s[at] = alphabet[g() % (sizeof alphabet - 1)]; break;
            case 1: s.erase(at, 1 + g() % 8); break;
            default: s.insert(at, 1, alphabet[g() % (sizeof alphabet - 1)]);
            }
            if (s.empty()) s = "x";
        }
        Tuner b;
        const ember_status st = ember_tuner_parse(&b.t, s.data(), s.size(), "f");
        ASSERT_TRUE(st == EMBER_OK || st == EMBER_ERR_FORMAT || st == EMBER_ERR_UNSUPPORTED)
            << st << ": " << s;
        if (st == EMBER_OK) {
            ok++;
            EXPECT_LE(b.t.n, 4);
        } else {
            rejected++;
            EXPECT_EQ(b.t.n, 0);
        }
    }
    EXPECT_GT(rejected, 2500);
    printf("    %d damaged files rejected, %d still valid (a digit changed, say)\n", rejected, ok);
    // every prefix of the file short of "end" is rejected
    for (size_t n = 0; n + 1 < good.size() - 4; n++) {
        Tuner b;
        EXPECT_EQ(ember_tuner_parse(&b.t, good.data(), n, "f"), EMBER_ERR_FORMAT) << n;
    }
}

// ---- the public API on a CPU model --------------------------------------------------------

ember_config Tiny() {
    ember_config c{};
    c.vocab_size = 50;
    c.hidden_size = 32;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 4;
    c.intermediate_size = 48;
    c.max_position_embeddings = 40;
    c.type_vocab_size = 2;
    c.layer_norm_eps = 1e-12;
    c.hidden_act = EMBER_ACT_GELU;
    return c;
}

TEST(TuneApi, CpuModelHasNothingToTune) {
    ember_load_options opt;
    ember_load_options_init(&opt);
    EXPECT_EQ(opt.tuning, -1);
    ember_config c = Tiny();
    ember_model *raw = nullptr;
    ASSERT_EQ(ember_model_init_random(&c, 1, &opt, &raw), EMBER_OK);
    Model m(raw);
    int count = -1;
    EXPECT_EQ(ember_model_tuning(m.get(), nullptr, 0, &count), EMBER_OK);
    EXPECT_EQ(count, 0);
    EXPECT_EQ(ember_model_tuning(m.get(), nullptr, 1, &count), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_model_tuning(m.get(), nullptr, 0, nullptr), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_model_tuning(nullptr, nullptr, 0, &count), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_model_tuning_save(m.get(), "/tmp/x"), EMBER_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(ember_last_error()).find("nothing to tune"), std::string::npos);
    EXPECT_EQ(ember_model_tuning_load(m.get(), "/tmp/x"), EMBER_ERR_UNSUPPORTED);
    EXPECT_EQ(ember_model_tuning_load(m.get(), nullptr), EMBER_ERR_INVALID_ARGUMENT);
    // reserve_shapes: the reserve happens, there is nothing else to do
    size_t wb, ws0, ws1;
    ASSERT_EQ(ember_model_memory(m.get(), &wb, &ws0), EMBER_OK);
    ember_shape shapes[] = {{2, 7, 1, 0}, {16, 40, 0, EMBER_FORWARD_SKIP_MASKED}, {1, 1, 0, 0}};
    ASSERT_EQ(ember_model_reserve_shapes(m.get(), shapes, 3), EMBER_OK) << ember_last_error();
    ASSERT_EQ(ember_model_memory(m.get(), &wb, &ws1), EMBER_OK);
    EXPECT_GT(ws1, ws0);
    ember_shape bad[] = {{1, 41, 0, 0}, {0, 4, 0, 0}, {1, 4, 2, 0}};
    for (const ember_shape &b : bad) {
        EXPECT_EQ(ember_model_reserve_shapes(m.get(), &b, 1), EMBER_ERR_INVALID_ARGUMENT);
        EXPECT_NE(std::string(ember_last_error()).find("shapes[0]"), std::string::npos);
    }
    EXPECT_EQ(ember_model_reserve_shapes(m.get(), shapes, 0), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_model_reserve_shapes(m.get(), nullptr, 1), EMBER_ERR_INVALID_ARGUMENT);
    // options.tuning is checked
    opt.tuning = 2;
    ember_model *bad_m = nullptr;
    EXPECT_EQ(ember_model_init_random(&c, 1, &opt, &bad_m), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(bad_m, nullptr);
}

}  // namespace
