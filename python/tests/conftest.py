"""Shared helpers for the ember Python tests: paths, a small safetensors reader, the tolerance
table (read from tests/tolerances.h, the one table the C tests use too), skips."""
import json
import os
import re
import struct
import sys

import numpy as np
import pytest

PY_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(PY_DIR)
DATA = os.environ.get("EMBER_TEST_DATA", os.path.join(ROOT, "tests", "data"))
MINILM = os.path.join(ROOT, ".pydeps", "all-MiniLM-L6-v2")

# The source tree's package unless the installed one is under test (EMBER_TEST_INSTALLED=1).
if os.environ.get("EMBER_TEST_INSTALLED") != "1":
    sys.path.insert(0, PY_DIR)

import ember  # noqa: E402


def pytest_report_header(config):
    return "ember from %s, libember %s" % (os.path.dirname(ember.__file__), ember.library_path)


# ---- safetensors (the format is an 8-byte header length, a JSON header, raw data) ----------
_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
              "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path):
    """{name: ndarray} and the metadata dict of a safetensors file (dtypes above only)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        dt = _ST_DTYPES[t["dtype"]]
        out[name] = np.frombuffer(blob[base + a:base + b], dtype=dt).reshape(t["shape"]).copy()
    return out, meta


# ---- tolerances: tests/tolerances.h is the one table -------------------------------------
def _read_tolerances():
    path = os.path.join(ROOT, "tests", "tolerances.h")
    vals = {}
    with open(path) as f:
        for m in re.finditer(r"constexpr\s+double\s+(k\w+)\s*=\s*([^;]+);", f.read()):
            name, expr = m.group(1), m.group(2).strip()
            try:
                vals[name] = float(expr)
            except ValueError:  # an expression of earlier entries (1.0 - kA * kA)
                vals[name] = float(eval(expr, {"__builtins__": {}}, dict(vals)))  # noqa: S307
    return vals


TOL = _read_tolerances()


# ---- skips ------------------------------------------------------------------------------
def have_minilm():
    return (os.path.isfile(os.path.join(MINILM, "model.safetensors"))
            and os.path.isfile(os.path.join(MINILM, "modules.json")))


requires_minilm = pytest.mark.skipif(
    not have_minilm(), reason="%s (with modules.json) is absent: run tools/fetch-minilm.sh" % MINILM)


def torch_or_skip():
    return pytest.importorskip("torch", reason="torch is not installed")


def cuda_or_skip():
    torch = torch_or_skip()
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    if ember.cuda_device_count() < 1:
        pytest.skip("libember sees no CUDA device (built without CUDA, or no GPU)")
    return torch


def close_to_hf(got, want):
    """|got - want| <= kHfAbs + kHfRel |want|, NaN never passes; returns the max |diff|."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.isfinite(got).all(), "non-finite output"
    diff = np.abs(got - want)
    bound = TOL["kHfAbs"] + TOL["kHfRel"] * np.abs(want)
    bad = np.argwhere(~(diff <= bound))
    assert bad.size == 0, "%d values off, first at %s: got %r want %r (max |diff| %.3g)" % (
        len(bad), tuple(bad[0]), got[tuple(bad[0])], want[tuple(bad[0])], diff.max())
    return float(diff.max())



@pytest.fixture(autouse=True)
def poisoned_outputs():
    """Every output ember allocates starts as NaN (see ember._arrays.POISON)."""
    from ember import _arrays
    _arrays.POISON = True
    yield
    _arrays.POISON = False
