#!/usr/bin/env python3
"""ember vs HuggingFace BertModel on the same device, weights and inputs (no download).

For each preset this script
  1. builds a BertModel from a BertConfig with random weights (fixed seed), re-initialised
     so that attention is far from uniform (HF's std-0.02 init makes every layer nearly an
     identity), and saves it with save_pretrained (safetensors);
  2. writes an inputs file for `ember forward` (input_ids, a right-padded attention_mask
     with one fully masked sequence, token_type_ids);
  3. runs HF eager attention in float32 (the reference; TF32 off) and in float16 / bfloat16;
  4. runs `ember forward --backend cuda --dtype f32|f16|bf16 --pooler --hidden-states` and
     compares last_hidden_state, pooler_output and hidden_states:
       f32:      |ember - HF32| <= kHfAbs + kHfRel * |HF32| elementwise (tests/tolerances.h)
       f16/bf16: relL2(ember, HF32) <= 2 * relL2(HF in that dtype, HF32)   (FlashAttention's
                 rule: at most twice the error of the reference computed in that precision)
  5. prints one table and exits 1 if any row fails.

`--device cpu` runs HF on the CPU and ember's CPU backend (f32 only; the 16-bit rows are
reported as SKIP) to test the plumbing on a machine without a GPU.
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

PRESETS = {
    # name: BertConfig fields (vocab and positions kept small: the weights are random)
    "base-hd64": dict(hidden_size=768, num_hidden_layers=2, num_attention_heads=12,
                      intermediate_size=3072, hidden_act="gelu"),
    "minilm-hd32": dict(hidden_size=384, num_hidden_layers=3, num_attention_heads=12,
                        intermediate_size=1536, hidden_act="gelu"),
    "odd-hd12-tanh": dict(hidden_size=72, num_hidden_layers=2, num_attention_heads=6,
                          intermediate_size=148, hidden_act="gelu_new", type_vocab_size=3),
    "hd16-relu": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=96, hidden_act="relu", layer_norm_eps=1e-3),
}
COMMON = dict(vocab_size=1000, max_position_embeddings=512, type_vocab_size=2,
              layer_norm_eps=1e-12, pad_token_id=0, hidden_dropout_prob=0.0,
              attention_probs_dropout_prob=0.0)
DTYPES = ["f32", "f16", "bf16"]


def tolerances():
    """kHfAbs / kHfRel from tests/tolerances.h: the one table of tolerances."""
    text = open(os.path.join(ROOT, "tests", "tolerances.h")).read()
    out = {}
    for name in ("kHfAbs", "kHfRel"):
        m = re.search(r"constexpr double %s = ([0-9.eE+-]+);" % name, text)
        if not m:
            sys.exit("hf_compare: %s not found in tests/tolerances.h" % name)
        out[name] = float(m.group(1))
    return out


def build_model(name, seed, workdir, torch, transformers):
    cfg = dict(COMMON)
    cfg.update(PRESETS[name])
    config = transformers.BertConfig(**cfg)
    torch.manual_seed(seed)
    model = transformers.BertModel(config, add_pooling_layer=True)
    model.set_attn_implementation("eager")  # HF eager: the semantics ember reproduces
    # Re-initialise like ember_model_init_random: unit-scale activations through each layer,
    # so attention weights are peaked and every op matters.
    g = torch.Generator().manual_seed(seed)

    def uni(t, center, half):
        t.copy_(center + half * (2 * torch.rand(t.shape, generator=g) - 1))

    with torch.no_grad():
        for mod_name, p in model.named_parameters():
            if "LayerNorm.weight" in mod_name:
                uni(p, 1.0, 0.2)
            elif p.ndim == 1:
                uni(p, 0.0, 0.1)
            elif "word_embeddings" in mod_name:
                uni(p, 0.0, 1.0)
            elif "embeddings" in mod_name:
                uni(p, 0.0, 0.5)
            else:
                uni(p, 0.0, math.sqrt(3.0 / p.shape[1]))
    path = os.path.join(workdir, name)
    model.save_pretrained(path, safe_serialization=True)
    return model.eval(), config, path


def make_inputs(config, seed, batch, seq):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, config.vocab_size, size=(batch, seq), dtype=np.int64)
    mask = np.ones((batch, seq), dtype=np.int64)
    for b in range(batch):
        valid = seq if b == 0 else int(rng.integers(1, seq + 1))
        mask[b, valid:] = 0
    if batch > 2:
        mask[2, :] = 0  # a fully masked sequence: HF eager attends uniformly
    types = rng.integers(0, config.type_vocab_size, size=(batch, seq), dtype=np.int64)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def run_hf(model, inputs, device, dtype, torch):
    import copy
    m = copy.deepcopy(model).to(device=device, dtype=dtype)  # keep the f32 master weights
    t = {k: torch.from_numpy(v).to(device) for k, v in inputs.items()}
    with torch.no_grad():
        o = m(**t, output_hidden_states=True)
    res = {
        "last_hidden_state": o.last_hidden_state.float().cpu().numpy(),
        "pooler_output": o.pooler_output.float().cpu().numpy(),
        "hidden_states": torch.stack(o.hidden_states).float().cpu().numpy(),
    }
    del m
    return res


def run_ember(ember, model_dir, inputs_path, out_path, backend, dtype, log):
    cmd = [ember, "forward", "--model", model_dir, "--inputs", inputs_path, "--output", out_path,
           "--backend", backend, "--dtype", dtype, "--pooler", "--hidden-states"]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    log.write("$ %s\n%s%s(exit %d, %.2fs)\n" % (" ".join(cmd), p.stdout, p.stderr, p.returncode,
                                                time.time() - t0))
    log.flush()
    if p.returncode != 0:
        return None, (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]
    from safetensors.numpy import load_file
    return load_file(out_path), None


def rel_l2(a, e):
    a = a.astype(np.float64)
    e = e.astype(np.float64)
    return float(np.linalg.norm(a - e) / max(np.linalg.norm(e), 1e-30))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ember", default=None, help="path of the ember CLI (default: search build*/)")
    ap.add_argument("--workdir", default=None, help="models, inputs, outputs (default: a temp dir)")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--ember-backend", default=None, choices=["cuda", "cpu"],
                    help="ember's backend (default: the --device)")
    ap.add_argument("--presets", default=",".join(PRESETS), help="comma list of " + ",".join(PRESETS))
    ap.add_argument("--dtypes", default=",".join(DTYPES))
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--seq", type=int, default=37)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--log", default=None, help="full log (default: WORKDIR/hf_compare.log)")
    ap.add_argument("--json", default=None, help="also write the rows as JSON")
    a = ap.parse_args()

    import tempfile
    import torch
    import transformers
    from safetensors.numpy import save_file

    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("hf_compare: torch sees no CUDA device (use --device cpu to test the plumbing)")
    torch.backends.cuda.matmul.allow_tf32 = False  # the f32 reference is true fp32
    torch.backends.cudnn.allow_tf32 = False

    ember = a.ember
    if not ember:
        for d in ("build-hopper", "build-gpucheck", "build-cuda", "build", "build-cpu"):
            c = os.path.join(ROOT, d, "ember")
            if os.access(c, os.X_OK):
                ember = c
                break
    if not ember or not os.access(ember, os.X_OK):
        sys.exit("hf_compare: ember CLI not found (build it, or pass --ember)")
    workdir = a.workdir or tempfile.mkdtemp(prefix="ember-hf-")
    os.makedirs(workdir, exist_ok=True)
    log = open(a.log or os.path.join(workdir, "hf_compare.log"), "w")
    tol = tolerances()
    backend = a.ember_backend or a.device
    gpu = torch.cuda.get_device_name(0) if a.device == "cuda" else "cpu"
    log.write("hf_compare: ember %s, torch %s, transformers %s, device %s\n" %
              (ember, torch.__version__, transformers.__version__, gpu))

    rows = []
    torch_dt = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
    for name in [p for p in a.presets.split(",") if p]:
        model, config, model_dir = build_model(name, a.seed, workdir, torch, transformers)
        inputs = make_inputs(config, a.seed, a.batch, a.seq)
        in_path = os.path.join(workdir, name + "-inputs.safetensors")
        save_file({k: v.astype(np.int32) for k, v in inputs.items()}, in_path)
        ref = run_hf(model, inputs, a.device, torch.float32, torch)
        for dt in [d for d in a.dtypes.split(",") if d]:
            if backend == "cpu" and dt != "f32":
                rows.append(dict(preset=name, dtype=dt, output="*", status="SKIP",
                                 note="ember's CPU backend is f32 only"))
                continue
            hf_lp = None if dt == "f32" else run_hf(model, inputs, a.device, torch_dt[dt], torch)
            out, err = run_ember(ember, model_dir, in_path,
                                 os.path.join(workdir, "%s-%s-out.safetensors" % (name, dt)),
                                 backend, dt, log)
            if out is None:
                rows.append(dict(preset=name, dtype=dt, output="*", status="FAIL", note=err))
                continue
            for key in ("last_hidden_state", "pooler_output", "hidden_states"):
                got, want = out[key], ref[key]
                if got.shape != want.shape:
                    rows.append(dict(preset=name, dtype=dt, output=key, status="FAIL",
                                     note="shape %s != HF %s" % (got.shape, want.shape)))
                    continue
                nan = int(np.isnan(got).sum())
                diff = np.abs(got.astype(np.float64) - want)
                err_l2 = rel_l2(got, want)
                row = dict(preset=name, dtype=dt, output=key, max_abs=float(diff.max()),
                           rel_l2=err_l2, nan=nan)
                if dt == "f32":
                    lim = tol["kHfAbs"] + tol["kHfRel"] * np.abs(want)
                    worst = float((diff / lim).max())
                    row.update(limit="%.0e+%.0e|HF|" % (tol["kHfAbs"], tol["kHfRel"]),
                               ratio=worst, status="PASS" if nan == 0 and worst <= 1 else "FAIL")
                else:
                    hf_err = rel_l2(hf_lp[key], want)
                    limit = 2 * hf_err
                    row.update(hf_rel_l2=hf_err, limit="%.2e" % limit, ratio=err_l2 / limit,
                               status="PASS" if nan == 0 and err_l2 <= limit else "FAIL")
                rows.append(row)
                log.write(json.dumps(row) + "\n")

    hdr = "| preset | dtype | output | max abs | rel L2 | HF-in-dtype rel L2 | limit | ratio | result |"
    lines = [hdr, "|" + "---|" * 9]
    for r in rows:
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["preset"], r["dtype"], r["output"],
            "%.2e" % r["max_abs"] if "max_abs" in r else "",
            "%.2e" % r["rel_l2"] if "rel_l2" in r else "",
            "%.2e" % r["hf_rel_l2"] if "hf_rel_l2" in r else "",
            r.get("limit", ""), "%.2f" % r["ratio"] if "ratio" in r else "",
            r["status"] + (" (%s)" % r["note"] if "note" in r else "")))
    table = "\n".join(lines)
    log.write(table + "\n")
    log.close()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(device=gpu, ember=ember, rows=rows), f, indent=1)
    print("ember vs HF BertModel on %s (ratio = error / limit; f16/bf16 limit = 2x HF's own "
          "error in that dtype)" % gpu)
    print(table)
    failed = [r for r in rows if r["status"] == "FAIL"]
    print("hf_compare: %d rows, %d failed; log in %s" % (len(rows), len(failed), log.name))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
