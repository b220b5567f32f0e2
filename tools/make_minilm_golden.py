"""Golden outputs of a real pretrained checkpoint: all-MiniLM-L6-v2 (tools/fetch-minilm.sh).

Tokenizes a few sentences with HF's BertTokenizer (the checkpoint's vocab.txt), runs HF
BertModel (eager attention, float32, CPU) and writes tests/data/minilm/sentences.safetensors:
input_ids, attention_mask, token_type_ids (I64 [B,S]), expected.last_hidden_state,
expected.pooler_output, and expected.sentence_embedding (masked mean pooling + L2 norm, what
sentence-transformers computes for this model); the sentences are in the metadata.

    bash tools/fetch-minilm.sh
    .venv/bin/python tools/make_minilm_golden.py      # venv from tools/requirements-goldens.txt
"""
import json
import os

import torch
from safetensors.torch import save_file
from transformers import BertModel, BertTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, ".pydeps", "all-MiniLM-L6-v2")
OUT = os.path.join(ROOT, "tests", "data", "minilm", "sentences.safetensors")

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
]


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    tok = BertTokenizer(os.path.join(MODEL, "vocab.txt"), do_lower_case=True)
    enc = tok(SENTENCES, padding=True, return_tensors="pt")
    model = BertModel.from_pretrained(MODEL, attn_implementation="eager").eval()
    with torch.no_grad():
        out = model(**enc, return_dict=True)
        model64 = BertModel.from_pretrained(MODEL, attn_implementation="eager").double().eval()
        out64 = model64(**enc, return_dict=True)
    h = out.last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    emb = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
    emb = torch.nn.functional.normalize(emb, p=2, dim=1)
    print("f32 vs f64 max |diff| last_hidden_state:",
          (h.double() - out64.last_hidden_state).abs().max().item())
    print("cosine similarity of sentence 0 with the others:", (emb @ emb[0]).tolist())
    tensors = {
        "input_ids": enc["input_ids"].to(torch.int64).contiguous(),
        "attention_mask": enc["attention_mask"].to(torch.int64).contiguous(),
        "token_type_ids": enc["token_type_ids"].to(torch.int64).contiguous(),
        "expected.last_hidden_state": h.contiguous(),
        "expected.pooler_output": out.pooler_output.contiguous(),
        "expected.sentence_embedding": emb.contiguous(),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file(tensors, OUT, metadata={"sentences": json.dumps(SENTENCES),
                                      "model": "sentence-transformers/all-MiniLM-L6-v2"})
    print("wrote", OUT, "shape", tuple(enc["input_ids"].shape))


if __name__ == "__main__":
    main()
