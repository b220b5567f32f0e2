#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/ (committed; rerun only to change them).
Standard library only, so that CI needs nothing to regenerate them."""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def st(entries, data, meta=None, pad=True):
    """A safetensors file: entries = [(name, dtype, shape, begin, end)]."""
    h = {}
    if meta is not None:
        h["__metadata__"] = meta
    for name, dtype, shape, b, e in entries:
        h[name] = {"dtype": dtype, "shape": shape, "data_offsets": [b, e]}
    js = json.dumps(h, separators=(",", ":")).encode()
    if pad:
        js += b" " * (-len(js) % 8)
    return struct.pack("<Q", len(js)) + js + data


# ---- safetensors ------------------------------------------------------------------------
put("fuzz_safetensors", "empty_header", st([], b""))
put("fuzz_safetensors", "one_f32", st([("w", "F32", [2], 0, 8)], struct.pack("<2f", 1.5, -2)))
put("fuzz_safetensors", "meta_f16_bf16_i64",
    st([("emb.weight", "F16", [2, 2], 0, 8), ("ln.bias", "BF16", [2], 8, 12),
        ("ids", "I64", [1, 2], 12, 28)],
       struct.pack("<4H", 0x3c00, 0x7c00, 0x0001, 0xfe00) + struct.pack("<2H", 0x3f80, 0xff80) +
       struct.pack("<2q", 7, -(1 << 40)), meta={"format": "pt"}))
put("fuzz_safetensors", "zero_size_any_order",
    st([("b", "F32", [1], 4, 8), ("e1", "I64", [0], 4, 4), ("a", "F32", [1], 0, 4),
        ("e0", "U8", [0, 3], 0, 0)], b"\0" * 8))
put("fuzz_safetensors", "unaligned_small_ints",
    st([("a", "U8", [3], 0, 3), ("b", "I16", [1], 3, 5), ("c", "F64", [1], 5, 13),
        ("d", "BOOL", [2], 13, 15), ("e", "I32", [], 15, 19)],
       b"\x01\x02\xff" + struct.pack("<h", -3) + struct.pack("<d", 0.1) + b"\x00\x05" +
       struct.pack("<i", 2**31 - 1), pad=False))
put("fuzz_safetensors", "bad_gap", st([("a", "F32", [1], 0, 4), ("b", "F32", [1], 8, 12)], b"\0" * 12))
put("fuzz_safetensors", "bad_short", b"\x05\0\0\0\0")
# the reference crate: __metadata__ null is no metadata; -0 is a float, not an offset
def raw_st(header, data):
    js = header.encode()
    js += b" " * (-len(js) % 8)
    return struct.pack("<Q", len(js)) + js + data


put("fuzz_safetensors", "null_metadata",
    raw_st('{"__metadata__":null,"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
           struct.pack("<f", 0.5)))
put("fuzz_safetensors", "bad_negative_zero",
    raw_st('{"w":{"dtype":"F32","shape":[1],"data_offsets":[-0,4]}}', struct.pack("<f", 0.5)))

# ---- config.json --------------------------------------------------------------------------
bert = {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": 99, "hidden_size": 12,
        "num_hidden_layers": 2, "num_attention_heads": 3, "intermediate_size": 20,
        "max_position_embeddings": 16, "type_vocab_size": 2, "pad_token_id": 0,
        "layer_norm_eps": 1e-12, "hidden_act": "gelu", "position_embedding_type": "absolute",
        "is_decoder": False, "add_cross_attention": False}
put("fuzz_config", "bert_full.json", json.dumps(bert, indent=2))
minimal = {k: bert[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers",
                                "num_attention_heads", "intermediate_size",
                                "max_position_embeddings")}
put("fuzz_config", "bert_minimal.json", json.dumps(minimal))
put("fuzz_config", "gelu_new_nulls.json",
    json.dumps(dict(minimal, hidden_act="gelu_new", type_vocab_size=None, layer_norm_eps=None)))
put("fuzz_config", "bad_heads.json", json.dumps(dict(minimal, num_attention_heads=5)))
put("fuzz_config", "bad_types.json", json.dumps(dict(minimal, hidden_size="12", layer_norm_eps=2)))
put("fuzz_config", "bad_big.json", json.dumps(dict(minimal, vocab_size=2**40)))
put("fuzz_config", "bad_model_type.json", json.dumps(dict(minimal, model_type="roberta")))
put("fuzz_config", "bad_json.json", '{"vocab_size": 30522, "hidden_size": }')
# HF's reading: truthy decoder flags, pad_token_id within [-vocab_size, vocab_size), null fields
put("fuzz_config", "bad_truthy_decoder.json", json.dumps(dict(minimal, is_decoder="no")))
put("fuzz_config", "pad_negative_null_model_type.json",
    json.dumps(dict(minimal, pad_token_id=-1, model_type=None, add_cross_attention=0)))
put("fuzz_config", "bad_null_act.json", json.dumps(dict(minimal, hidden_act=None)))

# the other JSON files fuzz_config reads (each input is tried in every role)
put("fuzz_config", "tokenizer_config.json",
    json.dumps({"do_lower_case": True, "strip_accents": None, "tokenize_chinese_chars": True,
                "model_max_length": 512, "unk_token": "[UNK]", "cls_token": "[CLS]",
                "added_tokens_decoder": {"0": {"content": "[PAD]", "special": True}}}))
put("fuzz_config", "special_tokens_map.json",
    json.dumps({"cls_token": "[CLS]", "sep_token": {"content": "[SEP]", "lstrip": False},
                "pad_token": "[PAD]", "mask_token": "[MASK]", "unk_token": "[UNK]"}))
put("fuzz_config", "modules.json", json.dumps([
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize",
     "type": "sentence_transformers.models.Normalize"}]))
put("fuzz_config", "pooling_config.json",
    json.dumps({"word_embedding_dimension": 384, "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False, "include_prompt": True}))
put("fuzz_config", "sentence_bert_config.json",
    json.dumps({"max_seq_length": 256, "do_lower_case": False}))
put("fuzz_config", "modules_transformer_folder.json", json.dumps([
    {"idx": 0, "name": "0", "path": "0_BERT", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": 2, "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
put("fuzz_config", "pooling_mode_upper.json",
    json.dumps({"embedding_dimension": 8, "pooling_mode": "MEAN", "include_prompt": False}))
put("fuzz_config", "pooling_int_flags.json",
    json.dumps({"word_embedding_dimension": 8, "pooling_mode_cls_token": 1,
                "pooling_mode_mean_tokens": 0, "pooling_mode_max_tokens": None}))
put("fuzz_config", "sbert_lower_args.json",
    json.dumps({"max_seq_length": 12, "do_lower_case": 1, "model_args": {}, "tokenizer_args": None}))

# ---- forward (layout in fuzz_forward.c) ---------------------------------------------------
# op, ptrs, opts, batch, seq_len, flags, values...
ids = bytes([1, 7, 49, 3, 0, 1, 9, 9, 2, 48])
put("fuzz_forward", "ids_2x5", bytes([0, 0, 0, 2, 5, 0]) + ids)
put("fuzz_forward", "ids_mask_types_pos_pooler_hs",
    bytes([0, 0x60, 0x07, 2, 5, 0]) + ids + bytes([1, 1, 1, 0, 0, 1, 1, 1, 1, 1]) +
    bytes([0, 1] * 5) + bytes(range(10)))
put("fuzz_forward", "ids_skip_masked", bytes([0, 0, 0x01, 3, 4, 1]) + bytes(range(12)) +
    bytes([1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1]))
put("fuzz_forward", "embeds_1x3", bytes([1, 0, 0, 1, 3, 0]) + bytes(range(24)))
put("fuzz_forward", "embedding_output_2x2", bytes([2, 0x20, 0, 2, 2, 0]) + bytes(range(32)))
put("fuzz_forward", "raw_ids_out_of_range", bytes([0, 0, 0x20, 1, 2, 0]) + struct.pack("<2i", 3, 50))
put("fuzz_forward", "capacity", bytes([0, 0, 0, 0xf4, 0xf6, 0]) + b"\0")
put("fuzz_forward", "unknown_flags", bytes([0, 0, 0, 1, 1, 0x80]) + struct.pack("<I", 4) + b"\0")
put("fuzz_forward", "embed_tokens", bytes([0xf0, 0, 5]) + bytes([0, 1, 2, 3, 49]))

# ---- tokenizer (layout in fuzz_tokenizer.c) -----------------------------------------------
# [flags][max_length] vocab 0xFF text_a 0xFF text_b [0xFF tokenizer_config 0xFF special_map]
vocab = "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "un", "##aff", "##able",
                   "hello", "world", ",", "!", "##s", "cafe", "é", "日", "本", "a", "##b",
                   "token"]) + "\n"


def tok(flags, max_length, texts, config=None, special=None):
    parts = [vocab] + texts
    if config is not None or special is not None:
        parts.append(config or "{}")
    if special is not None:
        parts.append(special)
    return bytes([flags, max_length]) + b"\xff".join(p.encode() for p in parts)


put("fuzz_tokenizer", "plain", tok(0, 0, ["Hello, world!", "unaffable tokens"]))
put("fuzz_tokenizer", "pair_truncated", tok(0x40, 6, ["the unaffable world", "hello hello hello"]))
put("fuzz_tokenizer", "accents_cjk_cased", tok(0x15, 16, ["Café  日本 é\u0301", "\tA\u00a0b\x00!"]))
put("fuzz_tokenizer", "special_in_text", tok(0x80, 0, ["[CLS] hello [MASK] world [SEP]", ""]))
put("fuzz_tokenizer", "with_configs",
    tok(0, 0, ["HELLO world", "x" * 101],
        json.dumps({"do_lower_case": False, "model_max_length": 8, "unk_token": "[UNK]"}),
        json.dumps({"cls_token": {"content": "[CLS]"}, "pad_token": "[PAD]"})))
put("fuzz_tokenizer", "bad_utf8", tok(0, 0, ["ok"]) + b"\xc3\x28 \xed\xa0\x80" + b"\xff" + b"\xf4\x90")
put("fuzz_tokenizer", "lower_sigma_dotted_i",
    tok(0x05, 0, ["\u039f\u0394\u039f\u03a3 \u0130STANBUL \u212a \u0391\u03a3'\u0391", "\u1e9e"]))
put("fuzz_tokenizer", "no_unk", bytes([0, 0]) + b"[CLS]\n[SEP]\nhello\n" + b"\xff" + b"hello")

# ---- whole-model loading (layout in fuzz_load.c) ------------------------------------------
# config.json SEP shard1 [SEP model.safetensors.index.json SEP shard2 ...]
SEP = b"#@PART@#"
load_cfg = {"model_type": "bert", "vocab_size": 20, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 12, "max_position_embeddings": 16,
            "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu"}


def bert_tensors(cfg, pooler=False):
    """[(HF name, shape)] of a BertModel, in HF's order."""
    V, H, I = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"]
    t = [("embeddings.word_embeddings.weight", [V, H]),
         ("embeddings.position_embeddings.weight", [cfg["max_position_embeddings"], H]),
         ("embeddings.token_type_embeddings.weight", [cfg["type_vocab_size"], H]),
         ("embeddings.LayerNorm.weight", [H]), ("embeddings.LayerNorm.bias", [H])]
    for l in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % l
        for q in ("query", "key", "value"):
            t += [(p + "attention.self.%s.weight" % q, [H, H]),
                  (p + "attention.self.%s.bias" % q, [H])]
        t += [(p + "attention.output.dense.weight", [H, H]), (p + "attention.output.dense.bias", [H]),
              (p + "attention.output.LayerNorm.weight", [H]),
              (p + "attention.output.LayerNorm.bias", [H]),
              (p + "intermediate.dense.weight", [I, H]), (p + "intermediate.dense.bias", [I]),
              (p + "output.dense.weight", [H, I]), (p + "output.dense.bias", [H]),
              (p + "output.LayerNorm.weight", [H]), (p + "output.LayerNorm.bias", [H])]
    if pooler:
        t += [("pooler.dense.weight", [H, H]), ("pooler.dense.bias", [H])]
    return t


def values(n, seed, center=0.0):
    """n reproducible values in [center - 0.5, center + 0.5) (a small LCG, no random module)."""
    out, s = [], seed
    for _ in range(n):
        s = (s * 1103515245 + 12345) % 2**31
        out.append(center + (s / 2**31 - 0.5))
    return out


def encode(vals, dtype):
    if dtype == "F32":
        return struct.pack("<%df" % len(vals), *vals)
    if dtype == "F16":
        return struct.pack("<%de" % len(vals), *vals)
    # BF16: the high half of the f32 bits (truncation is fine for seeds)
    return b"".join(struct.pack("<I", x)[2:] for x in struct.unpack("<%dI" % len(vals),
                                                                      struct.pack("<%df" % len(vals), *vals)))


def checkpoint(tensors, dtype, rename=lambda n: n):
    """safetensors bytes of [(name, shape)] with reproducible values (LayerNorm weights near 1)."""
    entries, data = [], b""
    for i, (name, shape) in enumerate(tensors):
        n = 1
        for d in shape:
            n *= d
        blob = encode(values(n, i + 1, 1.0 if name.endswith("LayerNorm.weight") else 0.0), dtype)
        entries.append((rename(name), dtype, shape, len(data), len(data) + len(blob)))
        data += blob
    return st(entries, data, meta={"format": "pt"})


def legacy(name):
    """The old TF-converted spellings: bert. prefix, LayerNorm gamma/beta."""
    name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
    return "bert." + name


cfg_json = json.dumps(load_cfg).encode()
tensors = bert_tensors(load_cfg)
put("fuzz_load", "f32", cfg_json + SEP + checkpoint(tensors, "F32"))
put("fuzz_load", "f16_pooler", cfg_json + SEP + checkpoint(bert_tensors(load_cfg, True), "F16"))
put("fuzz_load", "bf16", cfg_json + SEP + checkpoint(tensors, "BF16"))
put("fuzz_load", "prefix_gamma_beta_f16",
    cfg_json + SEP + checkpoint(bert_tensors(load_cfg, True), "F16", legacy))
# sharded in two: embeddings in shard 1, the encoder layer in shard 2
half = 5
shard_names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
index = {"metadata": {"total_size": 0},
         "weight_map": {n: shard_names[0 if i < half else 1] for i, (n, _) in enumerate(tensors)}}
put("fuzz_load", "sharded_f16",
    cfg_json + SEP + checkpoint(tensors[:half], "F16") + SEP + json.dumps(index).encode() + SEP +
    checkpoint(tensors[half:], "F16"))
# near misses: a config claiming a huge model with the tiny checkpoint, an unexpected layer
big = dict(load_cfg, vocab_size=10000000, hidden_size=65536, num_attention_heads=1,
           num_hidden_layers=512, intermediate_size=262144, max_position_embeddings=1048576)
put("fuzz_load", "bad_huge_config", json.dumps(big).encode() + SEP + checkpoint(tensors, "F16"))
put("fuzz_load", "bad_extra_layer",
    cfg_json + SEP + checkpoint(bert_tensors(dict(load_cfg, num_hidden_layers=2)), "F16"))

# ---- the rest of the family (weights/arch.c): configs and checkpoints with heads ------------
family_cfgs = {
    "roberta_seqcls.json": dict(bert, model_type="roberta", architectures=["RobertaForSequenceClassification"],
                                pad_token_id=1, type_vocab_size=1,
                                id2label={"0": "neg", "1": "pos"}),
    "xlmr_tokcls.json": dict(bert, model_type="xlm-roberta", pad_token_id=1, type_vocab_size=1,
                             architectures=["XLMRobertaForTokenClassification"], num_labels=5),
    "distilbert_sinusoidal.json": {"model_type": "distilbert", "architectures": ["DistilBertModel"],
                                   "vocab_size": 99, "dim": 12, "n_layers": 2, "n_heads": 3,
                                   "hidden_dim": 20, "max_position_embeddings": 16,
                                   "activation": "gelu", "sinusoidal_pos_embds": True},
    "electra_tokcls.json": dict(bert, model_type="electra", embedding_size=8,
                                architectures=["ElectraForTokenClassification"],
                                id2label={"0": "O", "1": "B-PER", "2": "I-PER"}),
    "bad_family_head.json": dict(bert, architectures=["ElectraForSequenceClassification"]),
}
for name, cfg in family_cfgs.items():
    put("fuzz_config", name, json.dumps(cfg, indent=2))


def family_tensors(kind, cfg, head, labels):
    """[(HF name, shape)] of a family checkpoint with its head (names as weights/arch.c)."""
    V, P, I = cfg["vocab_size"], cfg["max_position_embeddings"], cfg.get("intermediate_size")
    if kind == "distilbert":
        H, I = cfg["dim"], cfg["hidden_dim"]
        t = [("distilbert.embeddings.word_embeddings.weight", [V, H]),
             ("distilbert.embeddings.LayerNorm.weight", [H]), ("distilbert.embeddings.LayerNorm.bias", [H])]
        for l in range(cfg["n_layers"]):
            p = "distilbert.transformer.layer.%d." % l
            for q in ("q_lin", "k_lin", "v_lin", "out_lin"):
                t += [(p + "attention.%s.weight" % q, [H, H]), (p + "attention.%s.bias" % q, [H])]
            t += [(p + "sa_layer_norm.weight", [H]), (p + "sa_layer_norm.bias", [H]),
                  (p + "ffn.lin1.weight", [I, H]), (p + "ffn.lin1.bias", [I]),
                  (p + "ffn.lin2.weight", [H, I]), (p + "ffn.lin2.bias", [H]),
                  (p + "output_layer_norm.weight", [H]), (p + "output_layer_norm.bias", [H])]
        dense = "pre_classifier"
    else:
        H, E = cfg["hidden_size"], cfg.get("embedding_size", cfg["hidden_size"])
        base = bert_tensors(dict(cfg, hidden_size=H), pooler=False)
        t = []
        for name, shape in base:
            if name.startswith("embeddings."):
                shape = [shape[0], E] if len(shape) == 2 else [E]
            t.append((kind + "." + name, shape))
        if E != H:
            t += [("electra.embeddings_project.weight", [H, E]), ("electra.embeddings_project.bias", [H])]
        dense = "classifier.dense"
    if head == "seq":
        out = "classifier" if kind == "distilbert" else "classifier.out_proj"
        t += [(dense + ".weight", [H, H]), (dense + ".bias", [H]), (out + ".weight", [labels, H]),
              (out + ".bias", [labels])]
    else:
        t += [("classifier.weight", [labels, H]), ("classifier.bias", [labels])]
    return t


dcfg = {"model_type": "distilbert", "architectures": ["DistilBertForSequenceClassification"],
        "vocab_size": 20, "dim": 8, "n_layers": 1, "n_heads": 2, "hidden_dim": 12,
        "max_position_embeddings": 16, "activation": "relu", "sinusoidal_pos_embds": True}
put("fuzz_load", "distilbert_seq_sinusoidal",
    json.dumps(dcfg).encode() + SEP + checkpoint(family_tensors("distilbert", dcfg, "seq", 2), "F16"))
ecfg = dict(load_cfg, model_type="electra", embedding_size=6,
            architectures=["ElectraForSequenceClassification"], num_labels=1)
put("fuzz_load", "electra_seq_projection",
    json.dumps(ecfg).encode() + SEP + checkpoint(family_tensors("electra", ecfg, "seq", 1), "F32"))
rcfg = dict(load_cfg, model_type="roberta", pad_token_id=1, type_vocab_size=1,
            architectures=["RobertaForTokenClassification"], id2label={"0": "O", "1": "X", "2": "Y"})
put("fuzz_load", "roberta_tok",
    json.dumps(rcfg).encode() + SEP + checkpoint(family_tensors("roberta", rcfg, "tok", 3), "BF16"))
