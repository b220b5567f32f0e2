"""ember.serve without Ray: the request checks and error formats, the batch planner, the
cross-request batcher (results equal to SentenceEncoder.encode of each text alone on the CPU
backend within kCpuFastAbs, whatever the batch composition), the options. The Ray Serve cluster tests
(load, fault, HTTP) are serve_cluster.py, run by tools/serve-test.sh."""
import asyncio
import base64
import concurrent.futures
import json
import os
import random

import numpy as np
import pytest

from conftest import DATA, MINILM, TOL
from ember.serve import protocol
from ember.serve.batcher import Batcher, plan
from ember.serve.engine import Engine
from ember.serve.options import OptionError, deployment_options, normalize, parser
from serve_model import write_small_model

ApiError = protocol.ApiError
H = 32


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    return write_small_model(str(tmp_path_factory.mktemp("serve") / "small"))


@pytest.fixture(scope="module")
def engine(small_dir):
    return Engine(small_dir, max_batch_tokens=1024)


def _texts(n, seed, max_words=150):
    with open(os.path.join(DATA, "tokenizer", "corpus.txt"), encoding="utf-8") as f:
        words = f.read().split()
    rng = random.Random(seed)
    sizes = [1, 2, 3, 5, 8, 13, 30, 60, max_words]
    return [" ".join(rng.choice(words) for _ in range(rng.choice(sizes))) for _ in range(n)]


def _err(fn, *args):
    with pytest.raises(ApiError) as e:
        fn(*args)
    return e.value


# ---- bodies and requests ----------------------------------------------------------------------
@pytest.mark.parametrize("body,code,snippet", [
    (b"", "invalid_json", "empty"),
    (b"{", "invalid_json", "line 1 column 2"),
    (b'{"input": "a\xff"}', "invalid_utf8", "byte 0xff at offset 12"),
    (b'{"input": NaN}', "invalid_json", "NaN is not JSON"),
    (b"[" * 100000 + b"]" * 100000, "invalid_json", "nested too deeply"),
    (b'{"input": 1' + b"0" * 5000 + b"}", "invalid_json", "not valid JSON"),
])
def test_bad_bodies(body, code, snippet):
    e = _err(protocol.parse_body, body)
    assert (e.status, e.code) == (400, code)
    assert snippet in e.message


OPENAI_CASES = [
    # body, status, code, words the message must hold
    ([1, 2], 400, "invalid_type", "must be a JSON object; got an array"),
    ({}, 400, "missing_input", "'input' is required"),
    ({"input": []}, 400, "empty_input", "empty array"),
    ({"input": ""}, 400, "empty_input", "input[0] is an empty string"),
    ({"input": ["a", ""]}, 400, "empty_input", "input[1] is an empty string"),
    ({"input": [[1, 2], []]}, 400, "empty_input", "input[1] is an empty token sequence"),
    ({"input": 5}, 400, "invalid_type", "got a number"),
    ({"input": {"a": 1}}, 400, "invalid_type", "got an object"),
    ({"input": ["a", 5]}, 400, "invalid_type", "input[1] must be a string"),
    ({"input": [[1, "x"]]}, 400, "invalid_type", "input[0][1] must be a token id"),
    ({"input": [1, -2]}, 400, "invalid_type", "input[1] must be a token id"),
    ({"input": [1, 2.5]}, 400, "invalid_type", "got 2.5"),
    ({"input": [True]}, 400, "invalid_type", "got a boolean"),
    ({"input": [[1], 2]}, 400, "invalid_type", "input[1] must be an array of token ids"),
    ({"input": ["a\ud800b"]}, 400, "invalid_unicode", "lone surrogate \\ud800 at character 1"),
    ({"input": ["a"] * 9}, 400, "too_many_inputs", "9 inputs, more than this server's limit of 8"),
    ({"input": "a", "model": "other"}, 404, "model_not_found", "serves 'm'"),
    ({"input": "a", "model": 3}, 400, "invalid_type", "'model' must be a string"),
    ({"input": "a", "encoding_format": "int8"}, 400, "invalid_value", "'float' or 'base64'"),
    ({"input": "a", "dimensions": 8}, 400, "invalid_dimensions", "have 32 dimensions"),
    ({"input": "a", "dimensions": "32"}, 400, "invalid_type", "an integer"),
    ({"input": "a", "truncate": "yes"}, 400, "invalid_type", "true or false"),
    ({"input": "a", "inputs": "b"}, 400, "unknown_field", "unknown field 'inputs'"),
]


@pytest.mark.parametrize("obj,status,code,snippet", OPENAI_CASES)
def test_openai_errors(obj, status, code, snippet):
    e = _err(protocol.parse_openai, obj, "m", H, 8)
    assert (e.status, e.code) == (status, code), e.message
    assert snippet in e.message
    body = protocol.openai_error(e)
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"


TEI_CASES = [
    ({"inputs": []}, 400, "Empty", "empty array"),
    ({"inputs": ""}, 400, "Empty", "empty string"),
    ({"inputs": 5}, 422, "Validation", "got a number"),
    ({"inputs": ["a"] * 9}, 413, "Validation", "limit of 8"),
    ({"inputs": "a", "normalize": 1}, 422, "Validation", "'normalize' must be true or false"),
    ({"inputs": "a", "truncation_direction": "left"}, 422, "Validation", "only 'right'"),
    ({"inputs": "a", "prompt_name": "query"}, 422, "Validation", "no prompts"),
    ({"inputs": "a", "dimensions": 16}, 422, "Validation", "cannot be shortened"),
    ({"inputs": "a", "input": "b"}, 422, "Validation", "unknown field 'input'"),
]


@pytest.mark.parametrize("obj,status,kind,snippet", TEI_CASES)
def test_tei_errors(obj, status, kind, snippet):
    e = _err(protocol.parse_tei, obj, H, 8)
    assert e.status == status, e.message
    assert snippet in e.message
    assert protocol.tei_error(e) == {"error": e.message, "error_type": kind}


def test_requests_parsed():
    r = protocol.parse_openai({"input": "a b", "model": "m", "encoding_format": "base64",
                               "dimensions": H, "user": "u"}, "m", H, 8)
    assert (r["kind"], r["inputs"], r["base64"], r["truncate"], r["normalize"]) == \
        ("text", ["a b"], True, False, None)
    assert protocol.parse_openai({"input": [5, 6]}, "m", H, 8)["inputs"] == [[5, 6]]
    assert protocol.parse_openai({"input": [[5], [6, 7]]}, "m", H, 8)["inputs"] == [[5], [6, 7]]
    # one token sequence is one input, however long
    assert protocol.parse_openai({"input": list(range(20))}, "m", H, 8)["kind"] == "ids"
    r = protocol.parse_tei({"inputs": ["x", "y"], "normalize": False, "truncate": True,
                            "truncation_direction": "Right"}, H, 8)
    assert (r["inputs"], r["normalize"], r["truncate"]) == (["x", "y"], False, True)
    assert protocol.parse_tei({"inputs": "x"}, H, 8)["normalize"] is True  # TEI's default


def test_responses_keep_bits():
    rng = np.random.default_rng(3)
    v = (rng.standard_normal((3, H)) * 10.0 ** rng.integers(-30, 30, (3, H))).astype(np.float32)
    body = json.loads(protocol.dumps(protocol.openai_response(v, "m", 17, False)))
    assert body["object"] == "list" and body["model"] == "m"
    assert body["usage"] == {"prompt_tokens": 17, "total_tokens": 17}
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    got = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
    assert np.array_equal(got.view(np.uint32), v.view(np.uint32))
    body = json.loads(protocol.dumps(protocol.openai_response(v, "m", 17, True)))
    got = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4")
                    for d in body["data"]])
    assert np.array_equal(got.view(np.uint32), v.view(np.uint32))
    got = np.array(json.loads(protocol.dumps(protocol.tei_response(v))), dtype=np.float32)
    assert np.array_equal(got.view(np.uint32), v.view(np.uint32))


# ---- the planner --------------------------------------------------------------------------
def test_plan_respects_budget_and_keys():
    rng = random.Random(5)
    for _ in range(200):
        n = rng.randint(1, 60)
        lengths = [rng.randint(1, 64) for _ in range(n)]
        keys = [rng.random() < 0.3 for _ in range(n)]
        budget = rng.choice([64, 100, 256, 1000])
        batches = plan(lengths, keys, budget)
        assert sorted(i for b in batches for i in b) == list(range(n))
        for b in batches:
            assert len({keys[i] for i in b}) == 1
            assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= budget
            assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)
        assert plan(lengths, keys, budget) == batches  # deterministic


# ---- the engine and the batcher --------------------------------------------------------------
def test_engine_sequences(engine, small_dir):
    enc = engine.encoder
    S = engine.max_seq_length
    long_text = " ".join(["word"] * (S + 10))
    e = _err(engine.sequences, "text", ["short", long_text], False, "input")
    assert (e.status, e.code) == (400, "context_length_exceeded")
    assert "input[1] has %d tokens, over this model's limit of %d" % (S + 12, S) in e.message
    e = _err(engine.sequences, "text", [long_text], False, "inputs", True)
    assert e.status == 413
    cut = engine.sequences("text", [long_text], True, "input")[0]
    ref = enc.tokenize([long_text])
    assert np.array_equal(cut, ref["input_ids"][0, :S]) and len(cut) == S
    ids = [int(x) for x in ref["input_ids"][0]]
    assert np.array_equal(engine.sequences("ids", [ids], False, "input")[0], cut)
    e = _err(engine.sequences, "ids", [ids + [102]], True, "input")
    assert "never cut" in e.message
    e = _err(engine.sequences, "ids", [[101, engine.vocab_size, 102]], False, "inputs", True)
    assert e.status == 422 and "outside this model's vocabulary of 30522" in e.message


def _run_requests(engine, requests, max_batch_tokens, max_wait_s):
    """Submit (seqs, key) requests concurrently, in random order and timing; returns the
    results and the batches' (rows, tokens, padded) seen by on_batch."""
    seen = []
    pool = concurrent.futures.ThreadPoolExecutor(1)

    async def go():
        b = Batcher(engine.run, max_batch_tokens, max_wait_s, pool,
                    on_batch=lambda r, t, p, s: seen.append((r, t, p)))
        rng = random.Random(11)

        async def one(seqs, key):
            await asyncio.sleep(rng.random() * 0.02)
            return await b.submit(seqs, key)
        return await asyncio.gather(*(one(s, k) for s, k in requests))
    try:
        return asyncio.run(go()), seen
    finally:
        pool.shutdown()


def same_row(got, want):
    """The fast CPU backend's rows depend on their batch to float32 rounding (sgemm's result
    for a row depends on its place in the matrix): within kCpuFastAbs, NaN never passes."""
    return got.shape == want.shape and bool(np.all(np.abs(got - want) <= TOL["kCpuFastAbs"]))


def test_batched_equals_encode_alone(engine):
    """Requests of 1-5 texts of mixed lengths, batched together in whatever way the timing
    gives: every vector equals SentenceEncoder.encode of its text alone (within kCpuFastAbs);
    also for normalize=False rows, which the batcher keeps in batches of their own."""
    enc = engine.encoder
    texts = _texts(150, seed=1)
    rng = random.Random(2)
    requests, k = [], 0
    while k < len(texts):
        n = rng.randint(1, 5)
        group = texts[k:k + n]
        k += n
        key = rng.random() < 0.8  # the model normalizes; False: TEI's normalize=false
        requests.append((group, engine.sequences("text", group, True, "input"), key))
    results, seen = _run_requests(engine, [(s, key) for _, s, key in requests], 1024, 0.005)
    assert max(r for r, _, _ in seen) > 1, "no batch held more than one sequence"
    assert all(p <= 1024 for _, _, p in seen)
    assert sum(r for r, _, _ in seen) == len(texts)
    bad = 0
    for (group, _, key), rows in zip(requests, results):
        for text, row in zip(group, rows):
            if key:
                want = enc.encode(text)
            else:
                want = enc.embed_batch(enc.tokenize([text]), normalize=False)[0]
            assert row.dtype == np.float32 and row.shape == (H,)
            bad += not same_row(row, want)
    assert bad == 0, "%d of %d rows differ from encode() of the text alone" % (bad, len(texts))


@pytest.mark.skipif(not os.path.isdir(MINILM), reason="all-MiniLM-L6-v2 not fetched "
                    "(tools/fetch-minilm.sh)")
def test_batched_equals_encode_alone_minilm():
    engine = Engine(MINILM, max_batch_tokens=512)
    texts = ["A man is eating food.", "A man is riding a white horse on an enclosed ground.",
             "Someone in a gorilla costume is playing a set of drums.", "Hi", "The girl is "
             "carrying a baby.", "A monkey is playing drums."]
    seqs = engine.sequences("text", texts, False, "input")
    results, seen = _run_requests(engine, [([s], True) for s in seqs], 512, 0.05)
    assert max(r for r, _, _ in seen) > 1
    for text, rows in zip(texts, results):
        want = engine.encoder.encode(text)
        assert same_row(rows[0], want), text


def test_batcher_failure_and_cancel(engine):
    pool = concurrent.futures.ThreadPoolExecutor(1)
    calls = []

    def run(seqs, key):
        calls.append(len(seqs))
        if any(int(s[1]) == 7 for s in seqs):
            raise RuntimeError("boom")
        return engine.run(seqs, key)

    async def go():
        b = Batcher(run, 256, 0.001, pool)
        with pytest.raises(RuntimeError, match="boom"):
            await b.submit([np.array([101, 7, 102], dtype=np.int32)], True)
        assert b.failures == 1 and b.alive()
        # a cancelled request's rows are dropped before they run
        t = asyncio.ensure_future(b.submit([np.array([101, 8, 102], dtype=np.int32)] * 3, True))
        await asyncio.sleep(0)
        t.cancel()
        ok = await b.submit([np.array([101, 9, 102], dtype=np.int32)], True)
        assert b.failures == 0 and len(ok) == 1
    try:
        asyncio.run(go())
    finally:
        pool.shutdown()
    assert calls == [1, 1]


# ---- options ------------------------------------------------------------------------------
def test_options(small_dir):
    o = normalize({"model": small_dir})
    assert o["served_model_name"] == "small" and o["device"] == "cpu" and o["replicas"] == 1
    assert normalize({"model": small_dir, "autoscale": "0:4"})["autoscale"] == "0:4"
    for bad, what in [({}, "model"), ({"model": small_dir, "dtype": "float16"}, "float32 only"),
                      ({"model": small_dir, "device": "tpu"}, "device"),
                      ({"model": small_dir, "autoscale": "3:1"}, "autoscale"),
                      ({"model": small_dir, "autoscale": "x"}, "MIN:MAX"),
                      ({"model": small_dir, "replicas": 0}, "replicas"),
                      ({"model": small_dir, "max_batch_tokens": "many"}, "max_batch_tokens"),
                      ({"model": small_dir, "replicas": 2, "autoscale": "1:2"}, "exclude"),
                      ({"model": small_dir, "colour": "red"}, "unknown option colour")]:
        with pytest.raises(OptionError, match=what):
            normalize(bad)
    d = deployment_options(o)
    assert (d["num_replicas"], d["ray_actor_options"], d["max_ongoing_requests"]) == \
        (1, {"num_cpus": 1.0}, 256)
    d = deployment_options(normalize({"model": small_dir, "autoscale": "0:4", "device": "cuda",
                                      "dtype": "float16"}))
    assert "num_replicas" not in d and d["ray_actor_options"]["num_gpus"] == 1
    assert (d["autoscaling_config"]["min_replicas"], d["autoscaling_config"]["max_replicas"],
            d["autoscaling_config"]["initial_replicas"]) == (0, 4, 1)
    ns = parser().parse_args(["--model", small_dir, "--autoscale", "1:3", "--port", "9"])
    assert (ns.autoscale, ns.port, ns.replicas) == ("1:3", 9, None)
    with pytest.raises(SystemExit):
        parser().parse_args(["--model", small_dir, "--replicas", "2", "--autoscale", "1:2"])
