// Tests for weights/safetensors.c: writer/reader round trip, byte-exact agreement with a
// file written by Python's safetensors, f16/bf16 conversion, and every rejection the
// reader makes (each checks the status and that the message names the tensor / offset).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>
#include <vector>

#include "weights/safetensors.h"

namespace fs = std::filesystem;

namespace {

template <typename T>
void Append(std::string *s, std::initializer_list<T> values) {
    for (T v : values) s->append(reinterpret_cast<const char *>(&v), sizeof v);
}

// One header entry: "name":{"dtype":..,"shape":..,"data_offsets":[b,e]}
std::string Entry(const std::string &name, const std::string &dtype, const std::string &shape,
                  long long b, long long e) {
    return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
           std::to_string(b) + "," + std::to_string(e) + "]}";
}

std::string ReadFile(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

ember_st_tensor MakeTensor(const char *name, ember_st_dtype dt, std::initializer_list<int64_t> shape,
                           const void *data, size_t nbytes) {
    ember_st_tensor t;
    std::memset(&t, 0, sizeof t);
    t.name = name;
    t.dtype = dt;
    t.ndim = static_cast<int>(shape.size());
    int i = 0;
    for (int64_t d : shape) t.shape[i++] = d;
    t.data = data;
    t.nbytes = nbytes;
    return t;
}

}  // namespace

class Safetensors : public ::testing::Test {
  protected:
    void SetUp() override {
        const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
        dir_ = testing::TempDir() + "ember_st_" + info->name() + "_" + std::to_string(getpid());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string Path(const std::string &name) const { return dir_ + "/" + name; }

    // 8-byte LE length (the header's size unless `n` overrides it) + header + data.
    std::string WriteRaw(const std::string &header, const std::string &data = "",
                         uint64_t n = UINT64_MAX, const std::string &name = "t.safetensors") {
        if (n == UINT64_MAX) n = header.size();
        std::string bytes;
        for (int i = 0; i < 8; i++) bytes.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
        bytes += header + data;
        return WriteBytes(bytes, name);
    }
    std::string WriteBytes(const std::string &bytes, const std::string &name = "t.safetensors") {
        std::string p = Path(name);
        std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        return p;
    }

    // Opening `path` fails with `want`, *out is NULL, and the message holds every `needles`.
    ::testing::AssertionResult OpenFails(const std::string &path, std::initializer_list<const char *> needles,
                                         ember_status want = EMBER_ERR_FORMAT) {
        ember_st_file *f = reinterpret_cast<ember_st_file *>(this);  // poison: must be reset to NULL
        ember_status st = ember_st_open(path.c_str(), &f);
        std::string msg = ember_last_error();
        if (st == EMBER_OK) ember_st_close(f);
        if (st != want)
            return ::testing::AssertionFailure() << "status " << st << " (want " << want << "): " << msg;
        if (f != nullptr) return ::testing::AssertionFailure() << "*out not NULL on failure";
        for (const char *n : needles)
            if (msg.find(n) == std::string::npos)
                return ::testing::AssertionFailure() << "message lacks \"" << n << "\": " << msg;
        return ::testing::AssertionSuccess() << msg;
    }

    std::string dir_;
};

// ---- valid files ------------------------------------------------------------------------

TEST_F(Safetensors, RoundTripThroughWriterAndReader) {
    const float w[6] = {1.0f, -2.0f, 3.25f, 1e-30f, -0.0f, 123456.0f};
    const uint16_t h[4] = {0x3c00, 0xc100, 0x7bff, 0x0001};  // 1, -2.5, 65504, 2^-24
    const uint16_t b[3] = {0x3f80, 0xc020, 0x0001};          // 1, -2.5, 2^-133
    const int64_t ids[3] = {0, 30521, -7};
    const int32_t i32[2] = {-5, 2147483647};
    const float scalar = 3.5f;
    std::vector<ember_st_tensor> t = {
        MakeTensor("encoder.w", EMBER_ST_F32, {2, 3}, w, sizeof w),
        MakeTensor("half", EMBER_ST_F16, {4}, h, sizeof h),
        MakeTensor("brain", EMBER_ST_BF16, {1, 3}, b, sizeof b),
        MakeTensor("position_ids", EMBER_ST_I64, {1, 3}, ids, sizeof ids),
        MakeTensor("i32", EMBER_ST_I32, {2}, i32, sizeof i32),
        MakeTensor("scalar", EMBER_ST_F32, {}, &scalar, sizeof scalar),
        MakeTensor("empty", EMBER_ST_F32, {0, 4}, nullptr, 0),
    };
    const char *keys[2] = {"format", "note"};
    const char *vals[2] = {"pt", "h\xc3\xa9llo"};
    std::string path = Path("rt.safetensors");
    ASSERT_EQ(ember_st_write(path.c_str(), t.data(), t.size(), keys, vals, 2), EMBER_OK) << ember_last_error();

    std::string raw = ReadFile(path);
    uint64_t n = 0;
    std::memcpy(&n, raw.data(), 8);
    EXPECT_EQ(n % 8, 0u);
    EXPECT_EQ(raw.size(), 8 + n + sizeof w + sizeof h + sizeof b + sizeof ids + sizeof i32 + sizeof scalar);
    EXPECT_EQ(raw.compare(8, 16, "{\"__metadata__\":"), 0) << raw.substr(8, n);

    ember_st_file *f = nullptr;
    ASSERT_EQ(ember_st_open(path.c_str(), &f), EMBER_OK) << ember_last_error();
    EXPECT_STREQ(ember_st_path(f), path.c_str());
    ASSERT_EQ(ember_st_count(f), t.size());
    uint64_t expect_offset = 8 + n;
    for (size_t i = 0; i < t.size(); i++) {
        const ember_st_tensor *r = ember_st_at(f, i);
        ASSERT_NE(r, nullptr);
        EXPECT_STREQ(r->name, t[i].name);
        EXPECT_EQ(r->dtype, t[i].dtype);
        ASSERT_EQ(r->ndim, t[i].ndim);
        for (int d = 0; d < r->ndim; d++) EXPECT_EQ(r->shape[d], t[i].shape[d]);
        ASSERT_EQ(r->nbytes, t[i].nbytes);
        EXPECT_EQ(r->file_offset, expect_offset) << r->name;  // contiguous, in the given order
        expect_offset += r->nbytes;
        if (r->nbytes) {
            EXPECT_EQ(std::memcmp(r->data, t[i].data, r->nbytes), 0) << r->name;
        }
        EXPECT_EQ(ember_st_find(f, t[i].name), r);
    }
    EXPECT_EQ(ember_st_at(f, t.size()), nullptr);
    EXPECT_EQ(ember_st_find(f, "missing"), nullptr);
    EXPECT_EQ(ember_st_find(f, "__metadata__"), nullptr);
    EXPECT_STREQ(ember_st_metadata(f, "format"), "pt");
    EXPECT_STREQ(ember_st_metadata(f, "note"), "h\xc3\xa9llo");
    EXPECT_EQ(ember_st_metadata(f, "absent"), nullptr);

    float hf[4];
    ASSERT_EQ(ember_st_to_f32(ember_st_find(f, "half"), hf), EMBER_OK);
    EXPECT_EQ(hf[0], 1.0f);
    EXPECT_EQ(hf[1], -2.5f);
    EXPECT_EQ(hf[2], 65504.0f);
    EXPECT_EQ(hf[3], std::ldexp(1.0f, -24));
    float bf[3];
    ASSERT_EQ(ember_st_to_f32(ember_st_find(f, "brain"), bf), EMBER_OK);
    EXPECT_EQ(bf[0], 1.0f);
    EXPECT_EQ(bf[1], -2.5f);
    EXPECT_EQ(bf[2], std::ldexp(1.0f, -133));
    float wf[6];
    ASSERT_EQ(ember_st_to_f32(ember_st_find(f, "encoder.w"), wf), EMBER_OK);
    EXPECT_EQ(std::memcmp(wf, w, sizeof w), 0);
    float sf = 0;
    const ember_st_tensor *s = ember_st_find(f, "scalar");
    EXPECT_EQ(ember_st_numel(s), 1);
    ASSERT_EQ(ember_st_to_f32(s, &sf), EMBER_OK);
    EXPECT_EQ(sf, 3.5f);
    EXPECT_EQ(ember_st_numel(ember_st_find(f, "empty")), 0);
    EXPECT_EQ(ember_st_to_f32(ember_st_find(f, "empty"), nullptr), EMBER_OK);
    int32_t iv[3];
    ASSERT_EQ(ember_st_to_i32(ember_st_find(f, "position_ids"), iv), EMBER_OK);
    EXPECT_EQ(iv[0], 0);
    EXPECT_EQ(iv[1], 30521);
    EXPECT_EQ(iv[2], -7);
    ASSERT_EQ(ember_st_to_i32(ember_st_find(f, "i32"), iv), EMBER_OK);
    EXPECT_EQ(iv[0], -5);
    EXPECT_EQ(iv[1], 2147483647);
    ember_st_close(f);
}

// Bytes of `safetensors.torch.save(tensors, metadata={"format": "pt"})` (safetensors 0.4,
// which orders tensors by dtype size, then name) for:
//   w=[[1,2,3],[4,5,6]] f32, h=[1,-2.5,65504] f16, b=[1,-2.5] bf16, ids=[0,5,-7] i64,
//   s=3.5 f32 scalar, z=zeros(0,4) f32.
static const char kPythonHeader[] =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"ids\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[0,24]},"
    "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[24,28]},"
    "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[28,52]},"
    "\"z\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[52,52]},"
    "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[52,56]},"
    "\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[56,62]}} ";

static std::string PythonData() {
    std::string d;
    Append<int64_t>(&d, {0, 5, -7});
    Append<float>(&d, {3.5f, 1, 2, 3, 4, 5, 6});
    Append<uint16_t>(&d, {0x3f80, 0xc020, 0x3c00, 0xc100, 0x7bff});
    return d;
}

TEST_F(Safetensors, ReadsFileWrittenByPython) {
    std::string header = kPythonHeader;
    ASSERT_EQ(header.size(), 368u);
    std::string path = WriteRaw(header, PythonData());
    ember_st_file *f = nullptr;
    ASSERT_EQ(ember_st_open(path.c_str(), &f), EMBER_OK) << ember_last_error();
    ASSERT_EQ(ember_st_count(f), 6u);
    const char *order[6] = {"ids", "s", "w", "z", "b", "h"};
    for (int i = 0; i < 6; i++) EXPECT_STREQ(ember_st_at(f, i)->name, order[i]);
    EXPECT_STREQ(ember_st_metadata(f, "format"), "pt");
    float w[6], h[3], b[2], s;
    ASSERT_EQ(ember_st_to_f32(ember_st_find(f, "w"), w), EMBER_OK);
    for (int i = 0; i < 6; i++) EXPECT_EQ(w[i], static_cast<float>(i + 1));
    ASSERT_EQ(ember_st_to_f32(ember_st_find(f, "h"), h), EMBER_OK);
    EXPECT_EQ(h[0], 1.0f);
    EXPECT_EQ(h[1], -2.5f);
    EXPECT_EQ(h[2], 65504.0f);
    ASSERT_EQ(ember_st_to_f32(ember_st_find(f, "b"), b), EMBER_OK);
    EXPECT_EQ(b[0], 1.0f);
    EXPECT_EQ(b[1], -2.5f);
    ASSERT_EQ(ember_st_to_f32(ember_st_find(f, "s"), &s), EMBER_OK);
    EXPECT_EQ(s, 3.5f);
    EXPECT_EQ(ember_st_find(f, "s")->ndim, 0);
    EXPECT_EQ(ember_st_find(f, "z")->nbytes, 0u);
    EXPECT_EQ(ember_st_find(f, "z")->file_offset, 8u + 368 + 52);
    int32_t ids[3];
    ASSERT_EQ(ember_st_to_i32(ember_st_find(f, "ids"), ids), EMBER_OK);
    EXPECT_EQ(ids[0], 0);
    EXPECT_EQ(ids[1], 5);
    EXPECT_EQ(ids[2], -7);
    ember_st_close(f);
}

TEST_F(Safetensors, WriterMatchesPythonBytes) {
    std::string d = PythonData();
    const char *p = d.data();
    std::vector<ember_st_tensor> t = {
        MakeTensor("ids", EMBER_ST_I64, {3}, p, 24),         MakeTensor("s", EMBER_ST_F32, {}, p + 24, 4),
        MakeTensor("w", EMBER_ST_F32, {2, 3}, p + 28, 24),    MakeTensor("z", EMBER_ST_F32, {0, 4}, p + 52, 0),
        MakeTensor("b", EMBER_ST_BF16, {2}, p + 52, 4),       MakeTensor("h", EMBER_ST_F16, {3}, p + 56, 6),
    };
    const char *k = "format", *v = "pt";
    std::string path = Path("mine.safetensors");
    ASSERT_EQ(ember_st_write(path.c_str(), t.data(), t.size(), &k, &v, 1), EMBER_OK) << ember_last_error();
    std::string want = ReadFile(WriteRaw(kPythonHeader, d, UINT64_MAX, "python.safetensors"));
    EXPECT_EQ(ReadFile(path), want);
}

TEST_F(Safetensors, KeepsHeaderOrderAndFindsEveryTensor) {
    // BERT-large has ~400 tensors; names deliberately not in sorted order.
    const int n = 400;
    std::vector<std::string> names;
    for (int i = 0; i < n; i++) names.push_back("encoder.layer." + std::to_string((i * 7919) % n) + ".weight");
    std::vector<float> data(n);
    std::vector<ember_st_tensor> t;
    for (int i = 0; i < n; i++) {
        data[i] = static_cast<float>(i);
        t.push_back(MakeTensor(names[i].c_str(), EMBER_ST_F32, {1}, &data[i], 4));
    }
    std::string path = Path("many.safetensors");
    ASSERT_EQ(ember_st_write(path.c_str(), t.data(), t.size(), nullptr, nullptr, 0), EMBER_OK);
    ember_st_file *f = nullptr;
    ASSERT_EQ(ember_st_open(path.c_str(), &f), EMBER_OK) << ember_last_error();
    ASSERT_EQ(ember_st_count(f), static_cast<size_t>(n));
    for (int i = 0; i < n; i++) {
        EXPECT_EQ(names[i], ember_st_at(f, i)->name);
        const ember_st_tensor *r = ember_st_find(f, names[i].c_str());
        ASSERT_EQ(r, ember_st_at(f, i));
        float x = -1;
        ASSERT_EQ(ember_st_to_f32(r, &x), EMBER_OK);
        EXPECT_EQ(x, static_cast<float>(i));
    }
    EXPECT_EQ(ember_st_metadata(f, "format"), nullptr);
    ember_st_close(f);
}

TEST_F(Safetensors, ReadsUnalignedData) {
    // Header length 51 puts the data at file offset 59: every float is misaligned.
    std::string header = "{" + Entry("x", "F32", "[3]", 0, 12) + "," + Entry("y", "F64", "[1]", 12, 20) + "}";
    while (header.size() % 8 != 3) header += " ";
    std::string d;
    Append<float>(&d, {1.5f, -2.0f, 1e20f});
    Append<double>(&d, {0.1});
    ember_st_file *f = nullptr;
    ASSERT_EQ(ember_st_open(WriteRaw(header, d).c_str(), &f), EMBER_OK) << ember_last_error();
    float x[3], y;
    ASSERT_EQ(ember_st_to_f32(ember_st_find(f, "x"), x), EMBER_OK);
    EXPECT_EQ(x[0], 1.5f);
    EXPECT_EQ(x[1], -2.0f);
    EXPECT_EQ(x[2], 1e20f);
    ASSERT_EQ(ember_st_to_f32(ember_st_find(f, "y"), &y), EMBER_OK);
    EXPECT_EQ(y, 0.1f);
    ember_st_close(f);
}

TEST_F(Safetensors, ReadsEmptyHeaderAndZeroSizeTensorsInAnyOrder) {
    ember_st_file *f = nullptr;
    ASSERT_EQ(ember_st_open(WriteRaw("{}      ").c_str(), &f), EMBER_OK) << ember_last_error();
    EXPECT_EQ(ember_st_count(f), 0u);
    EXPECT_EQ(ember_st_find(f, "x"), nullptr);
    ember_st_close(f);
    // Entries need not be in offset order; zero-size tensors may share an offset.
    std::string h = "{" + Entry("b", "F32", "[1]", 4, 8) + "," + Entry("e1", "I64", "[0]", 4, 4) + "," +
                    Entry("a", "F32", "[1]", 0, 4) + "," + Entry("e0", "U8", "[0,3]", 0, 0) + "}";
    ASSERT_EQ(ember_st_open(WriteRaw(h, std::string(8, '\0')).c_str(), &f), EMBER_OK) << ember_last_error();
    EXPECT_EQ(ember_st_count(f), 4u);
    EXPECT_STREQ(ember_st_at(f, 0)->name, "b");
    ember_st_close(f);
}

// ---- rejections -----------------------------------------------------------------------

TEST_F(Safetensors, RejectsMissingFile) {
    std::string p = Path("nope.safetensors");
    EXPECT_TRUE(OpenFails(p, {p.c_str(), "cannot open"}, EMBER_ERR_IO));
}

TEST_F(Safetensors, RejectsEmptyFile) {
    std::string p = WriteBytes("");
    EXPECT_TRUE(OpenFails(p, {p.c_str(), "0 bytes", "8-byte header length"}));
}

TEST_F(Safetensors, RejectsFileShorterThan8Bytes) {
    EXPECT_TRUE(OpenFails(WriteBytes(std::string("\x05\0\0\0\0", 5)), {"5 bytes", "offset 0"}));
}

TEST_F(Safetensors, RejectsHeaderOver100MB) {
    EXPECT_TRUE(OpenFails(WriteRaw("{}      ", "", 100000001), {"header length 100000001", "file bytes 0..7"}));
}

TEST_F(Safetensors, RejectsHeaderPastEndOfFile) {
    EXPECT_TRUE(OpenFails(WriteRaw("{}      ", "", 1000), {"header length 1000", "file offset 1008", "16 bytes"}));
}

TEST_F(Safetensors, RejectsNonUtf8Header) {
    std::string h = "{" + Entry("bad\xff", "F32", "[1]", 0, 4) + "}";
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(4, '\0')), {"UTF-8", "header byte 5", "file offset 13"}));
}

TEST_F(Safetensors, RejectsHeaderThatIsNotJson) {
    EXPECT_TRUE(OpenFails(WriteRaw("{\"a\": nope}"), {"not valid JSON", "header byte"}));
}

TEST_F(Safetensors, RejectsHeaderThatIsNotAnObject) {
    EXPECT_TRUE(OpenFails(WriteRaw("[1, 2]  "), {"not an object", "file bytes 8..16"}));
}

TEST_F(Safetensors, RejectsDuplicateTensorName) {
    std::string h = "{" + Entry("enc.w", "F32", "[1]", 0, 4) + "," + Entry("enc.w", "F32", "[1]", 4, 8) + "}";
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(8, '\0')), {"duplicate", "enc.w", "file offset"}));
}

TEST_F(Safetensors, RejectsMetadataThatIsNotAStringMap) {
    std::string h = "{\"__metadata__\":{\"format\":\"pt\",\"layers\":12}," + Entry("a", "F32", "[1]", 0, 4) + "}";
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(4, '\0')), {"__metadata__", "'layers'", "non-string"}));
    h = "{\"__metadata__\":[\"pt\"]," + Entry("a", "F32", "[1]", 0, 4) + "}";
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(4, '\0')), {"__metadata__", "not a JSON object"}));
}

TEST_F(Safetensors, NullMetadataIsNoMetadataAsInTheReferenceCrate) {
    // safetensors' Metadata reads "__metadata__" as Option<HashMap<String, String>>: null is None
    std::string h = "{\"__metadata__\":null," + Entry("a", "F32", "[1]", 0, 4) + "}";
    ember_st_file *f = nullptr;
    ASSERT_EQ(ember_st_open(WriteRaw(h, std::string(4, '\0')).c_str(), &f), EMBER_OK) << ember_last_error();
    EXPECT_EQ(ember_st_count(f), 1u);
    EXPECT_NE(ember_st_find(f, "a"), nullptr);
    EXPECT_EQ(ember_st_find(f, "__metadata__"), nullptr);
    EXPECT_EQ(ember_st_metadata(f, "format"), nullptr);
    ember_st_close(f);
}

TEST_F(Safetensors, RejectsNegativeZeroInOffsetsOrShape) {
    // serde_json parses -0 as the float -0.0, which the reference's usize fields refuse;
    // a "-0" inside a name stays a name
    EXPECT_TRUE(OpenFails(WriteRaw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-0,4]}}",
                                   std::string(4, '\0')),
                          {"-0", "header byte 48", "file offset 56", "reads it as a float"}));
    EXPECT_TRUE(OpenFails(WriteRaw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,-0],\"data_offsets\":[0,0]}}"),
                          {"-0", "reads it as a float"}));
    ember_st_file *f = nullptr;
    ASSERT_EQ(ember_st_open(WriteRaw("{" + Entry("x-0\\\"-0", "F32", "[1]", 0, 4) + "}", std::string(4, '\0')).c_str(),
                            &f), EMBER_OK) << ember_last_error();
    EXPECT_NE(ember_st_find(f, "x-0\"-0"), nullptr);
    ember_st_close(f);
}

TEST_F(Safetensors, RejectsUnknownDtype) {
    std::string h = "{" + Entry("pooler.dense.weight", "F33", "[1]", 0, 4) + "}";
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(4, '\0')), {"'pooler.dense.weight'", "unknown dtype 'F33'"}));
    h = "{\"t\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,1]}}";
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(1, '\0')), {"'t'", "unknown dtype"}));
}

TEST_F(Safetensors, RejectsNegativeOrNonIntegerDim) {
    std::string h = "{" + Entry("w", "F32", "[2,-2]", 0, 16) + "}";
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(16, '\0')), {"'w'", "shape[1] = -2"}));
    h = "{" + Entry("w", "F32", "[2.0]", 0, 8) + "}";
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(8, '\0')), {"'w'", "shape[0] is not an integer"}));
}

TEST_F(Safetensors, RejectsTooManyDims) {
    std::string h = "{" + Entry("w", "U8", "[1,1,1,1,1,1,1,1,1]", 0, 1) + "}";
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(1, '\0')), {"'w'", "9 dims"}));
}

TEST_F(Safetensors, RejectsShapeThatDisagreesWithByteRange) {
    std::string h = "{" + Entry("a", "F32", "[2]", 0, 8) + "," + Entry("emb", "F16", "[2,4]", 8, 20) + "," +
                    Entry("c", "F32", "[1]", 20, 24) + "}";
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(24, '\0')),
                          {"'emb'", "8 F16 elements = 16 bytes", "[8, 20] span 12 bytes",
                           ("file offset " + std::to_string(8 + h.size() + 8)).c_str()}));
}

TEST_F(Safetensors, RejectsShapeProductOverflow) {
    std::string h = "{" + Entry("big", "F32", "[4294967296,4294967296]", 0, 4) + "}";
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(4, '\0')), {"'big'", "overflow"}));
    h = "{" + Entry("big", "I64", "[1152921504606846976,2]", 0, 4) + "}";  // numel fits, bytes do not
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(4, '\0')), {"'big'", "overflow"}));
}

TEST_F(Safetensors, RejectsGapBetweenTensors) {
    std::string h = "{" + Entry("a", "F32", "[1]", 0, 4) + "," + Entry("b", "F32", "[1]", 8, 12) + "}";
    std::string p = WriteRaw(h, std::string(12, '\0'));
    EXPECT_TRUE(OpenFails(p, {p.c_str(), "gap of 4 bytes", "'b'", "[8, 12]", "byte 4 of the data buffer",
                              ("file offset " + std::to_string(8 + h.size() + 4)).c_str()}));
}

TEST_F(Safetensors, RejectsGapAtStartOfDataBuffer) {
    std::string h = "{" + Entry("a", "F32", "[1]", 4, 8) + "}";
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(8, '\0')), {"gap of 4 bytes", "'a'", "byte 0 of the data"}));
}

TEST_F(Safetensors, RejectsOverlappingTensors) {
    std::string h = "{" + Entry("x", "F32", "[2]", 0, 8) + "," + Entry("y", "F32", "[2]", 4, 12) + "}";
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(12, '\0')),
                          {"'y'", "[4, 12]", "overlap", "'x'", "byte 8 of the data buffer",
                           ("file offset " + std::to_string(8 + h.size() + 8)).c_str()}));
    // The same range twice is an overlap too.
    h = "{" + Entry("x", "F32", "[2]", 0, 8) + "," + Entry("y", "F32", "[2]", 0, 8) + "}";
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(16, '\0')), {"'y'", "overlap", "'x'"}));
}

TEST_F(Safetensors, RejectsTruncatedDataBuffer) {
    std::string h = "{" + Entry("a", "F32", "[2]", 0, 8) + "," + Entry("last", "F32", "[2]", 8, 16) + "}";
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(10, '\0')),
                          {"truncated", "'last'", "byte 16 of the data buffer", "data buffer of 10 bytes"}));
}

TEST_F(Safetensors, RejectsTrailingBytes) {
    std::string h = "{" + Entry("a", "F32", "[1]", 0, 4) + "}";
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(7, '\0')),
                          {"3 trailing bytes", ("file offset " + std::to_string(8 + h.size() + 4)).c_str()}));
}

TEST_F(Safetensors, RejectsBeginAfterEnd) {
    std::string h = "{" + Entry("a", "F32", "[1]", 8, 4) + "}";
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(8, '\0')), {"'a'", "[8, 4]", "begin > end"}));
    h = "{" + Entry("a", "F32", "[1]", -4, 0) + "}";
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(4, '\0')), {"'a'", "data_offsets"}));
}

TEST_F(Safetensors, RejectsExtraOrMissingKeyInEntry) {
    std::string h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"offsets\":[0,4]}}";
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(4, '\0')), {"'a'", "unexpected key 'offsets'"}));
    h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}";
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(4, '\0')), {"'a'", "missing 'data_offsets'"}));
    h = "{\"a\":[1]}";
    EXPECT_TRUE(OpenFails(WriteRaw(h), {"'a'", "not a JSON object"}));
}

TEST_F(Safetensors, RejectsEmptyTensorName) {
    std::string h = "{" + Entry("", "F32", "[1]", 0, 4) + "}";
    EXPECT_TRUE(OpenFails(WriteRaw(h, std::string(4, '\0')), {"empty tensor name"}));
}

// ---- conversion ------------------------------------------------------------------------

TEST_F(Safetensors, F16ToF32IsExact) {
    EXPECT_EQ(ember_f16_to_f32(0x3c00), 1.0f);
    EXPECT_EQ(ember_f16_to_f32(0xc100), -2.5f);
    EXPECT_EQ(ember_f16_to_f32(0x7bff), 65504.0f);
    EXPECT_EQ(ember_f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
    EXPECT_EQ(ember_f16_to_f32(0x8001), -std::ldexp(1.0f, -24));
    EXPECT_EQ(ember_f16_to_f32(0x03ff), std::ldexp(1023.0f, -24));  // largest subnormal
    EXPECT_EQ(ember_f16_to_f32(0x0400), std::ldexp(1.0f, -14));     // smallest normal
    EXPECT_EQ(ember_f16_to_f32(0x7c00), INFINITY);
    EXPECT_EQ(ember_f16_to_f32(0xfc00), -INFINITY);
    EXPECT_TRUE(std::isnan(ember_f16_to_f32(0x7e00)));
    EXPECT_TRUE(std::isnan(ember_f16_to_f32(0x7c01)));  // signalling NaN stays NaN
    EXPECT_TRUE(std::signbit(ember_f16_to_f32(0x8000)));
    EXPECT_EQ(ember_f16_to_f32(0x8000), 0.0f);
    // Every finite half against the textbook formula (-1)^s x m x 2^e.
    for (uint32_t h = 0; h < 0x10000; h++) {
        int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
        if (exp == 0x1f) continue;
        double v = exp == 0 ? std::ldexp(man, -24) : std::ldexp(1024 + man, exp - 25);
        if (h & 0x8000) v = -v;
        ASSERT_EQ(ember_f16_to_f32(static_cast<uint16_t>(h)), static_cast<float>(v)) << std::hex << h;
    }
}

TEST_F(Safetensors, Bf16ToF32IsExact) {
    EXPECT_EQ(ember_bf16_to_f32(0x3f80), 1.0f);
    EXPECT_EQ(ember_bf16_to_f32(0xc020), -2.5f);
    EXPECT_EQ(ember_bf16_to_f32(0x477f), 65280.0f);  // bf16 nearest below 65504
    EXPECT_EQ(ember_bf16_to_f32(0x0001), std::ldexp(1.0f, -133));  // smallest subnormal
    EXPECT_EQ(ember_bf16_to_f32(0x7f80), INFINITY);
    EXPECT_EQ(ember_bf16_to_f32(0xff80), -INFINITY);
    EXPECT_TRUE(std::isnan(ember_bf16_to_f32(0x7fc0)));
    EXPECT_TRUE(std::signbit(ember_bf16_to_f32(0x8000)));
}

TEST_F(Safetensors, ToI32ChecksRangeAndDtype) {
    const int64_t v[3] = {1, -2147483648LL, 2147483648LL};
    ember_st_tensor t = MakeTensor("token_type_ids", EMBER_ST_I64, {3}, v, sizeof v);
    int32_t out[3];
    ASSERT_EQ(ember_st_to_i32(&t, out), EMBER_ERR_OUT_OF_RANGE);
    EXPECT_NE(std::string(ember_last_error()).find("'token_type_ids'"), std::string::npos) << ember_last_error();
    EXPECT_NE(std::string(ember_last_error()).find("element 2 = 2147483648"), std::string::npos)
        << ember_last_error();
    t.shape[0] = 2;
    t.nbytes = 16;
    ASSERT_EQ(ember_st_to_i32(&t, out), EMBER_OK);
    EXPECT_EQ(out[1], INT32_MIN);

    const int8_t i8[3] = {-128, 0, 127};
    t = MakeTensor("i8", EMBER_ST_I8, {3}, i8, 3);
    ASSERT_EQ(ember_st_to_i32(&t, out), EMBER_OK);
    EXPECT_EQ(out[0], -128);
    EXPECT_EQ(out[2], 127);
    const uint8_t u8[3] = {0, 200, 255};
    t = MakeTensor("u8", EMBER_ST_U8, {3}, u8, 3);
    ASSERT_EQ(ember_st_to_i32(&t, out), EMBER_OK);
    EXPECT_EQ(out[2], 255);
    t.dtype = EMBER_ST_BOOL;
    ASSERT_EQ(ember_st_to_i32(&t, out), EMBER_OK);
    EXPECT_EQ(out[0], 0);
    EXPECT_EQ(out[1], 1);
    const int16_t i16[2] = {-32768, 1234};
    t = MakeTensor("i16", EMBER_ST_I16, {2}, i16, 4);
    ASSERT_EQ(ember_st_to_i32(&t, out), EMBER_OK);
    EXPECT_EQ(out[0], -32768);
    EXPECT_EQ(out[1], 1234);

    const float f[1] = {1.0f};
    t = MakeTensor("f", EMBER_ST_F32, {1}, f, 4);
    EXPECT_EQ(ember_st_to_i32(&t, out), EMBER_ERR_UNSUPPORTED);
    t = MakeTensor("ids", EMBER_ST_I64, {1}, v, 8);
    float fo;
    EXPECT_EQ(ember_st_to_f32(&t, &fo), EMBER_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(ember_last_error()).find("'ids'"), std::string::npos);
    t.nbytes = 4;  // disagrees with the shape
    EXPECT_EQ(ember_st_to_i32(&t, out), EMBER_ERR_INVALID_ARGUMENT);
}

TEST_F(Safetensors, DtypeNamesAndSizes) {
    EXPECT_EQ(ember_st_dtype_from_name("BF16"), EMBER_ST_BF16);
    EXPECT_EQ(ember_st_dtype_from_name("F8_E5M2"), EMBER_ST_F8_E5M2);
    EXPECT_EQ(ember_st_dtype_from_name("f32"), -1);
    EXPECT_EQ(ember_st_dtype_from_name(nullptr), -1);
    EXPECT_STREQ(ember_st_dtype_name(EMBER_ST_U64), "U64");
    EXPECT_EQ(ember_st_dtype_size(EMBER_ST_F64), 8u);
    EXPECT_EQ(ember_st_dtype_size(EMBER_ST_F8_E4M3), 1u);
    EXPECT_EQ(ember_st_dtype_size(EMBER_ST_U16), 2u);
}

// ---- writer failures ----------------------------------------------------------------------

TEST_F(Safetensors, WriterRejectsBadTensorsAndLeavesNoFile) {
    const float w[2] = {1, 2};
    ember_st_tensor t[2] = {MakeTensor("a", EMBER_ST_F32, {3}, w, sizeof w),
                            MakeTensor("a", EMBER_ST_F32, {2}, w, sizeof w)};
    std::string path = Path("out.safetensors");
    EXPECT_EQ(ember_st_write(path.c_str(), t, 1, nullptr, nullptr, 0), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(ember_last_error()).find("'a'"), std::string::npos) << ember_last_error();
    t[0].shape[0] = 2;
    EXPECT_EQ(ember_st_write(path.c_str(), t, 2, nullptr, nullptr, 0), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(ember_last_error()).find("duplicate tensor name 'a'"), std::string::npos);
    EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(Safetensors, WriterFailsCleanlyOnIoErrorAndReplacesAtomically) {
    const float w[2] = {1, 2};
    ember_st_tensor t = MakeTensor("a", EMBER_ST_F32, {2}, w, sizeof w);
    std::string bad = Path("no_such_dir/out.safetensors");
    EXPECT_EQ(ember_st_write(bad.c_str(), &t, 1, nullptr, nullptr, 0), EMBER_ERR_IO);
    EXPECT_NE(std::string(ember_last_error()).find(bad), std::string::npos) << ember_last_error();

    std::string path = Path("out.safetensors");
    ASSERT_EQ(ember_st_write(path.c_str(), &t, 1, nullptr, nullptr, 0), EMBER_OK);
    const float w2[3] = {7, 8, 9};
    t = MakeTensor("b", EMBER_ST_F32, {3}, w2, sizeof w2);
    ASSERT_EQ(ember_st_write(path.c_str(), &t, 1, nullptr, nullptr, 0), EMBER_OK);
    ember_st_file *f = nullptr;
    ASSERT_EQ(ember_st_open(path.c_str(), &f), EMBER_OK) << ember_last_error();
    ASSERT_EQ(ember_st_count(f), 1u);
    EXPECT_STREQ(ember_st_at(f, 0)->name, "b");
    ember_st_close(f);
    EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);  // no temp left
}
