#!/usr/bin/env python3
"""Compare ember with HuggingFace BertModel on the same GPU, weights and inputs.

For each case of the performance issue's targets table this script
  1. builds a BertModel from a BertConfig (random weights, fixed seed, no download) and
     saves it with save_pretrained (safetensors) into a work folder, once per preset;
  2. draws the input sets (ids and right-padded masks) with a fixed seed and writes them
     to a safetensors file, which `ember_bench --inputs` reads: every peer sees the same
     sets, cycled in the same order;
  3. runs `ember_bench --model DIR --inputs FILE --json ...` as a subprocess on the GPU;
  4. times in this process, with torch.cuda.Event pairs and the stream drained after every
     call (as ember_forward does): HF eager-attention fp32, HF sdpa in the case's dtype and
     torch.compile of that sdpa model; records torch.cuda.max_memory_allocated per peer;
  5. prints one markdown table (times, ember/peer ratios, floor, time/floor, memory, error
     against HF fp32) and the targets, and writes them with the run's details to a file
     (default benchmarks/results/<gpu>-<date>.md).

On a machine without a GPU, `--device cpu --dry-run` runs the same code on a tiny model with
a few iterations (ember on its CPU backend, in f32, when the binary is found) to test the
plumbing; its numbers mean nothing.
"""
import argparse
import datetime
import gc
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

COMMON = dict(vocab_size=30522, max_position_embeddings=512, type_vocab_size=2,
              hidden_act="gelu", layer_norm_eps=1e-12, pad_token_id=0)
PRESETS = {
    "bert-base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12,
                      intermediate_size=3072),
    "bert-large": dict(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16,
                       intermediate_size=4096),
    "minilm": dict(num_hidden_layers=6, hidden_size=384, num_attention_heads=12,
                   intermediate_size=1536),
}
# Dry runs replace every preset with this (and shrink batch and length).
TINY = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=256,
            vocab_size=1000, max_position_embeddings=512)

# The targets table of the issue. name, preset, dtype, batch, seq, lengths.
CASES = [
    ("base-b32-s128", "bert-base", "f16", 32, 128, "full"),
    ("base-b1-s128", "bert-base", "f16", 1, 128, "full"),
    ("base-b32-s512", "bert-base", "f16", 32, 512, "full"),
    ("base-b16-s512-padded", "bert-base", "f16", 16, 512, "full"),
    ("base-b16-s512-uniform", "bert-base", "f16", 16, 512, "uniform:0.2:1.0"),
    ("large-b32-s128", "bert-large", "f16", 32, 128, "full"),
    ("base-b32-s128-bf16", "bert-base", "bf16", 32, 128, "full"),
    ("base-b32-s128-f32", "bert-base", "f32", 32, 128, "full"),
]
# ember_bench options per case. The variable-length case removes padding (the target compares
# it with the same batch padded, every token valid, run without the flag), and passes the
# number of valid tokens as a pipeline whose tokenizer runs on the host can (no read-back).
EMBER_CASE_ARGS = {"base-b16-s512-uniform": ["--skip-masked", "--valid-tokens"]}

# The issue's H100 figures; --ceilings replaces them by what ember_bench measured.
NOMINAL_TFLOPS_16BIT = 800.0
NOMINAL_GBS = 3000.0

TORCH_DTYPE_NAMES = {"f16": "float16", "bf16": "bfloat16", "f32": "float32"}


# ---- floor (the same arithmetic as benchmarks/bench_util.c) -------------------------------

def flops_per_token(cfg, s):
    H, I, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    return L * (8.0 * H * H + 4.0 * H * I + 4.0 * s * H)


def work_count(cfg, lengths, seq, elem, pooler=True):
    """lengths: valid tokens per sequence of one input set. Mirrors bench_work_count()."""
    H, I, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    B = len(lengths)
    w = {
        "flops_padded": B * seq * flops_per_token(cfg, seq),
        "flops_valid": float(sum(n * flops_per_token(cfg, n) for n in lengths)),
        "bytes_weights": (L * (4.0 * H * H + 2.0 * H * I + 9.0 * H + I) + 2.0 * H) * elem,
        "bytes_embed_padded": (B * seq + seq + 1.0) * H * elem,
        "bytes_embed_valid": (float(sum(lengths)) + max(lengths) + 1.0) * H * elem,
        "bytes_io": B * seq * 8.0 + B * seq * H * 4.0 + (B * H * 4.0 if pooler else 0.0),
    }
    if pooler:
        w["flops_padded"] += B * 2.0 * H * H
        w["flops_valid"] += B * 2.0 * H * H
        w["bytes_weights"] += (H * H + H) * elem
    return w


def floor_ms(w, tflops, gbs, valid=True):
    if not tflops or not gbs:
        return None, None
    flops = w["flops_valid"] if valid else w["flops_padded"]
    nbytes = w["bytes_weights"] + w["bytes_io"] + (
        w["bytes_embed_valid"] if valid else w["bytes_embed_padded"])
    t_f, t_b = flops / (tflops * 1e12), nbytes / (gbs * 1e9)
    return max(t_f, t_b) * 1e3, ("compute" if t_f >= t_b else "memory")


# ---- inputs -------------------------------------------------------------------------------

def make_inputs(rng, sets, batch, seq, lengths_spec, vocab, pad_id):
    ids = np.full((sets, batch, seq), pad_id, dtype=np.int64)
    mask = np.zeros((sets, batch, seq), dtype=np.int64)
    for r in range(sets):
        for b in range(batch):
            n = seq
            if lengths_spec != "full":
                _, lo, hi = lengths_spec.split(":")
                n = int(np.ceil(rng.uniform(float(lo), float(hi)) * seq))
                n = min(max(n, 1), seq)
            ids[r, b, :n] = rng.integers(1, vocab, size=n)  # never zeros
            mask[r, b, :n] = 1
    return ids, mask


# ---- helpers ------------------------------------------------------------------------------

def stats(v):
    a = np.asarray(v, dtype=np.float64)
    return {"median": float(np.median(a)), "p10": float(np.percentile(a, 10)),
            "p90": float(np.percentile(a, 90)), "min": float(a.min()), "n": int(a.size)}


def gpu_facts():
    facts = {}
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,clocks.sm,clocks.max.sm,"
             "temperature.gpu,power.draw,power.limit", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
        if out:
            keys = ["name", "driver", "sm_clock", "sm_clock_max", "temp", "power", "power_limit"]
            facts = dict(zip(keys, [x.strip() for x in out[0].split(",")]))
    except (OSError, subprocess.SubprocessError):
        pass
    return facts


def find_bench(explicit):
    if explicit:
        return explicit if os.path.exists(explicit) else None
    for d in ["build-hopper", "build-cuda", "build", "build-cpu", "build-bench-cuda", "build-bench"]:
        p = os.path.join(ROOT, d, "ember_bench")
        if os.path.exists(p):
            return p
    return shutil.which("ember_bench")


def rel_err(out, ref, mask):
    """||out - ref|| / ||ref|| over the valid (mask = 1) tokens."""
    m = mask.astype(bool)
    d = (out.astype(np.float64) - ref.astype(np.float64))[m]
    r = ref.astype(np.float64)[m]
    return float(np.linalg.norm(d) / max(np.linalg.norm(r), 1e-300))


def fmt(x, spec=".3f", none="—"):
    return none if x is None else format(x, spec)


# ---- peers --------------------------------------------------------------------------------

class Timer:
    def __init__(self, torch, device):
        self.torch, self.cuda = torch, device.startswith("cuda")

    def run(self, fn, sets, warmup, iters):
        torch = self.torch
        for i in range(warmup):
            fn(i % sets)
        if self.cuda:
            torch.cuda.synchronize()
            ev0 = torch.cuda.Event(enable_timing=True)
            ev1 = torch.cuda.Event(enable_timing=True)
        ms, wall = [], []
        for i in range(iters):
            r = (warmup + i) % sets
            t0 = time.perf_counter()
            if self.cuda:
                ev0.record()
                fn(r)
                ev1.record()
                ev1.synchronize()
                ms.append(ev0.elapsed_time(ev1))
            else:
                fn(r)
            wall.append((time.perf_counter() - t0) * 1e3)
        return stats(ms if self.cuda else wall), stats(wall)


def run_hf_peer(torch, BertModel, peer, model_dir, ids_t, mask_t, args, device, compile_mode):
    """Load, time and measure one HF peer; returns a result dict and set-0 output (numpy)."""
    kind, dt = peer.split("-")[1], peer.split("-")[2]
    torch_dtype = getattr(torch, TORCH_DTYPE_NAMES[dt])
    attn = "eager" if kind == "eager" else "sdpa"
    try:
        model = BertModel.from_pretrained(model_dir, attn_implementation=attn, dtype=torch_dtype)
    except TypeError:  # transformers < 4.56
        model = BertModel.from_pretrained(model_dir, attn_implementation=attn,
                                          torch_dtype=torch_dtype)
    model = model.to(device).eval()
    fwd = model
    compile_s = None
    if kind == "compile":
        torch._dynamo.reset()
        kw = {} if compile_mode == "default" else {"mode": compile_mode}
        fwd = torch.compile(model, dynamic=False, **kw)
    sets = ids_t.shape[0]

    def call(r):
        return fwd(input_ids=ids_t[r], attention_mask=mask_t[r])

    res = {"peer": peer}
    with torch.inference_mode():
        if kind == "compile":
            t0 = time.perf_counter()
            call(0)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            compile_s = time.perf_counter() - t0
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        timer = Timer(torch, device)
        res["time"], res["wall"] = timer.run(call, sets, args.warmup, args.iters)
        if device.startswith("cuda"):
            res["peak_bytes"] = torch.cuda.max_memory_allocated()
        out0 = call(0).last_hidden_state.float().cpu().numpy()
    res["compile_s"] = compile_s
    del fwd, model
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return res, out0


def run_ember(bench, model_dir, inputs_path, dt, backend, args, work, tag):
    jpath = os.path.join(work, f"{tag}.json")
    opath = os.path.join(work, f"{tag}.out.safetensors")
    cmd = [bench, "--model", model_dir, "--backend", backend, "--dtype", dt,
           "--inputs", inputs_path, "--warmup", str(args.warmup), "--iters", str(args.iters),
           "--seed", str(args.seed), "--json", jpath, "--save-output", opath]
    cmd += EMBER_CASE_ARGS.get(tag, []) + shlex.split(args.ember_args)
    if args.ceilings and backend == "cuda":
        cmd.append("--ceilings")
    p = subprocess.run(cmd, capture_output=True, text=True)
    log = "$ " + " ".join(shlex.quote(c) for c in cmd) + "\n" + p.stdout + p.stderr
    if p.returncode != 0:
        return None, None, log
    with open(jpath) as f:
        js = json.load(f)
    from safetensors.numpy import load_file
    out0 = load_file(opath)["last_hidden_state"]  # [B,S,H] of input set 0
    return js, out0, log


# ---- targets ------------------------------------------------------------------------------

def evaluate_targets(res, dry_run=False):
    def med(case, peer="ember"):
        r = res.get(case, {}).get(peer)
        return r["time"]["median"] if r and r.get("time") else None

    def ratio(a, b):
        return None if a is None or b is None or b == 0 else a / b

    rows = []

    def add(what, value, limit, ok, unit=""):
        verdict = "n/a" if value is None else ("PASS" if ok(value) else "FAIL")
        if dry_run and value is not None:
            verdict = "(dry run)"
        rows.append((what, None if value is None else f"{value:.3f}{unit}", limit, verdict))

    e = med("base-b32-s128")
    add("bert-base B32 S128 f16 median", e, "≤ 1.2 ms", lambda v: v <= 1.2, " ms")
    add("  HF sdpa f16 / ember", ratio(med("base-b32-s128", "hf-sdpa-f16"), e), "≥ 2.5",
        lambda v: v >= 2.5, "×")
    add("  torch.compile f16 / ember", ratio(med("base-b32-s128", "hf-compile-f16"), e), "≥ 1.3",
        lambda v: v >= 1.3, "×")
    add("bert-base B1 S128 f16 median", med("base-b1-s128"), "≤ 0.15 ms", lambda v: v <= 0.15, " ms")
    add("bert-base B32 S512 f16 median", med("base-b32-s512"), "≤ 5.0 ms", lambda v: v <= 5.0, " ms")
    add("B16 S512 uniform[0.2,1] / same batch padded (ember)",
        ratio(med("base-b16-s512-uniform"), med("base-b16-s512-padded")), "≤ 0.65",
        lambda v: v <= 0.65, "×")
    add("bert-large / bert-base, B32 S128 f16 (ember)",
        ratio(med("large-b32-s128"), med("base-b32-s128")), "≤ 3.5", lambda v: v <= 3.5, "×")
    em = res.get("base-b32-s512", {}).get("ember", {}).get("peak_bytes")
    hm = res.get("base-b32-s512", {}).get("hf-sdpa-f16", {}).get("peak_bytes")
    add("peak memory B32 S512: ember / HF sdpa f16 max_memory_allocated", ratio(em, hm), "≤ 0.5",
        lambda v: v <= 0.5, "×")
    add("bf16 / f16, bert-base B32 S128 (ember)",
        ratio(med("base-b32-s128-bf16"), med("base-b32-s128")), "≤ 1.05", lambda v: v <= 1.05, "×")
    f32 = med("base-b32-s128-f32")
    rows.append(("f32 bert-base B32 S128 median (report only)",
                 None if f32 is None else f"{f32:.3f} ms", "—", "report"))
    return rows


# ---- main ---------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", help="path of ember_bench (default: search build*/)")
    ap.add_argument("--cases", default="all",
                    help="comma-separated case names or 'all': " + ", ".join(c[0] for c in CASES))
    ap.add_argument("--peers", default="ember,hf-eager-f32,hf-sdpa,hf-compile",
                    help="subset of ember, hf-eager-f32, hf-sdpa, hf-compile")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--dry-run", action="store_true",
                    help="tiny model, small shapes, few iterations: tests the plumbing only")
    ap.add_argument("--warmup", type=int, default=None, help="default 20 (dry run 1)")
    ap.add_argument("--iters", type=int, default=None, help="default 100 (dry run 3)")
    ap.add_argument("--rotate", type=int, default=4, help="input sets cycled through")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--compile-mode", default=None,
                    choices=["default", "max-autotune-no-cudagraphs", "reduce-overhead", "none"],
                    help="torch.compile mode (default 'default'; dry run on cpu: 'none')")
    ap.add_argument("--compile-cases", default="base-b32-s128",
                    help="cases that time torch.compile ('all', or comma-separated names); "
                         "default: the one case whose target names it (compiling takes a minute "
                         "per case)")
    ap.add_argument("--no-ceilings", dest="ceilings", action="store_false",
                    help="do not pass --ceilings to ember_bench")
    ap.add_argument("--ember-args", default="",
                    help="extra ember_bench options for every case, e.g. '--async' or "
                         "'--no-graphs' (the variable-length case always adds --skip-masked)")
    ap.add_argument("--workdir", help="keep models, inputs and logs here (default: a temp dir)")
    ap.add_argument("--out", help="markdown output (default benchmarks/results/<gpu>-<date>.md; "
                                  "dry run: <workdir or tmp>/ember-compare-dry-run.md)")
    args = ap.parse_args()

    import torch
    import transformers
    from safetensors.numpy import save_file
    from transformers import BertConfig, BertModel
    transformers.logging.set_verbosity_error()
    try:
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    except (ImportError, AttributeError):
        pass

    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("compare.py: no CUDA device visible to torch (use --device cpu --dry-run here)")
    if args.warmup is None:
        args.warmup = 1 if args.dry_run else 20
    if args.iters is None:
        args.iters = 3 if args.dry_run else 100
    compile_mode = args.compile_mode or ("none" if (args.dry_run and device == "cpu") else "default")
    torch.set_float32_matmul_precision("highest")  # fp32 peers: IEEE fp32, no TF32

    wanted = [c[0] for c in CASES] if args.cases == "all" else args.cases.split(",")
    unknown = [w for w in wanted if w not in {c[0] for c in CASES}]
    if unknown:
        sys.exit(f"compare.py: unknown case(s) {unknown}")
    cases = [c for c in CASES if c[0] in wanted]
    peer_kinds = args.peers.split(",")
    if compile_mode == "none" and "hf-compile" in peer_kinds:
        peer_kinds.remove("hf-compile")

    bench = find_bench(args.bench) if "ember" in peer_kinds else None
    ember_backend = "cuda" if device == "cuda" else "cpu"
    work = args.workdir or tempfile.mkdtemp(prefix="ember-compare-")
    os.makedirs(work, exist_ok=True)

    facts = gpu_facts() if device == "cuda" else {}
    gpu_name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    header = [
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- command: `{' '.join(shlex.quote(a) for a in [sys.executable] + sys.argv)}`",
        f"- device: {gpu_name}" + (f", driver {facts.get('driver', '?')}" if facts else ""),
        f"- torch {torch.__version__} (CUDA {torch.version.cuda}), transformers "
        f"{transformers.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}",
        f"- torch.compile (dynamic=False) mode: {compile_mode}, on cases: {args.compile_cases}; "
        "fp32 matmul precision: highest (no TF32)",
        f"- ember_bench: {bench or 'not found / not run'} (backend {ember_backend})",
        f"- warmup {args.warmup}, timed iterations {args.iters}, {args.rotate} rotating input sets, "
        f"seed {args.seed}; every call is timed "
        + ("with CUDA events and the stream drained after it" if device == "cuda"
           else "with the host clock"),
    ]
    if facts:
        header.append(f"- nvidia-smi at start: SM clock {facts.get('sm_clock')} (max "
                      f"{facts.get('sm_clock_max')}), {facts.get('temp')} C, power "
                      f"{facts.get('power')} / {facts.get('power_limit')}")
    if args.dry_run:
        header.insert(0, "- **DRY RUN**: tiny model, small shapes; the numbers mean nothing")
    print("\n".join(header), flush=True)

    res = {}        # case -> peer -> result
    floors = {}     # case -> (floor ms, label)
    logs = []
    models = {}
    for name, preset, dt, B, S, lengths in cases:
        cfg = dict(COMMON, **PRESETS[preset])
        if args.dry_run:
            cfg.update(TINY)
            B, S = min(B, 2), min(S, 32)
        if preset not in models:
            mdir = os.path.join(work, preset + ("-tiny" if args.dry_run else ""))
            if not os.path.exists(os.path.join(mdir, "model.safetensors")):
                torch.manual_seed(args.seed)
                m = BertModel(BertConfig(**cfg))
                with torch.no_grad():  # HF init leaves biases 0 and LayerNorm 1: perturb them
                    for pname, p in m.named_parameters():
                        if pname.endswith("bias"):
                            p.normal_(0.0, 0.02)
                        elif "LayerNorm.weight" in pname:
                            p.normal_(1.0, 0.05)
                m.save_pretrained(mdir)
                del m
            models[preset] = mdir
        mdir = models[preset]

        rng = np.random.default_rng([args.seed, B, S])
        ids, mask = make_inputs(rng, args.rotate, B, S, lengths, cfg["vocab_size"],
                                cfg["pad_token_id"])
        inputs_path = os.path.join(work, f"{name}.inputs.safetensors")
        save_file({"input_ids": ids, "attention_mask": mask}, inputs_path)
        elem = 4 if dt == "f32" else 2
        works = [work_count(cfg, mask[r].sum(axis=1).tolist(), S, elem) for r in range(args.rotate)]
        w = {k: float(np.mean([x[k] for x in works])) for k in works[0]}
        case_res = res.setdefault(name, {})
        print(f"\n== {name}: {preset} {dt} B{B} S{S} lengths {lengths}", flush=True)

        ref0 = None
        outs = {}
        ceil = None
        if "ember" in peer_kinds:
            if bench is None:
                print("  ember: ember_bench not found, skipped")
            else:
                if device == "cuda":
                    torch.cuda.empty_cache()
                e_dt = dt if ember_backend == "cuda" else "f32"  # the CPU backend is f32 only
                js, out0, log = run_ember(bench, mdir, inputs_path, e_dt, ember_backend, args,
                                          work, name)
                logs.append((name, log))
                if js is None:
                    print("  ember: FAILED\n" + log)
                else:
                    mem = js["memory"]
                    case_res["ember"] = {
                        "peer": "ember", "time": js["time_ms"], "wall": js["wall_ms"],
                        "peak_bytes": mem.get("footprint_bytes"),
                        "meminfo_peak": mem.get("meminfo_peak_bytes"), "json": js}
                    outs["ember"] = out0
                    c = js.get("ceilings", {})
                    if c.get("measured"):
                        ceil = (c["gemm_tflops"], c["copy_gbs"])
                    fv = js["floor"]["measured_valid" if ceil else "nominal_valid"]["ms"]
                    mine = floor_ms(w, *(ceil or (NOMINAL_TFLOPS_16BIT if dt != "f32" else None,
                                                  NOMINAL_GBS)))[0]
                    if fv is not None and mine is not None and abs(fv - mine) > 1e-6 * mine:
                        print(f"  warning: ember_bench floor {fv} ms != compare.py floor {mine} ms")
                    print(f"  ember: median {js['time_ms']['median']:.4f} ms", flush=True)
        if ceil:
            fl, bound = floor_ms(w, *ceil)
            floors[name] = (fl, f"measured ({bound})")
        elif device == "cuda" and dt != "f32":
            fl, bound = floor_ms(w, NOMINAL_TFLOPS_16BIT, NOMINAL_GBS)
            floors[name] = (fl, f"nominal ({bound})")
        else:
            floors[name] = (None, "n/a")

        if device == "cuda":
            dev_ids = torch.from_numpy(ids).to(device)
            dev_mask = torch.from_numpy(mask).to(device)
        else:
            dev_ids, dev_mask = torch.from_numpy(ids), torch.from_numpy(mask)
        peers = []
        if "hf-eager-f32" in peer_kinds:
            peers.append("hf-eager-f32")
        if "hf-sdpa" in peer_kinds:
            peers.append(f"hf-sdpa-{dt}")
        if "hf-compile" in peer_kinds and (args.compile_cases == "all"
                                           or name in args.compile_cases.split(",")):
            peers.append(f"hf-compile-{dt}")
        for peer in peers:
            try:
                r, out0 = run_hf_peer(torch, BertModel, peer, mdir, dev_ids, dev_mask, args,
                                      device, compile_mode)
            except Exception as ex:  # one peer failing must not lose the others
                print(f"  {peer}: FAILED: {type(ex).__name__}: {ex}", flush=True)
                case_res[peer] = {"peer": peer, "error": f"{type(ex).__name__}: {ex}"}
                continue
            case_res[peer] = r
            outs[peer] = out0
            if peer == "hf-eager-f32":
                ref0 = out0
            extra = f", compile {r['compile_s']:.1f} s" if r.get("compile_s") else ""
            print(f"  {peer}: median {r['time']['median']:.4f} ms{extra}", flush=True)
        if ref0 is not None:
            for peer, o in outs.items():
                case_res[peer]["rel_err"] = rel_err(o, ref0, mask[0])
        del dev_ids, dev_mask

    # ---- table ----
    lines = ["| case | peer | median ms | p10–p90 ms | ember / peer | floor ms | time / floor "
             "| peak MiB | rel. err vs HF fp32 |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    compile_notes = []
    for name, *_ in cases:
        case_res = res.get(name, {})
        fl, fl_label = floors.get(name, (None, "n/a"))
        e = case_res.get("ember", {}).get("time", {}).get("median")
        for peer, r in case_res.items():
            if "error" in r:
                lines.append(f"| {name} | {peer} | failed: {r['error'][:80]} | | | | | | |")
                continue
            t = r["time"]
            peak = r.get("peak_bytes")
            peak_s = fmt(None if peak is None else peak / 1048576.0, '.1f')
            if r.get("meminfo_peak") is not None:
                peak_s += f" (memGetInfo {r['meminfo_peak'] / 1048576.0:.1f})"
            if r.get("compile_s"):
                compile_notes.append(f"{name}/{peer}: first call (compilation) {r['compile_s']:.1f} s")
            lines.append(
                f"| {name} | {peer} | {t['median']:.4f} | {t['p10']:.4f}–{t['p90']:.4f} | "
                f"{fmt(None if e is None else e / t['median'], '.3f')} | "
                f"{fmt(fl, '.4f')}{'' if fl is None else ' ' + fl_label} | "
                f"{fmt(None if fl is None else t['median'] / fl, '.2f')} | {peak_s} | "
                f"{fmt(r.get('rel_err'), '.2e')} |")
    table = "\n".join(lines)
    targets = evaluate_targets(res, args.dry_run)
    tlines = ["| target | measured | limit | result |", "|---|---:|---:|---|"]
    tlines += [f"| {a} | {b or '—'} | {c} | {d} |" for a, b, c, d in targets]
    ttable = "\n".join(tlines)

    notes = [
        "- time: median of per-call CUDA-event times (stream drained after each call); "
        "ember times come from ember_bench in a subprocess on the same GPU and inputs.",
        "- ember / peer < 1 means ember is faster.",
        "- floor: max(FLOPs / TFLOP/s, bytes / GB/s) on the valid tokens (benchmarks/README.md); "
        "'measured' uses the GEMM and copy ceilings ember_bench measured in the same case.",
        "- peak MiB: ember = weights + workspace (ember_model_memory) + one input set and "
        "outputs; HF = torch.cuda.max_memory_allocated over the timed calls (weights included).",
        "- the 'same batch padded' of the variable-length target is ember on the same B and S "
        "with every token valid (case base-b16-s512-padded); the variable-length case runs "
        "ember with --skip-masked --valid-tokens (padding removal, EMBER_FORWARD_SKIP_MASKED, "
        "with the count of valid tokens given), so its rows of masked tokens are 0 and its "
        "error column covers the valid tokens only.",
    ] + ([f"- every ember run also had: {args.ember_args}"] if args.ember_args else []) + [
        f"- torch.compile {c}" for c in compile_notes]
    doc = ["# ember vs HuggingFace BertModel" + (" (dry run)" if args.dry_run else ""), "",
           *header, "", "## Times", "", table, "", "## Targets", "", ttable, "", "## Notes", "",
           *notes, "", "## ember_bench output", ""]
    for name, log in logs:
        doc += [f"<details><summary>{name}</summary>", "", "```", log.rstrip(), "```", "",
                "</details>", ""]
    text = "\n".join(doc) + "\n"
    print("\n" + table + "\n\n" + ttable)

    out = args.out
    if not out:
        if args.dry_run or device != "cuda":  # never into results/; survives the temp dir
            out = os.path.join(args.workdir or tempfile.gettempdir(), "ember-compare-dry-run.md")
        else:
            slug = re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-")
            stamp = datetime.date.today().isoformat()
            out = os.path.join(HERE, "results", f"{slug}-{stamp}.md")
            if os.path.exists(out):
                out = out[:-3] + datetime.datetime.now().strftime("-%H%M%S") + ".md"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump({"header": header, "results": res, "floors": floors,
                   "targets": targets}, f, indent=1, default=str)
    print(f"\nwrote {out}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
