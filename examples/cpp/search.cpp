// search: rank documents by how close they are in meaning to a query, using ember from C++.
//
//   search MODEL_DIR QUERY DOCUMENT [DOCUMENT ...]
//
// MODEL_DIR is a sentence-embedding BERT directory with vocab.txt (all-MiniLM-L6-v2, say).
// ember's C API in C++ style: handles owned by std::unique_ptr, statuses turned into
// exceptions carrying ember's own message. CPU backend.
#include <ember.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

void check(ember_status st, const std::string &what) {
    if (st != EMBER_OK)
        throw std::runtime_error(what + ": " + ember_status_string(st) + "\n  " +
                                 ember_last_error());
}

struct FreeModel {
    void operator()(ember_model *m) const { ember_model_free(m); }
};
struct FreeTokenizer {
    void operator()(ember_tokenizer *t) const { ember_tokenizer_free(t); }
};
struct FreeEncoding {
    void operator()(ember_encoding *e) const {
        ember_encoding_free(e);
        delete e;
    }
};

// Sentence embeddings, L2-normalised, so that a dot product is the cosine similarity.
class Encoder {
  public:
    explicit Encoder(const std::string &dir) {
        check(ember_pooling_config_load(dir.c_str(), &pooling_), "reading " + dir);
        ember_tokenizer *tok = nullptr;
        check(ember_tokenizer_load(dir.c_str(), nullptr, &tok), "loading the tokenizer");
        tok_.reset(tok);
        ember_load_options opt;
        ember_load_options_init(&opt); // CPU, f32
        ember_model *m = nullptr;
        check(ember_model_load(dir.c_str(), &opt, &m), "loading the model");
        model_.reset(m);
        check(ember_model_config(m, &cfg_), "reading the model's configuration");
    }

    // One row of hidden_size floats per text.
    std::vector<std::vector<float>> encode(const std::vector<std::string> &texts) {
        std::vector<const char *> ptrs;
        for (const std::string &t : texts) ptrs.push_back(t.c_str());
        const int max_len = pooling_.max_seq_length && pooling_.max_seq_length <
                                                           cfg_.max_position_embeddings
                                ? pooling_.max_seq_length
                                : cfg_.max_position_embeddings;
        std::unique_ptr<ember_encoding, FreeEncoding> enc(new ember_encoding{});
        check(ember_tokenizer_encode(tok_.get(), (int)ptrs.size(), ptrs.data(), nullptr, max_len,
                                     enc.get()),
              "tokenizing");
        const int B = enc->batch, S = enc->seq_len, H = cfg_.hidden_size;
        check(ember_model_reserve(model_.get(), B, S), "reserving the workspace");

        std::vector<float> hidden((size_t)B * S * H), pooled((size_t)B * H);
        ember_inputs in{};
        in.batch = B;
        in.seq_len = S;
        in.input_ids = enc->input_ids;
        in.attention_mask = enc->attention_mask;
        in.token_type_ids = enc->token_type_ids;
        ember_outputs out{};
        out.last_hidden_state = hidden.data();
        check(ember_forward(model_.get(), &in, &out, nullptr), "forward");
        check(ember_pool(model_.get(), hidden.data(), enc->attention_mask, B, S, pooling_.mode,
                         /*normalize=*/1, pooled.data(), nullptr),
              "pooling");

        std::vector<std::vector<float>> rows;
        for (int b = 0; b < B; b++)
            rows.emplace_back(pooled.begin() + (size_t)b * H, pooled.begin() + (size_t)(b + 1) * H);
        return rows;
    }

  private:
    std::unique_ptr<ember_tokenizer, FreeTokenizer> tok_;
    std::unique_ptr<ember_model, FreeModel> model_;
    ember_pooling_config pooling_{};
    ember_config cfg_{};
};

} // namespace

int main(int argc, char **argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: search MODEL_DIR QUERY DOCUMENT [DOCUMENT ...]\n");
        return 2;
    }
    try {
        Encoder encoder(argv[1]);
        std::vector<std::string> texts(argv + 2, argv + argc); // the query, then the documents
        const std::vector<std::vector<float>> emb = encoder.encode(texts);

        std::vector<std::pair<double, size_t>> ranked; // (cosine with the query, document)
        for (size_t d = 1; d < emb.size(); d++) {
            double dot = 0.0;
            for (size_t h = 0; h < emb[0].size(); h++) dot += (double)emb[0][h] * emb[d][h];
            ranked.emplace_back(dot, d);
        }
        std::stable_sort(ranked.begin(), ranked.end(),
                         [](const auto &a, const auto &b) { return a.first > b.first; });
        std::printf("query: %s\n", texts[0].c_str());
        for (const auto &[score, d] : ranked) std::printf("%+.4f  %s\n", score, texts[d].c_str());
    } catch (const std::exception &e) {
        std::fprintf(stderr, "search: %s\n", e.what());
        return 1;
    }
    return 0;
}
