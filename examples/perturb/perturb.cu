// perturb: change a model's input word vectors on the GPU and see what the encoder makes of it.
//
//   perturb MODEL_DIR [SIGMA]
//
// Token ids -> word vectors in a device buffer (ember_embed_tokens); your own kernel changes
// them; the encoder runs on them (ember_forward with inputs_embeds pointing at device memory),
// everything on one stream of yours. First it checks the premise of the method: unchanged
// vectors give outputs bit-identical to the input_ids path. Then it adds noise of standard
// deviation SIGMA (default 0.05) to every vector and prints how far each sentence embedding
// moved (cosine to the unperturbed one).
//
// MODEL_DIR is a BERT directory with vocab.txt (all-MiniLM-L6-v2, say).
// Exit status: 0 passed, 1 failed, 77 no GPU (nothing was run).
#include <ember.h>

#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define CK(call)                                                                            \
    do {                                                                                    \
        cudaError_t e_ = (call);                                                            \
        if (e_ != cudaSuccess) {                                                            \
            std::fprintf(stderr, "perturb: %s: %s\n", #call, cudaGetErrorString(e_));       \
            std::exit(1);                                                                   \
        }                                                                                   \
    } while (0)
#define EK(call)                                                                            \
    do {                                                                                    \
        ember_status s_ = (call);                                                           \
        if (s_ != EMBER_OK) {                                                               \
            std::fprintf(stderr, "perturb: %s: %s\n  %s\n", #call, ember_status_string(s_), \
                         ember_last_error());                                               \
            std::exit(1);                                                                   \
        }                                                                                   \
    } while (0)

// x[i] += sigma * N(0,1), the normal numbers from a counter-based hash (Box-Muller), so a run is
// reproducible. x is (B*S, H) float, in place.
__global__ void add_noise(float *x, size_t n, float sigma, unsigned long long seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        unsigned long long z = seed + i * 0x9E3779B97F4A7C15ull; // splitmix64
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        const float u1 = ((z >> 40) + 1) * (1.0f / 16777217.0f); // (0, 1]
        const float u2 = (z & 0xFFFFFF) * (1.0f / 16777216.0f);
        x[i] += sigma * sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
    }
}

static std::vector<float> to_host(const float *d, size_t n, cudaStream_t stream) {
    std::vector<float> h(n);
    CK(cudaMemcpyAsync(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost, stream));
    CK(cudaStreamSynchronize(stream));
    return h;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        std::fprintf(stderr, "usage: perturb MODEL_DIR [SIGMA]\n");
        return 2;
    }
    const float sigma = argc > 2 ? std::strtof(argv[2], nullptr) : 0.05f;
    const ember_build *build = ember_build_info();
    if (!std::strstr(build->backends, "cuda") || build->cuda_device_count == 0) {
        std::printf("perturb: not run: %s (this example needs an NVIDIA GPU)\n",
                    std::strstr(build->backends, "cuda") ? "no CUDA device found"
                                                         : "ember was built without CUDA");
        return 77;
    }

    const char *dir = argv[1];
    ember_pooling_config pc;
    EK(ember_pooling_config_load(dir, &pc));
    ember_tokenizer *tok = nullptr;
    EK(ember_tokenizer_load(dir, nullptr, &tok));
    ember_load_options opt;
    ember_load_options_init(&opt);
    opt.backend = EMBER_BACKEND_CUDA;
    ember_model *m = nullptr;
    EK(ember_model_load(dir, &opt, &m));
    ember_config cfg;
    EK(ember_model_config(m, &cfg));

    const char *texts[] = {"A man is eating food.", "A monkey is playing drums.",
                           "The girl is carrying a baby."};
    const int n_texts = 3;
    ember_encoding enc;
    EK(ember_tokenizer_encode(tok, n_texts, texts, nullptr, cfg.max_position_embeddings, &enc));
    const int B = enc.batch, S = enc.seq_len, H = cfg.hidden_size;
    const size_t tokens = (size_t)B * S, n = tokens * H;
    EK(ember_model_reserve(m, B, S));

    cudaStream_t stream;
    CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    int32_t *ids, *mask;
    float *embeds, *h_ids, *h_embeds, *h_noisy, *pooled;
    CK(cudaMalloc(&ids, tokens * sizeof(int32_t)));
    CK(cudaMalloc(&mask, tokens * sizeof(int32_t)));
    CK(cudaMalloc(&embeds, n * sizeof(float)));
    CK(cudaMalloc(&h_ids, n * sizeof(float)));
    CK(cudaMalloc(&h_embeds, n * sizeof(float)));
    CK(cudaMalloc(&h_noisy, n * sizeof(float)));
    CK(cudaMalloc(&pooled, 2 * (size_t)B * H * sizeof(float)));
    CK(cudaMemcpyAsync(ids, enc.input_ids, tokens * sizeof(int32_t), cudaMemcpyHostToDevice, stream));
    CK(cudaMemcpyAsync(mask, enc.attention_mask, tokens * sizeof(int32_t), cudaMemcpyHostToDevice,
                       stream));

    // 1. the ids path, and the same ids as word vectors: the outputs must be the same bits
    ember_inputs in{};
    in.batch = B;
    in.seq_len = S;
    in.attention_mask = mask;
    in.input_ids = ids;
    ember_outputs out{};
    out.last_hidden_state = h_ids;
    EK(ember_forward(m, &in, &out, stream));
    EK(ember_embed_tokens(m, ids, (int64_t)tokens, embeds, stream));
    in.input_ids = nullptr;
    in.inputs_embeds = embeds;
    out.last_hidden_state = h_embeds;
    EK(ember_forward(m, &in, &out, stream));
    const std::vector<float> a = to_host(h_ids, n, stream), b = to_host(h_embeds, n, stream);
    if (std::memcmp(a.data(), b.data(), n * sizeof(float)) != 0) {
        size_t i = 0;
        while (a[i] == b[i] || (a[i] != a[i] && b[i] != b[i])) i++;
        std::printf("perturb: FAILED: inputs_embeds from ember_embed_tokens differ from input_ids "
                    "at [%zu][%zu][%zu]: %.9g vs %.9g\n",
                    i / H / S, i / H % S, i % H, a[i], b[i]);
        return 1;
    }
    std::printf("perturb: unchanged word vectors give the input_ids outputs bit for bit "
                "(%zu floats, [%d, %d, %d])\n", n, B, S, H);

    // 2. perturb the vectors on the device, on the same stream, and run the encoder again
    add_noise<<<256, 256, 0, stream>>>(embeds, n, sigma, 12345);
    CK(cudaGetLastError());
    out.last_hidden_state = h_noisy;
    EK(ember_forward(m, &in, &out, stream));
    float *p_clean = pooled, *p_noisy = pooled + (size_t)B * H;
    EK(ember_pool(m, h_ids, mask, B, S, pc.mode, 1, p_clean, stream));
    EK(ember_pool(m, h_noisy, mask, B, S, pc.mode, 1, p_noisy, stream));
    const std::vector<float> e = to_host(pooled, 2 * (size_t)B * H, stream);
    std::printf("perturb: noise sigma %g on the word vectors; sentence embedding moved by:\n", sigma);
    for (int s = 0; s < B; s++) {
        double dot = 0.0;
        for (int h = 0; h < H; h++) dot += (double)e[(size_t)s * H + h] * e[(size_t)(B + s) * H + h];
        std::printf("  cosine %.6f  %s\n", dot, texts[s]);
    }

    for (void *p : {(void *)ids, (void *)mask, (void *)embeds, (void *)h_ids, (void *)h_embeds,
                    (void *)h_noisy, (void *)pooled})
        CK(cudaFree(p));
    CK(cudaStreamDestroy(stream));
    ember_encoding_free(&enc);
    ember_model_free(m);
    ember_tokenizer_free(tok);
    return 0;
}
