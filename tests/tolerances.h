// Every tolerance the tests use, in one table, each with its reason. Add entries; do not
// loosen one without saying why in the commit.
#pragma once

namespace ember_tol {

// CPU reference (fp32 storage, double accumulators) vs HuggingFace float32 goldens:
// |ours - HF| <= kHfAbs + kHfRel * |HF|. HF itself rounds every op to fp32: its float32 vs
// float64 difference on the goldens is at most 4.3e-6 (tools/make_goldens.py log), so 2e-5
// absolute leaves ~4.6x margin on O(1) outputs, and the relative term covers the few
// values near 4 and the saturated pooler tanh.
constexpr double kHfAbs = 2e-5;
constexpr double kHfRel = 1e-5;

// CUDA backend, f32 storage, vs the CPU reference (double accumulators), on O(1) outputs: the
// GPU rounds every op to fp32 (cuBLASLt fp32 GEMMs without TF32, fp32 softmax and LayerNorm
// statistics), which is ~1e-6..1e-5 here; 1e-4 absolute is the bound.
constexpr double kCudaF32Abs = 1e-4;
// CUDA backend, f16 storage (weights and activations rounded to half, f32 accumulation), vs
// the f32 reference: relative L2 of the whole output. Half's unit roundoff is 4.9e-4 and a
// few roundings per layer compound to ~1e-3.
constexpr double kCudaF16RelL2 = 2e-3;
// Same for bf16, whose unit roundoff (3.9e-3) is 8x half's.
constexpr double kCudaBf16RelL2 = 1e-2;

// CUDA f16 / bf16 on the HF goldens (tests/data, HF-initialised checkpoints) vs HF float32:
// HF's own eager forward in f16 / bf16 (transformers 5.24, CPU) is off its f32 goldens by up
// to 3.24e-3 / 2.51e-2 relative L2 on these checkpoints; FlashAttention's rule allows twice
// the error of the reference computed in the same precision.
constexpr double kCudaGoldenF16RelL2 = 6.5e-3;
constexpr double kCudaGoldenBf16RelL2 = 5e-2;

// Logits in f16 / bf16 (tests/test_cuda.cc: the family's goldens, and the random family models
// against the CPU): a sequence head ends in a handful of logits per batch, some near zero, so
// relative L2 over them is ill-conditioned (HF's own f16 logit of electra-seqcls/batch1_maxlen
// is 2.7e-2 off in relative L2). Bounded absolutely instead, on logits |x| <= 3.5: HF's own eager
// forward in f16 / bf16 (transformers 5.24, CPU) is off the family's f32 goldens by at most
// 5.23e-3 / 3.45e-2; FlashAttention's rule allows twice that.
constexpr double kCudaF16LogitsAbs = 1.1e-2;
constexpr double kCudaBf16LogitsAbs = 7e-2;

// Attention kernels (tests/test_attention.cc) vs the CPU reference run on the same inputs
// rounded to the kernel's dtype, FlashAttention's rule: max |err| <= kAttnLowpFactor x
// max |reference rounded to dt - reference| + a floor per dtype.
constexpr double kAttnLowpFactor = 2.0;
// f16: a numerics model of the tensor-core kernel (P rounded to f16 per 64-key tile, f32
// sums) stays within 1.7x the output rounding on the test shapes; the floor covers the max-norm
// noise where that rounding is tiny (S = 512: |out| ~ 0.05, rounding 3e-5).
constexpr double kAttnF16Floor = 5e-5;
// bf16: the same model with bf16's 8x coarser rounding.
constexpr double kAttnBf16Floor = 4e-4;
// f32 (SIMT only): scores in fp32 at q, k = +-8 (|score| ~ 500, ulp 3e-5) move the weights;
// the model's worst output error is 1.4e-5.
constexpr double kAttnF32Floor = 5e-5;

// The fast CPU backend (EMBER_BACKEND_CPU: float32 sgemm, float softmax and LayerNorm
// statistics, A&S 7.1.26 erf) vs the reference (double accumulators) on O(1) outputs, and the
// fast path against itself across batch layouts (padding removal, a row's place in the batch):
// tests/test_perf_paths.cc FastCpu.* measured max |diff| 1.4e-6 on the edge cases and 2.9e-6
// at odd sizes up to MiniLM's shape (OpenBLAS 0.3.21, Haswell and SkylakeX kernels), and
// tests/test_family.cc FastCpu.FamilyMatchesReference 2.2e-6 on hidden states and 1.3e-6 on
// the heads' logits (so logits need no row of their own); 2e-5 is 8x that, and 5x tighter than
// the CUDA f32 bound.
constexpr double kCpuFastAbs = 2e-5;
constexpr double kCpuFastRel = 0.0;

// ember_pool on the CPU (double accumulation) vs a direct double reference of
// sentence-transformers' formulas (tests/test_pooling.cc): both round once to f32 at the end,
// so they differ by at most an ulp or two of O(1) values.
constexpr double kPoolAbs = 1e-6;
constexpr double kPoolRel = 1e-6;
// ember_pool on CUDA (f32 accumulation over up to 97 tokens of O(1) values) vs the CPU: ~S
// roundings of 6e-8 relative, ~1e-6 here; 1e-5 leaves margin for the -1e9 of empty max rows.
constexpr double kCudaPoolAbs = 1e-5;
constexpr double kCudaPoolRel = 1e-5;

// Sentence embeddings of all-MiniLM-L6-v2 (tokenizer + forward + pool + normalize, CPU f32)
// vs sentence-transformers' float32 encode() (tests/test_embed.cc, the bound): unit
// vectors whose coordinates are O(0.1); HF's own f32 vs f64 forward differs by a few 1e-6 in
// last_hidden_state, and mean pooling + normalisation do not amplify that.
constexpr double kStMinCosine = 0.99999;
constexpr double kStMaxAbs = 1e-5;
// The same through the CUDA backend: f32 rows of the HF golden table hold (1e-4 absolute on
// O(1) hidden states, i.e. ~1e-5 on unit embeddings of H = 384); f16 / bf16 per-embedding
// relative L2 bounds from the rows above, as cosine: cos >= 1 - relL2^2 / 2, with 2x margin.
constexpr double kStCudaF32MinCosine = 0.9999;
constexpr double kStCudaF16MinCosine = 1.0 - kCudaGoldenF16RelL2 * kCudaGoldenF16RelL2;
constexpr double kStCudaBf16MinCosine = 1.0 - kCudaGoldenBf16RelL2 * kCudaGoldenBf16RelL2;

// Soak (tests/test_soak.cc): resident memory may grow by at most this much between the end of
// the warm-up and the end of the run (9000 forwards, or 90 load/free cycles). glibc keeps freed
// blocks in its arenas and the test's own output vectors are reallocated every iteration, so a
// few pages of drift are normal; a leak of 128 bytes per call would already exceed the bound.
// Not checked under ASan/TSan (quarantine, shadow memory); LeakSanitizer covers leaks there.
constexpr long long kSoakRssGrowthBytes = 1 << 20;

}  // namespace ember_tol
