// Soak: 10 000 forwards in one process on a tiny CPU model, valid and hostile requests mixed
// at random. Valid ones must give the bits of a reference computed once per distinct request;
// invalid ones the right status and a message; resident memory must stay flat. Plus load/free
// and init_random/free cycles, which LeakSanitizer (debug preset) checks for leaks.
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "tests/ember_test.h"
#include "tests/random_requests.h"

using namespace ember_test;

namespace {

// Resident bytes, from /proc/self/statm (second field, in pages).
size_t RssBytes() {
    std::ifstream f("/proc/self/statm");
    size_t size = 0, resident = 0;
    f >> size >> resident;
    return resident * (size_t)sysconf(_SC_PAGESIZE);
}

// One hostile request derived from a valid one: what ember must answer.
struct Hostile {
    const char *what;
    ember_status want;
    const char *needle;
};

const Hostile kHostile[] = {
    {"id = vocab_size", EMBER_ERR_OUT_OF_RANGE, "input_ids["},
    {"negative id", EMBER_ERR_OUT_OF_RANGE, "input_ids["},
    {"token type = type_vocab_size", EMBER_ERR_OUT_OF_RANGE, "token_type_ids["},
    {"position = max_position_embeddings", EMBER_ERR_OUT_OF_RANGE, "position_ids["},
    {"negative batch", EMBER_ERR_INVALID_ARGUMENT, "must be >= 1"},
    {"zero seq_len", EMBER_ERR_INVALID_ARGUMENT, "must be >= 1"},
    {"batch x seq_len overflows int", EMBER_ERR_INVALID_ARGUMENT, "exceeds the limit"},
    {"seq_len beyond max positions", EMBER_ERR_INVALID_ARGUMENT, "max_position_embeddings"},
    {"beyond the workspace", EMBER_ERR_CAPACITY, "ember_model_reserve"},
    {"two entry points", EMBER_ERR_INVALID_ARGUMENT, "exactly one"},
    {"no entry point", EMBER_ERR_INVALID_ARGUMENT, "exactly one"},
    {"NULL outputs", EMBER_ERR_INVALID_ARGUMENT, "outputs is NULL"},
    {"NULL last_hidden_state", EMBER_ERR_INVALID_ARGUMENT, "last_hidden_state is NULL"},
    {"unknown flag", EMBER_ERR_INVALID_ARGUMENT, "unknown bits"},
    {"mask value 2", EMBER_ERR_INVALID_ARGUMENT, "mask values must be 0 or 1"},
    {"NaN in inputs_embeds", EMBER_ERR_INVALID_ARGUMENT, "NaN and Inf are rejected"},
    {"Inf in embedding_output", EMBER_ERR_INVALID_ARGUMENT, "NaN and Inf are rejected"},
    {"stream on the CPU", EMBER_ERR_INVALID_ARGUMENT, "stream must be NULL"},
    {"embed_tokens id out of range", EMBER_ERR_OUT_OF_RANGE, "input_ids["},
    {"embed_tokens n = 0", EMBER_ERR_INVALID_ARGUMENT, "n_tokens"},
};
constexpr int kKinds = sizeof kHostile / sizeof kHostile[0];

// Runs hostile request `kind` built from the valid request q; returns the status.
ember_status RunHostile(ember_model *m, const ember_config &c, Request q, int kind, Rng &r) {
    const int N = q.B * q.S, H = c.hidden_size;
    std::vector<float> out = Poisoned((size_t)N * H);
    ember_outputs o{};
    o.last_hidden_state = out.data();
    const ember_outputs *op = &o;
    auto ensure_ids = [&] {
        if (q.entry != 0) {
            q.entry = 0;
            q.ids.assign(N, 1);
        }
    };
    auto ensure_embeds = [&](int entry) {
        q.entry = entry;
        q.embeds.assign((size_t)N * H, 0.25f);
    };
    const int at = r.Int(N);
    ember_stream stream = nullptr;
    switch (kind) {
    case 0: ensure_ids(); q.ids[at] = c.vocab_size; break;
    case 1: ensure_ids(); q.ids[at] = -1 - r.Int(1000); break;
    case 2: ensure_ids(); q.types.assign(N, 0); q.types[at] = c.type_vocab_size; break;
    case 3: ensure_ids(); q.pos.assign(N, 0); q.pos[at] = c.max_position_embeddings; break;
    case 4: q.B = -1 - r.Int(100); break;
    case 5: q.S = 0; break;
    case 6: q.B = INT_MAX / 2 + r.Int(1000); q.S = 2 + r.Int(c.max_position_embeddings - 1); break;
    case 7: q.S = c.max_position_embeddings + 1 + r.Int(5); break;
    case 8: q.B = 65 + r.Int(100); break;  // the soak model has room for 4 x 16 = 64 tokens
    case 9: { ensure_ids(); q.embeds.assign((size_t)N * H, 0.5f);
              ember_inputs in = q.Inputs();
              in.inputs_embeds = q.embeds.data();
              return ember_forward(m, &in, op, nullptr); }
    case 10: { ember_inputs in = q.Inputs();
               in.input_ids = nullptr; in.inputs_embeds = nullptr; in.embedding_output = nullptr;
               return ember_forward(m, &in, op, nullptr); }
    case 11: op = nullptr; break;
    case 12: o.last_hidden_state = nullptr; break;
    case 13: q.flags |= 0x4u << r.Int(29); break;
    case 14: q.mask.assign(N, 1); q.mask[at] = 2; break;
    case 15: ensure_embeds(1); q.embeds[(size_t)r.Int(N * H)] = std::nanf(""); break;
    case 16: ensure_embeds(2);
             q.embeds[(size_t)r.Int(N * H)] = r.Chance(50) ? INFINITY : -INFINITY; break;
    case 17: stream = reinterpret_cast<ember_stream>(&q); break;
    case 18: { std::vector<int32_t> ids(N, 3);
               ids[at] = r.Chance(50) ? c.vocab_size : -1;
               return ember_embed_tokens(m, ids.data(), N, out.data(), nullptr); }
    case 19: { int32_t id = 1;
               return ember_embed_tokens(m, &id, 0, out.data(), nullptr); }
    }
    q.pooler = q.hidden = false;
    const ember_inputs in = q.Inputs();
    return ember_forward(m, &in, op, stream);
}

TEST(Soak, TenThousandMixedRequestsStayExactAndFlat) {
    Model m = LoadCpu(DataPath("models/tiny-odd"), 4, 16);
    ASSERT_TRUE(m);
    ember_config cfg;
    ember_model_config(m.get(), &cfg);
    Rng rng(99);
    // distinct valid requests, all-masked rows and every entry point among them
    std::vector<Request> pool;
    std::vector<Result> ref;
    for (int i = 0; i < 48; i++) {
        pool.push_back(RandomRequest(rng, cfg, 2, 8));
        if (i % 8 == 0) pool.back().mask.assign((size_t)pool.back().B * pool.back().S, 0);
        ref.push_back(RunRequest(m.get(), pool.back(), cfg));
        ASSERT_EQ(ref.back().st, EMBER_OK) << Why(ref.back().st);
        for (float v : ref.back().last) ASSERT_TRUE(std::isfinite(v)) << "request " << i;
    }

    constexpr int kIters = 10000, kWarmup = 1000;
    std::vector<int> wrong_status(kKinds, 0), bad_message(kKinds, 0), seen(kKinds, 0);
    int valid = 0, mismatched = 0;
    size_t rss_warm = 0;
    std::string first_problem;
    const auto t0 = std::chrono::steady_clock::now();
    for (int it = 0; it < kIters; it++) {
        if (it == kWarmup) rss_warm = RssBytes();
        const int p = rng.Int((int)pool.size());
        if (rng.Chance(55)) {
            valid++;
            Result r = RunRequest(m.get(), pool[p], cfg);
            if (!SameBits(r, ref[p])) {
                if (mismatched++ == 0)
                    first_problem += "iteration " + std::to_string(it) + " request " +
                                     std::to_string(p) + ": " + Why(r.st) + "\n";
            }
            continue;
        }
        const int kind = rng.Int(kKinds);
        seen[kind]++;
        const ember_status st = RunHostile(m.get(), cfg, pool[p], kind, rng);
        const std::string msg = ember_last_error();
        if (st != kHostile[kind].want) {
            if (wrong_status[kind]++ == 0)
                first_problem += std::string(kHostile[kind].what) + ": " + Why(st) + "\n";
        } else if (msg.empty() || msg.find(kHostile[kind].needle) == std::string::npos) {
            if (bad_message[kind]++ == 0)
                first_problem += std::string(kHostile[kind].what) + ": message '" + msg +
                                 "' lacks '" + kHostile[kind].needle + "'\n";
        }
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const size_t rss_end = RssBytes();
    const long long growth = (long long)rss_end - (long long)rss_warm;
    printf("soak: %d iterations (%d valid) in %.2f s, RSS %zu -> %zu bytes (%+lld)\n", kIters,
           valid, secs, rss_warm, rss_end, growth);

    EXPECT_EQ(mismatched, 0) << first_problem;
    for (int k = 0; k < kKinds; k++) {
        EXPECT_GT(seen[k], 0) << kHostile[k].what << " never drawn";
        EXPECT_EQ(wrong_status[k], 0) << kHostile[k].what << "\n" << first_problem;
        EXPECT_EQ(bad_message[k], 0) << kHostile[k].what << "\n" << first_problem;
    }
    if (kSanitized) {
        printf("soak: RSS bound not checked under a sanitizer (LeakSanitizer checks leaks)\n");
    } else {
        EXPECT_LE(growth, ember_tol::kSoakRssGrowthBytes)
            << "resident memory grew by " << growth << " bytes over " << kIters - kWarmup
            << " calls after warm-up";
    }
    // still exact after everything
    for (size_t p = 0; p < pool.size(); p++)
        EXPECT_TRUE(SameBits(RunRequest(m.get(), pool[p], cfg), ref[p])) << "request " << p;
}

// 100 load/free cycles over the bundled checkpoints and 100 init_random/free cycles: under
// the debug preset LeakSanitizer reports anything not freed; here the RSS must stay flat too.
TEST(Soak, LoadFreeAndInitRandomFreeCycles) {
    const char *dirs[] = {"models/tiny-odd", "models/prefixed-gamma", "models/gelu-new-sharded",
                          "models/relu-f16"};
    ember_config cfg{};
    size_t rss_warm = 0;
    for (int i = 0; i < 100; i++) {
        if (i == 10) rss_warm = RssBytes();
        ember_model *m = nullptr;
        ASSERT_EQ(ember_model_load(DataPath(dirs[i % 4]).c_str(), nullptr, &m), EMBER_OK)
            << ember_last_error();
        if (i < 4) {
            // a forward in a few of them, so the workspace is used before it is freed
            ember_model_config(m, &cfg);
            Rng r(i);
            ASSERT_EQ(RunRequest(m, RandomRequest(r, cfg, 2, 8), cfg).st, EMBER_OK) << ember_last_error();
        }
        ember_model_free(m);
    }
    ember_model *first = nullptr;
    ASSERT_EQ(ember_model_load(DataPath("models/tiny-odd").c_str(), nullptr, &first), EMBER_OK);
    ember_model_config(first, &cfg);
    ember_model_free(first);
    for (int i = 0; i < 100; i++) {
        ember_model *m = nullptr;
        ASSERT_EQ(ember_model_init_random(&cfg, (uint64_t)i, nullptr, &m), EMBER_OK)
            << ember_last_error();
        ember_model_free(m);
    }
    const long long growth = (long long)RssBytes() - (long long)rss_warm;
    printf("load/free cycles: RSS %+lld bytes after warm-up\n", growth);
    if (!kSanitized) {
        EXPECT_LE(growth, ember_tol::kSoakRssGrowthBytes);
    }
}

}  // namespace
