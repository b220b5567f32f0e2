"""torch tensors in, torch tensors out on the same device. Skipped without torch; the CUDA
tests are skipped without a GPU (the GPU check runs them): CUDA tensors used in place (no
input copy, no allocation besides the outputs), work on torch's current stream, no host
synchronisation added."""
import json
import os

import numpy as np
import pytest
from conftest import DATA, TOL, close_to_hf, cuda_or_skip, read_safetensors, torch_or_skip

import ember

torch = torch_or_skip()
MODEL = os.path.join(DATA, "models", "tiny-odd")
with open(os.path.join(DATA, "goldens", "manifest.json")) as f:
    MANIFEST = json.load(f)


@pytest.fixture(scope="module")
def m():
    return ember.load(MODEL)


def batch(device="cpu", seed=1, B=3, S=11):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 211, (B, S), generator=g)  # int64, as HF tokenizers give
    mask = torch.ones(B, S, dtype=torch.int64)
    mask[1, 7:] = 0
    mask[2, 3:] = 0
    types = torch.randint(0, 3, (B, S), generator=g)
    return ids.to(device), mask.to(device), types.to(device)


# ---- CPU tensors ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", [c for c in MANIFEST if c["model"] == "tiny-odd"],
                         ids=lambda c: c["case"])
def test_cpu_tensors_match_hf(m, case):
    t, _ = read_safetensors(os.path.join(DATA, case["file"]))
    kw = {k: torch.from_numpy(t[k]) for k in (case["entry"], "attention_mask", "token_type_ids",
                                               "position_ids") if k in t}
    out = m(**kw, pooler=True, output_hidden_states=case["has_hidden_states"])
    assert isinstance(out.last_hidden_state, torch.Tensor)
    assert out.last_hidden_state.device.type == "cpu"
    assert out.last_hidden_state.dtype == torch.float32
    close_to_hf(out.last_hidden_state.numpy(), t["expected.last_hidden_state"])
    close_to_hf(out.pooler_output.numpy(), t["expected.pooler_output"])
    if case["has_hidden_states"]:
        assert isinstance(out.hidden_states, tuple) and len(out.hidden_states) == 4
        for layer, h in enumerate(out.hidden_states):
            close_to_hf(h.numpy(), t["expected.hidden_states"][layer])


def test_cpu_bit_identity_and_numpy_agreement(m):
    ids, mask, types = batch()
    a = m(input_ids=ids, attention_mask=mask, token_type_ids=types)
    e = m.embed_tokens(ids)
    assert isinstance(e, torch.Tensor) and e.shape == (3, 11, 72)
    b = m(inputs_embeds=e, attention_mask=mask, token_type_ids=types)
    assert torch.equal(a.last_hidden_state, b.last_hidden_state)
    n = m(input_ids=ids.numpy(), attention_mask=mask.numpy(), token_type_ids=types.numpy())
    assert np.array_equal(n.last_hidden_state, a.last_hidden_state.numpy())
    # a bool mask and int32 ids give the same bits
    c = m(input_ids=ids.int(), attention_mask=mask.bool(), token_type_ids=types.int())
    assert torch.equal(a.last_hidden_state, c.last_hidden_state)


def test_cpu_tensor_errors(m):
    ids, mask, _ = batch()
    with pytest.raises(ValueError, match="input_ids: expected a C-contiguous"):
        m(input_ids=ids.t())
    with pytest.raises(TypeError, match="inputs_embeds: expected float32, float16 or bfloat16, got float64"):
        m(inputs_embeds=torch.zeros(2, 3, 72, dtype=torch.float64))
    with pytest.raises(ValueError, match="input_ids: expected an array on the CPU"):
        m(input_ids=torch.zeros(2, 3, dtype=torch.int32, device="meta"))
    with pytest.raises(ValueError, match="attention_mask: expected an array on cpu like"):
        m(input_ids=ids, attention_mask=mask.to("meta"))
    # int64 beyond int32 cannot wrap into a valid id
    bad = ids.clone()
    bad[0, 0] = 2**32 + 5
    with pytest.raises(ember.EmberError, match="EMBER_ERR_OUT_OF_RANGE"):
        m(input_ids=bad)
    # requires_grad inputs are read, not differentiated
    e = m.embed_tokens(ids).requires_grad_()
    assert m(inputs_embeds=e).last_hidden_state.requires_grad is False


# ---- CUDA tensors (the GPU check) -----------------------------------------------------------
@pytest.fixture(scope="module")
def gpu():
    t = cuda_or_skip()
    return t, ember.load(MODEL, device="cuda"), ember.load(MODEL)


def test_cuda_matches_cpu(gpu):
    t, g, c = gpu
    ids, mask, types = batch()
    want = c(input_ids=ids, attention_mask=mask, token_type_ids=types, pooler=True)
    got = g(input_ids=ids.cuda(), attention_mask=mask.cuda(), token_type_ids=types.cuda(),
            pooler=True)
    assert got.last_hidden_state.device == t.device("cuda:0")
    g.synchronize()
    d = (got.last_hidden_state.cpu() - want.last_hidden_state).abs().max().item()
    assert d <= TOL["kCudaF32Abs"], d
    d = (got.pooler_output.cpu() - want.pooler_output).abs().max().item()
    assert d <= TOL["kCudaF32Abs"], d


def test_cuda_inputs_embeds_in_place_no_sync(gpu):
    """inputs_embeds as a CUDA tensor: read in place (its data_ptr is what ember read, nothing
    but the output is allocated), enqueued on torch's current stream without a host
    synchronisation (a long kernel queued before the call is still running after it)."""
    t, g, c = gpu
    ids, mask, types = batch()
    mask, types = mask.int().cuda(), types.int().cuda()
    e = g.embed_tokens(ids.int().cuda())
    ptr = e.data_ptr()
    g(inputs_embeds=e, attention_mask=mask, token_type_ids=types)  # warm up (graph capture)
    t.cuda.synchronize()
    s = t.cuda.Stream()
    with t.cuda.stream(s):
        before = t.cuda.memory_stats()["allocation.all.allocated"]
        t.cuda._sleep(200_000_000)  # ~0.1 s of GPU time queued ahead of ember's work
        out = g(inputs_embeds=e, attention_mask=mask, token_type_ids=types)
        busy = not s.query()
        allocs = t.cuda.memory_stats()["allocation.all.allocated"] - before
    assert busy, "the call waited for the stream (a host synchronisation was added)"
    assert e.data_ptr() == ptr
    assert allocs == 1, "%d allocations: inputs were copied (only the output is new)" % allocs
    s.synchronize()
    g.synchronize()
    want = c(inputs_embeds=e.cpu(), attention_mask=mask.cpu(), token_type_ids=types.cpu())
    d = (out.last_hidden_state.cpu() - want.last_hidden_state).abs().max().item()
    assert d <= TOL["kCudaF32Abs"], d


def test_cuda_bit_identity(gpu):
    t, g, _ = gpu
    ids, mask, types = (x.cuda() for x in batch())
    a = g(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    b = g(inputs_embeds=g.embed_tokens(ids), attention_mask=mask,
          token_type_ids=types).last_hidden_state
    g.synchronize()
    assert t.equal(a, b)


def test_cuda_errors(gpu):
    t, g, c = gpu
    ids, mask, _ = batch()
    with pytest.raises(ValueError, match="input_ids: expected an array on the CPU"):
        c(input_ids=ids.cuda())
    with pytest.raises(ValueError, match="input_ids: expected a tensor on cuda:0"):
        g(input_ids=ids)  # a CPU tensor for a CUDA model
    with pytest.raises(ValueError, match="attention_mask: expected an array on cuda:0 like"):
        g(input_ids=ids.cuda(), attention_mask=mask)
    # out-of-range ids found on the device surface at synchronize(); the model stays usable
    bad = ids.cuda()
    bad[0, 1] = 500
    g(input_ids=bad)
    with pytest.raises(ember.EmberError) as e:
        g.synchronize()
    assert e.value.status_name == "EMBER_ERR_OUT_OF_RANGE"
    good = g(input_ids=ids.cuda()).last_hidden_state
    g.synchronize()
    assert t.isfinite(good).all()


def test_cuda_numpy_in_numpy_out(gpu):
    _, g, c = gpu
    ids, mask, _ = batch()
    got = g(input_ids=ids.numpy(), attention_mask=mask.numpy()).last_hidden_state
    assert isinstance(got, np.ndarray)
    want = c(input_ids=ids.numpy(), attention_mask=mask.numpy()).last_hidden_state
    assert np.abs(got - want).max() <= TOL["kCudaF32Abs"]


def test_cupy_arrays(gpu):
    cp = pytest.importorskip("cupy", reason="cupy is not installed")
    _, g, c = gpu
    ids, mask, _ = batch()
    out = g(input_ids=cp.asarray(ids.int().numpy()), attention_mask=cp.asarray(mask.numpy()))
    g.synchronize()
    want = c(input_ids=ids, attention_mask=mask).last_hidden_state.numpy()
    assert float(np.abs(cp.asnumpy(out.last_hidden_state) - want).max()) <= TOL["kCudaF32Abs"]


def test_cpu_bfloat16_in_and_out(m):
    """bfloat16 tensors in -> bfloat16 out, each value the f32 result rounded once (torch's own
    rounding is the oracle)."""
    ids, mask, types = batch()
    e = m.embed_tokens(ids, dtype="bfloat16")
    assert e.dtype == torch.bfloat16
    assert torch.equal(e, m.embed_tokens(ids).to(torch.bfloat16))
    want = m(inputs_embeds=e.float(), attention_mask=mask, token_type_ids=types, pooler=True)
    got = m(inputs_embeds=e, attention_mask=mask, token_type_ids=types, pooler=True)
    assert got.last_hidden_state.dtype == torch.bfloat16
    assert torch.equal(got.last_hidden_state, want.last_hidden_state.to(torch.bfloat16))
    assert torch.equal(got.pooler_output, want.pooler_output.to(torch.bfloat16))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_cuda_half_pipeline(gpu, dtype):
    """A half model: embed_tokens gives half tensors, fed back as inputs_embeds they give the
    ids' outputs bit for bit, in half, read in place; and close to the CPU reference."""
    t, _, c = gpu
    g = ember.load(MODEL, device="cuda", dtype=dtype)
    ids, mask, types = (x.int().cuda() for x in batch())
    e = g.embed_tokens(ids)
    assert e.dtype == getattr(t, dtype) and e.is_cuda
    a = g(input_ids=ids, attention_mask=mask, token_type_ids=types, pooler=True)
    b = g(inputs_embeds=e, attention_mask=mask, token_type_ids=types, pooler=True)
    g.synchronize()
    assert a.last_hidden_state.dtype == getattr(t, dtype)
    assert t.equal(a.last_hidden_state, b.last_hidden_state)
    assert t.equal(a.pooler_output, b.pooler_output)
    want = c(input_ids=ids.cpu(), attention_mask=mask.cpu(), token_type_ids=types.cpu())
    got = a.last_hidden_state.float().cpu()
    rel = ((got - want.last_hidden_state).norm() / want.last_hidden_state.norm()).item()
    assert rel <= TOL["kCudaF16RelL2" if dtype == "float16" else "kCudaBf16RelL2"], rel
