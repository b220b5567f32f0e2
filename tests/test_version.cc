// One version everywhere (header, CMake, library, CLI) and what ember_build_info reports.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "ember.h"
#include "tests/ember_test.h"

#ifdef EMBER_WITH_CUDA
#include <cuda_runtime.h>
#endif

TEST(Version, HeaderLibraryAndCMakeAgree) {
    int major = -1, minor = -1, patch = -1;
    const char *v = ember_version(&major, &minor, &patch);
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(major, EMBER_VERSION_MAJOR);
    EXPECT_EQ(minor, EMBER_VERSION_MINOR);
    EXPECT_EQ(patch, EMBER_VERSION_PATCH);
    EXPECT_EQ(std::string(v), std::to_string(major) + "." + std::to_string(minor) + "." +
                                  std::to_string(patch));
    EXPECT_STREQ(v, EMBER_VERSION_STRING);
    EXPECT_STREQ(v, EMBER_PROJECT_VERSION);  // what CMake read from the header
    EXPECT_EQ(EMBER_VERSION_NUMBER, major * 10000 + minor * 100 + patch);
    EXPECT_STREQ(ember_version(nullptr, nullptr, nullptr), v);
}

TEST(Version, BuildInfo) {
    const ember_build *b = ember_build_info();
    ASSERT_NE(b, nullptr);
    EXPECT_STREQ(b->version, EMBER_VERSION_STRING);
    EXPECT_EQ(b->cuda_device_count, ember_cuda_device_count());
#ifdef EMBER_WITH_CUDA
    EXPECT_STREQ(b->backends, "cpu reference cuda");
    EXPECT_STREQ(b->cuda_archs, EMBER_TEST_CUDA_ARCHS);
    EXPECT_EQ(b->cuda_toolkit_version, CUDART_VERSION);
    int rt = 0;
    ASSERT_EQ(cudaRuntimeGetVersion(&rt), cudaSuccess);
    EXPECT_EQ(b->cuda_runtime_version, rt);
    EXPECT_GE(b->cublas_version, 10000);  // cuBLASLt 1.0.0 or later: it was really asked
    if (b->cuda_device_count > 0) {
        EXPECT_GT(b->cuda_driver_version, 0);
    }
#else
    EXPECT_STREQ(b->backends, "cpu reference");
    EXPECT_STREQ(b->cuda_archs, "");
    EXPECT_EQ(b->cuda_toolkit_version, 0);
    EXPECT_EQ(b->cuda_runtime_version, 0);
    EXPECT_EQ(b->cuda_driver_version, 0);
    EXPECT_EQ(b->cublas_version, 0);
#endif
}

TEST(Version, BuildInfoIsOneObjectForAllThreads) {
    std::vector<const ember_build *> seen(8, nullptr);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < seen.size(); i++)
        threads.emplace_back([&seen, i] { seen[i] = ember_build_info(); });
    for (std::thread &t : threads) t.join();
    for (const ember_build *b : seen) EXPECT_EQ(b, ember_build_info());
}

TEST(Version, CliPrintsVersionAndBuild) {
    const std::vector<std::string> cmds = {"--version",
                                           "info --model " + ember_test::DataPath("models/tiny-odd")};
    for (const std::string &cmd : cmds) {
        ember_test::CommandResult r = ember_test::RunCommand(std::string(EMBER_CLI_PATH) + " " + cmd + " 2>&1");
        ASSERT_EQ(r.code, 0) << cmd << ": " << r.out;
        EXPECT_EQ(r.out.rfind("ember " EMBER_VERSION_STRING "\n", 0), 0u) << cmd << ": " << r.out;
        EXPECT_NE(r.out.find(std::string("backends: ") + ember_build_info()->backends + "\n"),
                  std::string::npos) << cmd << ": " << r.out;
#ifdef EMBER_WITH_CUDA
        EXPECT_NE(r.out.find(std::string("for architectures ") + EMBER_TEST_CUDA_ARCHS + ";"),
                  std::string::npos) << cmd << ": " << r.out;
#else
        EXPECT_NE(r.out.find("CUDA: not built"), std::string::npos) << cmd << ": " << r.out;
#endif
    }
}
