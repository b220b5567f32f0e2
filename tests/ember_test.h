// The C++ shim the tests use over ember's C API: RAII handles, file helpers, comparisons.
#pragma once

#include <gtest/gtest.h>
#include <jansson.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "ember.h"
#include "tests/tolerances.h"
#include "weights/safetensors.h"

namespace ember_test {

struct ModelDeleter {
    void operator()(ember_model *m) const { ember_model_free(m); }
};
using Model = std::unique_ptr<ember_model, ModelDeleter>;

struct FileDeleter {
    void operator()(ember_st_file *f) const { ember_st_close(f); }
};
using StFile = std::unique_ptr<ember_st_file, FileDeleter>;

// Where the tests find the source tree (tests/data, tests/fuzz, .pydeps) and the CLI. Nothing
// absolute is compiled in, so a build carried to another path or machine runs as it is
// (tools/gpu-check.sh run): EMBER_SOURCE_DIR and EMBER_CLI in the environment when set, else
// relative to this executable: EMBER_SOURCE_FROM_BIN (CMake's path from the build folder to
// the source folder) and the `ember` beside it.
inline std::string ExeDir() {
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return ".";
    std::string exe(buf, (size_t)n);
    return exe.substr(0, exe.rfind('/'));
}

#ifndef EMBER_SOURCE_FROM_BIN
#define EMBER_SOURCE_FROM_BIN ".."
#endif

inline const std::string &SourceDir() {
    static const std::string dir = [] {
        const char *env = std::getenv("EMBER_SOURCE_DIR");
        return env && *env ? std::string(env) : ExeDir() + "/" + EMBER_SOURCE_FROM_BIN;
    }();
    return dir;
}

inline const std::string &DataDir() {
    static const std::string dir = SourceDir() + "/tests/data";
    return dir;
}

inline const std::string &CliPath() {
    static const std::string path = [] {
        const char *env = std::getenv("EMBER_CLI");
        return env && *env ? std::string(env) : ExeDir() + "/ember";
    }();
    return path;
}

// The names the tests use (once compile-time constants).
#define EMBER_SOURCE_DIR (::ember_test::SourceDir().c_str())
#define EMBER_TEST_DATA_DIR (::ember_test::DataDir().c_str())
#define EMBER_CLI_PATH (::ember_test::CliPath().c_str())

inline std::string DataPath(const std::string &rel) { return DataDir() + "/" + rel; }

// "EMBER_ERR_X: ...: <last error>" for assertion messages.
inline std::string Why(ember_status st) {
    return std::string(ember_status_string(st)) + " — " + ember_last_error();
}

// For test names: "cpu" (the fast path), "reference", "cuda".
inline std::string BackendName(ember_backend b) {
    return b == EMBER_BACKEND_REFERENCE ? "reference" : b == EMBER_BACKEND_CUDA ? "cuda" : "cpu";
}

// backend: EMBER_BACKEND_CPU (the fast path, the default) or EMBER_BACKEND_REFERENCE.
inline Model LoadCpu(const std::string &dir, int max_batch = 8, int max_seq = 64,
                     ember_backend backend = EMBER_BACKEND_CPU) {
    ember_load_options opt;
    ember_load_options_init(&opt);
    opt.backend = backend;
    opt.max_batch = max_batch;
    opt.max_seq_len = max_seq;
    ember_model *m = nullptr;
    ember_status st = ember_model_load(dir.c_str(), &opt, &m);
    EXPECT_EQ(st, EMBER_OK) << Why(st);
    return Model(m);
}

inline StFile OpenSt(const std::string &path) {
    ember_st_file *f = nullptr;
    ember_status st = ember_st_open(path.c_str(), &f);
    EXPECT_EQ(st, EMBER_OK) << Why(st);
    return StFile(f);
}

inline bool Has(ember_st_file *f, const char *name) { return ember_st_find(f, name) != nullptr; }

inline std::vector<float> ReadF32(ember_st_file *f, const char *name) {
    const ember_st_tensor *t = ember_st_find(f, name);
    if (!t) {
        ADD_FAILURE() << "tensor " << name << " missing";
        return {};
    }
    std::vector<float> v((size_t)ember_st_numel(t));
    EXPECT_EQ(ember_st_to_f32(t, v.data()), EMBER_OK) << ember_last_error();
    return v;
}

inline std::vector<int32_t> ReadI32(ember_st_file *f, const char *name) {
    const ember_st_tensor *t = ember_st_find(f, name);
    if (!t) return {};
    std::vector<int32_t> v((size_t)ember_st_numel(t));
    EXPECT_EQ(ember_st_to_i32(t, v.data()), EMBER_OK) << ember_last_error();
    return v;
}

// Outputs start as NaN so that an element the library never writes cannot pass.
inline std::vector<float> Poisoned(size_t n) { return std::vector<float>(n, std::nanf("")); }

// |a - e| <= atol + rtol * |e| elementwise; NaN anywhere fails. Reports the first
// mismatches, the max abs diff and how far over the threshold, like llm.c.
inline ::testing::AssertionResult AllClose(const std::vector<float> &a, const std::vector<float> &e,
                                           double atol, double rtol) {
    if (a.size() != e.size())
        return ::testing::AssertionFailure() << "size " << a.size() << " != expected " << e.size();
    size_t bad = 0;
    double max_abs = 0.0, worst_ratio = 0.0;
    std::string first;
    for (size_t i = 0; i < a.size(); i++) {
        double d = std::fabs((double)a[i] - (double)e[i]);
        double lim = atol + rtol * std::fabs((double)e[i]);
        bool ok = !std::isnan(a[i]) && !std::isnan(e[i]) && d <= lim;
        if (!std::isnan(d) && d > max_abs) max_abs = d;
        if (!std::isnan(d) && d / lim > worst_ratio) worst_ratio = d / lim;
        if (!ok) {
            if (bad < 5) {
                char buf[160];
                snprintf(buf, sizeof buf, "  [%zu] got %.9g expected %.9g (|diff| %.3g > %.3g)\n", i,
                         a[i], e[i], d, lim);
                first += buf;
            }
            bad++;
        }
    }
    if (bad == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << bad << " of " << a.size() << " elements mismatch, max |diff| "
                                         << max_abs << ", worst diff/limit " << worst_ratio << "\n"
                                         << first;
}

inline double SumAbsDiff(const std::vector<float> &a, const std::vector<float> &b) {
    double s = 0.0;
    for (size_t i = 0; i < a.size() && i < b.size(); i++) s += std::fabs((double)a[i] - b[i]);
    return s;
}

// Largest |a - b|, for the figures tests print; NaN or a size mismatch counts as infinite.
inline double MaxDiff(const std::vector<float> &a, const std::vector<float> &b) {
    double m = a.size() == b.size() ? 0.0 : INFINITY;
    for (size_t i = 0; i < a.size() && i < b.size(); i++) {
        const double d = std::fabs((double)a[i] - (double)b[i]);
        m = std::isnan(d) ? INFINITY : std::max(m, d);
    }
    return m;
}

inline bool BitIdentical(const std::vector<float> &a, const std::vector<float> &b) {
    return a.size() == b.size() &&
           (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// One case of tests/data/goldens/manifest.json (written by tools/make_goldens.py).
struct GoldenCase {
    std::string model, name, file, model_dir, entry;
    bool hidden_states = false, pooler = false, logits = false;
};

// gtest prints parameters; without this it dumps the struct's raw bytes.
inline void PrintTo(const GoldenCase &g, std::ostream *os) { *os << g.model << "/" << g.name; }

// Empty when the manifest is missing (Golden.ManifestCoversEveryModelAndCase reports it).
inline std::vector<GoldenCase> LoadManifest() {
    std::vector<GoldenCase> out;
    json_error_t err;
    json_t *root = json_load_file(DataPath("goldens/manifest.json").c_str(), 0, &err);
    if (!root) return out;
    size_t i;
    json_t *c;
    json_array_foreach(root, i, c) {
        GoldenCase g;
        g.model = json_string_value(json_object_get(c, "model"));
        g.name = json_string_value(json_object_get(c, "case"));
        g.file = json_string_value(json_object_get(c, "file"));
        g.model_dir = json_string_value(json_object_get(c, "model_dir"));
        g.entry = json_string_value(json_object_get(c, "entry"));
        g.hidden_states = json_is_true(json_object_get(c, "has_hidden_states"));
        g.pooler = json_is_true(json_object_get(c, "has_pooler"));
        g.logits = json_is_true(json_object_get(c, "has_logits"));
        out.push_back(g);
    }
    json_decref(root);
    return out;
}

// A whole file as bytes ("" when it cannot be read).
inline std::string ReadFile(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Replace a file's contents with `bytes`.
inline void WriteFile(const std::string &path, const std::string &bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// True in AddressSanitizer / ThreadSanitizer builds: their shadow memory and quarantine make
// RSS figures and address-space limits meaningless, so tests that rely on those skip there.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

struct CommandResult {
    int code = -1;    // exit status, -1 when the command did not exit normally
    std::string out;  // what it wrote to stdout
};

// Run a shell command line and capture its stdout (redirect stderr in `cmd` as needed).
inline CommandResult RunCommand(const std::string &cmd) {
    CommandResult r;
    FILE *p = popen(cmd.c_str(), "r");
    if (!p) return r;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    int status = pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

}  // namespace ember_test
