// One model used from many threads (ember.h, Threads): the per-model mutex serialises the
// calls, so every result is bit-identical to the same request run alone on one thread, and
// ember_last_error() stays each thread's own. Built with the `tsan` preset these tests run
// under ThreadSanitizer (tools/sanitize.sh).
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/ember_test.h"
#include "tests/random_requests.h"

using namespace ember_test;

namespace {

constexpr int kThreads = 8;
constexpr int kPerThread = 12;

// Run body(t, failure) on n threads released together; each thread's failure text must stay
// empty (a thread reports instead of asserting, so every thread's problems are shown).
void RunTogether(int n, const std::function<void(int, std::string &)> &body) {
    std::atomic<bool> go{false};
    std::vector<std::string> failures(n);
    std::vector<std::thread> threads;
    for (int t = 0; t < n; t++)
        threads.emplace_back([&, t] {
            while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
            body(t, failures[t]);
        });
    go.store(true, std::memory_order_release);
    for (auto &th : threads) th.join();
    for (int t = 0; t < n; t++) EXPECT_EQ(failures[t], "") << "thread " << t;
}

void ManyThreadsBitIdenticalToOneThread(ember_backend backend) {
    SCOPED_TRACE(BackendName(backend));
    Model m = LoadCpu(DataPath("models/tiny-odd"), 4, 16, backend);
    ASSERT_TRUE(m);
    ember_config cfg;
    ember_model_config(m.get(), &cfg);

    Rng rng(2024);
    std::vector<Request> reqs;
    for (int i = 0; i < kThreads * kPerThread; i++) reqs.push_back(RandomRequest(rng, cfg, 4, 16));
    std::vector<Result> ref;
    for (const Request &q : reqs) {
        ref.push_back(RunRequest(m.get(), q, cfg));
        ASSERT_EQ(ref.back().st, EMBER_OK) << Why(ref.back().st);
    }
    int64_t rows = 0, cols = 0;
    ASSERT_EQ(ember_table_shape(m.get(), EMBER_TABLE_WORD, &rows, &cols), EMBER_OK);
    std::vector<float> word((size_t)(rows * cols));
    ASSERT_EQ(ember_table_copy(m.get(), EMBER_TABLE_WORD, word.data(), word.size(), nullptr), EMBER_OK);

    RunTogether(kThreads, [&](int t, std::string &fail) {
        for (int round = 0; round < 2; round++) {
            for (int k = 0; k < kPerThread; k++) {
                // every thread walks its requests in its own order, round 1 backwards
                const int i = t * kPerThread + (round == 0 ? k : kPerThread - 1 - k);
                Result r = RunRequest(m.get(), reqs[i], cfg);
                if (!SameBits(r, ref[i]))
                    fail += "request " + std::to_string(i) + ": status " +
                            std::to_string(r.st) + " " + ember_last_error() +
                            (r.st == EMBER_OK ? " (bits differ from the one-thread run)" : "") +
                            "\n";
                if (k % 4 == 1) {  // the other serialised calls, interleaved
                    int32_t ids[3] = {t % (int)rows, (int)rows - 1, (7 * k) % (int)rows};
                    std::vector<float> e(3 * (size_t)cols);
                    if (ember_embed_tokens(m.get(), ids, 3, e.data(), nullptr) != EMBER_OK ||
                        memcmp(e.data() + cols, &word[(size_t)(rows - 1) * cols],
                               sizeof(float) * (size_t)cols) != 0)
                        fail += std::string("embed_tokens: ") + ember_last_error() + "\n";
                    size_t wb = 0, sb = 0;
                    if (ember_model_memory(m.get(), &wb, &sb) != EMBER_OK || wb == 0 || sb == 0)
                        fail += "model_memory\n";
                    if (ember_model_sync(m.get(), nullptr) != EMBER_OK) fail += "model_sync\n";
                }
                if (t == 0 && round == 0 && k == kPerThread / 2) {
                    // grow the workspace while the others run: results must not change
                    if (ember_model_reserve(m.get(), 6, 24) != EMBER_OK)
                        fail += std::string("reserve: ") + ember_last_error() + "\n";
                }
                if (t == 1 && k == 3) {
                    std::vector<float> tab((size_t)(rows * cols));
                    if (ember_table_copy(m.get(), EMBER_TABLE_WORD, tab.data(), tab.size(),
                                         nullptr) != EMBER_OK ||
                        !BitIdentical(tab, word))
                        fail += "table_copy\n";
                }
            }
        }
    });
}

// Both CPU backends (the fast one uses threads of its own inside each call as well).
TEST(Threads, OneCpuModelManyThreadsBitIdenticalToOneThread) {
    ManyThreadsBitIdenticalToOneThread(EMBER_BACKEND_CPU);
    ManyThreadsBitIdenticalToOneThread(EMBER_BACKEND_REFERENCE);
}

TEST(Threads, LastErrorIsEachThreadsOwn) {
    Model m = LoadCpu(DataPath("models/tiny-odd"), 4, 16);
    ASSERT_TRUE(m);
    ember_config cfg;
    ember_model_config(m.get(), &cfg);
    RunTogether(kThreads, [&](int t, std::string &fail) {
        std::vector<int32_t> ids(2 * 5);
        for (int i = 0; i < 10; i++) ids[i] = (3 * i + t) % cfg.vocab_size;
        std::vector<float> out(2 * 5 * (size_t)cfg.hidden_size);
        ember_outputs o{};
        o.last_hidden_state = out.data();
        for (int it = 0; it < 40; it++) {
            ember_inputs in{};
            in.input_ids = ids.data();
            std::string want;
            ember_status want_st;
            if (it % 2 == 0) {  // an id only this thread uses, at a position only it uses
                in.batch = 2;
                in.seq_len = 5;
                ids[t % 10] = cfg.vocab_size + t;
                want = "input_ids[" + std::to_string(t % 10 / 5) + "][" +
                       std::to_string(t % 5) + "] = " + std::to_string(cfg.vocab_size + t);
                want_st = EMBER_ERR_OUT_OF_RANGE;
            } else {  // a batch only this thread uses
                in.batch = -(t + 1);
                in.seq_len = 5;
                want = "batch = " + std::to_string(-(t + 1)) + " ";
                want_st = EMBER_ERR_INVALID_ARGUMENT;
            }
            ember_status st = ember_forward(m.get(), &in, &o, nullptr);
            ids[t % 10] = (3 * (t % 10) + t) % cfg.vocab_size;
            std::this_thread::yield();  // let the others fail in between
            const std::string msg = ember_last_error();
            if (st != want_st || msg.find(want) == std::string::npos)
                fail += "iteration " + std::to_string(it) + ": status " + std::to_string(st) +
                        ", message '" + msg + "' lacks '" + want + "'\n";
            in.batch = 2;
            st = ember_forward(m.get(), &in, &o, nullptr);
            if (st != EMBER_OK || ember_last_error()[0] != '\0')
                fail += "valid call after a failure: " + std::string(ember_last_error()) + "\n";
        }
    });
}

TEST(Threads, ModelPerThreadLoadedConcurrently) {
    Model m0 = LoadCpu(DataPath("models/gelu-new-sharded"), 2, 8);
    ASSERT_TRUE(m0);
    ember_config cfg;
    ember_model_config(m0.get(), &cfg);
    Rng rng(7);
    Request q = RandomRequest(rng, cfg, 2, 8);
    const Result ref = RunRequest(m0.get(), q, cfg);
    ASSERT_EQ(ref.st, EMBER_OK) << Why(ref.st);
    RunTogether(4, [&](int t, std::string &fail) {
        ember_load_options opt;
        ember_load_options_init(&opt);
        opt.max_batch = 2;
        opt.max_seq_len = 8;
        ember_model *m = nullptr;
        if (ember_model_load(DataPath("models/gelu-new-sharded").c_str(), &opt, &m) != EMBER_OK) {
            fail = std::string("load: ") + ember_last_error();
            return;
        }
        for (int i = 0; i < 5; i++)
            if (!SameBits(RunRequest(m, q, cfg), ref)) fail += "forward differs\n";
        ember_model_free(m);
    });
}

}  // namespace

#ifdef EMBER_WITH_CUDA
#include "tests/cuda_test.h"

namespace {

// Four threads, one CUDA model, one stream each, synchronous and ASYNC calls mixed, shapes
// repeated so that CUDA graphs are captured and replayed: every output equals the
// one-thread run's bits (the mutex serialises the host side, the model's event orders the
// device side across streams).
TEST(CudaThreads, OneModelFourStreamsBitIdentical) {
    REQUIRE_CUDA_DEVICE();
    ember_config cfg{};
    cfg.vocab_size = 300;
    cfg.hidden_size = 128;
    cfg.num_hidden_layers = 2;
    cfg.num_attention_heads = 2;
    cfg.intermediate_size = 256;
    cfg.max_position_embeddings = 64;
    cfg.type_vocab_size = 2;
    cfg.layer_norm_eps = 1e-12;
    cfg.hidden_act = EMBER_ACT_GELU;
    ember_load_options opt;
    ember_load_options_init(&opt);
    opt.backend = EMBER_BACKEND_CUDA;
    opt.max_batch = 4;
    opt.max_seq_len = 32;
    ember_model *raw = nullptr;
    ASSERT_EQ(ember_model_init_random(&cfg, 11, &opt, &raw), EMBER_OK) << ember_last_error();
    Model m(raw);
    constexpr int kT = 4, kShapes = 3;
    const int H = cfg.hidden_size, B = 4, S = 32, N = B * S;
    // kShapes distinct id batches, on the device
    std::vector<int32_t *> d_ids(kShapes);
    std::vector<std::vector<float>> ref(kShapes);
    Rng rng(5);
    for (int k = 0; k < kShapes; k++) {
        std::vector<int32_t> ids(N);
        for (auto &v : ids) v = rng.Int(cfg.vocab_size);
        CUDA_OK(cudaMalloc((void **)&d_ids[k], sizeof(int32_t) * N));
        CUDA_OK(cudaMemcpy(d_ids[k], ids.data(), sizeof(int32_t) * N, cudaMemcpyHostToDevice));
        float *d_out = nullptr;
        CUDA_OK(cudaMalloc((void **)&d_out, sizeof(float) * N * H));
        ember_inputs in{};
        in.batch = B;
        in.seq_len = S;
        in.input_ids = d_ids[k];
        ember_outputs o{};
        o.last_hidden_state = d_out;
        ASSERT_EQ(ember_forward(m.get(), &in, &o, nullptr), EMBER_OK) << ember_last_error();
        ref[k].resize((size_t)N * H);
        CUDA_OK(cudaMemcpy(ref[k].data(), d_out, sizeof(float) * N * H, cudaMemcpyDeviceToHost));
        CUDA_OK(cudaFree(d_out));
    }
    RunTogether(kT, [&](int t, std::string &fail) {
        cudaStream_t st;
        CUDA_OK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
        float *d_out = nullptr;
        CUDA_OK(cudaMalloc((void **)&d_out, sizeof(float) * N * H));
        std::vector<float> h((size_t)N * H);
        for (int i = 0; i < 12; i++) {
            const int k = (i + t) % kShapes;
            ember_inputs in{};
            in.batch = B;
            in.seq_len = S;
            in.input_ids = d_ids[k];
            in.flags = (i % 2) ? EMBER_FORWARD_ASYNC : 0u;
            ember_outputs o{};
            o.last_hidden_state = d_out;
            if (ember_forward(m.get(), &in, &o, (ember_stream)st) != EMBER_OK ||
                ((in.flags & EMBER_FORWARD_ASYNC) &&
                 ember_model_sync(m.get(), (ember_stream)st) != EMBER_OK)) {
                fail += std::string("forward: ") + ember_last_error() + "\n";
                continue;
            }
            CUDA_OK(cudaMemcpyAsync(h.data(), d_out, sizeof(float) * N * H,
                                    cudaMemcpyDeviceToHost, st));
            CUDA_OK(cudaStreamSynchronize(st));
            if (!BitIdentical(h, ref[k])) fail += "bits differ, shape " + std::to_string(k) + "\n";
        }
        CUDA_OK(cudaFree(d_out));
        CUDA_OK(cudaStreamDestroy(st));
    });
    for (int32_t *p : d_ids) CUDA_OK(cudaFree(p));
}

}  // namespace
#endif

// ---- thread counts (the fast CPU backend's own threads and OpenBLAS's) ------------------------

namespace {

// last_hidden_state of `ember forward` on all-MiniLM-L6-v2 for `inputs`, run with the given
// environment (thread counts); empty when the command failed.
namespace fs = std::filesystem;

std::vector<float> CliForward(const std::string &env, const std::string &backend,
                              const std::string &model, const std::string &inputs,
                              const std::string &output) {
    const std::string cmd = env + " " + EMBER_CLI_PATH + " forward --quiet --backend " + backend +
                            " --model '" + model + "' --inputs '" + inputs + "' --output '" +
                            output + "' 2>&1";
    CommandResult r = RunCommand(cmd);
    EXPECT_EQ(r.code, 0) << cmd << "\n" << r.out;
    if (r.code != 0) return {};
    StFile f = OpenSt(output);
    return f ? ReadF32(f.get(), "last_hidden_state") : std::vector<float>();
}

// What ember.h and the README promise about thread counts, through the user's knobs
// (OMP_NUM_THREADS: ember's own threads; OPENBLAS_NUM_THREADS: OpenBLAS's): a batch of 8 x 97
// random ids, big enough that attention and the elementwise ops run in parallel.
//   - fast path, OpenBLAS on one thread: bit-identical for 1, 2 and 3 ember threads;
//   - fast path, 1 vs 2 OpenBLAS threads: within kCpuFastAbs (sgemm splits the matrix by its
//     thread count, and a row's result depends on where the split puts it).
// (The reference is independent of its thread count by construction: every output element is
// one thread's double sum, kernels/linear.c.)
TEST(ThreadCounts, FastPathIndependentOfEmberThreads) {
    if (kSanitized) GTEST_SKIP() << "subprocesses of the CLI under a sanitizer build: too slow";
    const char *env = getenv("EMBER_MINILM_DIR");
    const std::string model =
        env ? env : std::string(EMBER_SOURCE_DIR) + "/.pydeps/all-MiniLM-L6-v2";
    FILE *probe = fopen((model + "/model.safetensors").c_str(), "rb");
    if (!probe) GTEST_SKIP() << model << " absent: run tools/fetch-minilm.sh";
    fclose(probe);
    const fs::path dir = fs::temp_directory_path() /
                         ("ember_threads_" + std::to_string(getpid()));
    fs::create_directories(dir);
    const int B = 8, S = 97;
    std::vector<int32_t> ids((size_t)B * S), mask((size_t)B * S);
    std::mt19937 g(5);
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++) {
            const bool valid = s < S - 9 * b;  // right padding, lengths 97 .. 34
            ids[(size_t)b * S + s] = valid ? 1000 + (int)(g() % 20000) : 0;
            mask[(size_t)b * S + s] = valid;
        }
    ember_st_tensor t[2] = {};
    t[0].name = "input_ids";
    t[1].name = "attention_mask";
    for (int i = 0; i < 2; i++) {
        t[i].dtype = EMBER_ST_I32;
        t[i].ndim = 2;
        t[i].shape[0] = B;
        t[i].shape[1] = S;
        t[i].nbytes = sizeof(int32_t) * B * S;
    }
    t[0].data = ids.data();
    t[1].data = mask.data();
    const std::string inputs = (dir / "in.safetensors").string();
    ASSERT_EQ(ember_st_write(inputs.c_str(), t, 2, nullptr, nullptr, 0), EMBER_OK)
        << ember_last_error();
    const std::string out = (dir / "out.safetensors").string();
    auto run = [&](const char *threads, const char *backend) {
        return CliForward(threads, backend, model, inputs, out);
    };
    const std::vector<float> one = run("OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1", "cpu");
    ASSERT_EQ(one.size(), (size_t)B * S * 384);
    for (const char *n : {"OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1",
                          "OMP_NUM_THREADS=3 OPENBLAS_NUM_THREADS=1"})
        EXPECT_TRUE(BitIdentical(run(n, "cpu"), one)) << n;
    const std::vector<float> blas2 = run("OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2", "cpu");
    EXPECT_TRUE(AllClose(blas2, one, ember_tol::kCpuFastAbs, ember_tol::kCpuFastRel));
    printf("    fast path, 1 vs 2 OpenBLAS threads: %s (sum |diff| %.3g)\n",
           BitIdentical(blas2, one) ? "bit-identical" : "not bit-identical",
           SumAbsDiff(blas2, one));
    fs::remove_all(dir);
}

}  // namespace
