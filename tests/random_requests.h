// Random valid forward requests on the CPU backend, for the threading and soak tests: every
// entry point, masks with padding, holes and fully masked rows, token types, positions,
// EMBER_FORWARD_SKIP_MASKED, pooler and hidden_states. RunRequest() poisons the outputs first.
#pragma once

#include <cstdint>
#include <vector>

#include "tests/ember_test.h"

namespace ember_test {

// xorshift64*: small, deterministic, enough for test inputs.
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 2654435761u + 88172645463325252ull) {}
    uint64_t Next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 2685821657736338717ull;
    }
    int Int(int n) { return (int)(Next() % (uint64_t)n); }  // [0, n)
    float Uniform(float lo, float hi) { return lo + (hi - lo) * (float)((Next() >> 40) * 0x1p-24); }
    bool Chance(int percent) { return Int(100) < percent; }
};

struct Request {
    int B = 1, S = 1;
    int entry = 0;  // 0 input_ids, 1 inputs_embeds, 2 embedding_output
    unsigned flags = 0;
    bool pooler = false, hidden = false;
    std::vector<int32_t> ids, mask, types, pos;  // empty = NULL
    std::vector<float> embeds;                   // (B,S,H) for entries 1 and 2

    ember_inputs Inputs() const {
        ember_inputs in{};
        in.batch = B;
        in.seq_len = S;
        in.input_ids = entry == 0 ? ids.data() : nullptr;
        in.inputs_embeds = entry == 1 ? embeds.data() : nullptr;
        in.embedding_output = entry == 2 ? embeds.data() : nullptr;
        in.attention_mask = mask.empty() ? nullptr : mask.data();
        in.token_type_ids = types.empty() ? nullptr : types.data();
        in.position_ids = pos.empty() ? nullptr : pos.data();
        in.flags = flags;
        return in;
    }
};

struct Result {
    ember_status st = EMBER_OK;
    std::vector<float> last, pooler, hidden;
};

inline Request RandomRequest(Rng &r, const ember_config &c, int max_b, int max_s) {
    Request q;
    q.B = 1 + r.Int(max_b);
    q.S = 1 + r.Int(max_s < c.max_position_embeddings ? max_s : c.max_position_embeddings);
    const int N = q.B * q.S, H = c.hidden_size;
    q.entry = r.Int(3);
    if (q.entry == 0) {
        q.ids.resize(N);
        for (auto &v : q.ids) v = r.Int(c.vocab_size);
    } else {
        q.embeds.resize((size_t)N * H);
        const float a = q.entry == 1 ? 1.0f : 2.0f;
        for (auto &v : q.embeds) v = r.Uniform(-a, a);
    }
    if (r.Chance(60)) {
        q.mask.resize(N);
        for (int b = 0; b < q.B; b++) {
            const bool empty_row = r.Chance(10);
            for (int s = 0; s < q.S; s++) q.mask[b * q.S + s] = empty_row ? 0 : r.Chance(75);
        }
    }
    if (r.Chance(40)) {
        q.types.resize(N);
        for (auto &v : q.types) v = r.Int(c.type_vocab_size);
    }
    if (r.Chance(30)) {
        q.pos.resize(N);
        for (auto &v : q.pos) v = r.Int(c.max_position_embeddings);
    }
    if (r.Chance(35)) q.flags |= EMBER_FORWARD_SKIP_MASKED;
    q.pooler = c.has_pooler && r.Chance(50);
    q.hidden = r.Chance(25);
    return q;
}

inline Result RunRequest(ember_model *m, const Request &q, const ember_config &c) {
    Result res;
    const size_t NH = (size_t)q.B * q.S * c.hidden_size;
    res.last = Poisoned(NH);
    if (q.pooler) res.pooler = Poisoned((size_t)q.B * c.hidden_size);
    if (q.hidden) res.hidden = Poisoned(NH * (size_t)(c.num_hidden_layers + 1));
    ember_outputs o{};
    o.last_hidden_state = res.last.data();
    o.pooler_output = q.pooler ? res.pooler.data() : nullptr;
    o.hidden_states = q.hidden ? res.hidden.data() : nullptr;
    const ember_inputs in = q.Inputs();
    res.st = ember_forward(m, &in, &o, nullptr);
    return res;
}

inline bool SameBits(const Result &a, const Result &b) {
    return a.st == b.st && BitIdentical(a.last, b.last) && BitIdentical(a.pooler, b.pooler) &&
           BitIdentical(a.hidden, b.hidden);
}

}  // namespace ember_test
