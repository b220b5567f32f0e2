// Files of the wrong type (tests/HOSTILE.md, "Files"). Reading: a FIFO, a symlink to one or a
// directory in place of any file ember reads from a model directory fails at once with
// EMBER_ERR_IO naming the file (an open() of a FIFO used to wait for a writer forever; a
// modules.json that was not a regular file used to be skipped, dropping MiniLM's Normalize).
// Each load runs on a thread with a deadline, so a regression fails instead of hanging.
// Writing: ember_st_write (the writer of `ember forward` and `embed --format safetensors`)
// replaces a regular file atomically, writes through a symlink to its target, and writes a
// FIFO or a device in place instead of replacing it with a regular file.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <thread>

#include "tests/ember_test.h"

using namespace ember_test;
namespace fs = std::filesystem;

namespace {

class FileTypes : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::path(::testing::TempDir()) /
               (std::string("ember_filetypes_") +
                ::testing::UnitTest::GetInstance()->current_test_info()->name() + "_" +
                std::to_string(getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    // A model directory with every file ember reads: tiny-odd's config.json and weights, a
    // vocabulary, the tokenizer's JSON files and a sentence-transformers layout.
    fs::path FullModel() {
        const fs::path m = dir_ / "model";
        fs::create_directories(m / "1_Pooling");
        fs::create_directories(m / "2_Normalize");
        for (const char *f : {"config.json", "model.safetensors"})
            fs::copy_file(DataPath(std::string("models/tiny-odd/") + f), m / f);
        WriteFile(m / "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n");
        WriteFile(m / "tokenizer_config.json", R"({"do_lower_case": true})");
        WriteFile(m / "special_tokens_map.json", R"({"unk_token": "[UNK]"})");
        WriteFile(m / "modules.json",
                  R"([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                      {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                      {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])");
        WriteFile(m / "1_Pooling/config.json",
                  R"({"word_embedding_dimension": 72, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false})");
        WriteFile(m / "2_Normalize/config.json", "{}");
        WriteFile(m / "sentence_bert_config.json", R"({"max_seq_length": 16})");
        return m;
    }

    fs::path dir_;
};

enum Loader { kModel, kTokenizer, kPooling };

// Runs the loader on a thread. If it has not returned after 20 s it is blocked in open() on
// the FIFO: that is the failure, and opening the FIFO for writing once lets it go on.
ember_status LoadBounded(Loader which, const fs::path &model, const fs::path &fifo,
                         std::string *msg) {
    auto run = [which, model, msg] {
        ember_status st = EMBER_OK;
        if (which == kModel) {
            ember_model *m = nullptr;
            st = ember_model_load(model.c_str(), nullptr, &m);
            ember_model_free(m);
        } else if (which == kTokenizer) {
            ember_tokenizer *t = nullptr;
            st = ember_tokenizer_load(model.c_str(), nullptr, &t);
            ember_tokenizer_free(t);
        } else {
            ember_pooling_config c;
            st = ember_pooling_config_load(model.c_str(), &c);
        }
        *msg = ember_last_error();  // per thread: read it on this one
        return st;
    };
    std::future<ember_status> f = std::async(std::launch::async, run);
    if (f.wait_for(std::chrono::seconds(20)) == std::future_status::timeout) {
        ADD_FAILURE() << "still blocked after 20 s: " << fifo;
        int fd = open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
        if (fd >= 0) close(fd);
    }
    return f.get();
}

TEST_F(FileTypes, FifoInPlaceOfAnyModelFileFailsAtOnceNamingIt) {
    const struct {
        const char *file;
        Loader loader;
    } cases[] = {
        {"config.json", kModel},
        {"model.safetensors", kModel},
        {"vocab.txt", kTokenizer},
        {"tokenizer_config.json", kTokenizer},
        {"special_tokens_map.json", kTokenizer},
        {"modules.json", kPooling},
        {"1_Pooling/config.json", kPooling},
        {"2_Normalize/config.json", kPooling},
        {"sentence_bert_config.json", kPooling},
    };
    for (const auto &c : cases) {
        for (bool via_symlink : {false, true}) {
            SCOPED_TRACE(std::string(c.file) + (via_symlink ? " (a symlink to a FIFO)" : ""));
            fs::remove_all(dir_);
            const fs::path m = FullModel();
            const fs::path fifo = via_symlink ? dir_ / "fifo" : m / c.file;
            fs::remove(m / c.file);
            ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
            if (via_symlink) fs::create_symlink(fifo, m / c.file);
            std::string msg;
            ember_status st = LoadBounded(c.loader, m, fifo, &msg);
            EXPECT_EQ(st, EMBER_ERR_IO) << msg;
            EXPECT_NE(msg.find(c.file), std::string::npos) << msg;
            EXPECT_NE(msg.find("not a regular file (a FIFO)"), std::string::npos) << msg;
        }
    }
    // the sharded layout's index
    fs::remove_all(dir_);
    const fs::path m = dir_ / "model";
    fs::create_directories(m);
    for (auto &e : fs::directory_iterator(DataPath("models/gelu-new-sharded")))
        fs::copy_file(e.path(), m / e.path().filename());
    fs::remove(m / "model.safetensors.index.json");
    ASSERT_EQ(mkfifo((m / "model.safetensors.index.json").c_str(), 0600), 0);
    std::string msg;
    EXPECT_EQ(LoadBounded(kModel, m, m / "model.safetensors.index.json", &msg), EMBER_ERR_IO) << msg;
    EXPECT_NE(msg.find("model.safetensors.index.json: not a regular file (a FIFO)"),
              std::string::npos) << msg;
}

TEST_F(FileTypes, DirectoryInPlaceOfAFileIsAnErrorNotAbsent) {
    // modules.json that is not a regular file used to be skipped: the directory then read as a
    // plain HF model (mean pooling, no Normalize), a different vector without an error
    const fs::path m = FullModel();
    fs::remove(m / "modules.json");
    fs::create_directories(m / "modules.json");
    ember_pooling_config c;
    EXPECT_EQ(ember_pooling_config_load(m.c_str(), &c), EMBER_ERR_IO);
    EXPECT_NE(std::string(ember_last_error()).find("modules.json: not a regular file (a directory)"),
              std::string::npos) << ember_last_error();
    // a model.safetensors that is a directory is not "absent, look for the index"
    fs::remove(m / "model.safetensors");
    fs::create_directories(m / "model.safetensors");
    ember_model *model = nullptr;
    EXPECT_EQ(ember_model_load(m.c_str(), nullptr, &model), EMBER_ERR_IO);
    EXPECT_EQ(model, nullptr);
    EXPECT_NE(std::string(ember_last_error()).find("model.safetensors: not a regular file (a directory)"),
              std::string::npos) << ember_last_error();
    // and the complete directory, restored, loads
    fs::remove_all(dir_);
    const fs::path ok = FullModel();
    ASSERT_EQ(ember_pooling_config_load(ok.c_str(), &c), EMBER_OK) << ember_last_error();
    EXPECT_EQ(c.mode, EMBER_POOL_CLS);
    EXPECT_EQ(c.normalize, 1);
    Model loaded = LoadCpu(ok.string(), 1, 4);
    EXPECT_TRUE(loaded);
}

// ---- writing --------------------------------------------------------------------------------

// One small tensor, written with ember_st_write; its bytes as a file would hold them.
struct Written {
    float data[3] = {1.5f, -2.0f, 0.25f};
    ember_st_tensor t{};
    Written() {
        t.name = "x";
        t.dtype = EMBER_ST_F32;
        t.ndim = 1;
        t.shape[0] = 3;
        t.data = data;
        t.nbytes = sizeof data;
    }
    ember_status To(const fs::path &p) { return ember_st_write(p.c_str(), &t, 1, nullptr, nullptr, 0); }
};

TEST_F(FileTypes, OutputRegularFileIsReplacedAtomicallyWithItsPermissions) {
    const fs::path p = dir_ / "out.safetensors";
    WriteFile(p, "old contents");
    fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
    struct stat before;
    ASSERT_EQ(stat(p.c_str(), &before), 0);
    Written w;
    ASSERT_EQ(w.To(p), EMBER_OK) << ember_last_error();
    struct stat after;
    ASSERT_EQ(stat(p.c_str(), &after), 0);
    EXPECT_NE(after.st_ino, before.st_ino) << "a new file renamed over the old one";
    EXPECT_EQ(after.st_mode & 07777, 0640u);
    StFile f = OpenSt(p.string());
    EXPECT_TRUE(f && Has(f.get(), "x"));
    int left = 0;
    for (const auto &e : fs::directory_iterator(dir_))
        left += e.path().filename().string().find(".tmp-") != std::string::npos;
    EXPECT_EQ(left, 0);
}

TEST_F(FileTypes, OutputSymlinkIsWrittenThroughAndKept) {
    Written w;
    // to an existing regular file (elsewhere, relative link), to nothing yet (dangling), and a
    // chain of two links
    fs::create_directories(dir_ / "real");
    WriteFile(dir_ / "real/a.safetensors", "old");
    fs::create_symlink("real/a.safetensors", dir_ / "link_a");
    fs::create_symlink(dir_ / "real/b.safetensors", dir_ / "link_b");
    fs::create_symlink("link_a", dir_ / "link_link");
    for (const char *link : {"link_a", "link_b", "link_link"}) {
        SCOPED_TRACE(link);
        ASSERT_EQ(w.To(dir_ / link), EMBER_OK) << ember_last_error();
        EXPECT_TRUE(fs::is_symlink(dir_ / link)) << "the symlink was replaced";
    }
    for (const char *real : {"real/a.safetensors", "real/b.safetensors"}) {
        EXPECT_TRUE(fs::is_regular_file(dir_ / real)) << real;
        StFile f = OpenSt((dir_ / real).string());
        EXPECT_TRUE(f && Has(f.get(), "x")) << real;
    }
    // a symlink loop is an error, and nothing is created
    fs::create_symlink("loop", dir_ / "loop");
    EXPECT_EQ(w.To(dir_ / "loop"), EMBER_ERR_IO);
    EXPECT_NE(std::string(ember_last_error()).find("loop"), std::string::npos) << ember_last_error();
    // a directory is an error
    EXPECT_EQ(w.To(dir_ / "real"), EMBER_ERR_IO);
    EXPECT_NE(std::string(ember_last_error()).find("is a directory"), std::string::npos)
        << ember_last_error();
}

TEST_F(FileTypes, OutputFifoIsWrittenInPlace) {
    const fs::path fifo = dir_ / "out.fifo";
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    std::string got;
    std::thread reader([&] { got = ReadFile(fifo); });  // blocks until the writer opens it
    Written w;
    EXPECT_EQ(w.To(fifo), EMBER_OK) << ember_last_error();
    const int release = open(fifo.c_str(), O_WRONLY | O_NONBLOCK);  // if the writer never opened it
    if (release >= 0) close(release);
    reader.join();
    struct stat sb;
    ASSERT_EQ(lstat(fifo.c_str(), &sb), 0);
    EXPECT_TRUE(S_ISFIFO(sb.st_mode)) << "the FIFO was replaced";
    // what came through the FIFO is the file a regular path gets
    ASSERT_EQ(w.To(dir_ / "regular.safetensors"), EMBER_OK);
    EXPECT_EQ(got, ReadFile(dir_ / "regular.safetensors"));
    EXPECT_GT(got.size(), 8u);
}

TEST_F(FileTypes, OutputCharacterDeviceIsWrittenInPlace) {
    // a private copy of /dev/null (1, 3): writing the system's own would replace it if the
    // writer regressed
    const fs::path dev = dir_ / "null";
    if (mknod(dev.c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0)
        GTEST_SKIP() << "cannot create a device node here (needs CAP_MKNOD): " << strerror(errno);
    Written w;
    ember_status st = w.To(dev);
    if (st == EMBER_ERR_IO && std::string(ember_last_error()).find("Permission denied") != std::string::npos)
        GTEST_SKIP() << "device nodes do not open on this filesystem (nodev): " << ember_last_error();
    EXPECT_EQ(st, EMBER_OK) << ember_last_error();
    fs::create_symlink(dev, dir_ / "to_null");
    EXPECT_EQ(w.To(dir_ / "to_null"), EMBER_OK) << ember_last_error();
    struct stat sb;
    ASSERT_EQ(lstat(dev.c_str(), &sb), 0);
    EXPECT_TRUE(S_ISCHR(sb.st_mode)) << "the device node was replaced by a regular file";
    EXPECT_TRUE(fs::is_symlink(dir_ / "to_null"));
}

}  // namespace
