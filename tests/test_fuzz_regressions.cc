// The fuzzers' inputs as ordinary tests (tests/fuzz): the in-memory safetensors reader agrees
// with the file reader on every seed and regression input, every saved config.json input
// gets a status and a message, and one case per fuzzer finding.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "ember.h"
#include "tests/ember_test.h"
#include "weights/config.h"
#include "weights/safetensors.h"

namespace fs = std::filesystem;

namespace {

std::string ReadBytes(const fs::path &p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Seed corpus and regression inputs of one fuzz target, sorted.
std::vector<fs::path> FuzzInputs(const std::string &target) {
    std::vector<fs::path> out;
    for (const char *kind : {"corpus", "regressions"}) {
        fs::path dir = fs::path(EMBER_SOURCE_DIR) / "tests" / "fuzz" / kind / target;
        if (!fs::is_directory(dir)) continue;
        for (const auto &e : fs::directory_iterator(dir))
            if (e.is_regular_file() && e.path().filename().string()[0] != '.') out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

// The message with every occurrence of `label` replaced by "<src>".
std::string Neutral(std::string msg, const std::string &label) {
    for (size_t at; !label.empty() && (at = msg.find(label)) != std::string::npos;)
        msg.replace(at, label.size(), "<src>");
    return msg;
}

}  // namespace

TEST(FuzzRegressions, SafetensorsMemoryReaderAgreesWithFileReader) {
    auto inputs = FuzzInputs("fuzz_safetensors");
    ASSERT_GE(inputs.size(), 5u) << "seed corpus missing";
    std::string tmp = testing::TempDir() + "ember_fuzz_st_" + std::to_string(getpid());
    for (const auto &p : inputs) {
        SCOPED_TRACE(p.string());
        std::string bytes = ReadBytes(p);
        std::ofstream(tmp, std::ios::binary).write(bytes.data(), (std::streamsize)bytes.size());

        ember_st_file *a = nullptr, *b = nullptr;
        ember_status sa = ember_st_open(tmp.c_str(), &a);
        std::string ma = Neutral(ember_last_error(), tmp);
        ember_status sb = ember_st_open_memory(bytes.data(), bytes.size(), "mem.safetensors", &b);
        std::string mb = Neutral(ember_last_error(), "mem.safetensors");
        ASSERT_EQ(sa, sb) << ma << " | " << mb;
        if (sa != EMBER_OK) {
            EXPECT_EQ(a, nullptr);
            EXPECT_EQ(b, nullptr);
            EXPECT_EQ(ma, mb);
            EXPECT_FALSE(mb.empty());
            continue;
        }
        ASSERT_EQ(ember_st_count(a), ember_st_count(b));
        EXPECT_STREQ(ember_st_path(b), "mem.safetensors");
        for (size_t i = 0; i < ember_st_count(a); i++) {
            const ember_st_tensor *x = ember_st_at(a, i), *y = ember_st_at(b, i);
            EXPECT_STREQ(x->name, y->name);
            EXPECT_EQ(x->dtype, y->dtype);
            EXPECT_EQ(x->nbytes, y->nbytes);
            EXPECT_EQ(x->file_offset, y->file_offset);
            EXPECT_EQ(static_cast<const char *>(y->data), bytes.data() + y->file_offset);
            EXPECT_EQ(std::memcmp(x->data, y->data, x->nbytes), 0);
        }
        ember_st_close(a);
        ember_st_close(b);
    }
    unlink(tmp.c_str());
}

TEST(FuzzRegressions, SafetensorsMemoryReaderArguments) {
    ember_st_file *f = reinterpret_cast<ember_st_file *>(&f);
    EXPECT_EQ(ember_st_open_memory(nullptr, 0, nullptr, &f), EMBER_ERR_FORMAT);
    EXPECT_EQ(f, nullptr);
    EXPECT_NE(std::string(ember_last_error()).find("(memory): not a safetensors file: it is 0 bytes"), std::string::npos)
        << ember_last_error();
    EXPECT_EQ(ember_st_open_memory(nullptr, 8, "x", &f), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_st_open_memory("12345678", 8, "x", nullptr), EMBER_ERR_INVALID_ARGUMENT);
}

TEST(FuzzRegressions, ConfigInputsGetAStatusAndAMessage) {
    auto inputs = FuzzInputs("fuzz_config");
    ASSERT_GE(inputs.size(), 5u) << "seed corpus missing";
    int accepted = 0;
    for (const auto &p : inputs) {
        SCOPED_TRACE(p.string());
        std::string json = ReadBytes(p);
        ember_config cfg;
        ember_status st = ember_config_parse(json.c_str(), "fuzz", &cfg);
        if (st == EMBER_OK) {
            accepted++;
            EXPECT_EQ(ember_config_check(&cfg, "fuzz"), EMBER_OK) << ember_last_error();
        } else {
            EXPECT_NE(std::string(ember_last_error()), "");
        }
    }
    EXPECT_GE(accepted, 2);  // the valid seeds stay valid
}
