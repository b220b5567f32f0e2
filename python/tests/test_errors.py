"""Bad input: a ValueError or TypeError naming the argument and what was expected, or an
EmberError carrying the C status name and ember_last_error()'s text; afterwards the model gives
the same bits as before."""
import os

import numpy as np
import pytest
from conftest import DATA

import ember

MODEL = os.path.join(DATA, "models", "tiny-odd")  # H = 72, vocab 211, 3 types, 40 positions


@pytest.fixture(scope="module")
def m():
    return ember.load(MODEL)


@pytest.fixture(scope="module")
def good(m):
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 211, size=(2, 7)).astype(np.int32)
    mask = np.ones((2, 7), np.int32)
    mask[1, 5:] = 0
    return ids, mask, m(input_ids=ids, attention_mask=mask).last_hidden_state


def still_same(m, good):
    ids, mask, want = good
    assert np.array_equal(m(input_ids=ids, attention_mask=mask).last_hidden_state, want)


def embeds(*shape, dtype=np.float32):
    return np.random.default_rng(5).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("kwargs, exc, words", [
    ({}, ValueError, ["exactly one of input_ids, inputs_embeds, embedding_output", "none"]),
    ({"input_ids": np.zeros((2, 7), np.int32), "inputs_embeds": embeds(2, 7, 72)}, ValueError,
     ["exactly one", "input_ids and inputs_embeds"]),
    ({"inputs_embeds": embeds(2, 7, 72), "embedding_output": embeds(2, 7, 72)}, ValueError,
     ["exactly one", "inputs_embeds and embedding_output"]),
    ({"input_ids": np.zeros(7, np.int32)}, ValueError, ["input_ids", "2-D", "(7,)"]),
    ({"input_ids": np.zeros((2, 7), np.float32)}, TypeError, ["input_ids", "integer", "float32"]),
    ({"input_ids": np.zeros((2, 7), np.int32), "attention_mask": np.ones((2, 6), np.int32)},
     ValueError, ["attention_mask", "(2, 7)", "(2, 6)"]),
    ({"input_ids": np.zeros((2, 7), np.int32), "attention_mask": np.ones((2, 7), np.float32)},
     TypeError, ["attention_mask", "integer", "float32"]),
    ({"input_ids": np.zeros((2, 7), np.int32), "token_type_ids": np.zeros((7, 2), np.int32)},
     ValueError, ["token_type_ids", "(2, 7)"]),
    ({"inputs_embeds": embeds(2, 7, 71)}, ValueError, ["inputs_embeds", "hidden_size = 72"]),
    ({"embedding_output": embeds(2, 7)}, ValueError, ["embedding_output", "3-D"]),
    ({"inputs_embeds": embeds(2, 7, 72, dtype=np.float64)}, TypeError,
     ["inputs_embeds", "float32", "float64"]),
    ({"input_ids": np.zeros((2, 14), np.int32)[:, ::2]}, ValueError,
     ["input_ids", "C-contiguous"]),
    ({"inputs_embeds": np.asfortranarray(embeds(2, 7, 72))}, ValueError,
     ["inputs_embeds", "C-contiguous"]),
    ({"input_ids": "hello"}, TypeError, ["input_ids", "str"]),
    ({"input_ids": np.zeros((2, 7), np.int32),
      "valid_tokens": 3}, ValueError, ["valid_tokens", "skip_masked"]),
])
def test_python_side_rejections(m, good, kwargs, exc, words):
    with pytest.raises(exc) as e:
        m(**kwargs)
    for w in words:
        assert w in str(e.value), str(e.value)
    still_same(m, good)


@pytest.mark.parametrize("mutate, status, words", [
    (lambda k: k["input_ids"].__setitem__((1, 3), 211), "EMBER_ERR_OUT_OF_RANGE",
     ["input_ids[1][3] = 211", "vocab_size = 211"]),
    (lambda k: k["input_ids"].__setitem__((0, 0), -1), "EMBER_ERR_OUT_OF_RANGE",
     ["input_ids[0][0] = -1"]),
    (lambda k: k.__setitem__("token_type_ids", np.full((2, 7), 3, np.int32)),
     "EMBER_ERR_OUT_OF_RANGE", ["token_type_ids[0][0] = 3", "type_vocab_size = 3"]),
    (lambda k: k.__setitem__("position_ids", np.full((2, 7), 40, np.int64)),
     "EMBER_ERR_OUT_OF_RANGE", ["position_ids[0][0] = 40"]),
    (lambda k: k["attention_mask"].__setitem__((0, 2), 2), "EMBER_ERR_INVALID_ARGUMENT",
     ["attention_mask[0][2] = 2", "0 or 1"]),
    # an int64 id beyond int32 is clamped before narrowing: it cannot wrap to a valid id (5)
    (lambda k: k.__setitem__("input_ids", np.where(np.arange(14).reshape(2, 7) == 4,
                                                   2**32 + 5, 1).astype(np.int64)),
     "EMBER_ERR_OUT_OF_RANGE", ["input_ids[0][4]", "outside [0, vocab_size = 211)"]),
])
def test_c_errors_carry_status_and_message(m, good, mutate, status, words):
    ids, mask, _ = good
    kw = {"input_ids": ids.copy(), "attention_mask": mask.copy()}
    mutate(kw)
    with pytest.raises(ember.EmberError) as e:
        m(**kw)
    assert e.value.status_name == status
    assert str(e.value).startswith("ember_forward: " + status + ": ")
    for w in words:
        assert w in e.value.detail, e.value.detail
    still_same(m, good)


def test_nan_in_inputs_embeds_is_named(m, good):
    x = embeds(2, 7, 72)
    x[1, 2, 30] = np.nan
    with pytest.raises(ember.EmberError) as e:
        m(inputs_embeds=x)
    assert e.value.status_name == "EMBER_ERR_INVALID_ARGUMENT"
    assert "inputs_embeds[1][2][30] = nan" in e.value.detail
    still_same(m, good)


def test_pooler_without_pooler_is_a_value_error():
    m = ember.load(os.path.join(DATA, "models", "gelu-new-sharded"))
    with pytest.raises(ValueError, match="pooler=True: this checkpoint has no pooler"):
        m(input_ids=np.zeros((1, 3), np.int32), pooler=True)


def test_load_errors():
    with pytest.raises(ember.EmberError) as e:
        ember.load(os.path.join(DATA, "no-such-model"))
    assert e.value.status_name == "EMBER_ERR_IO"
    assert "no-such-model" in e.value.detail
    with pytest.raises(ValueError, match="device: expected 'cpu', 'cuda' or 'cuda:N'"):
        ember.load(MODEL, device="gpu")
    with pytest.raises(ValueError, match="dtype: expected 'float32', 'float16' or 'bfloat16'"):
        ember.load(MODEL, dtype="int8")
    with pytest.raises(ember.EmberError) as e:
        ember.load(MODEL, dtype="float16")  # the CPU computes in f32 only
    assert e.value.status_name == "EMBER_ERR_UNSUPPORTED"
    if ember.cuda_device_count() == 0:
        with pytest.raises(ember.EmberError) as e:
            ember.load(MODEL, device="cuda")
        assert e.value.status_name == "EMBER_ERR_NO_DEVICE"


def test_embed_tokens_errors(m):
    with pytest.raises(TypeError, match="input_ids: expected an integer array"):
        m.embed_tokens(np.zeros(3, np.float32))
    with pytest.raises(ember.EmberError) as e:
        m.embed_tokens(np.array([1, 500], np.int32))
    assert e.value.status_name == "EMBER_ERR_OUT_OF_RANGE" and "input_ids[1] = 500" in str(e.value)


def test_closed_model(good):
    m2 = ember.load(MODEL)
    m2.close()
    with pytest.raises(ValueError, match="closed"):
        m2(input_ids=good[0])
