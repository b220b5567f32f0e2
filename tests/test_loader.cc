// Loading checkpoints: every layout HF writes, and every way a checkpoint or config.json
// can be wrong, each with a clear status and a message naming the culprit.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "tests/ember_test.h"
#include "weights/config.h"

using namespace ember_test;
namespace fs = std::filesystem;

namespace {

// A scratch copy of a bundled model that a test may break.
class BrokenCheckpoint : public ::testing::Test {
protected:
    void SetUp() override {
        const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
        // a parameterized test's name holds a '/' ("Rejected/case3"): one directory level only,
        // or TearDown leaves /tmp/ember_Rejected behind
        std::string name = info->name();
        std::replace(name.begin(), name.end(), '/', '_');
        dir_ = fs::path(::testing::TempDir()) / ("ember_" + name + "_" + std::to_string(getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    void CopyModel(const char *name) {
        for (auto &e : fs::directory_iterator(DataPath(std::string("models/") + name)))
            fs::copy_file(e.path(), dir_ / e.path().filename(), fs::copy_options::overwrite_existing);
    }

    // Set a top-level key of config.json to a JSON value (any layout, nested values too).
    void SetConfigJson(const std::string &key, const std::string &value) {
        const std::string path = (dir_ / "config.json").string();
        json_t *root = json_load_file(path.c_str(), 0, nullptr);
        json_t *v = json_loads(value.c_str(), JSON_DECODE_ANY, nullptr);
        ASSERT_TRUE(root && v) << value;
        json_object_set_new(root, key.c_str(), v);
        ASSERT_EQ(json_dump_file(root, path.c_str(), JSON_INDENT(2)), 0);
        json_decref(root);
    }

    // Replace one "key": value line of config.json (save_pretrained writes one per line).
    void SetConfig(const std::string &key, const std::string &value) {
        std::string s = ReadFile(dir_ / "config.json");
        size_t k = s.find("\"" + key + "\"");
        if (k == std::string::npos) {
            s.insert(s.find('{') + 1, "\n  \"" + key + "\": " + value + ",");
        } else {
            size_t colon = s.find(':', k), end = s.find_first_of(",\n}", colon);
            s.replace(colon + 1, end - colon - 1, " " + value);
        }
        WriteFile(dir_ / "config.json", s);
    }

    // Rewrite model.safetensors through `edit`, which may drop (return false), rename or
    // reshape tensors.
    void RewriteTensors(const std::function<bool(ember_st_tensor &, std::string &)> &edit) {
        fs::path p = dir_ / "model.safetensors";
        StFile f = OpenSt(p.string());
        ASSERT_TRUE(f);
        std::vector<ember_st_tensor> ts;
        std::vector<std::string> names;
        names.reserve(ember_st_count(f.get()));
        for (size_t i = 0; i < ember_st_count(f.get()); i++) {
            ember_st_tensor t = *ember_st_at(f.get(), i);
            std::string name = t.name;
            if (!edit(t, name)) continue;
            names.push_back(name);
            ts.push_back(t);
        }
        for (size_t i = 0; i < ts.size(); i++) ts[i].name = names[i].c_str();
        fs::path tmp = dir_ / "rewritten.safetensors";
        ASSERT_EQ(ember_st_write(tmp.c_str(), ts.data(), ts.size(), nullptr, nullptr, 0), EMBER_OK)
            << ember_last_error();
        f.reset();
        fs::rename(tmp, p);
    }

    // Add an F32 tensor of `shape` filled with `values` (repeated) to model.safetensors.
    void AddTensor(const std::string &name, std::vector<int64_t> shape, const std::vector<float> &values) {
        fs::path p = dir_ / "model.safetensors";
        StFile f = OpenSt(p.string());
        ASSERT_TRUE(f);
        std::vector<ember_st_tensor> ts;
        for (size_t i = 0; i < ember_st_count(f.get()); i++) ts.push_back(*ember_st_at(f.get(), i));
        size_t n = 1;
        for (int64_t d : shape) n *= (size_t)d;
        std::vector<float> data(n);
        for (size_t i = 0; i < n; i++) data[i] = values[i % values.size()];
        ember_st_tensor t{};
        t.name = name.c_str();
        t.dtype = EMBER_ST_F32;
        t.ndim = (int)shape.size();
        for (size_t d = 0; d < shape.size(); d++) t.shape[d] = shape[d];
        t.data = data.data();
        t.nbytes = n * sizeof(float);
        ts.push_back(t);
        fs::path tmp = dir_ / "added.safetensors";
        ASSERT_EQ(ember_st_write(tmp.c_str(), ts.data(), ts.size(), nullptr, nullptr, 0), EMBER_OK)
            << ember_last_error();
        f.reset();
        fs::rename(tmp, p);
    }

    // Load must fail with `want` and a message containing `needle`.
    void ExpectLoadFails(ember_status want, const std::string &needle) {
        ember_model *m = nullptr;
        ember_status st = ember_model_load(dir_.c_str(), nullptr, &m);
        EXPECT_EQ(st, want) << Why(st);
        EXPECT_EQ(m, nullptr);
        EXPECT_NE(std::string(ember_last_error()).find(needle), std::string::npos)
            << "message '" << ember_last_error() << "' should mention '" << needle << "'";
        ember_model_free(m);
    }

    void ExpectLoads() {
        ember_model *m = nullptr;
        ember_status st = ember_model_load(dir_.c_str(), nullptr, &m);
        EXPECT_EQ(st, EMBER_OK) << Why(st);
        ember_model_free(m);
    }

    fs::path dir_;
};

TEST_F(BrokenCheckpoint, CopyLoadsUnchanged) {
    CopyModel("tiny-odd");
    ExpectLoads();
}

TEST_F(BrokenCheckpoint, MissingDirectory) {
    fs::remove_all(dir_);
    ExpectLoadFails(EMBER_ERR_IO, "config.json");
}

TEST_F(BrokenCheckpoint, MissingConfig) {
    CopyModel("tiny-odd");
    fs::remove(dir_ / "config.json");
    ExpectLoadFails(EMBER_ERR_IO, "config.json");
}

TEST_F(BrokenCheckpoint, MissingWeights) {
    CopyModel("tiny-odd");
    fs::remove(dir_ / "model.safetensors");
    ExpectLoadFails(EMBER_ERR_IO, "model.safetensors");
}

TEST_F(BrokenCheckpoint, TruncatedWeights) {
    CopyModel("tiny-odd");
    fs::resize_file(dir_ / "model.safetensors", fs::file_size(dir_ / "model.safetensors") - 100);
    ExpectLoadFails(EMBER_ERR_FORMAT, "model.safetensors");
}

TEST_F(BrokenCheckpoint, CorruptHeaderLength) {
    CopyModel("tiny-odd");
    std::fstream f(dir_ / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    const unsigned char huge[8] = {0, 0, 0, 0, 0, 0, 0, 0x10};
    f.write(reinterpret_cast<const char *>(huge), 8);
    f.close();
    ExpectLoadFails(EMBER_ERR_FORMAT, "model.safetensors");
}

TEST_F(BrokenCheckpoint, MissingTensor) {
    CopyModel("tiny-odd");
    RewriteTensors([](ember_st_tensor &, std::string &n) {
        return n != "encoder.layer.1.intermediate.dense.bias";
    });
    ExpectLoadFails(EMBER_ERR_MISSING_TENSOR, "encoder.layer.1.intermediate.dense.bias");
}

TEST_F(BrokenCheckpoint, WrongShape) {
    CopyModel("tiny-odd");
    RewriteTensors([](ember_st_tensor &t, std::string &n) {
        if (n == "encoder.layer.2.attention.self.key.weight") {  // [72,72] -> [36,144]
            t.shape[0] = 36;
            t.shape[1] = 144;
        }
        return true;
    });
    ExpectLoadFails(EMBER_ERR_SHAPE, "encoder.layer.2.attention.self.key.weight' has shape [36, 144], expected [72, 72]");
}

TEST_F(BrokenCheckpoint, UnsupportedWeightDtype) {
    CopyModel("tiny-odd");
    RewriteTensors([](ember_st_tensor &t, std::string &n) {
        if (n == "embeddings.LayerNorm.bias") t.dtype = EMBER_ST_I32;  // same 4-byte size
        return true;
    });
    ExpectLoadFails(EMBER_ERR_UNSUPPORTED, "embeddings.LayerNorm.bias");
}

TEST_F(BrokenCheckpoint, PrefixedAndPlainBoth) {
    CopyModel("tiny-odd");
    RewriteTensors([](ember_st_tensor &, std::string &) { return true; });
    // add a duplicate under the bert. prefix
    fs::path p = dir_ / "model.safetensors";
    StFile f = OpenSt(p.string());
    std::vector<ember_st_tensor> ts;
    for (size_t i = 0; i < ember_st_count(f.get()); i++) ts.push_back(*ember_st_at(f.get(), i));
    ember_st_tensor dup = *ember_st_find(f.get(), "pooler.dense.bias");
    dup.name = "bert.pooler.dense.bias";
    ts.push_back(dup);
    fs::path tmp = dir_ / "x.safetensors";
    ASSERT_EQ(ember_st_write(tmp.c_str(), ts.data(), ts.size(), nullptr, nullptr, 0), EMBER_OK);
    f.reset();
    fs::rename(tmp, p);
    ExpectLoadFails(EMBER_ERR_FORMAT, "bert.pooler.dense.bias");
}

TEST_F(BrokenCheckpoint, ConfigHasFewerLayersThanCheckpoint) {
    CopyModel("tiny-odd");
    SetConfig("num_hidden_layers", "2");
    ExpectLoadFails(EMBER_ERR_CONFIG, "encoder.layer.2");
}

TEST_F(BrokenCheckpoint, ConfigHasMoreLayersThanCheckpoint) {
    CopyModel("tiny-odd");
    SetConfig("num_hidden_layers", "4");
    ExpectLoadFails(EMBER_ERR_MISSING_TENSOR, "encoder.layer.3.");
}

TEST_F(BrokenCheckpoint, ConfigVocabDisagreesWithTensor) {
    CopyModel("tiny-odd");
    SetConfig("vocab_size", "300");
    ExpectLoadFails(EMBER_ERR_SHAPE, "embeddings.word_embeddings.weight' has shape [211, 72], expected [300, 72]");
}

struct BadConfig {
    const char *key, *value;
    ember_status want;
    const char *needle;
};

void PrintTo(const BadConfig &b, std::ostream *os) { *os << b.key << " = " << b.value; }

class BadConfigValue : public BrokenCheckpoint, public ::testing::WithParamInterface<BadConfig> {};

TEST_P(BadConfigValue, Rejected) {
    EXPECT_TRUE(fs::equivalent(dir_.parent_path(), ::testing::TempDir())) << dir_;
    CopyModel("tiny-odd");
    SetConfig(GetParam().key, GetParam().value);
    ExpectLoadFails(GetParam().want, GetParam().needle);
}

INSTANTIATE_TEST_SUITE_P(
    Config, BadConfigValue,
    ::testing::Values(
        BadConfig{"num_attention_heads", "5", EMBER_ERR_CONFIG, "not a multiple of num_attention_heads"},
        BadConfig{"num_attention_heads", "0", EMBER_ERR_CONFIG, "num_attention_heads"},
        BadConfig{"hidden_size", "-72", EMBER_ERR_CONFIG, "hidden_size"},
        BadConfig{"vocab_size", "1e3", EMBER_ERR_CONFIG, "vocab_size\" must be an integer"},
        BadConfig{"vocab_size", "99999999999", EMBER_ERR_CONFIG, "vocab_size"},
        BadConfig{"intermediate_size", "\"148\"", EMBER_ERR_CONFIG, "intermediate_size"},
        BadConfig{"max_position_embeddings", "0", EMBER_ERR_CONFIG, "max_position_embeddings"},
        BadConfig{"type_vocab_size", "0", EMBER_ERR_CONFIG, "type_vocab_size"},
        BadConfig{"layer_norm_eps", "0", EMBER_ERR_CONFIG, "layer_norm_eps"},
        BadConfig{"layer_norm_eps", "\"tiny\"", EMBER_ERR_CONFIG, "layer_norm_eps"},
        BadConfig{"hidden_act", "\"swish\"", EMBER_ERR_UNSUPPORTED, "hidden_act \"swish\""},
        BadConfig{"hidden_act", "\"silu\"", EMBER_ERR_UNSUPPORTED, "silu"},
        BadConfig{"position_embedding_type", "\"relative_key\"", EMBER_ERR_UNSUPPORTED, "relative_key"},
        BadConfig{"model_type", "\"deberta-v2\"", EMBER_ERR_UNSUPPORTED, "model_type \"deberta-v2\""},
        BadConfig{"model_type", "\"roberta\"", EMBER_ERR_UNSUPPORTED, "\"BertModel\" is not a Roberta"},
        BadConfig{"is_decoder", "true", EMBER_ERR_UNSUPPORTED, "is_decoder"},
        BadConfig{"num_hidden_layers", "null", EMBER_ERR_CONFIG, "num_hidden_layers\" is missing"},
        // HF reads these with Python's truth value: a causal mask without an error
        BadConfig{"is_decoder", "1", EMBER_ERR_UNSUPPORTED, "\"is_decoder\" = 1 is true"},
        BadConfig{"is_decoder", "\"true\"", EMBER_ERR_UNSUPPORTED, "\"is_decoder\" = \"true\""},
        BadConfig{"is_decoder", "\"false\"", EMBER_ERR_UNSUPPORTED, "\"is_decoder\" = \"false\" is true"},
        BadConfig{"add_cross_attention", "[0]", EMBER_ERR_UNSUPPORTED, "\"add_cross_attention\" = [0]"},
        BadConfig{"add_cross_attention", "0.5", EMBER_ERR_UNSUPPORTED, "add_cross_attention"},
        // nn.Embedding(211, padding_idx=...) asserts
        BadConfig{"pad_token_id", "211", EMBER_ERR_CONFIG, "\"pad_token_id\" = 211 is outside [-211, 211)"},
        BadConfig{"pad_token_id", "-212", EMBER_ERR_CONFIG, "\"pad_token_id\" = -212 is outside"},
        BadConfig{"pad_token_id", "\"0\"", EMBER_ERR_CONFIG, "pad_token_id\" must be an integer"},
        // null is not the default for HF: BertModel fails, or skips the position embeddings
        BadConfig{"hidden_act", "null", EMBER_ERR_CONFIG, "\"hidden_act\" is null"},
        BadConfig{"type_vocab_size", "null", EMBER_ERR_CONFIG, "\"type_vocab_size\" is null"},
        BadConfig{"layer_norm_eps", "null", EMBER_ERR_CONFIG, "\"layer_norm_eps\" is null"},
        BadConfig{"position_embedding_type", "null", EMBER_ERR_CONFIG, "\"position_embedding_type\" is null"}),
    [](const ::testing::TestParamInfo<BadConfig> &i) { return "case" + std::to_string(i.index); });

// The family's config fields: each hostile value a clean error naming it (tests/HOSTILE.md).
struct BadFamilyConfig {
    const char *model, *key, *value;
    ember_status want;
    const char *needle;
};

void PrintTo(const BadFamilyConfig &b, std::ostream *os) {
    *os << b.model << ": " << b.key << " = " << b.value;
}

class BadFamilyConfigValue : public BrokenCheckpoint,
                             public ::testing::WithParamInterface<BadFamilyConfig> {};

TEST_P(BadFamilyConfigValue, Rejected) {
    CopyModel(GetParam().model);
    SetConfigJson(GetParam().key, GetParam().value);
    ExpectLoadFails(GetParam().want, GetParam().needle);
}

INSTANTIATE_TEST_SUITE_P(
    Family, BadFamilyConfigValue,
    ::testing::Values(
        BadFamilyConfig{"roberta-seqcls", "model_type", "\"camembert\"", EMBER_ERR_UNSUPPORTED,
                        "camembert"},
        BadFamilyConfig{"bert-seqcls", "architectures", "[\"DistilBertForSequenceClassification\"]",
                        EMBER_ERR_UNSUPPORTED, "DistilBertForSequenceClassification"},
        BadFamilyConfig{"bert-seqcls", "architectures",
                        "[\"BertForSequenceClassification\", \"BertForTokenClassification\"]",
                        EMBER_ERR_UNSUPPORTED, "different heads"},
        BadFamilyConfig{"bert-seqcls", "architectures", "\"BertModel\"", EMBER_ERR_CONFIG,
                        "architectures"},
        BadFamilyConfig{"bert-seqcls", "architectures", "[7]", EMBER_ERR_CONFIG, "architectures"},
        BadFamilyConfig{"electra-seqcls", "embedding_size", "0", EMBER_ERR_CONFIG, "embedding_size"},
        BadFamilyConfig{"electra-seqcls", "embedding_size", "70000", EMBER_ERR_CONFIG,
                        "embedding_size"},
        BadFamilyConfig{"electra-seqcls", "embedding_size", "null", EMBER_ERR_CONFIG,
                        "\"embedding_size\" is missing"},
        BadFamilyConfig{"electra-seqcls", "embedding_size", "\"24\"", EMBER_ERR_CONFIG,
                        "embedding_size"},
        BadFamilyConfig{"electra-seqcls", "embedding_size", "40", EMBER_ERR_SHAPE,
                        "word_embeddings.weight' has shape [128, 24], expected [128, 40]"},
        BadFamilyConfig{"electra-tokcls", "embedding_size", "39", EMBER_ERR_SHAPE, "[71, 40]"},
        BadFamilyConfig{"roberta-seqcls", "pad_token_id", "-1", EMBER_ERR_CONFIG, "pad_token_id"},
        BadFamilyConfig{"roberta-seqcls", "pad_token_id", "97", EMBER_ERR_CONFIG, "pad_token_id"},
        BadFamilyConfig{"roberta-seqcls", "pad_token_id", "25", EMBER_ERR_CONFIG,
                        "max_position_embeddings = 26"},
        BadFamilyConfig{"xlmr-tokcls", "pad_token_id", "null", EMBER_ERR_CONFIG, "pad_token_id"},
        BadFamilyConfig{"roberta-seqcls", "num_labels", "0", EMBER_ERR_CONFIG, "num_labels"},
        BadFamilyConfig{"roberta-seqcls", "num_labels", "2000000", EMBER_ERR_CONFIG, "num_labels"},
        BadFamilyConfig{"roberta-seqcls", "num_labels", "\"2\"", EMBER_ERR_CONFIG, "num_labels"},
        BadFamilyConfig{"roberta-seqcls", "num_labels", "3", EMBER_ERR_SHAPE, "classifier.out_proj"},
        BadFamilyConfig{"bert-seqcls", "id2label", "{\"0\": \"a\", \"2\": \"b\"}",
                        EMBER_ERR_CONFIG, "\"2\" is not a class index in [0, 2)"},
        BadFamilyConfig{"bert-seqcls", "id2label", "{\"0\": \"a\", \"01\": \"b\"}",
                        EMBER_ERR_CONFIG, "\"01\""},
        BadFamilyConfig{"bert-seqcls", "id2label", "{\"0\": 5}", EMBER_ERR_CONFIG,
                        "must be a string"},
        BadFamilyConfig{"bert-seqcls", "id2label", "{}", EMBER_ERR_CONFIG, "empty"},
        BadFamilyConfig{"bert-seqcls", "id2label", "[\"a\"]", EMBER_ERR_CONFIG,
                        "must be an object"},
        BadFamilyConfig{"bert-seqcls", "id2label", "{\"0\": \"a\", \"1\": \"b\"}",
                        EMBER_ERR_SHAPE, "classifier.weight' has shape [3, 36], expected [2, 36]"},
        BadFamilyConfig{"distilbert-seqcls", "hidden_size", "64", EMBER_ERR_CONFIG,
                        "\"hidden_size\" = 64 disagrees with \"dim\" = 32"},
        BadFamilyConfig{"distilbert-seqcls", "sinusoidal_pos_embds", "\"yes\"", EMBER_ERR_CONFIG,
                        "sinusoidal_pos_embds"},
        BadFamilyConfig{"distilbert-seqcls", "sinusoidal_pos_embds", "false",
                        EMBER_ERR_MISSING_TENSOR, "embeddings.position_embeddings.weight"},
        BadFamilyConfig{"distilbert-tokcls", "activation", "\"swish\"", EMBER_ERR_UNSUPPORTED,
                        "activation \"swish\""},
        BadFamilyConfig{"xlmr-tokcls", "position_embedding_type", "\"relative_key\"",
                        EMBER_ERR_UNSUPPORTED, "relative_key"}),
    [](const ::testing::TestParamInfo<BadFamilyConfig> &i) { return "case" + std::to_string(i.index); });

// A head's tensors: missing, extra, or BERT's pooler gone.
TEST_F(BrokenCheckpoint, FamilyHeadTensorsMissingOrExtra) {
    CopyModel("roberta-seqcls");
    RewriteTensors([](ember_st_tensor &, std::string &name) {
        return name != "classifier.out_proj.weight";
    });
    ExpectLoadFails(EMBER_ERR_MISSING_TENSOR, "classifier.out_proj.weight");

    CopyModel("bert-seqcls");
    RewriteTensors([](ember_st_tensor &, std::string &name) {
        return name.find("pooler.dense") == std::string::npos;
    });
    ExpectLoadFails(EMBER_ERR_MISSING_TENSOR, "BertForSequenceClassification classifies pooler_output");

    CopyModel("electra-tokcls");
    AddTensor("classifier.extra.bias", {3}, {0.5f});
    ExpectLoadFails(EMBER_ERR_CONFIG, "unexpected tensor 'classifier.extra.bias' for the head");
    // a head left in the checkpoint of a model loaded without one is ignored (like cls.*)
    SetConfigJson("architectures", "[\"ElectraModel\"]");
    ExpectLoads();

    // an unexpected tensor under the base model is an error, whatever the family
    CopyModel("distilbert-tokcls");
    AddTensor("distilbert.transformer.layer.2.ffn.lin2.bias", {24}, {0.5f});
    ExpectLoadFails(EMBER_ERR_CONFIG, "unexpected tensor 'distilbert.transformer.layer.2.ffn.lin2.bias'");
}

// DistilBERT with sinusoidal_pos_embds: a table in the checkpoint is used as it is (HF does so
// too); the sinusoids are generated only when it is absent.
TEST_F(BrokenCheckpoint, SinusoidalTableInTheCheckpointIsUsed) {
    CopyModel("distilbert-seqcls");
    Model gen = LoadCpu(dir_.string(), 1, 4);
    ASSERT_TRUE(gen);
    std::vector<float> sinus(20 * 32);
    ASSERT_EQ(ember_table_copy(gen.get(), EMBER_TABLE_POSITION, sinus.data(), sinus.size(), nullptr),
              EMBER_OK);
    EXPECT_EQ(sinus[0 * 32 + 1], 1.0f);                            // cos(0)
    EXPECT_FLOAT_EQ(sinus[3 * 32 + 0], std::sin(3.0f));            // pos 3, j 0
    EXPECT_FLOAT_EQ(sinus[5 * 32 + 3], (float)std::cos(5.0 / std::pow(10000.0, 2.0 / 32)));
    std::vector<float> table(20 * 32);
    for (size_t i = 0; i < table.size(); i++) table[i] = 0.001f * (float)(i % 97);
    AddTensor("distilbert.embeddings.position_embeddings.weight", {20, 32}, table);
    Model m = LoadCpu(dir_.string(), 1, 4);
    ASSERT_TRUE(m);
    std::vector<float> got(table.size());
    ASSERT_EQ(ember_table_copy(m.get(), EMBER_TABLE_POSITION, got.data(), got.size(), nullptr), EMBER_OK);
    EXPECT_TRUE(BitIdentical(got, table));
}

TEST_F(BrokenCheckpoint, ConfigNotJson) {
    // corrupt JSON is EMBER_ERR_FORMAT, as ember.h assigns it; the message names the file
    CopyModel("tiny-odd");
    WriteFile(dir_ / "config.json", "{\"hidden_size\": 72,");
    ExpectLoadFails(EMBER_ERR_FORMAT, "config.json: invalid JSON at line 1");
    WriteFile(dir_ / "config.json", "\xff\xfe{}");
    ExpectLoadFails(EMBER_ERR_FORMAT, "config.json: invalid JSON");
    // valid JSON that is not a config stays a config error
    WriteFile(dir_ / "config.json", "[1, 2]");
    ExpectLoadFails(EMBER_ERR_CONFIG, "top level is not a JSON object");
}

TEST_F(BrokenCheckpoint, ConfigDuplicateKey) {
    CopyModel("tiny-odd");
    std::string s = ReadFile(dir_ / "config.json");
    s.insert(s.find('{') + 1, "\n  \"hidden_size\": 72,");
    WriteFile(dir_ / "config.json", s);
    ExpectLoadFails(EMBER_ERR_FORMAT, "hidden_size");
}

TEST_F(BrokenCheckpoint, ShardedMissingShard) {
    CopyModel("gelu-new-sharded");
    fs::remove(dir_ / "model-00002-of-00003.safetensors");
    ExpectLoadFails(EMBER_ERR_IO, "model-00002-of-00003.safetensors");
}

TEST_F(BrokenCheckpoint, ShardedPathTraversal) {
    CopyModel("gelu-new-sharded");
    std::string s = ReadFile(dir_ / "model.safetensors.index.json");
    size_t at = s.find("model-00001-of-00003.safetensors");
    s.replace(at, strlen("model-00001-of-00003.safetensors"), "../../etc/passwd");
    WriteFile(dir_ / "model.safetensors.index.json", s);
    ExpectLoadFails(EMBER_ERR_FORMAT, "not a plain file name");
}

TEST_F(BrokenCheckpoint, ShardedIndexPointsAtWrongShard) {
    CopyModel("gelu-new-sharded");
    std::string s = ReadFile(dir_ / "model.safetensors.index.json");
    // move the word embeddings' entry to another existing shard
    size_t k = s.find("\"embeddings.word_embeddings.weight\"");
    ASSERT_NE(k, std::string::npos);
    size_t v = s.find("model-0000", k);
    std::string cur = s.substr(v, strlen("model-00001-of-00003.safetensors"));
    std::string other = cur == "model-00003-of-00003.safetensors" ? "model-00001-of-00003.safetensors"
                                                                  : "model-00003-of-00003.safetensors";
    s.replace(v, cur.size(), other);
    WriteFile(dir_ / "model.safetensors.index.json", s);
    ExpectLoadFails(EMBER_ERR_FORMAT, "embeddings.word_embeddings.weight");
}

TEST(Loader, AllBundledLayoutsLoad) {
    struct Want {
        const char *name;
        int layers, hidden, heads, pooler;
        ember_activation act;
    } wants[] = {
        {"tiny-odd", 3, 72, 6, 1, EMBER_ACT_GELU},
        {"prefixed-gamma", 2, 64, 4, 1, EMBER_ACT_GELU},
        {"gelu-new-sharded", 2, 48, 3, 0, EMBER_ACT_GELU_TANH},
        {"relu-f16", 1, 40, 5, 1, EMBER_ACT_RELU},
    };
    for (const Want &w : wants) {
        Model m = LoadCpu(DataPath(std::string("models/") + w.name), 1, 4);
        ASSERT_TRUE(m) << w.name;
        ember_config c;
        ASSERT_EQ(ember_model_config(m.get(), &c), EMBER_OK);
        EXPECT_EQ(c.num_hidden_layers, w.layers) << w.name;
        EXPECT_EQ(c.hidden_size, w.hidden) << w.name;
        EXPECT_EQ(c.num_attention_heads, w.heads) << w.name;
        EXPECT_EQ(c.has_pooler, w.pooler) << w.name;
        EXPECT_EQ(c.hidden_act, w.act) << w.name;
    }
}

TEST(Loader, RelativeEpsIsRead) {
    Model m = LoadCpu(DataPath("models/relu-f16"), 1, 4);
    ember_config c;
    ember_model_config(m.get(), &c);
    EXPECT_DOUBLE_EQ(c.layer_norm_eps, 1e-3);
}

TEST(Config, ParseDefaultsAndTanhAliases) {
    ember_config c;
    const char *base =
        "{\"vocab_size\": 10, \"hidden_size\": 8, \"num_hidden_layers\": 1, "
        "\"num_attention_heads\": 2, \"intermediate_size\": 16, \"max_position_embeddings\": 4%s}";
    char buf[512];
    snprintf(buf, sizeof buf, base, "");
    ASSERT_EQ(ember_config_parse(buf, "t", &c), EMBER_OK) << ember_last_error();
    EXPECT_EQ(c.type_vocab_size, 2);
    EXPECT_EQ(c.hidden_act, EMBER_ACT_GELU);
    EXPECT_DOUBLE_EQ(c.layer_norm_eps, 1e-12);
    snprintf(buf, sizeof buf, base, ", \"hidden_act\": \"gelu_pytorch_tanh\", \"bos_token_id\": null");
    ASSERT_EQ(ember_config_parse(buf, "t", &c), EMBER_OK) << ember_last_error();
    EXPECT_EQ(c.hidden_act, EMBER_ACT_GELU_TANH);
    snprintf(buf, sizeof buf, base, ", \"position_embedding_type\": \"absolute\"");
    EXPECT_EQ(ember_config_parse(buf, "t", &c), EMBER_OK) << ember_last_error();
    EXPECT_EQ(ember_config_parse("[1, 2]", "t", &c), EMBER_ERR_CONFIG);
    EXPECT_EQ(ember_config_parse("\xff\xfe", "t", &c), EMBER_ERR_FORMAT);
}

TEST(Config, ValuesHfAcceptsStillLoad) {
    // falsy decoder flags, a null or negative pad_token_id (nn.Embedding counts it from the end),
    // a null model_type: HF builds the same encoder, and so does ember
    const char *base =
        "{\"vocab_size\": 10, \"hidden_size\": 8, \"num_hidden_layers\": 1, "
        "\"num_attention_heads\": 2, \"intermediate_size\": 16, \"max_position_embeddings\": 4%s}";
    for (const char *extra :
         {", \"is_decoder\": 0, \"add_cross_attention\": \"\"", ", \"is_decoder\": null",
          ", \"is_decoder\": [], \"add_cross_attention\": {}", ", \"is_decoder\": 0.0",
          ", \"pad_token_id\": null", ", \"pad_token_id\": -1", ", \"pad_token_id\": -10",
          ", \"pad_token_id\": 9", ", \"model_type\": null"}) {
        char buf[512];
        snprintf(buf, sizeof buf, base, extra);
        ember_config c;
        EXPECT_EQ(ember_config_parse(buf, "t", &c), EMBER_OK) << extra << ": " << ember_last_error();
    }
}

TEST(Config, ParamCountOfBertBase) {
    ember_config c{};
    c.vocab_size = 30522;
    c.hidden_size = 768;
    c.num_hidden_layers = 12;
    c.num_attention_heads = 12;
    c.intermediate_size = 3072;
    c.max_position_embeddings = 512;
    c.type_vocab_size = 2;
    c.has_pooler = 1;
    EXPECT_EQ(ember_config_param_count(&c), 109482240);  // HF: BertModel bert-base-uncased
}

}  // namespace
