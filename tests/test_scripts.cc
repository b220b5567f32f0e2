// The scripts a new user runs first: tools/run.sh checks every comparison with HuggingFace
// against the tolerance table and ends with one verdict line (and a non-zero status when a check
// fails); tools/sanitize.sh prints each job's summary line once. Both run here without building
// anything: run.sh on this build's CLI (EMBER_CLI), sanitize.sh with cmake and ctest replaced by
// stubs on PATH.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <regex>
#include <sstream>

#include "tests/ember_test.h"

using namespace ember_test;
namespace fs = std::filesystem;

namespace {

const std::string kSource = EMBER_SOURCE_DIR;

std::vector<std::string> Lines(const std::string &s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

int CountMatching(const std::string &text, const std::string &pattern) {
    const std::regex re(pattern);
    int n = 0;
    for (const std::string &l : Lines(text)) n += std::regex_search(l, re);
    return n;
}

std::string LastLine(const std::string &text) {
    std::vector<std::string> lines = Lines(text);
    while (!lines.empty() && lines.back().empty()) lines.pop_back();
    return lines.empty() ? "" : lines.back();
}

TEST(Scripts, RunChecksEveryComparisonAndEndsWithOneVerdict) {
    const std::string run = "cd " + kSource + " && EMBER_CLI=" + EMBER_CLI_PATH + " bash tools/run.sh 2>&1";
    CommandResult r = RunCommand(run);
    ASSERT_EQ(r.code, 0) << r.out;
    const int compared = CountMatching(r.out, "^  vs HuggingFace ");
    EXPECT_GE(compared, 2) << r.out;  // tiny-odd: last_hidden_state and pooler_output
    EXPECT_EQ(CountMatching(r.out, "^  vs HuggingFace .*, within \\|diff\\| <= 2e-05 \\+ 1e-05 \\|HF\\|"),
              compared) << "each comparison checked against tests/tolerances.h's kHfAbs, kHfRel\n" << r.out;
    EXPECT_EQ(CountMatching(r.out, "^run: "), 1) << r.out;
    EXPECT_EQ(LastLine(r.out), "run: PASS: all " + std::to_string(compared) +
                                   " comparisons with HuggingFace within |ember - HF| <= 2e-5 + "
                                   "1e-5 |HF| per element (tests/tolerances.h)") << r.out;
    // a bound ember cannot meet: the same comparisons fail, and so does the script
    r = RunCommand("cd " + kSource + " && EMBER_HF_TOLERANCE=1e-9,0 EMBER_CLI=" + EMBER_CLI_PATH +
                   " bash tools/run.sh 2>&1");
    EXPECT_NE(r.code, 0) << r.out;
    EXPECT_EQ(CountMatching(r.out, "^run: "), 1) << r.out;
    const std::string last = LastLine(r.out);
    EXPECT_EQ(last.rfind("run: FAIL: " + std::to_string(compared) + " of " + std::to_string(compared) +
                             " comparisons with HuggingFace outside",
                         0), 0u) << last;
    EXPECT_NE(last.find("forward on tests/data/models/tiny-odd"), std::string::npos) << last;
}

class SanitizeScript : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::path(::testing::TempDir()) / ("ember_sanitize_" + std::to_string(getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_ / "bin");
    }
    void TearDown() override { fs::remove_all(dir_); }
    // cmake succeeds at once; ctest prints `ctest_line` and exits with `ctest_rc`
    CommandResult Run(const std::string &ctest_line, int ctest_rc) {
        WriteFile(dir_ / "bin/cmake", "#!/bin/sh\nexit 0\n");
        WriteFile(dir_ / "bin/ctest", "#!/bin/sh\necho '" + ctest_line + "'\nexit " +
                                          std::to_string(ctest_rc) + "\n");
        for (const char *f : {"bin/cmake", "bin/ctest"}) chmod((dir_ / f).c_str(), 0755);
        return RunCommand("cd " + kSource + " && PATH=" + (dir_ / "bin").string() +
                          ":$PATH SANITIZE_LOGDIR=" + (dir_ / "logs").string() +
                          " bash tools/sanitize.sh 2>&1");
    }
    fs::path dir_;
};

TEST_F(SanitizeScript, EachSummaryLineIsPrintedOnce) {
    CommandResult r = Run("100% tests passed, 0 tests failed out of 3", 0);
    EXPECT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(CountMatching(r.out, "^sanitize: asan\\+ubsan +PASS "), 1) << r.out;
    EXPECT_EQ(CountMatching(r.out, "^sanitize: tsan +PASS "), 1) << r.out;
    EXPECT_EQ(CountMatching(r.out, "^sanitize: (asan\\+ubsan|tsan) +(PASS|FAIL)"), 2) << r.out;
    // a failing job: its summary once too, and the status says so
    r = Run("67% tests passed, 1 tests failed out of 3", 8);
    EXPECT_NE(r.code, 0) << r.out;
    EXPECT_EQ(CountMatching(r.out, "^sanitize: asan\\+ubsan +FAIL "), 1) << r.out;
    EXPECT_EQ(CountMatching(r.out, "^sanitize: tsan +FAIL "), 1) << r.out;
}

}  // namespace
