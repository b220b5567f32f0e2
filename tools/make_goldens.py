#!/usr/bin/env python3
"""Generate ember's golden test data: small random BERT checkpoints and the
outputs HuggingFace `BertModel` gives for them.

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
from transformers import BertConfig, BertForMaskedLM, BertModel
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
            if "LayerNorm" in name and name.endswith(".weight"):
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

        rel = os.path.join("goldens", name, c["case"] + ".safetensors")
        save_file(tensors, os.path.join(DATA, rel), metadata={"format": "pt"})
        manifest.append(dict(
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
        ))


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

    with open(os.path.join(GOLDENS, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=2)
        fh.write("\n")

    log("== summary")
    for name, st in stats["f32_f64"].items():
        log(f"  {name:17s} max|f32-f64| of last_hidden_state over all cases = {st['max']:.3g} "
            f"(max ratio to ember tolerance {st['ratio']:.3f})")
    log(f"  overall max|f32-f64| = {max(s['max'] for s in stats['f32_f64'].values()):.3g}")
    for name, s in stats["pitfall"].items():
        log(f"  pitfall {name:17s} sum|right - wrong| = {s:.6g}")
    total = 0
    for dp, _, fns in os.walk(DATA):
        total += sum(os.path.getsize(os.path.join(dp, f)) for f in fns)
    log(f"  tests/data total size: {total} bytes, {len(manifest)} golden cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
