"""A small sentence-transformers model directory for the serving tests: random BERT weights
(hidden 32, 2 layers, max 128 positions) over the real uncased WordPiece vocabulary in
tests/data/tokenizer/vocab.txt, mean pooling + Normalize, max_seq_length 96. It runs a few
hundred times faster than all-MiniLM-L6-v2 on the CPU backend, so the load tests measure the
serving path rather than the model; the vocabulary makes any text tokenize as it would for a
real uncased BERT. Written with NumPy in a few milliseconds (fixed seed, same bytes every run)."""
import json
import os
import struct

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOCAB = os.path.join(ROOT, "tests", "data", "tokenizer", "vocab.txt")


def _safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def write_small_model(dest, hidden=32, layers=2, heads=4, intermediate=64, max_pos=128,
                      max_seq_length=96, seed=0):
    """Write the model directory `dest` (created); returns dest."""
    with open(VOCAB, encoding="utf-8") as f:
        vocab = f.read()
    V = vocab.count("\n")
    rng = np.random.default_rng(seed)

    def n(*shape, s=0.2):
        return rng.normal(0.0, s, shape).astype(np.float32)
    t = {
        "embeddings.word_embeddings.weight": n(V, hidden),
        "embeddings.position_embeddings.weight": n(max_pos, hidden),
        "embeddings.token_type_embeddings.weight": n(2, hidden),
        "embeddings.LayerNorm.weight": 1 + n(hidden),
        "embeddings.LayerNorm.bias": n(hidden, s=0.1),
    }
    for i in range(layers):
        p = "encoder.layer.%d." % i
        for k in ("query", "key", "value"):
            t[p + "attention.self.%s.weight" % k] = n(hidden, hidden)
            t[p + "attention.self.%s.bias" % k] = n(hidden, s=0.1)
        t[p + "attention.output.dense.weight"] = n(hidden, hidden)
        t[p + "attention.output.dense.bias"] = n(hidden, s=0.1)
        t[p + "intermediate.dense.weight"] = n(intermediate, hidden)
        t[p + "intermediate.dense.bias"] = n(intermediate, s=0.1)
        t[p + "output.dense.weight"] = n(hidden, intermediate)
        t[p + "output.dense.bias"] = n(hidden, s=0.1)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[p + ln + ".weight"] = 1 + n(hidden)
            t[p + ln + ".bias"] = n(hidden, s=0.1)
    os.makedirs(os.path.join(dest, "1_Pooling"), exist_ok=True)
    _safetensors(os.path.join(dest, "model.safetensors"), t)
    files = {
        "config.json": {"architectures": ["BertModel"], "model_type": "bert",
                        "hidden_size": hidden, "num_hidden_layers": layers,
                        "num_attention_heads": heads, "intermediate_size": intermediate,
                        "hidden_act": "gelu", "max_position_embeddings": max_pos,
                        "type_vocab_size": 2, "vocab_size": V, "layer_norm_eps": 1e-12,
                        "pad_token_id": 0},
        "tokenizer_config.json": {"do_lower_case": True, "tokenizer_class": "BertTokenizer",
                                  "model_max_length": max_pos},
        "sentence_bert_config.json": {"max_seq_length": max_seq_length, "do_lower_case": False},
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling",
             "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize",
             "type": "sentence_transformers.models.Normalize"}],
        "1_Pooling/config.json": {"word_embedding_dimension": hidden,
                                  "pooling_mode_mean_tokens": True},
    }
    for name, obj in files.items():
        with open(os.path.join(dest, name), "w") as f:
            json.dump(obj, f, indent=1)
    with open(os.path.join(dest, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write(vocab)
    return dest
