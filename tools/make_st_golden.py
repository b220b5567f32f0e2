"""Sentence-transformers goldens for all-MiniLM-L6-v2 (tools/fetch-minilm.sh).

Encodes ~50 varied sentences with sentence-transformers itself (its Transformer, Pooling and
Normalize modules, float32, CPU) and writes tests/data/minilm/st_golden.safetensors:

    input_ids   I32 [N, S]  the model tokenizer's ids, truncated at max_seq_length (256) like
                            encode() does, right-padded with 0
    lengths     I32 [N]     tokens per sentence, [CLS] and [SEP] included
    embedding   F32 [N, H]  SentenceTransformer.encode() (mean pooling + L2 normalisation)

with the sentences (a JSON list) and the versions used in the metadata. tests/test_embed.cc
checks ember's tokenizer against input_ids and ember's tokenizer + forward + ember_pool against
embedding.

    bash tools/fetch-minilm.sh
    python3 -m venv /tmp/st-venv && /tmp/st-venv/bin/pip install -r tools/requirements-st.txt
    HF_HUB_OFFLINE=1 /tmp/st-venv/bin/python tools/make_st_golden.py
"""
import json
import os

import numpy as np
import sentence_transformers
import torch
import transformers
from safetensors.numpy import save_file
from sentence_transformers import SentenceTransformer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, ".pydeps", "all-MiniLM-L6-v2")
OUT = os.path.join(ROOT, "tests", "data", "minilm", "st_golden.safetensors")

LONG = ("The committee reviewed every chapter of the report, line by line, and asked the authors "
        "to explain each table, each figure and each footnote before the vote. ") * 12

SENTENCES = [
    # paraphrases and unrelated pairs
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "The cat sits on the mat.",
    "A cat is sitting on a rug.",
    "The stock market fell sharply on Monday.",
    "Shares dropped steeply at the start of the week.",
    "I love programming in C.",
    "Writing C code is my favourite thing.",
    "The weather is lovely today.",
    "It is sunny and warm outside.",
    "Quantum entanglement links the states of two particles.",
    "My grandmother bakes the best apple pie.",
    "How do I reset my password?",
    "What are the steps to change my login credentials?",
    "Paris is the capital of France.",
    "The Eiffel Tower is in Paris.",
    "Bananas are rich in potassium.",
    # punctuation, case, numbers
    "Hello, world!!! How are you???",
    "WAIT... what?! (No way.) [Really] {yes}",
    "e-mail: someone@example.com; url: https://example.org/a?b=c&d=e",
    "It costs $1,299.99 -- or 1299,99 EUR -- as of 2024-03-15.",
    "Pi is roughly 3.14159, e is about 2.71828, and 10^6 = 1000000.",
    "Call 555-0123 before 9:30 p.m. on 12/31.",
    "don't won't can't shouldn't y'all",
    "UPPER CASE and lower case and MiXeD CaSe",
    "#hashtag @mention & ampersand * star ~ tilde | pipe",
    # accents and other scripts
    "Café, naïve, résumé, jalapeño, façade, coöperate.",
    "Ångström and Øresund and Straße and Ærø.",
    "El niño comió una manzana en la mañana.",
    "Zürich liegt in der Schweiz, München in Deutschland.",
    "Привет, как дела?",
    "Γειά σου Κόσμε",
    "我喜欢在周末读书和喝茶。",
    "東京は日本の首都です。",
    "한국어 문장도 하나 있습니다.",
    "مرحبا بالعالم",
    "Mixed: English 中文 Русский Ελληνικά.",
    "Emoji 😀 and symbols ♥ ★ ✓ are rare in the vocabulary.",
    # whitespace, control characters, empties
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\r\ninside",
    "a",
    "",
    # truncated at max_seq_length = 256 tokens
    LONG,
]


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = SentenceTransformer(MODEL, device="cpu")
    model.eval()
    assert model.max_seq_length == 256, model.max_seq_length
    print(model)
    emb = model.encode(SENTENCES, batch_size=16, convert_to_numpy=True).astype(np.float32)
    # ids exactly as encode() tokenizes (truncation at max_seq_length)
    feats = model.preprocess(SENTENCES) if hasattr(model, "preprocess") else model.tokenize(SENTENCES)
    ids = feats["input_ids"].numpy().astype(np.int32)
    lengths = feats["attention_mask"].sum(1).numpy().astype(np.int32)
    print("N", len(SENTENCES), "padded length", ids.shape[1], "longest", lengths.max())
    assert lengths[-1] == 256, "the long sentence must be truncated"
    # float64 run of the same modules: how far float32 itself is from exact
    model64 = SentenceTransformer(MODEL, device="cpu").double()
    emb64 = model64.encode(SENTENCES, batch_size=16, convert_to_numpy=True)
    print("float32 vs float64 max |diff|:", float(np.abs(emb - emb64).max()))
    cos = emb @ emb.T
    print("cos(0,1) %.4f cos(0,2) %.4f cos(9,10) %.4f cos(11,12) %.4f" %
          (cos[0, 1], cos[0, 2], cos[9, 10], cos[11, 12]))
    meta = {
        "sentences": json.dumps(SENTENCES, ensure_ascii=False),
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "versions": "sentence-transformers %s, transformers %s, torch %s" % (
            sentence_transformers.__version__, transformers.__version__, torch.__version__),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file({"input_ids": np.ascontiguousarray(ids), "lengths": lengths,
               "embedding": np.ascontiguousarray(emb)}, OUT, metadata=meta)
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
