"""Arrays in and out without torch: the seed's bit-identity (ids vs embed_tokens ->
inputs_embeds), lists, int64 and bool narrowing, objects that only speak DLPack."""
import os

import numpy as np
import pytest
from conftest import DATA

import ember

MODEL = os.path.join(DATA, "models", "tiny-odd")


@pytest.fixture(scope="module")
def m():
    return ember.load(MODEL)


def batch(seed=11, B=3, S=9):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 211, size=(B, S)).astype(np.int32)
    mask = (rng.random((B, S)) < 0.8).astype(np.int32)
    mask[:, 0] = 1
    types = rng.integers(0, 3, size=(B, S)).astype(np.int32)
    return ids, mask, types


def test_ids_and_embed_tokens_are_bit_identical(m):
    ids, mask, types = batch()
    e = m.embed_tokens(ids)
    assert e.shape == ids.shape + (72,) and e.dtype == np.float32
    a = m(input_ids=ids, attention_mask=mask, token_type_ids=types, pooler=True,
          output_hidden_states=True)
    b = m(inputs_embeds=e, attention_mask=mask, token_type_ids=types, pooler=True,
          output_hidden_states=True)
    assert np.array_equal(a.last_hidden_state, b.last_hidden_state)
    assert np.array_equal(a.pooler_output, b.pooler_output)
    for x, y in zip(a.hidden_states, b.hidden_states):
        assert np.array_equal(x, y)
    # and the gather is the word table's rows: a different id gives a different row
    assert not np.array_equal(e[0, 0], m.embed_tokens(np.array([(ids[0, 0] + 1) % 211]))[0])


def test_dtypes_and_lists_give_the_same_bits(m):
    ids, mask, types = batch(S=5)
    want = m(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    for conv in (lambda x: x.astype(np.int64), lambda x: x.astype(np.uint8), lambda x: x.tolist()):
        got = m(input_ids=conv(ids), attention_mask=conv(mask), token_type_ids=conv(types))
        assert np.array_equal(got.last_hidden_state, want)
    got = m(input_ids=ids, attention_mask=mask.astype(bool), token_type_ids=types)
    assert np.array_equal(got.last_hidden_state, want)


def test_inputs_are_not_written(m):
    ids, mask, types = batch()
    e = m.embed_tokens(ids)
    keep = [x.copy() for x in (ids, mask, types, e)]
    m(inputs_embeds=e, attention_mask=mask, token_type_ids=types)
    m(input_ids=ids, attention_mask=mask, token_type_ids=types, skip_masked=True)
    for x, y in zip((ids, mask, types, e), keep):
        assert np.array_equal(x, y)


class DLPackOnly:
    """An array that only speaks DLPack (as a JAX CPU array does)."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, **kw):
        return self._a.__dlpack__(**kw)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


def test_dlpack_host_arrays(m):
    ids, mask, _ = batch()
    want = m(input_ids=ids, attention_mask=mask).last_hidden_state
    got = m(input_ids=DLPackOnly(ids), attention_mask=DLPackOnly(mask)).last_hidden_state
    assert isinstance(got, np.ndarray) and np.array_equal(got, want)


def test_output_object(m):
    ids, _, _ = batch(B=2, S=4)
    out = m(input_ids=ids, pooler=True)
    assert out.keys() == ["last_hidden_state", "pooler_output"]
    assert out["pooler_output"] is out.pooler_output and out[0] is out.last_hidden_state
    assert out.hidden_states is None
    assert "last_hidden_state=(2, 4, 72)" in repr(out)


def test_random_model_is_reproducible():
    cfg = dict(ember.load(MODEL).config, has_pooler=True)
    a = ember.random_model(cfg, seed=5)
    b = ember.random_model(cfg, seed=5)
    c = ember.random_model(cfg, seed=6)
    ids, _, _ = batch()
    x, y, z = (mm(input_ids=ids).last_hidden_state for mm in (a, b, c))
    assert np.array_equal(x, y) and not np.array_equal(x, z)


def test_half_inputs_and_outputs_on_the_cpu(m):
    """float16 in -> float16 out: the CPU computes in f32, takes the inputs' exact values and
    rounds each output once to nearest even (NumPy's float16 conversion is the oracle)."""
    ids, mask, types = batch()
    e32 = m.embed_tokens(ids).astype(np.float16).astype(np.float32)  # f16-representable
    e16 = e32.astype(np.float16)
    want = m(inputs_embeds=e32, attention_mask=mask, token_type_ids=types, pooler=True,
             output_hidden_states=True)
    got = m(inputs_embeds=e16, attention_mask=mask, token_type_ids=types, pooler=True,
            output_hidden_states=True)
    assert got.last_hidden_state.dtype == np.float16
    assert np.array_equal(got.last_hidden_state, want.last_hidden_state.astype(np.float16))
    assert np.array_equal(got.pooler_output, want.pooler_output.astype(np.float16))
    for x, y in zip(got.hidden_states, want.hidden_states):
        assert np.array_equal(x, y.astype(np.float16))
    f32 = m(inputs_embeds=e16, attention_mask=mask, token_type_ids=types, output_dtype="float32")
    assert np.array_equal(f32.last_hidden_state, want.last_hidden_state)
    assert np.array_equal(m.embed_tokens(ids, dtype="float16"),
                          m.embed_tokens(ids).astype(np.float16))
    with pytest.raises(TypeError, match="output_dtype: NumPy has no bfloat16"):
        m(input_ids=ids, output_dtype="bfloat16")
