// `ember embed` and `ember similarity` end to end: exit codes, every output format parsed,
// input order kept through the length sort, truncation warning, invalid UTF-8, empty input,
// atomic output files. Most cases use tests/data/models/prefixed-gamma (a plain HF
// BertForMaskedLM directory: `bert.` names, gamma/beta, cls.* heads) copied into a temporary
// directory with a generated vocab.txt; the all-MiniLM-L6-v2 cases skip without the checkpoint.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include <thread>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/ember_test.h"

using namespace ember_test;
namespace fs = std::filesystem;

namespace {

struct Result {
    int code = -1;
    std::string out;  // stdout
    std::string err;  // stderr
};

const std::string kMiniLm = std::string(EMBER_SOURCE_DIR) + "/.pydeps/all-MiniLM-L6-v2";

// Single-quoted for /bin/sh.
std::string Q(const std::string &s) {
    std::string r = "'";
    for (char c : s) r += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return r + "'";
}

class CliEmbed : public ::testing::Test {
protected:
    void SetUp() override {
        // the pid: every checkout and build on the machine runs the same test names, and two
        // runs sharing a folder remove and replace each other's files (and FIFO)
        dir_ = fs::path(::testing::TempDir()) /
               (std::string("ember_cli_embed_") +
                ::testing::UnitTest::GetInstance()->current_test_info()->name() + "_" +
                std::to_string(getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
        // a plain HF directory (no modules.json) with a vocabulary of exactly vocab_size lines
        model_ = dir_ / "model";
        fs::create_directories(model_);
        for (const char *f : {"config.json", "model.safetensors"})
            fs::copy_file(DataPath(std::string("models/prefixed-gamma/") + f), model_ / f);
        std::vector<std::string> v = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
        for (char c = 'a'; c <= 'z'; c++) v.push_back(std::string(1, c));
        for (char c = 'a'; c <= 'z'; c++) v.push_back("##" + std::string(1, c));
        for (char c = '0'; c <= '9'; c++) v.push_back(std::string(1, c));
        for (const char *p : {".", ",", "!", "?", "'", "-", "\xc3\xa9"}) v.push_back(p);
        for (const char *w : {"the", "a", "man", "is", "eating", "food", "bread", "girl", "horse",
                              "riding", "cat", "dog", "sat", "on", "mat", "hello", "world"})
            v.push_back(w);
        for (int i = 0; v.size() < 150; i++) v.push_back("w" + std::to_string(i) + "x");
        std::ofstream vf(model_ / "vocab.txt");
        for (const std::string &t : v) vf << t << "\n";
    }
    void TearDown() override { fs::remove_all(dir_); }

    Result Run(const std::string &args, const std::string *stdin_text = nullptr) {
        std::string in = "/dev/null";
        if (stdin_text) {
            in = (dir_ / "stdin.txt").string();
            WriteFile(in, *stdin_text);
        }
        const std::string err = (dir_ / "stderr.txt").string();
        std::string cmd = std::string(EMBER_CLI_PATH) + " " + args + " <" + Q(in) + " 2>" + Q(err);
        CommandResult c = RunCommand(cmd);
        Result r;
        r.code = c.code;
        r.out = std::move(c.out);
        r.err = ReadFile(err);
        return r;
    }
    std::string M() const { return "--model " + Q(model_.string()) + " "; }

    fs::path dir_, model_;
};

// "x y z\n" lines of floats.
std::vector<std::vector<float>> ParseText(const std::string &s) {
    std::vector<std::vector<float>> rows;
    std::istringstream in(s);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::vector<float> r;
        float x;
        while (ls >> x) r.push_back(x);
        rows.push_back(r);
    }
    return rows;
}

// The library's answer for one text alone: tokenizer + forward + pool on a CPU backend.
std::vector<float> LibEmbed(const std::string &dir, const std::string &text, ember_pooling mode,
                            int normalize, int max_length,
                            ember_backend backend = EMBER_BACKEND_CPU) {
    ember_tokenizer *tok = nullptr;
    EXPECT_EQ(ember_tokenizer_load(dir.c_str(), nullptr, &tok), EMBER_OK) << ember_last_error();
    Model m = LoadCpu(dir, 1, max_length, backend);
    ember_config c;
    ember_model_config(m.get(), &c);
    const char *t = text.c_str();
    ember_encoding enc;
    EXPECT_EQ(ember_tokenizer_encode(tok, 1, &t, nullptr, max_length, &enc), EMBER_OK)
        << ember_last_error();
    std::vector<float> h((size_t)enc.seq_len * c.hidden_size), e(c.hidden_size);
    ember_inputs in = {};
    in.batch = 1;
    in.seq_len = enc.seq_len;
    in.input_ids = enc.input_ids;
    in.attention_mask = enc.attention_mask;
    ember_outputs out = {};
    out.last_hidden_state = h.data();
    EXPECT_EQ(ember_forward(m.get(), &in, &out, nullptr), EMBER_OK) << ember_last_error();
    EXPECT_EQ(ember_pool(m.get(), h.data(), enc.attention_mask, 1, enc.seq_len, mode, normalize,
                         e.data(), nullptr), EMBER_OK);
    ember_encoding_free(&enc);
    ember_tokenizer_free(tok);
    return e;
}

const std::vector<std::string> kTexts = {
    "the man is eating bread.", "a", "hello world! the cat sat on the mat, the dog is riding a horse.",
    "", "girl", "the dog sat."};

TEST_F(CliEmbed, PlainHfDirectoryInputOrderKeptThroughTheSort) {
    std::string args = M() + "--batch 2";  // 3 batches; the sort reorders every one of them
    for (const std::string &t : kTexts) args += " " + Q(t);
    Result r = Run("embed " + args);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.err, "") << "no warning, no progress bar on a pipe";
    auto rows = ParseText(r.out);
    ASSERT_EQ(rows.size(), kTexts.size()) << r.out;
    for (size_t i = 0; i < kTexts.size(); i++) {
        ASSERT_EQ(rows[i].size(), 64u) << i;
        // plain HF directory: mean pooling, no normalisation, up to max_position_embeddings
        EXPECT_TRUE(AllClose(rows[i], LibEmbed(model_.string(), kTexts[i], EMBER_POOL_MEAN, 0, 32),
                             ember_tol::kPoolAbs, ember_tol::kPoolRel))
            << "row " << i << " (" << kTexts[i] << ")";
    }
    // the plain directory also runs `forward`
    Result f = Run("forward " + M() + "--inputs " +
                   Q(DataPath("goldens/prefixed-gamma/basic_ids.safetensors")) + " --output " +
                   Q((dir_ / "f.safetensors").string()) + " --quiet");
    EXPECT_EQ(f.code, 0) << f.err;
}

TEST_F(CliEmbed, StdinLinesPoolingAndNormalizeFlags) {
    // CRLF, an empty line in the middle, no newline at the end
    std::string in = "the man is eating bread.\r\n\ngirl\nthe dog sat.";
    Result r = Run("embed " + M() + "--pooling cls --normalize", &in);
    ASSERT_EQ(r.code, 0) << r.err;
    auto rows = ParseText(r.out);
    const std::vector<std::string> want = {"the man is eating bread.", "", "girl", "the dog sat."};
    ASSERT_EQ(rows.size(), want.size()) << r.out;
    for (size_t i = 0; i < want.size(); i++)
        EXPECT_TRUE(AllClose(rows[i], LibEmbed(model_.string(), want[i], EMBER_POOL_CLS, 1, 32),
                             ember_tol::kPoolAbs, ember_tol::kPoolRel)) << i;
    r = Run("embed " + M() + "--pooling max --no-normalize girl");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(AllClose(ParseText(r.out)[0], LibEmbed(model_.string(), "girl", EMBER_POOL_MAX, 0, 32),
                         ember_tol::kPoolAbs, ember_tol::kPoolRel));
}

TEST_F(CliEmbed, SentenceTransformersFilesGiveTheDefaults) {
    WriteFile(model_ / "modules.json",
              R"([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                  {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                  {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])");
    fs::create_directories(model_ / "1_Pooling");
    WriteFile(model_ / "1_Pooling/config.json",
              R"({"word_embedding_dimension": 64, "pooling_mode_max_tokens": true, "pooling_mode_mean_tokens": false})");
    WriteFile(model_ / "sentence_bert_config.json", R"({"max_seq_length": 6})");
    const std::string t = "hello world! the cat sat on the mat.";
    Result r = Run("embed " + M() + Q(t) + " girl");
    ASSERT_EQ(r.code, 0) << r.err;
    auto rows = ParseText(r.out);
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_TRUE(AllClose(rows[0], LibEmbed(model_.string(), t, EMBER_POOL_MAX, 1, 6),
                         ember_tol::kPoolAbs, ember_tol::kPoolRel));
    EXPECT_NE(r.err.find("1 of 2 inputs had more than 6 tokens"), std::string::npos) << r.err;
    // a module ember cannot honour is an error, not a different vector
    WriteFile(model_ / "1_Pooling/config.json",
              R"({"word_embedding_dimension": 64, "pooling_mode_weightedmean_tokens": true, "pooling_mode_mean_tokens": false})");
    r = Run("embed " + M() + "girl");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("pooling_mode_weightedmean_tokens"), std::string::npos) << r.err;
}

TEST_F(CliEmbed, DoLowerCaseAndTransformerPathFollowSentenceTransformers) {
    // a cased tokenizer (HELLO is [UNK] pieces, hello a word) in a Transformer folder, with
    // sentence_bert_config.json's do_lower_case: sentence-transformers lower-cases the texts
    // first, so HELLO and hello give the same vector
    const fs::path bert = model_ / "0_BERT";
    fs::create_directories(bert);
    for (const char *f : {"config.json", "model.safetensors", "vocab.txt"}) fs::rename(model_ / f, bert / f);
    WriteFile(bert / "tokenizer_config.json", R"({"do_lower_case": false})");
    WriteFile(model_ / "modules.json",
              R"([{"idx": 0, "name": "0", "path": "0_BERT", "type": "sentence_transformers.models.Transformer"},
                  {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}])");
    fs::create_directories(model_ / "1_Pooling");
    WriteFile(model_ / "1_Pooling/config.json", R"({"word_embedding_dimension": 64, "pooling_mode": "CLS"})");
    WriteFile(bert / "sentence_bert_config.json", R"({"max_seq_length": 6, "do_lower_case": false})");
    Result upper = Run("embed " + M() + "'HELLO WORLD'"), lower = Run("embed " + M() + "'hello world'");
    ASSERT_EQ(upper.code, 0) << upper.err;
    ASSERT_EQ(lower.code, 0) << lower.err;
    EXPECT_NE(upper.out, lower.out) << "a cased tokenizer without do_lower_case";
    // the model, tokenizer and max_seq_length came from 0_BERT; the pooling is CLS
    EXPECT_TRUE(AllClose(ParseText(lower.out)[0], LibEmbed(bert.string(), "hello world", EMBER_POOL_CLS, 0, 6),
                         ember_tol::kPoolAbs, ember_tol::kPoolRel));
    WriteFile(bert / "sentence_bert_config.json", R"({"max_seq_length": 6, "do_lower_case": true})");
    upper = Run("embed " + M() + "'HELLO WORLD'");
    ASSERT_EQ(upper.code, 0) << upper.err;
    EXPECT_EQ(upper.out, lower.out) << "do_lower_case: HELLO WORLD is embedded as hello world";
    // jsonl keeps the text as given
    Result j = Run("embed " + M() + "--format jsonl 'HELLO'");
    ASSERT_EQ(j.code, 0) << j.err;
    EXPECT_NE(j.out.find("\"text\": \"HELLO\""), std::string::npos) << j.out;
}

TEST_F(CliEmbed, EveryFormatParses) {
    std::string texts;
    for (const std::string &t : kTexts) texts += " " + Q(t);
    const size_t N = kTexts.size(), H = 64;
    Result text = Run("embed " + M() + texts);
    ASSERT_EQ(text.code, 0) << text.err;
    auto want = ParseText(text.out);

    // jsonl: one object per line, in input order
    Result j = Run("embed " + M() + "--format jsonl" + texts);
    ASSERT_EQ(j.code, 0) << j.err;
    std::istringstream lines(j.out);
    std::string line;
    size_t i = 0;
    while (std::getline(lines, line)) {
        json_error_t err;
        json_t *o = json_loads(line.c_str(), 0, &err);
        ASSERT_TRUE(o) << err.text << ": " << line;
        EXPECT_EQ(json_integer_value(json_object_get(o, "index")), (json_int_t)i);
        EXPECT_EQ(json_string_value(json_object_get(o, "text")), kTexts[i]);
        if (i == 0) {  // [CLS] the man is eating bread . [SEP]
            EXPECT_EQ(json_integer_value(json_object_get(o, "tokens")), 8);
        }
        EXPECT_GE(json_integer_value(json_object_get(o, "tokens")), 2);
        json_t *e = json_object_get(o, "embedding");
        ASSERT_EQ(json_array_size(e), H);
        for (size_t k = 0; k < H; k++)
            EXPECT_EQ((float)json_number_value(json_array_get(e, k)), want[i][k]) << i << "," << k;
        json_decref(o);
        i++;
    }
    EXPECT_EQ(i, N);

    // npy: NumPy format 1.0, '<f4', C order, shape (N, H), header padded to 64 bytes
    const fs::path npy = dir_ / "e.npy";
    Result n = Run("embed " + M() + "--format npy --output " + Q(npy.string()) + texts);
    ASSERT_EQ(n.code, 0) << n.err;
    EXPECT_EQ(n.out, "");
    std::string b = ReadFile(npy);
    ASSERT_GE(b.size(), 10u);
    EXPECT_EQ(b.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
    const size_t hl = (unsigned char)b[8] | (size_t)(unsigned char)b[9] << 8;
    EXPECT_EQ((10 + hl) % 64, 0u);
    const std::string hdr = b.substr(10, hl);
    EXPECT_EQ(hdr.back(), '\n');
    EXPECT_NE(hdr.find("'descr': '<f4'"), std::string::npos) << hdr;
    EXPECT_NE(hdr.find("'fortran_order': False"), std::string::npos) << hdr;
    EXPECT_NE(hdr.find("'shape': (6, 64)"), std::string::npos) << hdr;
    ASSERT_EQ(b.size(), 10 + hl + N * H * 4);
    std::vector<float> data(N * H);
    memcpy(data.data(), b.data() + 10 + hl, data.size() * 4);
    for (size_t r = 0; r < N; r++)
        EXPECT_TRUE(BitIdentical(std::vector<float>(data.begin() + r * H, data.begin() + (r + 1) * H),
                                 want[r])) << r;

    // safetensors: F32 sentence_embedding [N, H]
    const fs::path st = dir_ / "e.safetensors";
    Result s = Run("embed " + M() + "--format safetensors --output " + Q(st.string()) + texts);
    ASSERT_EQ(s.code, 0) << s.err;
    StFile f = OpenSt(st.string());
    ASSERT_TRUE(f);
    const ember_st_tensor *t = ember_st_find(f.get(), "sentence_embedding");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->dtype, EMBER_ST_F32);
    EXPECT_EQ(t->ndim, 2);
    EXPECT_EQ(t->shape[0], (int64_t)N);
    EXPECT_EQ(t->shape[1], (int64_t)H);
    EXPECT_TRUE(BitIdentical(ReadF32(f.get(), "sentence_embedding"), data));
    EXPECT_STREQ(ember_st_metadata(f.get(), "pooling"), "mean");
    EXPECT_STREQ(ember_st_metadata(f.get(), "max_length"), "32");

    // text to a file is the same text
    Result tf = Run("embed " + M() + "--output " + Q((dir_ / "e.txt").string()) + texts);
    ASSERT_EQ(tf.code, 0) << tf.err;
    EXPECT_EQ(ReadFile(dir_ / "e.txt"), text.out);
}

TEST_F(CliEmbed, TruncationWarnsOnceAndCuts) {
    std::string longtext;
    for (int i = 0; i < 40; i++) longtext += "the cat ";
    Result r = Run("embed " + M() + Q(longtext) + " girl " + Q(longtext + "dog"));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("warning: 2 of 3 inputs had more than 32 tokens ([CLS] and [SEP] "
                         "included) and were truncated to 32"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    auto rows = ParseText(r.out);
    ASSERT_EQ(rows.size(), 3u);
    // the first 30 pieces of both long texts are the same: the same embeddings (within the
    // fast path's tolerance: sgemm's rows depend on their place in the batch)
    EXPECT_TRUE(AllClose(rows[0], rows[2], ember_tol::kCpuFastAbs, ember_tol::kCpuFastRel));
    EXPECT_TRUE(AllClose(rows[0], LibEmbed(model_.string(), longtext, EMBER_POOL_MEAN, 0, 32),
                         ember_tol::kCpuFastAbs, ember_tol::kCpuFastRel));
    // the reference: bit-identical, and equal to the library's reference
    r = Run("embed --backend reference " + M() + Q(longtext) + " girl " + Q(longtext + "dog"));
    ASSERT_EQ(r.code, 0) << r.err;
    rows = ParseText(r.out);
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_TRUE(BitIdentical(rows[0], rows[2]));
    EXPECT_TRUE(AllClose(rows[0],
                         LibEmbed(model_.string(), longtext, EMBER_POOL_MEAN, 0, 32,
                                  EMBER_BACKEND_REFERENCE),
                         ember_tol::kPoolAbs, ember_tol::kPoolRel));
    // --max-length is capped by max_position_embeddings (32) and can cut shorter
    r = Run("embed " + M() + "--max-length 4 girl " + Q("the man is"));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("1 of 2 inputs had more than 4 tokens"), std::string::npos) << r.err;
    r = Run("embed " + M() + "--max-length 1000 " + Q(longtext));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("truncated to 32"), std::string::npos) << r.err;
}

// A valid model with max_position_embeddings = 2^20 (ember's bound): H 8, 1 layer, the
// fixture's vocabulary, random weights (the position table in F16: 16 MB). cap_batch x L as an
// int was 4096 x 2^20 = 0, a malloc(0) the forward overran (ASan: heap-buffer-overflow; Release:
// SIGSEGV); 4097 texts wrapped it to 2^20 instead.
void WriteHugePositionsModel(const fs::path &dir) {
    const int V = 150, H = 8, I = 16, P = 1 << 20;
    WriteFile(dir / "config.json",
              "{\"model_type\": \"bert\", \"vocab_size\": 150, \"hidden_size\": 8, "
              "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"intermediate_size\": 16, "
              "\"max_position_embeddings\": 1048576, \"type_vocab_size\": 2}");
    std::vector<std::vector<float>> f32;
    std::vector<uint16_t> pos((size_t)P * H);
    for (size_t i = 0; i < pos.size(); i++)  // F16 in [1/128, 1/64): small, never 0
        pos[i] = (uint16_t)(0x2000 | ((i * 2654435761u) >> 22 & 0x3ff));
    struct Spec {
        std::string name;
        int64_t d0, d1;
    };
    std::vector<Spec> specs = {{"embeddings.word_embeddings.weight", V, H},
                               {"embeddings.token_type_embeddings.weight", 2, H}};
    const std::string l0 = "encoder.layer.0.";
    const struct {
        std::string prefix;
        int64_t out, in;  // a Linear (weight [out, in], bias [out]) or a LayerNorm (in = 0)
    } parts[] = {{"embeddings.LayerNorm", H, 0},
                 {l0 + "attention.self.query", H, H},
                 {l0 + "attention.self.key", H, H},
                 {l0 + "attention.self.value", H, H},
                 {l0 + "attention.output.dense", H, H},
                 {l0 + "attention.output.LayerNorm", H, 0},
                 {l0 + "intermediate.dense", I, H},
                 {l0 + "output.dense", H, I},
                 {l0 + "output.LayerNorm", H, 0}};
    for (const auto &p : parts) {
        specs.push_back({p.prefix + ".weight", p.out, p.in});
        specs.push_back({p.prefix + ".bias", p.out, 0});
    }
    std::vector<ember_st_tensor> ts;
    uint32_t seed = 7;
    for (const Spec &sp : specs) {
        const size_t n = (size_t)sp.d0 * (sp.d1 ? sp.d1 : 1);
        f32.emplace_back(n);
        for (float &x : f32.back()) {
            seed = seed * 1664525u + 1013904223u;
            x = (float)((seed >> 8) * (1.0 / 16777216.0)) - 0.5f;
        }
        ember_st_tensor t{};
        t.name = sp.name.c_str();
        t.dtype = EMBER_ST_F32;
        t.ndim = sp.d1 ? 2 : 1;
        t.shape[0] = sp.d0;
        t.shape[1] = sp.d1;
        t.data = f32.back().data();
        t.nbytes = n * sizeof(float);
        ts.push_back(t);
    }
    ember_st_tensor t{};
    t.name = "embeddings.position_embeddings.weight";
    t.dtype = EMBER_ST_F16;
    t.ndim = 2;
    t.shape[0] = P;
    t.shape[1] = H;
    t.data = pos.data();
    t.nbytes = pos.size() * 2;
    ts.push_back(t);
    ASSERT_EQ(ember_st_write((dir / "model.safetensors").c_str(), ts.data(), ts.size(), nullptr,
                             nullptr, 0), EMBER_OK) << ember_last_error();
}

TEST_F(CliEmbed, HugeMaxPositionsTimesBatchDoesNotOverflow) {
    WriteHugePositionsModel(model_);
    std::string in;
    for (int i = 0; i < 4097; i++) in += i % 3 ? "the cat sat\n" : "a\n";
    const fs::path out = dir_ / "e.npy";
    Result r = Run("embed " + M() + "--batch 4096 --format npy --output " + Q(out.string()), &in);
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string b = ReadFile(out);
    ASSERT_GE(b.size(), 10u);
    const size_t hl = (unsigned char)b[8] | (size_t)(unsigned char)b[9] << 8;
    ASSERT_EQ(b.size(), 10 + hl + 4097u * 8 * 4);
    std::vector<float> e(4097u * 8);
    memcpy(e.data(), b.data() + 10 + hl, e.size() * 4);
    for (float v : e) ASSERT_TRUE(std::isfinite(v));
    // rows in input order: each equals its text embedded alone
    for (int i : {0, 1, 4095, 4096}) {
        Result one = Run("embed " + M() + Q(i % 3 ? "the cat sat" : "a"));
        ASSERT_EQ(one.code, 0) << one.err;
        EXPECT_TRUE(AllClose(std::vector<float>(e.begin() + i * 8, e.begin() + (i + 1) * 8),
                             ParseText(one.out)[0], ember_tol::kPoolAbs, ember_tol::kPoolRel)) << i;
    }
}

TEST_F(CliEmbed, InvalidUtf8NamesInputAndOffsetAndWritesNothing) {
    const fs::path out = dir_ / "out.npy";
    WriteFile(out, "previous contents");
    std::string in = "fine\nalso fine\nbad \xc3\x28 here\n";
    Result r = Run("embed " + M() + "--format npy --output " + Q(out.string()), &in);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("input 3 (stdin line 3) is not valid UTF-8 at byte offset 4"),
              std::string::npos) << r.err;
    EXPECT_EQ(ReadFile(out), "previous contents") << "the old file is untouched";
    // an argument: overlong encoding of '/', a surrogate, a truncated sequence
    for (const char *bad : {"\xc0\xaf", "ab\xed\xa0\x80", "abc\xe2\x82"}) {
        r = Run("embed " + M() + "ok " + Q(bad));
        EXPECT_EQ(r.code, 1) << bad;
        EXPECT_NE(r.err.find("input 2 (TEXT argument 2) is not valid UTF-8"), std::string::npos)
            << r.err;
        EXPECT_EQ(r.out, "");
    }
    int left = 0;
    for (const auto &e : fs::directory_iterator(dir_))
        left += e.path().filename().string().find(".tmp-") != std::string::npos;
    EXPECT_EQ(left, 0) << "temporary files left behind";
}

TEST_F(CliEmbed, FailureLeavesNoOutputFile) {
    const fs::path out = dir_ / "new.jsonl";
    Result r = Run("embed --model " + Q((dir_ / "nope").string()) + " --format jsonl --output " +
                   Q(out.string()) + " hello");
    EXPECT_EQ(r.code, 1);
    EXPECT_FALSE(fs::exists(out));
    // an unwritable destination: the error names it, and nothing is left there
    r = Run("embed " + M() + "--output " + Q((dir_ / "no/such/dir/x.txt").string()) + " hello");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("cannot create"), std::string::npos) << r.err;
}

TEST_F(CliEmbed, OutputThroughSymlinkFifoAndDevice) {
    Result want = Run("embed " + M() + "hello");
    ASSERT_EQ(want.code, 0) << want.err;
    // a symlink: written through to its target (a regular file there), the link kept
    WriteFile(dir_ / "target.txt", "old");
    fs::create_symlink("target.txt", dir_ / "link.txt");
    Result r = Run("embed " + M() + "--output " + Q((dir_ / "link.txt").string()) + " hello");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(fs::is_symlink(dir_ / "link.txt"));
    EXPECT_EQ(ReadFile(dir_ / "target.txt"), want.out);
    // a FIFO: written in place (the reader gets the rows), not replaced by a regular file
    const fs::path fifo = dir_ / "out.fifo";
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    std::string got;
    std::thread reader([&] { got = ReadFile(fifo); });
    r = Run("embed " + M() + "--output " + Q(fifo.string()) + " hello");
    const int release = open(fifo.c_str(), O_WRONLY | O_NONBLOCK);  // if ember never opened it
    if (release >= 0) close(release);
    reader.join();
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(got, want.out);
    struct stat sb;
    ASSERT_EQ(lstat(fifo.c_str(), &sb), 0);
    EXPECT_TRUE(S_ISFIFO(sb.st_mode));
    // a character device (a private copy of /dev/null): written, still a device
    const fs::path dev = dir_ / "null";
    if (mknod(dev.c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0)
        GTEST_SKIP() << "cannot create a device node here (needs CAP_MKNOD): " << strerror(errno);
    r = Run("embed " + M() + "--format npy --output " + Q(dev.string()) + " hello");
    if (r.code != 0 && r.err.find("Permission denied") != std::string::npos)
        GTEST_SKIP() << "device nodes do not open on this filesystem (nodev): " << r.err;
    EXPECT_EQ(r.code, 0) << r.err;
    ASSERT_EQ(lstat(dev.c_str(), &sb), 0);
    EXPECT_TRUE(S_ISCHR(sb.st_mode)) << "the device was replaced by a regular file";
}

TEST_F(CliEmbed, EmptyInputIsAnError) {
    Result r = Run("embed " + M());  // stdin is /dev/null
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("no input texts"), std::string::npos) << r.err;
    std::string empty;
    r = Run("embed " + M(), &empty);
    EXPECT_EQ(r.code, 1);
    std::string one_empty_line = "\n";  // one empty text: fine, [CLS] [SEP]
    r = Run("embed " + M(), &one_empty_line);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(ParseText(r.out).size(), 1u);
    r = Run("embed " + M() + "''");
    EXPECT_EQ(r.code, 0) << r.err;
}

TEST_F(CliEmbed, ProgressBarOnlyWhenStderrIsATerminal) {
    // util-linux `script` runs the command on a pseudo-terminal (stdout and stderr both)
    if (RunCommand("command -v script >/dev/null 2>&1").code != 0)
        GTEST_SKIP() << "`script` (util-linux/bsdutils) is not installed: no pseudo-terminal";
    std::string in;
    for (int i = 0; i < 70; i++) in += "the man is eating bread " + std::to_string(i) + "\n";
    const fs::path in_path = dir_ / "in.txt", out = dir_ / "o.npy";
    WriteFile(in_path, in);
    const std::string cmd = std::string(EMBER_CLI_PATH) + " embed " + M() + "--batch 8 --output " +
                            Q(out.string()) + " <" + Q(in_path.string());
    CommandResult tty = RunCommand("script -qec " + Q(cmd) + " /dev/null </dev/null");
    ASSERT_EQ(tty.code, 0) << tty.out;
    EXPECT_NE(tty.out.find("] 70/70"), std::string::npos) << tty.out;
    EXPECT_NE(tty.out.find("] 8/70"), std::string::npos) << tty.out;  // updated per batch
    // the same run with stderr on a file: no bar
    Result file = Run("embed " + M() + "--batch 8 --output " + Q(out.string()), &in);
    ASSERT_EQ(file.code, 0) << file.err;
    EXPECT_EQ(file.err.find("70/70"), std::string::npos) << file.err;
    // fewer than 64 texts: no bar even on a terminal
    WriteFile(in_path, "girl\nthe dog sat.\n");
    tty = RunCommand("script -qec " + Q(cmd) + " /dev/null </dev/null");
    ASSERT_EQ(tty.code, 0) << tty.out;
    EXPECT_EQ(tty.out.find("2/2"), std::string::npos) << tty.out;
}

TEST_F(CliEmbed, UsageErrorsAndHelp) {
    EXPECT_EQ(Run("embed hello").code, 2);
    EXPECT_EQ(Run("embed " + M() + "--format xml hi").code, 2);
    EXPECT_EQ(Run("embed " + M() + "--batch 0 hi").code, 2);
    EXPECT_EQ(Run("embed " + M() + "--max-length 1 hi").code, 2);
    EXPECT_EQ(Run("embed " + M() + "--pooling sum hi").code, 2);
    EXPECT_EQ(Run("embed " + M() + "--format safetensors hi").code, 2);
    EXPECT_EQ(Run("embed " + M() + "--frobnicate hi").code, 2);
    Result r = Run("embed --help");
    EXPECT_EQ(r.code, 0);
    EXPECT_NE(r.out.find("Truncation"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("stdin"), std::string::npos) << r.out;
    EXPECT_EQ(Run("similarity --help").code, 0);
    // "--" lets a text start with '-'
    r = Run("embed " + M() + "-- --not-an-option");
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(Run("similarity " + M() + "only-one").code, 1);
}

TEST_F(CliEmbed, SimilarityTable) {
    Result r = Run("similarity " + M() + Q("the man is eating bread.") + " " + Q("the man is eating food.") +
                   " " + Q("\xc3\xa9t\xc3\xa9 a very long label that has to be abbreviated in the table, really"));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("cosine similarity"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("+1.000"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("..."), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("[2]"), std::string::npos) << r.out;
}

TEST_F(CliEmbed, ControlCharactersNeverReachTheTerminal) {
    // ESC sequences, C1 CSI (U+009B) and a bidi override (U+202E) in the texts, and ESC in a
    // key of a model file that an error message quotes: all shown as escapes
    Result r = Run("similarity " + M() + Q("red \x1b[31mX\x1b[0m") + " " +
                   Q("\xe2\x80\xae" "abc\xc2\x9b" "2J"));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("\xc2\x9b"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("\xe2\x80\xae"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("red \\x1b[31mX\\x1b[0m"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\\u202eabc\\u009b2J"), std::string::npos) << r.out;
    WriteFile(model_ / "modules.json",
              R"([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                  {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}])");
    fs::create_directories(model_ / "1_Pooling");
    WriteFile(model_ / "1_Pooling/config.json", "{\"word_embedding_dimension\": 64, \"\\u001b]0;pwned\\u0007\": 1}");
    r = Run("embed " + M() + "hi");
    EXPECT_EQ(r.code, 1);
    EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("\"\\x1b]0;pwned\\x07\" is not a Pooling setting"), std::string::npos) << r.err;
}

TEST_F(CliEmbed, CudaWithoutDevice) {
    if (ember_cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
    Result r = Run("embed --backend cuda " + M() + "hello");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("no CUDA device"), std::string::npos) << r.err;
}

// ---- the real checkpoint -----------------------------------------------------------------

#define REQUIRE_MINILM()                                                                   \
    do {                                                                                   \
        if (!fs::exists(kMiniLm + "/model.safetensors") || !fs::exists(kMiniLm + "/modules.json")) \
            GTEST_SKIP() << kMiniLm << " (with modules.json) is absent: run tools/fetch-minilm.sh"; \
    } while (0)

TEST_F(CliEmbed, MiniLmMatchesSentenceTransformers) {
    REQUIRE_MINILM();
    StFile g = OpenSt(DataPath("minilm/st_golden.safetensors"));
    ASSERT_TRUE(g);
    json_t *js = json_loads(ember_st_metadata(g.get(), "sentences"), 0, nullptr);
    std::vector<float> want = ReadF32(g.get(), "embedding");
    const int H = 384;
    const std::vector<int> pick = {0, 1, 2, 25, 33, 39, 48, 47};  // order and batches mixed
    std::string in;
    for (int i : pick) in += std::string(json_string_value(json_array_get(js, i))) + "\n";
    json_decref(js);
    Result r = Run("embed --model " + Q(kMiniLm) + " --batch 3 --format jsonl", &in);
    ASSERT_EQ(r.code, 0) << r.err;
    std::istringstream lines(r.out);
    std::string line;
    size_t k = 0;
    while (std::getline(lines, line)) {
        ASSERT_LT(k, pick.size());
        json_t *o = json_loads(line.c_str(), 0, nullptr);
        ASSERT_TRUE(o) << line;
        json_t *e = json_object_get(o, "embedding");
        ASSERT_EQ(json_array_size(e), (size_t)H);
        double dot = 0, na = 0, nb = 0, mx = 0;
        for (int i = 0; i < H; i++) {
            double a = json_number_value(json_array_get(e, i)), b = want[(size_t)pick[k] * H + i];
            dot += a * b, na += a * a, nb += b * b, mx = std::max(mx, std::fabs(a - b));
        }
        EXPECT_GE(dot / std::sqrt(na * nb), ember_tol::kStMinCosine) << "sentence " << pick[k];
        EXPECT_LE(mx, ember_tol::kStMaxAbs) << "sentence " << pick[k];
        json_decref(o);
        k++;
    }
    EXPECT_EQ(k, pick.size());
}

TEST_F(CliEmbed, MiniLmSimilarityParaphrasesHighUnrelatedLow) {
    REQUIRE_MINILM();
    Result r = Run("similarity --model " + Q(kMiniLm) +
                   " 'A man is eating food.' 'A man is eating a piece of bread.'"
                   " 'The girl is carrying a baby.'");
    ASSERT_EQ(r.code, 0) << r.err;
    // row 0: 1.000, then the paraphrase (0.755 with sentence-transformers), then unrelated
    size_t p = r.out.find("[0] A man is eating food.");
    ASSERT_NE(p, std::string::npos) << r.out;
    std::istringstream row(r.out.substr(p + 25));
    double c00, c01, c02;
    row >> c00 >> c01 >> c02;
    EXPECT_NEAR(c00, 1.0, 1e-3) << r.out;
    EXPECT_NEAR(c01, 0.755, 2e-3) << r.out;
    EXPECT_NEAR(c02, -0.105, 2e-3) << r.out;
    EXPECT_NE(r.out.find("mean pooling + normalize, up to 256 tokens"), std::string::npos) << r.out;
}

}  // namespace
