"""NumPy on the CPU backend against HuggingFace's own outputs (tests/data/goldens,
tools/make_goldens.py): every case of every model (BertModel and the family with their heads'
logits), with the C tests' tolerance (kHfAbs, kHfRel of tests/tolerances.h)."""
import functools
import json
import os

import numpy as np
import pytest
from conftest import DATA, TOL, close_to_hf, read_safetensors

import ember

with open(os.path.join(DATA, "goldens", "manifest.json")) as f:
    MANIFEST = json.load(f)


@functools.lru_cache(maxsize=None)
def cpu_model(model_dir):
    return ember.load(os.path.join(DATA, model_dir), max_batch=4, max_seq_len=16)


def case_id(c):
    return "%s/%s" % (c["model"], c["case"])


def inputs_of(t, case):
    kw = {case["entry"]: t[case["entry"]]}
    for k in ("attention_mask", "token_type_ids", "position_ids"):
        if k in t:
            kw[k] = t[k]  # I64 as HF stores them: narrowed by ember
    return kw


@pytest.mark.parametrize("case", MANIFEST, ids=case_id)
def test_numpy_matches_hf(case):
    t, _ = read_safetensors(os.path.join(DATA, case["file"]))
    m = cpu_model(case["model_dir"])
    out = m(**inputs_of(t, case), output_hidden_states=case["has_hidden_states"],
            pooler=case["has_pooler"], logits=case.get("has_logits", False))
    assert isinstance(out.last_hidden_state, np.ndarray)
    assert out.last_hidden_state.dtype == np.float32
    close_to_hf(out.last_hidden_state, t["expected.last_hidden_state"])
    if case["has_pooler"]:
        close_to_hf(out.pooler_output, t["expected.pooler_output"])
    else:
        assert out.pooler_output is None
    if case["has_hidden_states"]:
        want = t["expected.hidden_states"]
        assert len(out.hidden_states) == want.shape[0] == m.config["num_hidden_layers"] + 1
        for layer, h in enumerate(out.hidden_states):
            close_to_hf(h, want[layer])
        # hidden_states[L] is last_hidden_state, bit for bit
        assert np.array_equal(out.hidden_states[-1], out.last_hidden_state)
    if case.get("has_logits"):
        close_to_hf(out.logits, t["expected.logits"])
        assert m.config["model_type"] == case["arch"]
        assert len(m.id2label) == m.config["num_labels"] == case["num_labels"]
    else:
        assert out.logits is None
    if case["case"] == "pitfall":
        # HF's hidden_states[0] fed back: right as embedding_output, wrong as inputs_embeds
        w = t["wrong_inputs_embeds"]
        mask = t.get("attention_mask")
        close_to_hf(m(embedding_output=w, attention_mask=mask).last_hidden_state,
                    t["expected.last_hidden_state"])
        close_to_hf(m(inputs_embeds=w, attention_mask=mask).last_hidden_state,
                    t["expected.wrong_last_hidden_state"])


@pytest.mark.parametrize("case", [c for c in MANIFEST if c["case"] == "right_padding"],
                         ids=case_id)
def test_skip_masked_rows(case):
    """skip_masked: valid rows as the padded run's on the CPU (the fast backend: within
    kCpuFastAbs, since sgemm's result for a row depends on its place in the matrix; the C tests
    check the reference's bit identity), masked rows 0."""
    t, _ = read_safetensors(os.path.join(DATA, case["file"]))
    m = cpu_model(case["model_dir"])
    full = m(**inputs_of(t, case)).last_hidden_state
    packed = m(**inputs_of(t, case), skip_masked=True).last_hidden_state
    mask = t["attention_mask"].astype(bool)
    assert np.abs(packed[mask] - full[mask]).max() <= TOL["kCpuFastAbs"]
    assert not packed[~mask].any()


def test_tolerances_come_from_the_c_table():
    """The one table: the values used here are tests/tolerances.h's, parsed, not copies."""
    assert TOL["kHfAbs"] == 2e-5 and TOL["kHfRel"] == 1e-5
    assert 0.99 < TOL["kStMinCosine"] < 1.0 and TOL["kStMaxAbs"] > 0


def test_workspace_grows_for_a_larger_call():
    m = ember.load(os.path.join(DATA, "models", "tiny-odd"), max_batch=1, max_seq_len=4)
    rng = np.random.default_rng(7)
    ids = rng.integers(0, m.config["vocab_size"], size=(5, 33))
    a = m(input_ids=ids).last_hidden_state
    b = ember.load(os.path.join(DATA, "models", "tiny-odd"), max_batch=5,
                   max_seq_len=33)(input_ids=ids).last_hidden_state
    assert np.array_equal(a, b)
