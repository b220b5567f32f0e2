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

}  // namespace ember_tol
