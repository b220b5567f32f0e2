// The ember CLI end to end: the interface scripts use.
#include <sys/wait.h>

#include <filesystem>

#include "tests/ember_test.h"

using namespace ember_test;
namespace fs = std::filesystem;

namespace {

using Result = CommandResult;  // out: stdout and stderr together

Result RunCli(const std::string &args) {
    return RunCommand(std::string(EMBER_CLI_PATH) + " " + args + " 2>&1");
}

class Cli : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::path(::testing::TempDir()) /
               (std::string("ember_cli_") + ::testing::UnitTest::GetInstance()->current_test_info()->name() +
                "_" + std::to_string(getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }
    std::string Out() const { return (dir_ / "out.safetensors").string(); }
    fs::path dir_;
};

TEST_F(Cli, ForwardReproducesHuggingFace) {
    const char *cases[] = {"tiny-odd/hidden_states", "prefixed-gamma/inputs_embeds",
                           "gelu-new-sharded/embedding_output", "relu-f16/token_types"};
    for (const char *c : cases) {
        std::string model = std::string(c).substr(0, std::string(c).find('/'));
        std::string in = DataPath(std::string("goldens/") + c + ".safetensors");
        bool pooler = model != "gelu-new-sharded";
        Result r = RunCli("forward --model " + DataPath("models/" + model) + " --inputs " + in +
                          " --output " + Out() + " --hidden-states" + (pooler ? " --pooler" : ""));
        ASSERT_EQ(r.code, 0) << c << "\n" << r.out;
        EXPECT_NE(r.out.find("last_hidden_state"), std::string::npos) << r.out;
        StFile got = OpenSt(Out()), want = OpenSt(in);
        ASSERT_TRUE(got && want);
        EXPECT_TRUE(AllClose(ReadF32(got.get(), "last_hidden_state"),
                             ReadF32(want.get(), "expected.last_hidden_state"), ember_tol::kHfAbs,
                             ember_tol::kHfRel))
            << c;
        if (pooler) {
            EXPECT_TRUE(AllClose(ReadF32(got.get(), "pooler_output"),
                                 ReadF32(want.get(), "expected.pooler_output"), ember_tol::kHfAbs,
                                 ember_tol::kHfRel))
                << c;
        }
        const ember_st_tensor *hs = ember_st_find(got.get(), "hidden_states");
        ASSERT_NE(hs, nullptr);
        EXPECT_EQ(hs->ndim, 4);
        if (Has(want.get(), "expected.hidden_states")) {
            EXPECT_TRUE(AllClose(ReadF32(got.get(), "hidden_states"),
                                 ReadF32(want.get(), "expected.hidden_states"), ember_tol::kHfAbs,
                                 ember_tol::kHfRel))
                << c;
        }
    }
}

TEST_F(Cli, Int32IdsAccepted) {
    StFile g = OpenSt(DataPath("goldens/tiny-odd/right_padding.safetensors"));
    std::vector<int32_t> ids = ReadI32(g.get(), "input_ids"), mask = ReadI32(g.get(), "attention_mask");
    const ember_st_tensor *t = ember_st_find(g.get(), "input_ids");
    ember_st_tensor ts[2] = {};
    ts[0].name = "input_ids";
    ts[1].name = "attention_mask";
    for (int i = 0; i < 2; i++) {
        ts[i].dtype = EMBER_ST_I32;
        ts[i].ndim = 2;
        ts[i].shape[0] = t->shape[0];
        ts[i].shape[1] = t->shape[1];
        ts[i].nbytes = ids.size() * 4;
    }
    ts[0].data = ids.data();
    ts[1].data = mask.data();
    std::string in = (dir_ / "in.safetensors").string();
    ASSERT_EQ(ember_st_write(in.c_str(), ts, 2, nullptr, nullptr, 0), EMBER_OK) << ember_last_error();
    Result r = RunCli("forward --quiet --model " + DataPath("models/tiny-odd") + " --inputs " + in +
                      " --output " + Out());
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(r.out.empty()) << "--quiet printed: " << r.out;
    StFile got = OpenSt(Out());
    EXPECT_TRUE(AllClose(ReadF32(got.get(), "last_hidden_state"),
                         ReadF32(g.get(), "expected.last_hidden_state"), ember_tol::kHfAbs,
                         ember_tol::kHfRel));
    EXPECT_FALSE(Has(got.get(), "pooler_output"));
}

TEST_F(Cli, MeanPoolWritesUnitSentenceEmbeddings) {
    std::string in = DataPath("goldens/tiny-odd/right_padding.safetensors");
    Result r = RunCli("forward --mean-pool --model " + DataPath("models/tiny-odd") + " --inputs " +
                      in + " --output " + Out());
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("cosine similarity"), std::string::npos) << r.out;
    StFile got = OpenSt(Out()), g = OpenSt(in);
    std::vector<float> e = ReadF32(got.get(), "sentence_embedding");
    std::vector<float> h = ReadF32(got.get(), "last_hidden_state");
    std::vector<int32_t> mask = ReadI32(g.get(), "attention_mask");
    const int B = 4, S = 13, H = 72;
    ASSERT_EQ(e.size(), (size_t)B * H);
    for (int b = 0; b < B; b++) {
        // recompute: masked mean, then L2 norm
        std::vector<double> mean(H, 0.0);
        int n = 0;
        for (int s = 0; s < S; s++)
            if (mask[b * S + s]) {
                n++;
                for (int i = 0; i < H; i++) mean[i] += h[(b * S + s) * H + i];
            }
        double norm = 0.0;
        for (int i = 0; i < H; i++) norm += (mean[i] / n) * (mean[i] / n);
        norm = std::sqrt(norm);
        for (int i = 0; i < H; i++) ASSERT_NEAR(e[b * H + i], mean[i] / n / norm, 1e-6) << b << "," << i;
    }
}

TEST_F(Cli, OutputSymlinkIsWrittenThrough) {
    // the writer renames a temporary file over the symlink's target, not over the symlink
    fs::create_directories(dir_ / "real");
    fs::create_symlink("real/out.safetensors", dir_ / "link.safetensors");
    Result r = RunCli("forward --quiet --model " + DataPath("models/tiny-odd") + " --inputs " +
                      DataPath("goldens/tiny-odd/basic_ids.safetensors") + " --output " +
                      (dir_ / "link.safetensors").string());
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(fs::is_symlink(dir_ / "link.safetensors"));
    StFile got = OpenSt((dir_ / "real/out.safetensors").string());
    EXPECT_TRUE(got && Has(got.get(), "last_hidden_state"));
}

TEST_F(Cli, MeanPoolLabelsAreEscaped) {
    // the "sentences" metadata of the inputs file labels the similarity table: an ESC or a C1
    // CSI there must not reach the terminal
    StFile g = OpenSt(DataPath("goldens/tiny-odd/right_padding.safetensors"));
    ASSERT_TRUE(g);
    std::vector<ember_st_tensor> ts = {*ember_st_find(g.get(), "input_ids"),
                                       *ember_st_find(g.get(), "attention_mask")};
    const char *keys[] = {"sentences"};
    const char *values[] = {"[\"a\\u001b[2Jb\", \"\\u009b31m\", \"ok\", \"\\u202eevil\"]"};
    const std::string in = (dir_ / "in.safetensors").string();
    ASSERT_EQ(ember_st_write(in.c_str(), ts.data(), ts.size(), keys, values, 1), EMBER_OK)
        << ember_last_error();
    Result r = RunCli("forward --mean-pool --model " + DataPath("models/tiny-odd") + " --inputs " +
                      in + " --output " + Out());
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("\xc2\x9b"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("[0] a\\x1b[2Jb "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("[1] \\u009b31m "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("[3] \\u202eevil "), std::string::npos) << r.out;
}

TEST_F(Cli, Info) {
    Result r = RunCli("info --model " + DataPath("models/tiny-odd"));
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("layers 3, hidden 72, heads 6"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("parameters 152220"), std::string::npos) << r.out;
}

// Exit code 2 and every line of `needles` in the output.
void ExpectUsageError(const std::string &args, std::initializer_list<const char *> needles) {
    Result r = RunCli(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.out;
    for (const char *n : needles) EXPECT_NE(r.out.find(n), std::string::npos) << args << "\n" << r.out;
}

TEST_F(Cli, UsageErrors) {
    EXPECT_EQ(RunCli("frobnicate").code, 2);
    ExpectUsageError("forward --model m --inputs i --output o --dtype f64",
                     {"--dtype must be one of f32|f16|bf16, not 'f64'"});
    // the missing ones are named, all of them
    ExpectUsageError("forward --model x", {"ember forward: missing --inputs and --output"});
    ExpectUsageError("forward", {"ember forward: missing --model, --inputs and --output"});
    ExpectUsageError("info", {"ember info: missing --model"});
    ExpectUsageError("embed hello", {"ember embed: missing --model"});
    // options before the subcommand: say there is none
    ExpectUsageError("--model x", {"no command given", "'--model'", "usage: ember COMMAND"});
    // info takes --model only; a forward or embed option is named as such
    ExpectUsageError("info --model m --inputs y", {"unknown option '--inputs' (an option of `ember forward`"});
    ExpectUsageError("info --model m --pooler", {"unknown option '--pooler'"});
    ExpectUsageError("similarity --model m --output o a b", {"unknown option '--output' (an option of `ember"});
    ExpectUsageError("forward --model m --inputs i --output o extra", {"unexpected argument 'extra'"});
    ExpectUsageError("forward --model m --inputs i --output o --hf-tolerance 1e-5", {"--hf-tolerance needs ATOL,RTOL"});
    ExpectUsageError("forward --model m --inputs i --output o --hidden-states=1", {"--hidden-states takes no value"});
}

TEST_F(Cli, IntegerFlagsRejectJunkAndRangeNamingTheFlag) {
    // `forward --device abc` used to run on device 0
    const std::string fwd = "forward --model m --inputs i --output o ";
    for (const char *v : {"abc", "3x", "-1", "99999999999", "", " 1", "+1", "0x1", "1.0"}) {
        SCOPED_TRACE(v);
        ExpectUsageError(fwd + "--device '" + v + "'",
                         {("--device needs an integer in [0, 2147483647], not '" + std::string(v) + "'").c_str()});
    }
    ExpectUsageError("embed --model m --batch 0 hi", {"--batch needs an integer in [1, "});
    ExpectUsageError("embed --model m --batch 12abc hi", {"--batch needs an integer", "'12abc'"});
    ExpectUsageError("similarity --model m --max-length 1 a b", {"--max-length needs an integer in [2, 2147483647], not '1'"});
    ExpectUsageError("embed --model m --max-length 2147483648 hi", {"--max-length needs an integer"});
    ExpectUsageError("embed --model m --device", {"--device needs a value (N)"});
    // valid values, in both spellings, reach the command
    Result r = RunCli("info --model=" + DataPath("models/tiny-odd"));
    EXPECT_EQ(r.code, 0) << r.out;
}

TEST_F(Cli, EveryCommandPrintsItsHelp) {
    // `ember` alone, `ember help`, `ember --help`: the commands
    for (const char *args : {"", "help", "--help", "-h"}) {
        Result r = RunCli(args);
        EXPECT_EQ(r.code, *args ? 0 : 2) << args;
        for (const char *c : {"forward", "info", "embed", "similarity", "usage: ember COMMAND"})
            EXPECT_NE(r.out.find(c), std::string::npos) << "'" << args << "' lacks " << c << ":\n" << r.out;
    }
    // each command's own, as `ember C --help`, `ember C -h` and `ember help C`
    const struct {
        const char *cmd, *needle;
    } cmds[] = {{"forward", "--hf-tolerance ATOL,RTOL"}, {"info", "usage: ember info --model DIR"},
                {"embed", "Truncation"}, {"similarity", "usage: ember similarity"}};
    for (const auto &c : cmds)
        for (const std::string &args : {std::string(c.cmd) + " --help", std::string(c.cmd) + " -h",
                                        "help " + std::string(c.cmd),
                                        std::string(c.cmd) + " --model x --help"}) {
            Result r = RunCli(args);
            EXPECT_EQ(r.code, 0) << args << "\n" << r.out;
            EXPECT_NE(r.out.find(c.needle), std::string::npos) << args << "\n" << r.out;
            EXPECT_NE(r.out.find("-h, --help"), std::string::npos) << args;
        }
    ExpectUsageError("help frobnicate", {"no command 'frobnicate'"});
}

TEST_F(Cli, BadModelDirectory) {
    // said plainly, before any file in it (or the sentence-transformers configuration) is blamed
    for (const char *cmd : {"info", "forward --inputs i --output o", "embed", "similarity"}) {
        Result r = RunCli(std::string(cmd) + " --model " + (dir_ / "nope").string() + " a b");
        if (std::string(cmd) == "info" || std::string(cmd).rfind("forward", 0) == 0)
            r = RunCli(std::string(cmd) + " --model " + (dir_ / "nope").string());
        EXPECT_EQ(r.code, 1) << cmd << "\n" << r.out;
        EXPECT_NE(r.out.find("the model directory '" + (dir_ / "nope").string() + "' does not exist"),
                  std::string::npos) << cmd << "\n" << r.out;
        EXPECT_EQ(r.out.find("sentence-transformers"), std::string::npos) << r.out;
    }
    WriteFile(dir_ / "file", "x");
    Result r = RunCli("info --model " + (dir_ / "file").string());
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("is not a directory"), std::string::npos) << r.out;
}

TEST_F(Cli, HfToleranceChecksEveryExpectedOutput) {
    const std::string in = DataPath("goldens/tiny-odd/hidden_states.safetensors");
    const std::string base = "forward --model " + DataPath("models/tiny-odd") + " --inputs " + in +
                             " --output " + Out() + " --pooler --hidden-states";
    Result r = RunCli(base + " --hf-tolerance 2e-5,1e-5");
    ASSERT_EQ(r.code, 0) << r.out;
    for (const char *name : {"expected.last_hidden_state", "expected.pooler_output", "expected.hidden_states"})
        EXPECT_NE(r.out.find(std::string(name) + " (from the inputs file): max |diff|"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("within |diff| <= 2e-05 + 1e-05 |HF|"), std::string::npos) << r.out;
    // a bound no float computation meets: every output fails, named, and the exit status says so
    r = RunCli(base + " --quiet --hf-tolerance 0,0");
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("expected.last_hidden_state (from the inputs file): max |diff|"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("FAIL:"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("3 of 3 outputs differ from HuggingFace's beyond --hf-tolerance 0,0"),
              std::string::npos) << r.out;
    // nothing to check against is a failure, not a pass
    StFile g = OpenSt(in);
    ASSERT_TRUE(g);
    const ember_st_tensor ids = *ember_st_find(g.get(), "input_ids");
    const std::string bare = (dir_ / "bare.safetensors").string();
    ASSERT_EQ(ember_st_write(bare.c_str(), &ids, 1, nullptr, nullptr, 0), EMBER_OK) << ember_last_error();
    r = RunCli("forward --quiet --model " + DataPath("models/tiny-odd") + " --inputs " + bare +
               " --output " + Out() + " --hf-tolerance 1,1");
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("holds no expected.<output> to check against"), std::string::npos) << r.out;
}

TEST_F(Cli, OutOfRangeIdReported) {
    std::vector<int64_t> ids = {5, 9, 100000};
    ember_st_tensor t = {};
    t.name = "input_ids";
    t.dtype = EMBER_ST_I64;
    t.ndim = 2;
    t.shape[0] = 1;
    t.shape[1] = 3;
    t.data = ids.data();
    t.nbytes = 24;
    std::string in = (dir_ / "in.safetensors").string();
    ASSERT_EQ(ember_st_write(in.c_str(), &t, 1, nullptr, nullptr, 0), EMBER_OK);
    Result r = RunCli("forward --model " + DataPath("models/tiny-odd") + " --inputs " + in +
                      " --output " + Out());
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("input_ids[0][2] = 100000"), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(Out())) << "no output file after a failed forward";
}

TEST_F(Cli, TwoEntryPointsRejected) {
    StFile g = OpenSt(DataPath("goldens/tiny-odd/pitfall.safetensors"));
    std::vector<ember_st_tensor> ts = {*ember_st_find(g.get(), "input_ids")};
    ember_st_tensor e = *ember_st_find(g.get(), "wrong_inputs_embeds");
    e.name = "inputs_embeds";
    ts.push_back(e);
    std::string in = (dir_ / "in.safetensors").string();
    ASSERT_EQ(ember_st_write(in.c_str(), ts.data(), ts.size(), nullptr, nullptr, 0), EMBER_OK);
    Result r = RunCli("forward --model " + DataPath("models/tiny-odd") + " --inputs " + in +
                      " --output " + Out());
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("exactly one of"), std::string::npos) << r.out;
}

TEST_F(Cli, CorruptInputsFile) {
    std::string in = (dir_ / "in.safetensors").string();
    FILE *f = fopen(in.c_str(), "wb");
    fputs("not a safetensors file at all", f);
    fclose(f);
    Result r = RunCli("forward --model " + DataPath("models/tiny-odd") + " --inputs " + in +
                      " --output " + Out());
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("EMBER_ERR_FORMAT"), std::string::npos) << r.out;
    // what a new user sees first: which file, and that it is not safetensors; the detail after
    EXPECT_NE(r.out.find(in + ": not a safetensors file: header length"), std::string::npos) << r.out;
    // the same as a weight file
    fs::create_directories(dir_ / "m");
    fs::copy_file(DataPath("models/tiny-odd/config.json"), dir_ / "m/config.json");
    fs::copy_file(in, dir_ / "m/model.safetensors");
    r = RunCli("info --model " + (dir_ / "m").string());
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("m/model.safetensors: not a safetensors file: header length"), std::string::npos)
        << r.out;
}

// --backend names the three backends; both CPU ones reproduce HF, and say which ran.
TEST_F(Cli, BackendCpuAndReference) {
    const std::string in = DataPath("goldens/tiny-odd/holes_mask.safetensors");
    StFile want = OpenSt(in);
    ASSERT_TRUE(want);
    for (const char *backend : {"cpu", "reference"}) {
        Result r = RunCli(std::string("forward --backend ") + backend + " --model " +
                          DataPath("models/tiny-odd") + " --inputs " + in + " --output " + Out());
        ASSERT_EQ(r.code, 0) << backend << "\n" << r.out;
        EXPECT_NE(r.out.find(std::string("backend ") + backend + ","), std::string::npos) << r.out;
        StFile got = OpenSt(Out());
        ASSERT_TRUE(got);
        EXPECT_TRUE(AllClose(ReadF32(got.get(), "last_hidden_state"),
                             ReadF32(want.get(), "expected.last_hidden_state"), ember_tol::kHfAbs,
                             ember_tol::kHfRel))
            << backend;
    }
    for (const char *cmd : {"forward", "embed"}) {
        Result r = RunCli(std::string(cmd) + " --backend gpu --model " + DataPath("models/tiny-odd"));
        EXPECT_NE(r.code, 0) << cmd;
        EXPECT_NE(r.out.find("--backend must be one of cpu|reference|cuda, not 'gpu'"),
                  std::string::npos)
            << cmd << ": " << r.out;
    }
}

TEST_F(Cli, CudaWithoutDevice) {
    if (ember_cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
    Result r = RunCli("forward --backend cuda --model " + DataPath("models/tiny-odd") + " --inputs " +
                      DataPath("goldens/tiny-odd/basic_ids.safetensors") + " --output " + Out());
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("no CUDA device"), std::string::npos) << r.out;
}

}  // namespace
