"""Text in: ember.Tokenizer and ember.SentenceEncoder against sentence-transformers' own ids and
encode() embeddings of all-MiniLM-L6-v2 (tests/data/minilm/st_golden.safetensors,
tools/make_st_golden.py), with the C tests' bounds (kStMinCosine, kStMaxAbs). Skipped without
the checkpoint (tools/fetch-minilm.sh)."""
import functools
import json
import os

import numpy as np
import pytest
from conftest import DATA, MINILM, TOL, read_safetensors, requires_minilm

import ember

pytestmark = requires_minilm


@functools.lru_cache(maxsize=None)
def golden():
    t, meta = read_safetensors(os.path.join(DATA, "minilm", "st_golden.safetensors"))
    return json.loads(meta["sentences"]), t


@functools.lru_cache(maxsize=None)
def encoder():
    return ember.SentenceEncoder(MINILM)


def test_tokenizer_matches_sentence_transformers():
    sentences, t = golden()
    tok = ember.Tokenizer(MINILM)
    enc = tok.encode(sentences, max_length=256)
    S = enc.input_ids.shape[1]
    assert S == t["input_ids"].shape[1]
    assert np.array_equal(enc.input_ids, t["input_ids"])
    assert np.array_equal(enc.lengths, t["lengths"])
    assert np.array_equal(enc.attention_mask, (np.arange(S) < t["lengths"][:, None]))
    assert [bool(x) for x in enc.truncated] == [i == len(sentences) - 1
                                                for i in range(len(sentences))]
    # one text at a time gives the same ids, unpadded
    for i in (0, 39, 48):
        one = tok.encode(sentences[i], max_length=256)
        assert list(one.input_ids[0]) == list(t["input_ids"][i, :t["lengths"][i]])


def test_tokenizer_pairs_and_pieces():
    tok = ember.Tokenizer(MINILM)
    enc = tok.encode(["How old are you?"], pairs=["I am fine."], max_length=8)
    sp = tok.special_ids
    ids = list(enc.input_ids[0])
    assert len(ids) == 8 and ids[0] == sp["cls"] and ids[-1] == sp["sep"]
    assert ids.count(sp["sep"]) == 2 and enc.truncated[0] > 0
    types = list(enc.token_type_ids[0])
    assert types == sorted(types) and types[0] == 0 and types[-1] == 1
    assert tok.convert_ids_to_tokens(tok.tokenize("unaffable")) == ["una", "##ffa", "##ble"]
    with pytest.raises(ValueError, match="pairs: expected 2 texts"):
        tok.encode(["a", "b"], pairs=["c"])
    with pytest.raises(TypeError, match=r"texts\[1\]: expected str"):
        tok.encode(["a", 3])
    with pytest.raises(ember.EmberError) as e:
        tok.encode(["ok", "bad \udcff byte"])
    assert e.value.status_name == "EMBER_ERR_INVALID_ARGUMENT" and "texts[1]" in e.value.detail


def test_encode_matches_sentence_transformers():
    sentences, t = golden()
    want = t["embedding"]
    enc = encoder()
    got = enc.encode(sentences, batch_size=16)
    assert isinstance(got, np.ndarray) and got.shape == want.shape and got.dtype == np.float32
    g, w = got.astype(np.float64), want.astype(np.float64)
    cos = np.sum(g * w, axis=1) / (np.linalg.norm(g, axis=1) * np.linalg.norm(w, axis=1))
    assert cos.min() >= TOL["kStMinCosine"], (cos.argmin(), cos.min())
    assert np.abs(got - want).max() <= TOL["kStMaxAbs"]
    print("vs sentence-transformers: worst 1 - cosine %.3g, max |diff| %.3g"
          % (1 - cos.min(), np.abs(got - want).max()))


def test_encode_conventions():
    """sentence-transformers' return conventions: str -> 1-D, list -> 2-D, empty list -> an
    empty array; normalize_embeddings=True on an already normalised model changes nothing
    beyond rounding; batch size and order do not change the rows beyond rounding."""
    sentences, t = golden()
    enc = encoder()
    H = enc.get_sentence_embedding_dimension()
    one = enc.encode(sentences[0])
    assert one.shape == (H,)
    few = enc.encode(sentences[:5], batch_size=2)
    assert few.shape == (5, H)
    assert np.abs(few[0] - one).max() <= TOL["kStMaxAbs"]
    rev = enc.encode(sentences[:5][::-1], batch_size=5)
    assert np.abs(rev[::-1] - few).max() <= TOL["kStMaxAbs"]
    assert enc.encode([]).shape == (0,)
    n = enc.encode(sentences[:3], normalize_embeddings=True)
    assert np.abs(np.linalg.norm(n, axis=1) - 1).max() < 1e-6
    tok = enc.encode(sentences[:2], output_value="token_embeddings")
    assert [x.shape[0] for x in tok] == list(t["lengths"][:2])
    with pytest.raises(ValueError, match="precision"):
        enc.encode("x", precision="int8")
    with pytest.raises(TypeError, match=r"sentences\[1\]: expected str"):
        enc.encode(["x", None])


def test_pooling_config_and_pool():
    assert ember.pooling_config(MINILM) == {"pooling": "mean", "normalize": True,
                                            "max_seq_length": 256, "do_lower_case": False,
                                            "transformer_path": ""}
    enc = encoder()
    b = enc.tokenize(["A man is eating food.", "a"])
    h = enc.model(input_ids=b.input_ids, attention_mask=b.attention_mask).last_hidden_state
    mean = enc.model.pool(h, b.attention_mask, "mean")
    m = b.attention_mask[:, :, None].astype(np.float64)
    ref = (h * m).sum(1) / m.sum(1)
    assert np.abs(mean - ref).max() <= TOL["kPoolAbs"] + TOL["kPoolRel"] * np.abs(ref).max()
    cls = enc.model.pool(h, b.attention_mask, "cls")
    assert np.array_equal(cls, h[:, 0])


def test_transformer_folder_and_do_lower_case(tmp_path):
    # a sentence-transformers layout with the BERT model in 0_BERT, a cased tokenizer and
    # do_lower_case: the encoder loads from the folder and lower-cases as sentence-transformers
    bert = tmp_path / "0_BERT"
    bert.mkdir()
    for f in ("config.json", "model.safetensors", "vocab.txt", "special_tokens_map.json"):
        (bert / f).symlink_to(os.path.join(MINILM, f))
    (bert / "tokenizer_config.json").write_text('{"do_lower_case": false}')
    (bert / "sentence_bert_config.json").write_text('{"max_seq_length": 256, "do_lower_case": true}')
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").symlink_to(os.path.join(MINILM, "1_Pooling", "config.json"))
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "0_BERT", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    cfg = ember.pooling_config(tmp_path)
    assert cfg["transformer_path"] == "0_BERT" and cfg["do_lower_case"] is True
    enc = ember.SentenceEncoder(tmp_path)
    upper, lower = enc.encode(["HELLO World", "hello world"])
    assert np.array_equal(upper, lower)
    assert np.abs(lower - encoder().encode("hello world")).max() <= TOL["kPoolAbs"]
