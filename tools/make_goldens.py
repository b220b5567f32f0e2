#!/usr/bin/env python3
"""Generate ember's golden test data: small random BERT checkpoints and the
outputs HuggingFace `BertModel` gives for them; then small random checkpoints of
the rest of the family (RoBERTa, XLM-RoBERTa, DistilBERT, ELECTRA) with sequence-
and token-classification heads, their outputs and logits, and what the CLI's
`classify` / `rerank` must print for a few texts (HF tokenizer + model, and
sentence-transformers' CrossEncoder).

How to run (from the repository root):

    python3 -m venv .venv && .venv/bin/pip install -r tools/requirements-goldens.txt && .venv/bin/python tools/make_goldens.py

Everything runs on the CPU (CUDA is hidden), in float32, with fixed seeds,
deterministic algorithms, one intra-op thread, `model.eval()` and
`attn_implementation="eager"`. The script deletes and recreates
`tests/data/models/` and `tests/data/goldens/` (tests/data/README.md is kept),
so running it twice yields byte-identical files with the same pinned versions.
See tests/data/README.md for the format of what it writes.

Outputs:
  tests/data/models/<model>/        config.json + safetensors checkpoint(s)
  tests/data/goldens/<model>/<case>.safetensors
  tests/data/goldens/manifest.json
"""

import os

os.environ["CUDA_VISIBLE_DEVICES"] = ""  # must precede the torch import

import copy
import json
import shutil
import sys

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
import transformers
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertModel
from transformers.utils import logging as hf_logging

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
MODELS = os.path.join(DATA, "models")
GOLDENS = os.path.join(DATA, "goldens")

# ember's comparison tolerance: |ember - HF| <= ATOL + RTOL * |HF|
ATOL, RTOL = 2e-5, 1e-5

MODEL_SPECS = [
    dict(
        name="tiny-odd",
        seed=1001,
        config=dict(hidden_size=72, num_attention_heads=6, num_hidden_layers=3,
                    intermediate_size=148, vocab_size=211, max_position_embeddings=40,
                    type_vocab_size=3, hidden_act="gelu"),
        pooler=True, layout="plain", dtype=torch.float32,
        description="plain BertModel names, F32, hidden 72 (not a power of two), "
                    "6 heads of 12, 3 layers, 3 token types, gelu (erf), pooler",
    ),
    dict(
        name="prefixed-gamma",
        seed=1002,
        config=dict(hidden_size=64, num_attention_heads=4, num_hidden_layers=2,
                    intermediate_size=96, vocab_size=150, max_position_embeddings=32,
                    type_vocab_size=2, hidden_act="gelu"),
        pooler=True, layout="mlm-gamma", dtype=torch.float32,
        description="BertForMaskedLM checkpoint: 'bert.' prefix, cls.* heads, LayerNorm "
                    "gamma/beta names, extra I64 bert.embeddings.position_ids buffer, F32, pooler",
    ),
    dict(
        name="gelu-new-sharded",
        seed=1003,
        config=dict(hidden_size=48, num_attention_heads=3, num_hidden_layers=2,
                    intermediate_size=80, vocab_size=120, max_position_embeddings=24,
                    type_vocab_size=2, hidden_act="gelu_new"),
        pooler=False, layout="sharded", dtype=torch.bfloat16,
        description="plain names, BF16 on disk, sharded (model.safetensors.index.json), "
                    "3 heads of 16, gelu_new (tanh), no pooler",
    ),
    dict(
        name="relu-f16",
        seed=1004,
        config=dict(hidden_size=40, num_attention_heads=5, num_hidden_layers=1,
                    intermediate_size=64, vocab_size=90, max_position_embeddings=16,
                    type_vocab_size=2, hidden_act="relu", layer_norm_eps=1e-3),
        pooler=True, layout="plain", dtype=torch.float16,
        description="plain names, F16 on disk, 5 heads of 8, 1 layer, relu, "
                    "layer_norm_eps 1e-3 (so a hard-coded 1e-12 shows), pooler",
    ),
]

SHARD_SIZE = 40_000  # bytes; gelu-new-sharded is ~90 kB in bf16 -> 3 shards


def log(*a):
    print(*a, flush=True)


def setup_determinism():
    torch.manual_seed(0)
    np.random.seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)


# --------------------------------------------------------------------------- models

def reinit_(module, seed):
    """Re-initialise every parameter with O(1)-ish values (larger than HF's 0.02) so
    that every term of the forward pass visibly affects the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if ("LayerNorm" in name or "layer_norm" in name) and name.endswith(".weight"):
                p.copy_(1.0 + 0.2 * noise)
            elif p.dim() >= 2:
                p.copy_(0.2 * noise)
            else:
                p.copy_(0.1 * noise)


def make_config(spec):
    return BertConfig(**spec["config"], attn_implementation="eager")


def build_model(spec):
    """Create, initialise and save the model; return the float32 BertModel whose weights
    are exactly the values stored on disk (rounded to bf16/f16 where applicable)."""
    cfg = make_config(spec)
    out_dir = os.path.join(MODELS, spec["name"])
    os.makedirs(out_dir)
    torch.manual_seed(spec["seed"])

    if spec["layout"] == "mlm-gamma":
        mlm = BertForMaskedLM(cfg)
        # BertForMaskedLM builds its BertModel without a pooler; put one in.
        mlm.bert = BertModel(cfg, add_pooling_layer=True)
        mlm.tie_weights()
        reinit_(mlm, spec["seed"])
        mlm.eval()
        mlm.save_pretrained(out_dir, safe_serialization=True)
        rewrite_gamma_beta(os.path.join(out_dir, "model.safetensors"), cfg)
        model = mlm.bert
    else:
        model = BertModel(cfg, add_pooling_layer=spec["pooler"])
        reinit_(model, spec["seed"])
        model.eval()
        if spec["dtype"] != torch.float32:
            model.to(spec["dtype"])
        kw = {}
        if spec["layout"] == "sharded":
            kw["max_shard_size"] = SHARD_SIZE
        model.save_pretrained(out_dir, safe_serialization=True, **kw)
        model.to(torch.float32)  # exact: values are the bf16/f16-rounded ones

    model.eval()
    assert model.config._attn_implementation == "eager", model.config._attn_implementation
    assert (model.pooler is not None) == spec["pooler"]
    check_saved(spec, out_dir, model)
    return model


def rewrite_gamma_beta(path, cfg):
    """LayerNorm .weight/.bias -> .gamma/.beta; add the position_ids buffer if absent."""
    with safe_open(path, "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    out = {}
    for k, v in tensors.items():
        if "LayerNorm." in k and k.endswith(".weight"):
            k = k[: -len(".weight")] + ".gamma"
        elif "LayerNorm." in k and k.endswith(".bias"):
            k = k[: -len(".bias")] + ".beta"
        out[k] = v.contiguous()
    if "bert.embeddings.position_ids" not in out:
        log("  [prefixed-gamma] save_pretrained dropped bert.embeddings.position_ids; adding it")
        out["bert.embeddings.position_ids"] = torch.arange(
            cfg.max_position_embeddings, dtype=torch.int64).unsqueeze(0).contiguous()
    else:
        log("  [prefixed-gamma] save_pretrained kept bert.embeddings.position_ids")
    save_file(out, path, metadata=meta)


def checkpoint_files(out_dir):
    idx = os.path.join(out_dir, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as fh:
            wm = json.load(fh)["weight_map"]
        return sorted(set(wm.values())), wm
    return ["model.safetensors"], None


def check_saved(spec, out_dir, model):
    """Print the layout of what was saved and check it against the spec and the model."""
    files, weight_map = checkpoint_files(out_dir)
    log(f"  files in {os.path.relpath(out_dir, ROOT)}: {sorted(os.listdir(out_dir))}")
    sd = {k: v for k, v in model.state_dict().items()
          if not k.endswith("position_ids") and not k.endswith("token_type_ids")}
    seen = {}
    for fn in files:
        with safe_open(os.path.join(out_dir, fn), "pt") as f:
            log(f"  {fn}: metadata={f.metadata()}")
            for k in f.keys():
                sl = f.get_slice(k)
                log(f"    {k:60s} {sl.get_dtype():5s} {list(sl.get_shape())}")
                if weight_map is not None:
                    assert weight_map[k] == fn, k
                seen[k] = f.get_tensor(k)
    if spec["layout"] == "sharded":
        assert len(files) >= 2, files
    # name mapping checkpoint -> BertModel state dict
    mapped = {}
    for k, v in seen.items():
        if spec["layout"] == "mlm-gamma":
            if k.startswith("cls."):
                continue
            assert k.startswith("bert."), k
            k = k[len("bert."):]
            if k == "embeddings.position_ids":
                assert v.dtype == torch.int64
                assert list(v.shape) == [1, model.config.max_position_embeddings]
                continue
            k = k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        else:
            assert not k.startswith("bert.") and not k.startswith("cls."), k
        mapped[k] = v
    assert set(mapped) == set(sd), (set(mapped) ^ set(sd))
    for k, v in mapped.items():
        assert v.dtype == spec["dtype"], (k, v.dtype)
        assert torch.equal(v.to(torch.float32), sd[k]), k
    if spec["layout"] == "mlm-gamma":
        assert any(k.startswith("cls.") for k in seen)
        assert not any(k.endswith("LayerNorm.weight") or k.endswith("LayerNorm.bias") for k in seen)
    # Cross-check: HF's own loader reads the checkpoint back to the same weights.
    reloaded, info = BertModel.from_pretrained(
        out_dir, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    rsd = reloaded.state_dict()
    bad = [k for k in sd if k not in rsd or not torch.equal(rsd[k], sd[k])]
    log(f"  HF from_pretrained(BertModel) check: missing={sorted(info['missing_keys'])} "
        f"mismatched_values={bad} unexpected={len(info['unexpected_keys'])} keys")


# --------------------------------------------------------------------------- inputs

def gen(model_name, case):
    seed = 0
    for ch in f"{model_name}/{case}":  # stable across runs (unlike hash())
        seed = (seed * 131 + ord(ch)) % (2**61 - 1)
    return torch.Generator().manual_seed(seed)


def rand_ids(g, cfg, b, s):
    ids = torch.randint(0, cfg.vocab_size, (b, s), generator=g, dtype=torch.int64)
    ids[ids == 0] = 1 + (torch.arange(ids.numel()).view(b, s)[ids == 0] % (cfg.vocab_size - 1))
    ids[0, 0] = 0  # one pad-token id (row 0 of the table is an ordinary row here)
    return ids


def rand_types(g, cfg, b, s):
    t = torch.randint(0, cfg.type_vocab_size, (b, s), generator=g, dtype=torch.int64)
    t.view(-1)[: cfg.type_vocab_size] = torch.arange(cfg.type_vocab_size)  # every type occurs
    return t


def right_pad_mask(lengths, s):
    return (torch.arange(s).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)).to(torch.int64)


def make_cases(name, model):
    """Each case: dict(case, entry, stored inputs, HF kwargs, flags, description)."""
    cfg = model.config
    H, P = cfg.hidden_size, cfg.max_position_embeddings
    cases = []

    def add(case, entry, stored, hf, hidden, description, extra=None):
        cases.append(dict(case=case, entry=entry, stored=stored, hf=hf, hidden=hidden,
                          description=description, extra=extra))

    # basic_ids
    g = gen(name, "basic_ids")
    ids = rand_ids(g, cfg, 3, 11)
    add("basic_ids", "input_ids", dict(input_ids=ids), dict(input_ids=ids), True,
        "B=3 S=11 input_ids only (no mask = all ones, no token types = zeros), with hidden states")

    # batch1_seq1
    g = gen(name, "batch1_seq1")
    ids = torch.randint(1, cfg.vocab_size, (1, 1), generator=g, dtype=torch.int64)
    add("batch1_seq1", "input_ids", dict(input_ids=ids), dict(input_ids=ids), False,
        "B=1 S=1 single token, input_ids only")

    # batch1_maxpos
    g = gen(name, "batch1_maxpos")
    ids = rand_ids(g, cfg, 1, P)
    types = rand_types(g, cfg, 1, P)
    add("batch1_maxpos", "input_ids", dict(input_ids=ids, token_type_ids=types),
        dict(input_ids=ids, token_type_ids=types), False,
        f"B=1 S=max_position_embeddings={P}, input_ids + token types, no mask")

    # right_padding
    g = gen(name, "right_padding")
    ids = rand_ids(g, cfg, 4, 13)
    mask = right_pad_mask([13, 9, 1, 6], 13)
    add("right_padding", "input_ids", dict(input_ids=ids, attention_mask=mask),
        dict(input_ids=ids, attention_mask=mask), False,
        "B=4 S=13 right padding, lengths [13, 9, 1, 6] (padded positions keep random ids)")

    # holes_mask
    g = gen(name, "holes_mask")
    ids = rand_ids(g, cfg, 3, 10)
    mask = torch.tensor([[0, 1, 1, 0, 1, 1, 1, 0, 0, 1],
                         [1, 0, 0, 1, 1, 0, 1, 1, 1, 1],
                         [0, 0, 1, 1, 1, 1, 0, 1, 0, 0]], dtype=torch.int64)
    types = rand_types(g, cfg, 3, 10)
    add("holes_mask", "input_ids", dict(input_ids=ids, attention_mask=mask, token_type_ids=types),
        dict(input_ids=ids, attention_mask=mask, token_type_ids=types), False,
        "B=3 S=10 arbitrary 0/1 masks with holes, rows 0 and 2 start with 0; token types")

    # fully_masked_row
    g = gen(name, "fully_masked_row")
    ids = rand_ids(g, cfg, 3, 7)
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0],
                         [0, 0, 0, 0, 0, 0, 0],
                         [1, 0, 1, 1, 0, 1, 1]], dtype=torch.int64)
    add("fully_masked_row", "input_ids", dict(input_ids=ids, attention_mask=mask),
        dict(input_ids=ids, attention_mask=mask), False,
        "B=3 S=7, row 1 fully masked (HF eager: uniform attention over all 7 keys), "
        "rows 0/2 padded with holes", extra=dict(fully_masked_rows=[1]))

    # token_types
    g = gen(name, "token_types")
    ids = rand_ids(g, cfg, 2, 12)
    types = rand_types(g, cfg, 2, 12)
    add("token_types", "input_ids", dict(input_ids=ids, token_type_ids=types),
        dict(input_ids=ids, token_type_ids=types), False,
        f"B=2 S=12 random token_type_ids over all {cfg.type_vocab_size} types, no mask")

    # position_ids
    g = gen(name, "position_ids")
    S = 9
    ids = rand_ids(g, cfg, 2, S)
    row0 = torch.arange(P - S, P, dtype=torch.int64)                      # offset to the table end
    row1 = torch.randperm(P, generator=g)[:S].to(torch.int64)             # shuffled subset
    pos = torch.stack([row0, row1])
    mask = right_pad_mask([S, S - 2], S)
    add("position_ids", "input_ids", dict(input_ids=ids, attention_mask=mask, position_ids=pos),
        dict(input_ids=ids, attention_mask=mask, position_ids=pos), False,
        f"B=2 S=9 custom position_ids: row 0 = {P - S}..{P - 1} (ends at the last table row), "
        "row 1 = random distinct positions; row 1 right-padded by 2")

    # inputs_embeds
    g = gen(name, "inputs_embeds")
    ids = rand_ids(g, cfg, 2, 8)
    with torch.no_grad():
        emb = model.embeddings.word_embeddings(ids)
    emb = (emb + 0.02 * torch.randn(emb.shape, generator=g)).contiguous()
    mask = right_pad_mask([8, 5], 8)
    types = rand_types(g, cfg, 2, 8)
    add("inputs_embeds", "inputs_embeds",
        dict(inputs_embeds=emb, attention_mask=mask, token_type_ids=types),
        dict(inputs_embeds=emb, attention_mask=mask, token_type_ids=types), False,
        "B=2 S=8 inputs_embeds = word_embeddings(ids) + N(0, 0.02) noise (not a pure gather), "
        "with mask and token types")

    # embedding_output
    g = gen(name, "embedding_output")
    ids = rand_ids(g, cfg, 2, 8)
    mask = right_pad_mask([8, 6], 8)
    types = rand_types(g, cfg, 2, 8)
    add("embedding_output", "embedding_output", dict(attention_mask=mask),  # + embedding_output
        dict(input_ids=ids, attention_mask=mask, token_type_ids=types), False,
        "B=2 S=8 embedding_output = HF hidden_states[0] of an input_ids+mask+token-types run; "
        "expected = that run's outputs (token types are baked into embedding_output, not stored)",
        extra=dict(store_embedding_output=True))

    # pitfall
    g = gen(name, "pitfall")
    ids = rand_ids(g, cfg, 2, 8)
    add("pitfall", "input_ids", dict(input_ids=ids), dict(input_ids=ids), False,
        "B=2 S=8 input_ids; also wrong_inputs_embeds = hidden_states[0] and "
        "expected.wrong_last_hidden_state = HF output when hidden_states[0] is (wrongly) fed "
        "as inputs_embeds", extra=dict(pitfall=True))

    # hidden_states (all outputs)
    g = gen(name, "hidden_states")
    ids = rand_ids(g, cfg, 2, 10)
    mask = right_pad_mask([10, 7], 10)
    mask[0, 4] = 0
    types = rand_types(g, cfg, 2, 10)
    add("hidden_states", "input_ids", dict(input_ids=ids, attention_mask=mask, token_type_ids=types),
        dict(input_ids=ids, attention_mask=mask, token_type_ids=types), True,
        "B=2 S=10 all outputs: mask (row 0 has a hole, row 1 right-padded), token types, "
        "all hidden states, pooler")
    return cases


# --------------------------------------------------------------------------- running

def hf_run(model, kw, dtype=torch.float32, **extra):
    kw = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in kw.items()}
    with torch.no_grad():
        return model(**kw, output_hidden_states=True, return_dict=True, **extra)


def eager_extended_mask(mask, dtype):
    """HF eager semantics: 0 where attended, finfo(dtype).min where masked, [B,1,1,S]."""
    m = mask.to(torch.bool)[:, None, None, :]
    return torch.where(m, torch.zeros((), dtype=dtype), torch.finfo(dtype).min)


def maxabs(a, b):
    return (a.double() - b.double()).abs().max().item()


def tol_ratio(x32, x64):
    """max over elements of |x32 - x64| / (ATOL + RTOL*|x64|)."""
    d = (x32.double() - x64).abs()
    return (d / (ATOL + RTOL * x64.abs())).max().item()


def finite(name, t):
    assert torch.isfinite(t).all(), f"non-finite values in {name}"


def generate(spec, model, stats, manifest):
    name = spec["name"]
    cfg = model.config
    model64 = copy.deepcopy(model).double().eval()
    out_dir = os.path.join(GOLDENS, name)
    os.makedirs(out_dir)
    has_pooler = model.pooler is not None

    for c in make_cases(name, model):
        extra = c["extra"] or {}
        out = hf_run(model, c["hf"])
        out64 = hf_run(model64, c["hf"], torch.float64)
        tensors = {}
        for k, v in c["stored"].items():
            tensors[k] = v.contiguous()
        if extra.get("store_embedding_output"):
            emb = out.hidden_states[0].contiguous()
            tensors["embedding_output"] = emb
            # verify: the encoder on hidden_states[0] with the eager extended mask gives the outputs
            with torch.no_grad():
                enc = model.encoder(emb, attention_mask=eager_extended_mask(c["hf"]["attention_mask"], torch.float32))
                last = enc.last_hidden_state
                pooled = model.pooler(last) if has_pooler else None
            d = maxabs(last, out.last_hidden_state)
            dp = maxabs(pooled, out.pooler_output) if has_pooler else 0.0
            log(f"    embedding_output check: encoder(hidden_states[0]) vs full run: "
                f"max|d| last={d:.3g} pooler={dp:.3g}")
            assert d <= 1e-6 and dp <= 1e-6
            # and the embeddings module alone reproduces hidden_states[0]
            with torch.no_grad():
                e2 = model.embeddings(input_ids=c["hf"]["input_ids"], token_type_ids=c["hf"]["token_type_ids"])
            assert maxabs(e2, emb) == 0.0
        tensors["expected.last_hidden_state"] = out.last_hidden_state.contiguous()
        if has_pooler:
            tensors["expected.pooler_output"] = out.pooler_output.contiguous()
        if c["hidden"]:
            hs = torch.stack(out.hidden_states).contiguous()
            assert hs.shape[0] == cfg.num_hidden_layers + 1
            assert torch.equal(hs[-1], out.last_hidden_state)
            tensors["expected.hidden_states"] = hs
        if extra.get("pitfall"):
            wrong_in = out.hidden_states[0].contiguous()
            wrong = hf_run(model, dict(inputs_embeds=wrong_in))
            tensors["wrong_inputs_embeds"] = wrong_in
            tensors["expected.wrong_last_hidden_state"] = wrong.last_hidden_state.contiguous()
            s = (wrong.last_hidden_state.double() - out.last_hidden_state.double()).abs().sum().item()
            m = maxabs(wrong.last_hidden_state, out.last_hidden_state)
            log(f"    pitfall: sum|right - wrong| of last_hidden_state = {s:.6g} (max {m:.4g}, "
                f"{out.last_hidden_state.numel()} elements)")
            stats.setdefault("pitfall", {})[name] = s

        for k, v in tensors.items():
            if v.is_floating_point():
                assert v.dtype == torch.float32, k
                finite(f"{name}/{c['case']}/{k}", v)
            else:
                assert v.dtype == torch.int64, k

        # float32 vs float64 (same weights, same inputs)
        d_last = maxabs(out.last_hidden_state, out64.last_hidden_state)
        r_last = tol_ratio(out.last_hidden_state, out64.last_hidden_state)
        msg = f"    {c['case']:17s} max|f32-f64| last={d_last:.3g} (tol ratio {r_last:.3f})"
        if has_pooler:
            msg += f" pooler={maxabs(out.pooler_output, out64.pooler_output):.3g}"
        if c["hidden"]:
            msg += " hidden=" + f"{max(maxabs(a, b) for a, b in zip(out.hidden_states, out64.hidden_states)):.3g}"
        log(msg)
        st = stats.setdefault("f32_f64", {}).setdefault(name, {"max": 0.0, "ratio": 0.0})
        st["max"] = max(st["max"], d_last)
        st["ratio"] = max(st["ratio"], r_last)

        if c["case"] == "fully_masked_row":
            check_fully_masked(model, c, out, out64, extra["fully_masked_rows"], stats)

        manifest.append(save_case(name, c, tensors))


def save_case(name, c, tensors, **extra):
    """Write one case's tensors; its manifest entry."""
    rel = os.path.join("goldens", name, c["case"] + ".safetensors")
    save_file(tensors, os.path.join(DATA, rel), metadata={"format": "pt"})
    return dict(
        model=name,
        case=c["case"],
        file=rel,
        model_dir=os.path.join("models", name),
        entry=c["entry"],
        batch=int(tensors["expected.last_hidden_state"].shape[0]),
        seq_len=int(tensors["expected.last_hidden_state"].shape[1]),
        has_mask="attention_mask" in tensors,
        has_token_types="token_type_ids" in tensors,
        has_position_ids="position_ids" in tensors,
        has_hidden_states="expected.hidden_states" in tensors,
        has_pooler="expected.pooler_output" in tensors,
        description=c["description"],
        **extra,
    )


def check_fully_masked(model, c, out, out64, rows, stats):
    mask = c["hf"]["attention_mask"]
    keep = [b for b in range(mask.shape[0]) if b not in rows]
    d_keep = maxabs(out.last_hidden_state[keep], out64.last_hidden_state[keep])
    d_rows = maxabs(out.last_hidden_state[rows], out64.last_hidden_state[rows])
    log(f"    fully_masked_row: max|f32-f64| non-masked rows={d_keep:.3g}, fully masked row={d_rows:.3g}")
    # uniformity of the attention probabilities on the fully masked row (eager)
    att = hf_run(model, c["hf"], output_attentions=True).attentions
    S = mask.shape[1]
    dev = max((a[rows] - 1.0 / S).abs().max().item() for a in att)
    log(f"    fully_masked_row: attention on the masked row: max|p - 1/S| = {dev:.3g} over "
        f"{len(att)} layers")
    assert dev < 1e-6, dev
    # for information: what sdpa does on the same input
    m2 = copy.deepcopy(model)
    try:
        m2.set_attn_implementation("sdpa")
    except Exception:
        m2.config._attn_implementation = "sdpa"
    o2 = hf_run(m2, c["hf"])
    log(f"    fully_masked_row: sdpa vs eager max|d| non-masked rows="
        f"{maxabs(o2.last_hidden_state[keep], out.last_hidden_state[keep]):.3g}, masked row="
        f"{maxabs(o2.last_hidden_state[rows], out.last_hidden_state[rows]):.3g} "
        f"(sdpa finite: {bool(torch.isfinite(o2.last_hidden_state).all())})")
    stats.setdefault("fully_masked_keep", []).append(d_keep)


# --------------------------------------------------------------------------- the family

# A small WordPiece vocabulary for the models the CLI tests tokenize (ember's tokenizer and
# HF's BertTokenizer read the same vocab.txt).
CLI_WORDS = ("the a an is was of to and in on for with it this that movie film good bad great "
             "terrible book city river bank money water paris france capital what where who how "
             "many people live i love hate not very").split()
CLI_VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?", "'", "-"] + CLI_WORDS
             + [chr(c) for c in range(ord("a"), ord("z") + 1)]
             + ["##" + chr(c) for c in range(ord("a"), ord("z") + 1)]
             + [str(d) for d in range(10)] + ["##s", "##ing", "##ed", "##ly"])
V_CLI = 128
assert len(CLI_VOCAB) <= V_CLI, len(CLI_VOCAB)

FAMILY_SPECS = [
    dict(name="bert-seqcls", cls="BertForSequenceClassification", seed=2001, dtype=torch.float32,
         config=dict(hidden_size=36, num_attention_heads=3, num_hidden_layers=2, intermediate_size=52,
                     vocab_size=V_CLI, max_position_embeddings=24, type_vocab_size=2,
                     hidden_act="gelu", id2label={0: "negative", 1: "neutral", 2: "positive"}),
         vocab=True, cli="classify",
         description="BertForSequenceClassification: bert. prefix, pooler + classifier, 3 named "
                     "labels, 3 heads of 12, F32, WordPiece vocab.txt (ember classify)"),
    dict(name="bert-tokcls", cls="BertForTokenClassification", seed=2002, dtype=torch.float16,
         config=dict(hidden_size=28, num_attention_heads=2, num_hidden_layers=2, intermediate_size=44,
                     vocab_size=101, max_position_embeddings=20, type_vocab_size=3,
                     hidden_act="gelu_new", num_labels=5),
         description="BertForTokenClassification: no pooler, classifier on every token, 5 labels, "
                     "2 heads of 14, gelu_new, F16 on disk"),
    dict(name="roberta-seqcls", cls="RobertaForSequenceClassification", seed=2003,
         dtype=torch.float32,
         config=dict(hidden_size=40, num_attention_heads=4, num_hidden_layers=2, intermediate_size=56,
                     vocab_size=97, max_position_embeddings=26, type_vocab_size=1, pad_token_id=1,
                     layer_norm_eps=1e-5, hidden_act="gelu", num_labels=2),
         description="RobertaForSequenceClassification: roberta. prefix, positions from "
                     "padding_idx 1 (S <= 24), one token type, classifier.dense + tanh + out_proj, "
                     "eps 1e-5, F32"),
    dict(name="xlmr-tokcls", cls="XLMRobertaForTokenClassification", seed=2004,
         dtype=torch.bfloat16,
         config=dict(hidden_size=32, num_attention_heads=2, num_hidden_layers=2, intermediate_size=48,
                     vocab_size=83, max_position_embeddings=20, type_vocab_size=1, pad_token_id=3,
                     layer_norm_eps=1e-5, hidden_act="gelu",
                     id2label={0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC", 5: "B-ORG",
                               6: "I-ORG"}),
         description="XLMRobertaForTokenClassification: model_type xlm-roberta, roberta. prefix, "
                     "padding_idx 3 (not RoBERTa's usual 1), 7 NER labels, BF16 on disk"),
    dict(name="distilbert-seqcls", cls="DistilBertForSequenceClassification", seed=2005,
         dtype=torch.float32, sinusoidal=True,
         config=dict(dim=32, n_heads=4, n_layers=2, hidden_dim=44, vocab_size=89,
                     max_position_embeddings=20, activation="gelu", sinusoidal_pos_embds=True,
                     num_labels=2),
         description="DistilBertForSequenceClassification: distilbert. prefix, q_lin/k_lin/... "
                     "names, no token types, sinusoidal_pos_embds with the table left out of the "
                     "checkpoint (HF generates it), pre_classifier + ReLU + classifier, 2 labels "
                     "(HF then writes no id2label: the default)"),
    dict(name="distilbert-tokcls", cls="DistilBertForTokenClassification", seed=2006,
         dtype=torch.float32, vocab=True, cli="classify_tokens",
         config=dict(dim=24, n_heads=3, n_layers=2, hidden_dim=40, vocab_size=V_CLI,
                     max_position_embeddings=28, activation="relu",
                     id2label={0: "O", 1: "B-LOC", 2: "I-LOC", 3: "B-MISC"}),
         description="DistilBertForTokenClassification: learned positions, relu, 4 labels, "
                     "3 heads of 8, WordPiece vocab.txt (ember classify on tokens)"),
    dict(name="electra-seqcls", cls="ElectraForSequenceClassification", seed=2007,
         dtype=torch.float32, vocab=True, cli="rerank",
         config=dict(embedding_size=24, hidden_size=40, num_attention_heads=5, num_hidden_layers=2,
                     intermediate_size=64, vocab_size=V_CLI, max_position_embeddings=32,
                     type_vocab_size=2, hidden_act="gelu_new", num_labels=1),
         description="ElectraForSequenceClassification: electra. prefix, embedding_size 24 -> "
                     "embeddings_project -> hidden 40, classifier.dense + exact GELU (whatever "
                     "hidden_act says: gelu_new here) + out_proj, 1 label (a cross-encoder: "
                     "ember rerank), WordPiece vocab.txt"),
    dict(name="electra-tokcls", cls="ElectraForTokenClassification", seed=2008, dtype=torch.float32,
         drop_id2label=True,
         config=dict(embedding_size=40, hidden_size=24, num_attention_heads=2, num_hidden_layers=2,
                     intermediate_size=36, vocab_size=71, max_position_embeddings=18,
                     type_vocab_size=3, hidden_act="relu", num_labels=3),
         description="ElectraForTokenClassification: embedding_size 40 > hidden 24 (a generator's "
                     "shape), relu, 3 token types, 3 labels given as num_labels (id2label removed)"),
]


def family_base(model):
    return getattr(model, model.base_model_prefix)


def family_encoder(base):
    return base.transformer if hasattr(base, "transformer") else base.encoder


def build_family_model(spec):
    cls = getattr(transformers, spec["cls"])
    cfg = cls.config_class(**spec["config"], attn_implementation="eager")
    out_dir = os.path.join(MODELS, spec["name"])
    os.makedirs(out_dir)
    torch.manual_seed(spec["seed"])
    model = cls(cfg)
    reinit_(model, spec["seed"])
    if spec.get("sinusoidal"):
        from transformers.models.distilbert.modeling_distilbert import create_sinusoidal_embeddings
        with torch.no_grad():
            create_sinusoidal_embeddings(cfg.max_position_embeddings, cfg.dim,
                                         family_base(model).embeddings.position_embeddings.weight)
    model.eval()
    if spec["dtype"] != torch.float32:
        model.to(spec["dtype"])
    model.save_pretrained(out_dir, safe_serialization=True)
    model.to(torch.float32)  # exact: values are the bf16/f16-rounded ones
    path = os.path.join(out_dir, "model.safetensors")
    if spec.get("sinusoidal"):
        with safe_open(path, "pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        dropped = [k for k in tensors if k.endswith("embeddings.position_embeddings.weight")]
        assert len(dropped) == 1, dropped
        del tensors[dropped[0]]
        save_file(tensors, path, metadata=meta)
        log(f"  [{spec['name']}] dropped {dropped[0]} (sinusoidal_pos_embds: HF generates it)")
    cpath = os.path.join(out_dir, "config.json")
    with open(cpath) as fh:
        conf = json.load(fh)
    if "id2label" not in conf:
        log(f"  [{spec['name']}] config.json has no id2label (HF's default: 2 labels)")
    if spec.get("drop_id2label"):
        n = len(conf.pop("id2label"))
        conf.pop("label2id", None)
        conf["num_labels"] = n
        with open(cpath, "w") as fh:
            json.dump(conf, fh, indent=2, sort_keys=True)
            fh.write("\n")
        log(f"  [{spec['name']}] config.json: id2label replaced by num_labels = {n}")
    if spec.get("vocab"):
        with open(os.path.join(out_dir, "vocab.txt"), "w") as fh:
            fh.write("\n".join(CLI_VOCAB) + "\n")
        with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as fh:
            json.dump(dict(do_lower_case=True, model_max_length=cfg.max_position_embeddings,
                           tokenizer_class={"bert": "BertTokenizer",
                                            "distilbert": "DistilBertTokenizer",
                                            "electra": "ElectraTokenizer"}[cfg.model_type]),
                      fh, indent=2, sort_keys=True)
            fh.write("\n")
    log(f"  files in {os.path.relpath(out_dir, ROOT)}: {sorted(os.listdir(out_dir))}")
    with safe_open(path, "pt") as f:
        for k in f.keys():
            sl = f.get_slice(k)
            log(f"    {k:60s} {sl.get_dtype():5s} {list(sl.get_shape())}")
    # HF's own loader reads the checkpoint back to the same weights (and the same config)
    reloaded, info = cls.from_pretrained(out_dir, dtype=torch.float32, attn_implementation="eager",
                                         output_loading_info=True)
    sd, rsd = model.state_dict(), reloaded.state_dict()
    bad = [k for k in sd if k not in rsd or not torch.equal(rsd[k], sd[k])]
    log(f"  HF from_pretrained({spec['cls']}) check: missing={sorted(info['missing_keys'])} "
        f"mismatched_values={bad} unexpected={sorted(info['unexpected_keys'])}")
    assert not bad and not info["unexpected_keys"], (bad, info)
    assert reloaded.config.num_labels == model.config.num_labels
    return model.eval()


def family_cases(name, model):
    """Like make_cases, for a model of the family: the inputs a tokenizer would give (pad ids
    where the mask is 0, since RoBERTa's positions follow the ids), the family's position
    rules and odd lengths."""
    cfg = model.config
    P, V, pad = cfg.max_position_embeddings, cfg.vocab_size, cfg.pad_token_id
    roberta = cfg.model_type in ("roberta", "xlm-roberta")
    types_ok = cfg.model_type != "distilbert"
    max_s = P - pad - 1 if roberta else P
    cases = []

    def ids_of(g, b, s):
        ids = torch.randint(0, V, (b, s), generator=g, dtype=torch.int64)
        ids[ids == pad] = (pad + 1) % V
        return ids

    def types_of(g, b, s):
        return torch.randint(0, cfg.type_vocab_size, (b, s), generator=g) if types_ok else None

    def add(case, hf, description, entry="input_ids", stored=None, hidden=False, extra=None):
        if not types_ok:
            hf.pop("token_type_ids", None)
        cases.append(dict(case=case, entry=entry, hf=hf, stored=dict(hf if stored is None else stored),
                          hidden=hidden, description=description, extra=extra or {}))

    g = gen(name, "basic_ids")
    ids = ids_of(g, 3, 11)
    ids[1, 3] = pad
    ids[2, 0] = pad
    ids[2, 7] = pad
    add("basic_ids", dict(input_ids=ids, token_type_ids=types_of(g, 3, 11)),
        "B=3 S=11 input_ids with pad ids inside rows (RoBERTa: they keep padding_idx as position), "
        "no mask, token types where the family has them; all hidden states", hidden=True)

    g = gen(name, "right_padding")
    ids = ids_of(g, 4, 13)
    mask = right_pad_mask([13, 9, 1, 6], 13)
    ids[mask == 0] = pad
    add("right_padding", dict(input_ids=ids, attention_mask=mask),
        "B=4 S=13 right padding, lengths [13, 9, 1, 6], pad ids in the padding")

    g = gen(name, "holes_mask")
    ids = ids_of(g, 3, 10)
    mask = torch.tensor([[0, 1, 1, 0, 1, 1, 1, 0, 0, 1],
                         [1, 0, 0, 1, 1, 0, 1, 1, 1, 1],
                         [0, 0, 1, 1, 1, 1, 0, 1, 0, 0]], dtype=torch.int64)
    add("holes_mask", dict(input_ids=ids, attention_mask=mask, token_type_ids=types_of(g, 3, 10)),
        "B=3 S=10 masks with holes (non-pad ids under mask 0), rows 0 and 2 with token 0 "
        "masked; token types where the family has them")

    g = gen(name, "batch1_seq1")
    add("batch1_seq1", dict(input_ids=ids_of(g, 1, 1)), "B=1 S=1")

    g = gen(name, "batch1_maxlen")
    add("batch1_maxlen", dict(input_ids=ids_of(g, 1, max_s)),
        f"B=1 S={max_s}: the longest sequence the default positions allow"
        + (f" (max_position_embeddings {P} - padding_idx {pad} - 1)" if roberta else ""))

    g = gen(name, "position_ids")
    S = 9
    ids = ids_of(g, 2, S)
    pos = torch.stack([torch.arange(P - S, P, dtype=torch.int64),
                       torch.randperm(P, generator=g)[:S].to(torch.int64)])
    mask = right_pad_mask([S, S - 2], S)
    add("position_ids", dict(input_ids=ids, attention_mask=mask, position_ids=pos),
        f"B=2 S=9 explicit position_ids (used as given, for RoBERTa too): row 0 = {P - S}..{P - 1}, "
        "row 1 random distinct; row 1 right-padded by 2")

    g = gen(name, "inputs_embeds")
    ids = ids_of(g, 2, 8)
    with torch.no_grad():
        emb = family_base(model).embeddings.word_embeddings(ids)
    emb = (emb + 0.02 * torch.randn(emb.shape, generator=g)).contiguous()
    mask = right_pad_mask([8, 5], 8)
    add("inputs_embeds", dict(inputs_embeds=emb, attention_mask=mask, token_type_ids=types_of(g, 2, 8)),
        "B=2 S=8 inputs_embeds (embedding_size wide) = word_embeddings(ids) + N(0, 0.02); RoBERTa's "
        "positions follow the sequential rule (padding_idx + 1 + s)", entry="inputs_embeds")

    g = gen(name, "embedding_output")
    ids = ids_of(g, 2, 8)
    mask = right_pad_mask([8, 6], 8)
    add("embedding_output", dict(input_ids=ids, attention_mask=mask), "B=2 S=8 embedding_output "
        "= HF hidden_states[0] (the input of layer 0: after ELECTRA's embeddings_project) of an "
        "input_ids + mask run; expected = that run's outputs", entry="embedding_output",
        stored=dict(attention_mask=mask), extra=dict(store_embedding_output=True))
    return cases


def family_run(model, kw, dtype=torch.float32):
    kw = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in kw.items() if v is not None}
    base = family_base(model)
    with torch.no_grad():
        out = model(**kw, output_hidden_states=True, return_dict=True)
        bout = base(**kw, output_hidden_states=True, return_dict=True)
    assert torch.equal(out.hidden_states[-1], bout.last_hidden_state)
    return out, bout


def generate_family(spec, model, stats, manifest):
    name = spec["name"]
    cfg = model.config
    model64 = copy.deepcopy(model).double().eval()
    out_dir = os.path.join(GOLDENS, name)
    os.makedirs(out_dir)
    base = family_base(model)
    has_pooler = getattr(base, "pooler", None) is not None
    head = "sequence" if spec["cls"].endswith("ForSequenceClassification") else "token"
    for c in family_cases(name, model):
        out, bout = family_run(model, c["hf"])
        out64, bout64 = family_run(model64, c["hf"], torch.float64)
        tensors = {k: v.contiguous() for k, v in c["stored"].items() if v is not None}
        if c["extra"].get("store_embedding_output"):
            emb = out.hidden_states[0].contiguous()
            tensors["embedding_output"] = emb
            assert emb.shape[-1] == cfg.hidden_size
            with torch.no_grad():
                enc = family_encoder(base)(
                    emb, attention_mask=eager_extended_mask(c["hf"]["attention_mask"], torch.float32))
            d = maxabs(enc.last_hidden_state, bout.last_hidden_state)
            log(f"    embedding_output check: encoder(hidden_states[0]) vs full run: max|d| = {d:.3g}")
            assert d <= 1e-6
        tensors["expected.last_hidden_state"] = bout.last_hidden_state.contiguous()
        if has_pooler:
            tensors["expected.pooler_output"] = bout.pooler_output.contiguous()
        if c["hidden"]:
            tensors["expected.hidden_states"] = torch.stack(bout.hidden_states).contiguous()
        tensors["expected.logits"] = out.logits.contiguous()
        want = (c["hf"]["input_ids" if "input_ids" in c["hf"] else "inputs_embeds"].shape[0],)
        want += (cfg.num_labels,) if head == "sequence" else (
            c["hf"]["input_ids" if "input_ids" in c["hf"] else "inputs_embeds"].shape[1], cfg.num_labels)
        assert tuple(out.logits.shape) == want, (out.logits.shape, want)
        for k, v in tensors.items():
            if v.is_floating_point():
                assert v.dtype == torch.float32, k
                finite(f"{name}/{c['case']}/{k}", v)

        d_last = maxabs(bout.last_hidden_state, bout64.last_hidden_state)
        r_last = tol_ratio(bout.last_hidden_state, bout64.last_hidden_state)
        d_log = maxabs(out.logits, out64.logits)
        r_log = tol_ratio(out.logits, out64.logits)
        log(f"    {c['case']:17s} max|f32-f64| last={d_last:.3g} (tol ratio {r_last:.3f}) "
            f"logits={d_log:.3g} (tol ratio {r_log:.3f}, max|logit| {out.logits.abs().max():.3g})")
        for key, d, r in (("f32_f64", d_last, r_last), ("logits_f32_f64", d_log, r_log)):
            st = stats.setdefault(key, {}).setdefault(name, {"max": 0.0, "ratio": 0.0})
            st["max"] = max(st["max"], d)
            st["ratio"] = max(st["ratio"], r)

        manifest.append(save_case(name, c, tensors, arch=cfg.model_type, head=head,
                                  has_logits=True, num_labels=cfg.num_labels))


CLI_TEXTS = ["this movie was very good !", "a terrible , terrible book .", "Paris is the capital of France",
             "who lives in the city ?", "", "unknownword zzz 42"]
CLI_QUERY = "what is the capital of france ?"
CLI_DOCS = ["paris is the capital of france .", "the river bank has water .", "i love this film",
            "many people live in paris", "money"]


def make_cli_golden(spec, model):
    """What `ember classify` / `ember rerank` must print: HF's tokenizer + model (and
    sentence-transformers' CrossEncoder for rerank) on a few texts."""
    out_dir = os.path.join(MODELS, spec["name"])
    tok = AutoTokenizer.from_pretrained(out_dir)
    golden = dict(model_dir=os.path.join("models", spec["name"]))
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    golden["labels"] = names
    if spec["cli"] in ("classify", "classify_tokens"):
        enc = tok(CLI_TEXTS, padding=True, truncation=True, return_tensors="pt")
        if model.config.model_type == "distilbert":
            enc.pop("token_type_ids", None)
        with torch.no_grad():
            logits = model(**enc).logits
        golden["texts"] = CLI_TEXTS
        golden["input_ids"] = enc["input_ids"].tolist()
        golden["attention_mask"] = enc["attention_mask"].tolist()
        if spec["cli"] == "classify":
            golden["logits"] = logits.tolist()
            golden["scores"] = torch.softmax(logits, -1).tolist()  # the text-classification pipeline
        else:
            golden["logits"] = [logits[i, : int(enc["attention_mask"][i].sum())].tolist()
                                for i in range(len(CLI_TEXTS))]
            golden["tokens"] = [tok.convert_ids_to_tokens(enc["input_ids"][i, : int(enc["attention_mask"][i].sum())])
                                for i in range(len(CLI_TEXTS))]
        log(f"  cli golden {spec['cli']}: {len(CLI_TEXTS)} texts, ids {golden['input_ids'][0]}")
    else:
        from sentence_transformers import CrossEncoder
        ce = CrossEncoder(out_dir, device="cpu")
        ranked = ce.rank(CLI_QUERY, CLI_DOCS)
        # the same by hand: pairs through the tokenizer, logits, sigmoid (CrossEncoder's default
        # activation for one label)
        enc = tok([CLI_QUERY] * len(CLI_DOCS), CLI_DOCS, padding=True, truncation=True,
                  return_tensors="pt")
        with torch.no_grad():
            manual = torch.sigmoid(model(**enc).logits[:, 0])
        for r in ranked:
            assert abs(r["score"] - manual[r["corpus_id"]].item()) < 1e-6, (r, manual)
        golden.update(query=CLI_QUERY, docs=CLI_DOCS, activation=type(ce.activation_fn).__name__,
                      ranked=[dict(corpus_id=int(r["corpus_id"]), score=float(r["score"]))
                              for r in ranked])
        log(f"  cli golden rerank: CrossEncoder {type(ce.activation_fn).__name__}, {ranked}")
    return golden


# --------------------------------------------------------------------------- main

def main():
    setup_determinism()
    hf_logging.set_verbosity_error()  # our own log reports missing/unexpected keys
    hf_logging.disable_progress_bar()
    log(f"torch {torch.__version__}, numpy {np.__version__}, "
        f"transformers {__import__('transformers').__version__}, "
        f"safetensors {__import__('safetensors').__version__}")
    for d in (MODELS, GOLDENS):
        if os.path.exists(d):
            shutil.rmtree(d)
        os.makedirs(d)

    stats, manifest = {}, []
    for spec in MODEL_SPECS:
        log(f"== model {spec['name']}: {spec['description']}")
        model = build_model(spec)
        generate(spec, model, stats, manifest)
    for entry in manifest:
        entry.update(arch="bert", head="none", has_logits=False)
    cli = {}
    for spec in FAMILY_SPECS:
        log(f"== model {spec['name']}: {spec['description']}")
        model = build_family_model(spec)
        generate_family(spec, model, stats, manifest)
        if spec.get("cli"):
            cli[spec["cli"]] = make_cli_golden(spec, model)
    with open(os.path.join(GOLDENS, "cli.json"), "w") as fh:
        json.dump(cli, fh, indent=2)
        fh.write("\n")

    with open(os.path.join(GOLDENS, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=2)
        fh.write("\n")

    log("== summary")
    for name, st in stats["f32_f64"].items():
        log(f"  {name:17s} max|f32-f64| of last_hidden_state over all cases = {st['max']:.3g} "
            f"(max ratio to ember tolerance {st['ratio']:.3f})")
    log(f"  overall max|f32-f64| = {max(s['max'] for s in stats['f32_f64'].values()):.3g}")
    for name, st in stats.get("logits_f32_f64", {}).items():
        log(f"  {name:17s} max|f32-f64| of logits over all cases = {st['max']:.3g} "
            f"(max ratio to ember tolerance {st['ratio']:.3f})")
    for name, s in stats["pitfall"].items():
        log(f"  pitfall {name:17s} sum|right - wrong| = {s:.6g}")
    total = 0
    for dp, _, fns in os.walk(DATA):
        total += sum(os.path.getsize(os.path.join(dp, f)) for f in fns)
    log(f"  tests/data total size: {total} bytes, {len(manifest)} golden cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
