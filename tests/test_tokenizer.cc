// The WordPiece tokenizer: ids equal to transformers 5's BertTokenizer on every line of the
// golden corpus under five option sets, pairs with truncation, padded batches; invalid UTF-8,
// word-length and truncation edges, malformed vocab.txt / tokenizer_config.json, NULL
// arguments, and one tokenizer shared by several threads.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "tests/ember_test.h"

using namespace ember_test;
namespace fs = std::filesystem;

namespace {

struct TokDeleter {
    void operator()(ember_tokenizer *t) const { ember_tokenizer_free(t); }
};
using Tok = std::unique_ptr<ember_tokenizer, TokDeleter>;

struct Encoding : ember_encoding {
    Encoding() { memset(static_cast<ember_encoding *>(this), 0, sizeof(ember_encoding)); }
    ~Encoding() { ember_encoding_free(this); }
};

std::string TokDir() {
    return DataPath("tokenizer");
}

Tok Load(const std::string &path, const ember_tokenizer_options *opt = nullptr) {
    ember_tokenizer *t = nullptr;
    ember_status st = ember_tokenizer_load(path.c_str(), opt, &t);
    EXPECT_EQ(st, EMBER_OK) << Why(st);
    return Tok(t);
}

std::vector<int32_t> Ids(const ember_tokenizer *t, const std::string &text) {
    int64_t n = -1;
    ember_status st = ember_tokenize(t, text.data(), text.size(), nullptr, 0, &n);
    EXPECT_EQ(st, EMBER_OK) << Why(st);
    std::vector<int32_t> ids((size_t)std::max<int64_t>(n, 0));
    int64_t n2 = -1;
    st = ember_tokenize(t, text.data(), text.size(), ids.data(), (int64_t)ids.size(), &n2);
    EXPECT_EQ(st, EMBER_OK) << Why(st);
    EXPECT_EQ(n, n2);
    return ids;
}

std::vector<int32_t> JsonInts(json_t *a) {
    std::vector<int32_t> v;
    size_t i;
    json_t *x;
    json_array_foreach(a, i, x) v.push_back((int32_t)json_integer_value(x));
    return v;
}

// tests/data/tokenizer/goldens.json, read once (tools/make_tokenizer_goldens.py).
struct Goldens {
    json_t *root = nullptr;
    std::vector<std::string> lines;
    Goldens() {
        json_error_t err;
        root = json_load_file(DataPath("tokenizer/goldens.json").c_str(), JSON_ALLOW_NUL, &err);
        if (!root) return;
        size_t i;
        json_t *l;
        json_array_foreach(json_object_get(root, "lines"), i, l)
            lines.emplace_back(json_string_value(l), json_string_length(l));
    }
    ~Goldens() { json_decref(root); }
    json_t *Get(const char *k) const { return json_object_get(root, k); }
};

const Goldens &G() {
    static Goldens g;
    return g;
}

// A scratch directory per test.
class TokenizerFiles : public ::testing::Test {
protected:
    void SetUp() override {
        const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
        dir_ = fs::path(::testing::TempDir()) / (std::string("ember_tok_") + info->name() + "_" + std::to_string(getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }
    // The bundled vocab plus a tokenizer_config.json holding `config` (JSON text), if any.
    fs::path WithConfig(const std::string &name, const std::string &config) {
        fs::path d = dir_ / name;
        fs::create_directories(d);
        fs::copy_file(DataPath("tokenizer/vocab.txt"), d / "vocab.txt");
        if (!config.empty()) WriteFile(d / "tokenizer_config.json", config);
        return d;
    }
    ember_status TryLoad(const fs::path &p, Tok *out,
                         const ember_tokenizer_options *opt = nullptr) {
        ember_tokenizer *t = nullptr;
        ember_status st = ember_tokenizer_load(p.c_str(), opt, &t);
        out->reset(t);
        return st;
    }
    fs::path dir_;
};

std::string Describe(const ember_tokenizer *t, const std::vector<int32_t> &ids, size_t from) {
    std::ostringstream os;
    for (size_t i = from; i < ids.size() && i < from + 6; i++) {
        const char *s = ember_tokenizer_token(t, ids[i]);
        os << ids[i] << "(" << (s ? s : "?") << ") ";
    }
    return os.str();
}

// "first difference at position p: got ... expected ..." or success.
::testing::AssertionResult SameIds(const ember_tokenizer *t, const std::vector<int32_t> &got,
                                   const std::vector<int32_t> &want) {
    if (got == want) return ::testing::AssertionSuccess();
    size_t p = 0;
    while (p < got.size() && p < want.size() && got[p] == want[p]) p++;
    return ::testing::AssertionFailure()
           << "first difference at position " << p << " (got " << got.size() << " ids, expected "
           << want.size() << "): got " << Describe(t, got, p) << "expected "
           << Describe(t, want, p);
}

// ---- goldens: transformers 5 BertTokenizer -------------------------------------------------

TEST_F(TokenizerFiles, GoldenCorpusMatchesHfEveryOptionSet) {
    const Goldens &g = G();
    ASSERT_TRUE(g.root) << "tests/data/tokenizer/goldens.json missing: run "
                           "tools/make_tokenizer_goldens.py";
    ASSERT_GE(g.lines.size(), 300u);
    size_t i;
    json_t *set;
    int sets = 0;
    json_array_foreach(g.Get("option_sets"), i, set) {
        std::string name = json_string_value(json_object_get(set, "name"));
        json_t *cfg = json_object_get(set, "tokenizer_config");
        char *text = json_dumps(cfg, JSON_SORT_KEYS);
        Tok viaConfig = Load(WithConfig(name, text).string());
        free(text);
        // The same options through ember_tokenizer_options on the bare vocab.txt.
        ember_tokenizer_options opt;
        ember_tokenizer_options_init(&opt);
        opt.do_lower_case = json_is_false(json_object_get(cfg, "do_lower_case")) ? 0 : 1;
        if (json_object_get(cfg, "strip_accents"))
            opt.strip_accents = json_is_true(json_object_get(cfg, "strip_accents"));
        if (json_object_get(cfg, "tokenize_chinese_chars"))
            opt.tokenize_chinese_chars =
                json_is_true(json_object_get(cfg, "tokenize_chinese_chars"));
        Tok viaOptions = Load(DataPath("tokenizer/vocab.txt"), &opt);
        ASSERT_TRUE(viaConfig && viaOptions);

        json_t *all = json_object_get(set, "ids");
        ASSERT_EQ(json_array_size(all), g.lines.size()) << name;
        int bad = 0;
        for (size_t l = 0; l < g.lines.size(); l++) {
            std::vector<int32_t> want = JsonInts(json_array_get(all, l));
            for (const ember_tokenizer *t : {viaConfig.get(), viaOptions.get()}) {
                ::testing::AssertionResult r = SameIds(t, Ids(t, g.lines[l]), want);
                if (!r && ++bad <= 10)
                    ADD_FAILURE() << "option set " << name << ", corpus.txt line " << l + 1 << " ("
                                  << (t == viaConfig.get() ? "tokenizer_config.json" : "options")
                                  << "): " << r.message();
            }
        }
        EXPECT_EQ(bad, 0) << name << ": " << bad << " mismatching lines";
        sets++;
    }
    EXPECT_EQ(sets, 5);
}

TEST_F(TokenizerFiles, GoldenPairsWithTruncation) {
    const Goldens &g = G();
    ASSERT_TRUE(g.root);
    std::map<std::string, Tok> toks;
    size_t i;
    json_t *set;
    json_array_foreach(g.Get("option_sets"), i, set) {
        std::string name = json_string_value(json_object_get(set, "name"));
        char *text = json_dumps(json_object_get(set, "tokenizer_config"), JSON_SORT_KEYS);
        toks[name] = Load(WithConfig(name, text).string());
        free(text);
    }
    json_t *p;
    size_t n = 0;
    json_array_foreach(g.Get("pairs"), i, p) {
        const ember_tokenizer *t = toks.at(json_string_value(json_object_get(p, "options"))).get();
        size_t a = json_integer_value(json_object_get(p, "a"));
        size_t b = json_integer_value(json_object_get(p, "b"));
        int max_length = (int)json_integer_value(json_object_get(p, "max_length"));
        const char *ta = g.lines[a].c_str(), *tb = g.lines[b].c_str();
        Encoding e;
        ember_status st = ember_tokenizer_encode(t, 1, &ta, &tb, max_length, &e);
        ASSERT_EQ(st, EMBER_OK) << Why(st);
        std::vector<int32_t> want = JsonInts(json_object_get(p, "input_ids"));
        std::vector<int32_t> got(e.input_ids, e.input_ids + e.seq_len);
        EXPECT_TRUE(SameIds(t, got, want))
            << "pair of lines " << a + 1 << " and " << b + 1 << ", max_length " << max_length;
        std::vector<int32_t> types(e.token_type_ids, e.token_type_ids + e.seq_len);
        EXPECT_EQ(types, JsonInts(json_object_get(p, "token_type_ids"))) << "pair " << i;
        EXPECT_EQ(e.lengths[0], e.seq_len);
        EXPECT_LE(e.seq_len, max_length);
        for (int k = 0; k < e.seq_len; k++) EXPECT_EQ(e.attention_mask[k], 1);
        n++;
    }
    EXPECT_GE(n, 50u);
}

TEST_F(TokenizerFiles, GoldenBatchesPaddedAndTruncated) {
    const Goldens &g = G();
    ASSERT_TRUE(g.root);
    size_t i;
    json_t *b;
    json_array_foreach(g.Get("batches"), i, b) {
        std::string name = json_string_value(json_object_get(b, "options"));
        json_t *set = nullptr, *s;
        size_t k;
        json_array_foreach(g.Get("option_sets"), k, s) {
            if (name == json_string_value(json_object_get(s, "name"))) set = s;
        }
        ASSERT_TRUE(set);
        char *text = json_dumps(json_object_get(set, "tokenizer_config"), JSON_SORT_KEYS);
        Tok t = Load(WithConfig(name + std::to_string(i), text).string());
        free(text);
        std::vector<const char *> texts;
        json_t *l;
        json_array_foreach(json_object_get(b, "lines"), k, l)
            texts.push_back(g.lines[json_integer_value(l)].c_str());
        int max_length = (int)json_integer_value(json_object_get(b, "max_length"));
        Encoding e;
        ember_status st = ember_tokenizer_encode(t.get(), (int)texts.size(), texts.data(), nullptr,
                                                 max_length, &e);
        ASSERT_EQ(st, EMBER_OK) << Why(st);
        ASSERT_EQ(e.batch, (int)texts.size());
        const char *fields[] = {"input_ids", "attention_mask", "token_type_ids"};
        int32_t *mine[] = {e.input_ids, e.attention_mask, e.token_type_ids};
        for (int f = 0; f < 3; f++) {
            json_t *rows = json_object_get(b, fields[f]);
            ASSERT_EQ(json_array_size(rows), texts.size());
            for (size_t r = 0; r < texts.size(); r++) {
                std::vector<int32_t> want = JsonInts(json_array_get(rows, r));
                ASSERT_EQ((int)want.size(), e.seq_len) << "batch " << i;
                std::vector<int32_t> got(mine[f] + r * e.seq_len, mine[f] + (r + 1) * e.seq_len);
                EXPECT_EQ(got, want) << "batch " << i << " row " << r << " " << fields[f]
                                     << ", max_length " << max_length;
            }
        }
    }
}

// ---- behaviour at the edges -----------------------------------------------------------------

TEST(Tokenizer, InvalidUtf8IsRejectedWithOffset) {
    Tok t = Load(TokDir());
    ASSERT_TRUE(t);
    struct Case {
        const char *what;
        std::string text;
        size_t offset;
    } cases[] = {
        {"overlong 2-byte NUL", std::string("ab\xC0\x80", 4), 2},
        {"overlong 2-byte", "x\xC1\xBF", 1},
        {"overlong 3-byte", "\xE0\x80\xAF", 0},
        {"overlong 4-byte", "abc\xF0\x80\x80\xAF", 3},
        {"surrogate D800", "a\xED\xA0\x80z", 1},
        {"surrogate DFFF", "\xED\xBF\xBF", 0},
        {"above U+10FFFF", "\xF4\x90\x80\x80", 0},
        {"truncated at end", "hello \xE2\x82", 6},
        {"truncated 4-byte", "\xF0\x9F\x98 x", 0},
        {"bad continuation", "ok \xE2\x28\xA1", 3},
        {"lone continuation", "a\x80", 1},
        {"0xFF", "caf\xFF", 3},
        {"0xFE", "\xFE", 0},
        {"F5 lead", "\xF5\x80\x80\x80", 0},
    };
    for (const Case &c : cases) {
        int64_t n = 99;
        int32_t ids[8];
        ember_status st = ember_tokenize(t.get(), c.text.data(), c.text.size(), ids, 8, &n);
        EXPECT_EQ(st, EMBER_ERR_INVALID_ARGUMENT) << c.what;
        EXPECT_EQ(n, 0) << c.what;
        std::string want = "byte offset " + std::to_string(c.offset);
        EXPECT_NE(std::string(ember_last_error()).find(want), std::string::npos)
            << c.what << ": " << ember_last_error();
    }
    // Through encode, the message names the text.
    const char *texts[] = {"fine", "bad \xFF"};
    Encoding e;
    EXPECT_EQ(ember_tokenizer_encode(t.get(), 2, texts, nullptr, 16, &e),
              EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(ember_last_error()).find("texts[1]"), std::string::npos)
        << ember_last_error();
    EXPECT_NE(std::string(ember_last_error()).find("byte offset 4"), std::string::npos);
    EXPECT_EQ(e.input_ids, nullptr);
    EXPECT_EQ(e.batch, 0);
    // The tokenizer is still fine afterwards.
    EXPECT_EQ(Ids(t.get(), "hello"), std::vector<int32_t>({7592}));
}

TEST(Tokenizer, EmptyAndWhitespaceOnly) {
    Tok t = Load(TokDir());
    ASSERT_TRUE(t);
    int64_t n = 7;
    EXPECT_EQ(ember_tokenize(t.get(), nullptr, 0, nullptr, 0, &n), EMBER_OK) << ember_last_error();
    EXPECT_EQ(n, 0);
    for (const char *s : {"", " ", "\t\n\r ", "\xE3\x80\x80", "\xC2\xA0\xE2\x80\xA8", "\x01\x02",
                          "\xE2\x80\x8B", "\xEF\xBF\xBD"})
        EXPECT_TRUE(Ids(t.get(), s).empty()) << "'" << s << "'";
    const char *texts[] = {"", "   "};
    Encoding e;
    ASSERT_EQ(ember_tokenizer_encode(t.get(), 2, texts, nullptr, 0, &e), EMBER_OK)
        << ember_last_error();
    EXPECT_EQ(e.seq_len, 2);
    EXPECT_EQ(std::vector<int32_t>(e.input_ids, e.input_ids + 4),
              std::vector<int32_t>({101, 102, 101, 102}));
}

TEST(Tokenizer, WordOf100CharactersIsTokenizedAnd101IsUnknown) {
    Tok t = Load(TokDir());
    ASSERT_TRUE(t);
    ember_special_tokens sp;
    ASSERT_EQ(ember_tokenizer_special(t.get(), &sp), EMBER_OK);
    EXPECT_EQ(sp.unk, 100);
    std::vector<int32_t> w100 = Ids(t.get(), std::string(100, 'a'));
    EXPECT_GT(w100.size(), 1u);
    EXPECT_EQ(std::count(w100.begin(), w100.end(), sp.unk), 0);
    EXPECT_EQ(Ids(t.get(), std::string(101, 'a')), std::vector<int32_t>({sp.unk}));
    // Characters, not bytes, and counted after normalisation: 100 x "e" + U+0301 is 100
    // characters once accents are stripped.
    std::string e100, e101;
    for (int i = 0; i < 100; i++) e100 += "e\xCC\x81";
    e101 = e100 + "\xC3\xA9";
    EXPECT_NE(Ids(t.get(), e100), std::vector<int32_t>({sp.unk}));
    EXPECT_EQ(Ids(t.get(), e101), std::vector<int32_t>({sp.unk}));
    // Punctuation ends a word: 100 letters then "!" is fine.
    std::vector<int32_t> bang = Ids(t.get(), std::string(100, 'x') + "!");
    EXPECT_EQ(bang.back(), 999);
    EXPECT_EQ(std::count(bang.begin(), bang.end(), sp.unk), 0);
}

TEST(Tokenizer, CapAndCountSemantics) {
    Tok t = Load(TokDir());
    ASSERT_TRUE(t);
    const std::string text = "hello world, unaffable";
    std::vector<int32_t> all = Ids(t.get(), text);
    ASSERT_GE(all.size(), 5u);
    for (int64_t cap = 0; cap <= (int64_t)all.size() + 1; cap++) {
        std::vector<int32_t> buf(all.size() + 3, -7);
        int64_t n = -1;
        ASSERT_EQ(
            ember_tokenize(t.get(), text.data(), text.size(), cap ? buf.data() : nullptr, cap, &n),
            EMBER_OK);
        EXPECT_EQ(n, (int64_t)all.size()) << "cap " << cap;
        for (int64_t i = 0; i < (int64_t)buf.size(); i++)
            EXPECT_EQ(buf[i], i < cap && i < n ? all[i] : -7) << "cap " << cap << " index " << i;
    }
    int32_t id;
    int64_t n;
    EXPECT_EQ(ember_tokenize(t.get(), "x", 1, nullptr, 1, &n), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_tokenize(t.get(), "x", 1, &id, -1, &n), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_tokenize(t.get(), "x", 1, &id, 1, nullptr), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_tokenize(t.get(), nullptr, 3, &id, 1, &n), EMBER_ERR_INVALID_ARGUMENT);
    // `len` bounds the text: no terminator is needed and a NUL inside is just dropped.
    EXPECT_EQ(Ids(t.get(), std::string("hello\0world", 11)), Ids(t.get(), "helloworld"));
    EXPECT_EQ(ember_tokenize(t.get(), "hello world", 5, &id, 1, &n), EMBER_OK);
    EXPECT_EQ(n, 1);
    EXPECT_EQ(id, 7592);
}

TEST(Tokenizer, SpecialTokensInTextAreMatchedLikeHf) {
    Tok t = Load(TokDir());
    ASSERT_TRUE(t);
    EXPECT_EQ(Ids(t.get(), "x[SEP]y [MASK]"), std::vector<int32_t>({1060, 102, 1061, 103}));
    // Exact, case-sensitive match on the raw text.
    EXPECT_EQ(Ids(t.get(), "[mask]"), std::vector<int32_t>({1031, 7308, 1033}));
    EXPECT_EQ(ember_tokenizer_token(t.get(), 103), std::string("[MASK]"));
    EXPECT_EQ(ember_tokenizer_token(t.get(), 30522), nullptr);
    EXPECT_EQ(ember_tokenizer_token(t.get(), -1), nullptr);
    EXPECT_EQ(ember_tokenizer_vocab_size(t.get()), 30522);
    ember_special_tokens sp;
    ASSERT_EQ(ember_tokenizer_special(t.get(), &sp), EMBER_OK);
    EXPECT_EQ(sp.pad, 0);
    EXPECT_EQ(sp.unk, 100);
    EXPECT_EQ(sp.cls, 101);
    EXPECT_EQ(sp.sep, 102);
    EXPECT_EQ(sp.mask, 103);
}

// Pieces a, b: "a a ..." gives one id per word, so lengths are exact.
std::string Words(const char *w, int n) {
    std::string s;
    for (int i = 0; i < n; i++) s += std::string(i ? " " : "") + w;
    return s;
}

TEST(Tokenizer, PairTruncationLongestFirst) {
    Tok t = Load(TokDir());
    ASSERT_TRUE(t);
    // tokenizers' own table (truncation.rs, budget 7 = max_length 10 - 3 specials):
    // {na, nb} -> {kept a, kept b}
    struct Case {
        int na, nb, ka, kb;
    } cases[] = {{0, 0, 0, 0}, {0, 8, 0, 7}, {2, 8, 2, 5}, {4, 4, 3, 4}, {4, 8, 3, 4},
                 {8, 2, 5, 2}, {8, 4, 4, 3}, {8, 8, 3, 4}, {5, 5, 3, 4}, {7, 0, 7, 0},
                 {9, 0, 7, 0}, {1, 1, 1, 1}, {3, 4, 3, 4}};
    for (const Case &c : cases) {
        std::string a = Words("a", c.na), b = Words("b", c.nb);
        const char *ta = a.c_str(), *tb = b.c_str();
        Encoding e;
        ASSERT_EQ(ember_tokenizer_encode(t.get(), 1, &ta, &tb, 10, &e), EMBER_OK)
            << ember_last_error();
        std::vector<int32_t> want = {101};
        for (int i = 0; i < c.ka; i++) want.push_back(1037);
        want.push_back(102);
        for (int i = 0; i < c.kb; i++) want.push_back(1038);
        want.push_back(102);
        EXPECT_EQ(std::vector<int32_t>(e.input_ids, e.input_ids + e.seq_len), want)
            << c.na << "+" << c.nb;
        EXPECT_EQ(e.truncated[0], c.na - c.ka + c.nb - c.kb) << c.na << "+" << c.nb;
        for (int i = 0; i < e.seq_len; i++)
            EXPECT_EQ(e.token_type_ids[i], i >= c.ka + 2 ? 1 : 0)
                << c.na << "+" << c.nb << " @" << i;
    }
    // max_length 3: nothing but the specials.
    std::string a = Words("a", 4);
    const char *ta = a.c_str(), *tb = "b";
    Encoding e;
    ASSERT_EQ(ember_tokenizer_encode(t.get(), 1, &ta, &tb, 3, &e), EMBER_OK);
    EXPECT_EQ(std::vector<int32_t>(e.input_ids, e.input_ids + 3),
              std::vector<int32_t>({101, 102, 102}));
    EXPECT_EQ(e.truncated[0], 5);
}

TEST(Tokenizer, MaxLengthTooSmallOrNegativeIsAClearError) {
    Tok t = Load(TokDir());
    ASSERT_TRUE(t);
    const char *a = "hello", *b = "world";
    for (int m : {1}) {
        Encoding e;
        EXPECT_EQ(ember_tokenizer_encode(t.get(), 1, &a, nullptr, m, &e),
                  EMBER_ERR_INVALID_ARGUMENT);
        EXPECT_NE(std::string(ember_last_error()).find("too small"), std::string::npos)
            << ember_last_error();
    }
    for (int m : {1, 2}) {
        Encoding e;
        EXPECT_EQ(ember_tokenizer_encode(t.get(), 1, &a, &b, m, &e), EMBER_ERR_INVALID_ARGUMENT);
        EXPECT_NE(std::string(ember_last_error()).find("too small"), std::string::npos)
            << ember_last_error();
    }
    Encoding e;
    EXPECT_EQ(ember_tokenizer_encode(t.get(), 1, &a, nullptr, -1, &e), EMBER_ERR_INVALID_ARGUMENT);
    ASSERT_EQ(ember_tokenizer_encode(t.get(), 1, &a, nullptr, 2, &e), EMBER_OK);
    EXPECT_EQ(e.seq_len, 2);
    EXPECT_EQ(e.truncated[0], 1);
}

TEST(Tokenizer, BatchPadsWithPadIdAndMasks) {
    Tok t = Load(TokDir());
    ASSERT_TRUE(t);
    const char *texts[] = {"hello", "hello world again", "a"};
    Encoding e;
    ASSERT_EQ(ember_tokenizer_encode(t.get(), 3, texts, nullptr, 0, &e), EMBER_OK);
    ASSERT_EQ(e.batch, 3);
    ASSERT_EQ(e.seq_len, 5);
    EXPECT_EQ(std::vector<int32_t>(e.lengths, e.lengths + 3), std::vector<int32_t>({3, 5, 3}));
    EXPECT_EQ(std::vector<int32_t>(e.input_ids, e.input_ids + 15),
              std::vector<int32_t>(
                  {101, 7592, 102, 0, 0, 101, 7592, 2088, 2153, 102, 101, 1037, 102, 0, 0}));
    EXPECT_EQ(std::vector<int32_t>(e.attention_mask, e.attention_mask + 15),
              std::vector<int32_t>({1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}));
    for (int i = 0; i < 15; i++) EXPECT_EQ(e.token_type_ids[i], 0);
    for (int i = 0; i < 3; i++) EXPECT_EQ(e.truncated[i], 0);
}

TEST_F(TokenizerFiles, MaxLengthZeroMeansModelMaxLength) {
    Tok t;
    ASSERT_EQ(TryLoad(WithConfig("m", "{\"model_max_length\": 6}"), &t), EMBER_OK)
        << ember_last_error();
    std::string text = Words("a", 10);
    const char *p = text.c_str();
    Encoding e;
    ASSERT_EQ(ember_tokenizer_encode(t.get(), 1, &p, nullptr, 0, &e), EMBER_OK);
    EXPECT_EQ(e.seq_len, 6);
    EXPECT_EQ(e.truncated[0], 6);
    // HF's "no limit" (1e30, an integer too big for int64) means no truncation.
    ASSERT_EQ(
        TryLoad(WithConfig("n", "{\"model_max_length\": 1000000000000000019884624838656}"), &t),
        EMBER_OK)
        << ember_last_error();
    Encoding e2;
    ASSERT_EQ(ember_tokenizer_encode(t.get(), 1, &p, nullptr, 0, &e2), EMBER_OK);
    EXPECT_EQ(e2.seq_len, 12);
}

// ---- files --------------------------------------------------------------------------------

TEST_F(TokenizerFiles, VocabLinesLikeTokenizersReadFile) {
    // CRLF, trailing white space (NBSP too) dropped, an empty line keeps its id, a duplicate maps
    // to its last line, the last line needs no newline, a lone CR stays inside a token.
    WriteFile(dir_ / "vocab.txt",
              "[UNK]\r\n[CLS]\n[SEP]\nhello \n\nab\nab\n##c\xC2\xA0\nx\ry\nworld");
    Tok t;
    ASSERT_EQ(TryLoad(dir_, &t), EMBER_OK) << ember_last_error();
    EXPECT_EQ(ember_tokenizer_vocab_size(t.get()), 10);
    EXPECT_EQ(ember_tokenizer_token(t.get(), 0), std::string("[UNK]"));
    EXPECT_EQ(ember_tokenizer_token(t.get(), 3), std::string("hello"));
    EXPECT_EQ(ember_tokenizer_token(t.get(), 4), std::string(""));
    EXPECT_EQ(ember_tokenizer_token(t.get(), 7), std::string("##c"));
    EXPECT_EQ(ember_tokenizer_token(t.get(), 8), std::string("x\ry"));
    EXPECT_EQ(Ids(t.get(), "hello"), std::vector<int32_t>({3}));
    EXPECT_EQ(Ids(t.get(), "ab"), std::vector<int32_t>({6}));
    EXPECT_EQ(Ids(t.get(), "abc"), std::vector<int32_t>({6, 7}));
    EXPECT_EQ(Ids(t.get(), "world hello abd"), std::vector<int32_t>({9, 3, 0}));
    ember_special_tokens sp;
    ASSERT_EQ(ember_tokenizer_special(t.get(), &sp), EMBER_OK);
    EXPECT_EQ(sp.unk, 0);
    EXPECT_EQ(sp.cls, 1);
    EXPECT_EQ(sp.sep, 2);
    EXPECT_EQ(sp.pad, -1);
    EXPECT_EQ(sp.mask, -1);
    // Without [PAD], a batch of equal lengths still works; unequal lengths cannot be padded.
    const char *same[] = {"hello", "ab"}, *diff[] = {"hello", "abc"};
    Encoding e, e2;
    EXPECT_EQ(ember_tokenizer_encode(t.get(), 2, same, nullptr, 0, &e), EMBER_OK)
        << ember_last_error();
    EXPECT_EQ(ember_tokenizer_encode(t.get(), 2, diff, nullptr, 0, &e2), EMBER_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(ember_last_error()).find("[PAD]"), std::string::npos)
        << ember_last_error();
}

TEST_F(TokenizerFiles, CanonicalOrderingOfMarksBeforeStripping) {
    // Musical symbols U+1D165 (ccc 216) and U+1D16D (ccc 226) are Mc, so they survive accent
    // stripping in canonical order; a CGJ (U+034F, Mn, ccc 0) separates the runs. Expected
    // ids are what transformers 5 gives for this vocabulary.
    WriteFile(dir_ / "vocab.txt",
              "[UNK]\n[CLS]\n[SEP]\nx\n##\xF0\x9D\x85\xA5\n##\xF0\x9D\x85\xAD\n##y\n");
    Tok t;
    ASSERT_EQ(TryLoad(dir_, &t), EMBER_OK) << ember_last_error();
    const std::string m216 = "\xF0\x9D\x85\xA5", m226 = "\xF0\x9D\x85\xAD";
    EXPECT_EQ(Ids(t.get(), "x" + m226 + m216 + "y"), std::vector<int32_t>({3, 4, 5, 6}));
    EXPECT_EQ(Ids(t.get(), "x" + m226 + "\xCC\x81" + m216 + "y"),
              std::vector<int32_t>({3, 4, 5, 6}));
    EXPECT_EQ(Ids(t.get(), "x" + m226 + "\xCC\x80\xCD\x8F" + m216 + "y"),
              std::vector<int32_t>({3, 5, 4, 6}));
    std::string run = "x";
    for (int i = 0; i < 40; i++) run += m226 + m216; // long run: the counting-sort path
    std::vector<int32_t> want = {3};
    want.insert(want.end(), 40, 4);
    want.insert(want.end(), 40, 5);
    EXPECT_EQ(Ids(t.get(), run), want);
    ember_tokenizer_options opt;
    ember_tokenizer_options_init(&opt);
    opt.do_lower_case = 0; // no stripping: no NFD, no reordering
    ASSERT_EQ(TryLoad(dir_, &t, &opt), EMBER_OK);
    EXPECT_EQ(Ids(t.get(), "x" + m226 + m216 + "y"), std::vector<int32_t>({3, 5, 4, 6}));
}

TEST_F(TokenizerFiles, MalformedVocabIsFormatErrorNamingFileAndLine) {
    struct Case {
        const char *what;
        std::string content;
        const char *needle;
    } cases[] = {
        {"invalid UTF-8", "[UNK]\nok\nbad\xFF\n", "line 3"},
        {"overlong", "[UNK]\n\xC0\xAF\n", "line 2"},
        {"NUL byte", std::string("[UNK]\nx\0y\n", 10), "line 2"},
        {"empty file", "", "no tokens"},
        {"no [UNK]", "[CLS]\n[SEP]\nhello\n", "[UNK]"},
    };
    for (const Case &c : cases) {
        WriteFile(dir_ / "vocab.txt", c.content);
        Tok t;
        EXPECT_EQ(TryLoad(dir_, &t), EMBER_ERR_FORMAT) << c.what;
        EXPECT_FALSE(t) << c.what;
        std::string msg = ember_last_error();
        EXPECT_NE(msg.find("vocab.txt"), std::string::npos) << c.what << ": " << msg;
        EXPECT_NE(msg.find(c.needle), std::string::npos) << c.what << ": " << msg;
    }
}

TEST_F(TokenizerFiles, OversizedVocabIsRejected) {
    // A sparse file past the 64 MiB cap: rejected from its size, without reading it.
    {
        std::ofstream f(dir_ / "vocab.txt", std::ios::binary);
        f.seekp((64 << 20) + 10);
        f.put('\n');
    }
    Tok t;
    EXPECT_EQ(TryLoad(dir_, &t), EMBER_ERR_FORMAT);
    EXPECT_NE(std::string(ember_last_error()).find("limit"), std::string::npos)
        << ember_last_error();
}

TEST_F(TokenizerFiles, MissingVocabIsIoError) {
    Tok t;
    EXPECT_EQ(TryLoad(dir_, &t), EMBER_ERR_IO); // directory without vocab.txt
    EXPECT_NE(std::string(ember_last_error()).find("vocab.txt"), std::string::npos)
        << ember_last_error();
    EXPECT_EQ(TryLoad(dir_ / "nope", &t), EMBER_ERR_IO);
    EXPECT_EQ(TryLoad(dir_ / "nope" / "vocab.txt", &t), EMBER_ERR_IO);
}

TEST_F(TokenizerFiles, MalformedConfigIsFormatErrorNamingFile) {
    struct Case {
        const char *what, *file, *content, *needle;
    } cases[] = {
        {"syntax", "tokenizer_config.json", "{\"do_lower_case\": true,,}", "line 1"},
        {"syntax line 3", "tokenizer_config.json", "{\n\"a\": 1,\n\"b\": }\n", "line 3"},
        {"not an object", "tokenizer_config.json", "[true]", "not a JSON object"},
        {"bool as string", "tokenizer_config.json", "{\"do_lower_case\": \"yes\"}",
         "do_lower_case"},
        {"bool as int", "tokenizer_config.json", "{\"strip_accents\": 1}", "strip_accents"},
        {"chinese as string", "tokenizer_config.json", "{\"tokenize_chinese_chars\": \"no\"}",
         "tokenize_chinese_chars"},
        {"token as number", "tokenizer_config.json", "{\"unk_token\": 5}", "unk_token"},
        {"token object without content", "tokenizer_config.json", "{\"cls_token\": {\"x\": 1}}",
         "cls_token"},
        {"empty token", "tokenizer_config.json", "{\"sep_token\": \"\"}", "sep_token"},
        {"max length as string", "tokenizer_config.json", "{\"model_max_length\": \"512\"}",
         "model_max_length"},
        {"special map syntax", "special_tokens_map.json",
         "{\"mask_token\": ", "special_tokens_map.json"},
        {"special map type", "special_tokens_map.json", "{\"mask_token\": [1]}", "mask_token"},
    };
    for (const Case &c : cases) {
        fs::path d = WithConfig(c.what, "");
        WriteFile(d / c.file, c.content);
        Tok t;
        EXPECT_EQ(TryLoad(d, &t), EMBER_ERR_FORMAT) << c.what;
        std::string msg = ember_last_error();
        EXPECT_NE(msg.find(c.file), std::string::npos) << c.what << ": " << msg;
        EXPECT_NE(msg.find(c.needle), std::string::npos) << c.what << ": " << msg;
    }
}

TEST_F(TokenizerFiles, ConfigSpecialTokensAndOverrides) {
    // AddedToken objects and nulls are accepted; special_tokens_map.json overrides the config...
    fs::path d = WithConfig("a",
                            "{\"unk_token\": {\"__type\": \"AddedToken\", \"content\": \"[UNK]\"},"
                            " \"mask_token\": null, \"do_lower_case\": true}");
    WriteFile(d / "special_tokens_map.json", "{\"mask_token\": \"[unused0]\"}");
    Tok t;
    ASSERT_EQ(TryLoad(d, &t), EMBER_OK) << ember_last_error();
    ember_special_tokens sp;
    ASSERT_EQ(ember_tokenizer_special(t.get(), &sp), EMBER_OK);
    EXPECT_EQ(sp.mask, 1);
    EXPECT_EQ(Ids(t.get(), "a[unused0]b [MASK]"),
              std::vector<int32_t>({1037, 1, 1038, 1031, 7308, 1033}));
    // ...unless the config has added_tokens_decoder (transformers 5 then ignores the map).
    fs::path d2 = WithConfig("b", "{\"added_tokens_decoder\": {}}");
    WriteFile(d2 / "special_tokens_map.json", "{\"mask_token\": \"[unused0]\"}");
    ASSERT_EQ(TryLoad(d2, &t), EMBER_OK) << ember_last_error();
    ASSERT_EQ(ember_tokenizer_special(t.get(), &sp), EMBER_OK);
    EXPECT_EQ(sp.mask, 103);
    // Options beat the config.
    fs::path d3 = WithConfig("c", "{\"do_lower_case\": true}");
    ASSERT_EQ(TryLoad(d3, &t), EMBER_OK);
    EXPECT_EQ(Ids(t.get(), "Hello"), std::vector<int32_t>({7592}));
    ember_tokenizer_options opt;
    ember_tokenizer_options_init(&opt);
    opt.do_lower_case = 0;
    ASSERT_EQ(TryLoad(d3, &t, &opt), EMBER_OK);
    EXPECT_EQ(Ids(t.get(), "Hello"), std::vector<int32_t>({100}));
    opt.do_lower_case = 2;
    EXPECT_EQ(TryLoad(d3, &t, &opt), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(ember_last_error()).find("do_lower_case"), std::string::npos);
}

TEST(Tokenizer, NullArgumentsAreInvalid) {
    ember_tokenizer *raw = reinterpret_cast<ember_tokenizer *>(0x1);
    EXPECT_EQ(ember_tokenizer_load(nullptr, nullptr, &raw), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(raw, nullptr);
    EXPECT_EQ(ember_tokenizer_load(TokDir().c_str(), nullptr, nullptr), EMBER_ERR_INVALID_ARGUMENT);
    int64_t n;
    int32_t id;
    EXPECT_EQ(ember_tokenize(nullptr, "x", 1, &id, 1, &n), EMBER_ERR_INVALID_ARGUMENT);
    ember_special_tokens sp;
    EXPECT_EQ(ember_tokenizer_special(nullptr, &sp), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_tokenizer_vocab_size(nullptr), 0);
    EXPECT_EQ(ember_tokenizer_token(nullptr, 0), nullptr);
    ember_tokenizer_free(nullptr);
    ember_encoding_free(nullptr);
    ember_tokenizer_options_init(nullptr);

    Tok t = Load(TokDir());
    ASSERT_TRUE(t);
    EXPECT_EQ(ember_tokenizer_special(t.get(), nullptr), EMBER_ERR_INVALID_ARGUMENT);
    const char *texts[] = {"a", nullptr};
    const char *pairs[] = {"b", nullptr};
    Encoding e;
    EXPECT_EQ(ember_tokenizer_encode(nullptr, 1, texts, nullptr, 8, &e),
              EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_tokenizer_encode(t.get(), 1, nullptr, nullptr, 8, &e),
              EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_tokenizer_encode(t.get(), 1, texts, nullptr, 8, nullptr),
              EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_tokenizer_encode(t.get(), 0, texts, nullptr, 8, &e),
              EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_tokenizer_encode(t.get(), 2, texts, nullptr, 8, &e),
              EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(ember_last_error()).find("texts[1]"), std::string::npos)
        << ember_last_error();
    const char *both[] = {"a", "b"};
    EXPECT_EQ(ember_tokenizer_encode(t.get(), 2, both, pairs, 8, &e), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(ember_last_error()).find("texts_pair[1]"), std::string::npos)
        << ember_last_error();
    EXPECT_EQ(e.input_ids, nullptr);
}

TEST(Tokenizer, LongInputsStayLinear) {
    Tok t = Load(TokDir());
    ASSERT_TRUE(t);
    auto t0 = std::chrono::steady_clock::now();
    // One 4 MB word, 2 MB of short words, punctuation only, 2 MB of CJK, a 1 MB run of marks.
    EXPECT_EQ(Ids(t.get(), std::string(4 << 20, 'a')), std::vector<int32_t>({100}));
    std::string words;
    while (words.size() < (2u << 20)) words += "unaffable tokenization ";
    EXPECT_EQ(Ids(t.get(), words).size(),
              Ids(t.get(), "unaffable tokenization").size() * (words.size() / 23));
    EXPECT_EQ(Ids(t.get(), std::string(1 << 20, '!')).size(), 1u << 20);
    std::string cjk;
    while (cjk.size() < (2u << 20)) cjk += "\xE4\xB8\xAD";
    EXPECT_EQ(Ids(t.get(), cjk).size(), cjk.size() / 3);
    std::string marks = "x";
    while (marks.size() < (1u << 20)) marks += "\xF0\x9D\x85\xAD\xF0\x9D\x85\xA5\xCC\x81";
    EXPECT_EQ(Ids(t.get(), marks), std::vector<int32_t>({100}));
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(s, 60.0) << "about 12 MB of text took " << s << " s";
}

TEST(Tokenizer, SharedByThreadsGivesIdenticalResults) {
    const Goldens &g = G();
    ASSERT_TRUE(g.root);
    Tok t = Load(TokDir());
    ASSERT_TRUE(t);
    std::vector<std::vector<int32_t>> ref;
    for (const std::string &l : g.lines) ref.push_back(Ids(t.get(), l));
    const int kThreads = 8;
    std::vector<int> mismatches(kThreads, 0);
    std::vector<std::thread> pool;
    for (int k = 0; k < kThreads; k++)
        pool.emplace_back([&, k] {
            for (int rep = 0; rep < 3; rep++)
                for (size_t i = 0; i < g.lines.size(); i++) {
                    size_t l = (i + 37 * k) % g.lines.size();
                    int64_t n = 0;
                    std::vector<int32_t> ids(ref[l].size() + 1);
                    if (ember_tokenize(t.get(), g.lines[l].data(), g.lines[l].size(), ids.data(),
                                       (int64_t)ids.size(), &n) != EMBER_OK ||
                        n != (int64_t)ref[l].size() ||
                        !std::equal(ref[l].begin(), ref[l].end(), ids.begin()))
                        mismatches[k]++;
                    // Errors are per thread: a rejected call here leaves the others' alone.
                    if (k % 2 == 0) ember_tokenize(t.get(), "\xFF", 1, nullptr, 0, &n);
                }
        });
    for (auto &th : pool) th.join();
    for (int k = 0; k < kThreads; k++) EXPECT_EQ(mismatches[k], 0) << "thread " << k;
}

} // namespace
