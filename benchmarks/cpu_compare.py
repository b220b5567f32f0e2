#!/usr/bin/env python3
"""ember's CPU backends against PyTorch on the same machine, in one process, in this order:

  1. ember fast (EMBER_BACKEND_CPU)       `ember embed` and `ember_bench`, subprocesses
  2. ember reference (EMBER_BACKEND_REFERENCE)   the same two
  3. HF BertModel, eager attention, fp32, torch threads = cores (or --threads)
  4. sentence-transformers (all-MiniLM-L6-v2), torch threads = cores (or --threads)

Two workloads (issue 14):
  embed  all-MiniLM-L6-v2 on N sentences of 20-40 words (default 1000): sentences/s of the
         whole `ember embed` command (model load, tokenizer, forward, pooling, writing the .npy:
         the load is counted against ember) vs sentence-transformers' encode() on a loaded model.
  base   a BERT-base-shaped forward (L12 H768 I3072, random weights), batch 8 x 128 tokens:
         ember_bench's median vs HF eager's median (seconds per forward).

It prints one table with the ratios (ember fast over each peer; > 1 means ember is faster),
the load average before and after, and the OpenBLAS kernels in use, and writes them to
benchmarks/results/cpu-<host>-<date>.md. Only numbers this run measured are printed.

OpenBLAS chooses its kernels for the CPU at load time unless OPENBLAS_CORETYPE says otherwise.
When the environment sets it, ember fast runs twice: as the environment says, and with the
variable removed (OpenBLAS's own choice, what a plain Debian machine gets).

Needs: a build with ember and ember_bench (cmake --preset default; --build DIR), the checkpoint
in .pydeps/all-MiniLM-L6-v2 (tools/fetch-minilm.sh), and torch, transformers and
sentence-transformers (pip install -r tools/requirements-st.txt into a local venv; never CI).

    python benchmarks/cpu_compare.py [--build build] [--sentences 1000] [--iters 5]
"""
import argparse
import ctypes
import datetime
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2,
                 hidden_act="gelu", layer_norm_eps=1e-12)


def load_average():
    return "%.2f %.2f %.2f" % os.getloadavg()


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def openblas_core(env):
    """The kernels OpenBLAS picks under `env` (asked in a child process: the choice is made
    when the library loads)."""
    code = ("import ctypes; l = ctypes.CDLL('libopenblas.so.0'); "
            "l.openblas_get_corename.restype = ctypes.c_char_p; "
            "l.openblas_get_config.restype = ctypes.c_char_p; "
            "print(l.openblas_get_corename().decode(), '|', l.openblas_get_config().decode())")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else "unknown (%s)" % r.stderr.strip()[-80:]


def make_sentences(vocab_path, n, seed):
    """n sentences of 20-40 words drawn from the model's vocabulary (whole alphabetic words)."""
    words = []
    with open(vocab_path, encoding="utf-8") as f:
        for line in f:
            w = line.strip()
            if w.isalpha() and w.isascii() and 2 <= len(w) <= 12:
                words.append(w)
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(20, 40)
        s = " ".join(rng.choice(words) for _ in range(k))
        out.append(s[0].upper() + s[1:] + ".")
    return out


def run_embed(cli, model, sentences, backend, env, out_npy):
    """Wall time of the whole `ember embed` command; returns (seconds, embeddings)."""
    text = "\n".join(sentences) + "\n"
    t0 = time.perf_counter()
    r = subprocess.run([cli, "embed", "--model", model, "--backend", backend, "--format", "npy",
                        "--output", out_npy], input=text, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit("ember embed failed: %s" % r.stderr)
    return dt, np.load(out_npy)


def run_bench(bench, backend, iters, warmup, env, json_path):
    """Median seconds per forward of ember_bench --preset bert-base, batch 8 x 128."""
    cmd = [bench, "--preset", "bert-base", "--backend", backend, "--batch", "8", "--seq", "128",
           "--warmup", str(warmup), "--iters", str(iters), "--pooler", "off", "--json", json_path]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("ember_bench failed: %s\n%s" % (" ".join(cmd), r.stderr))
    with open(json_path) as f:
        j = json.load(f)
    return j["time_ms"]["median"] / 1e3


def hf_eager_base(iters, warmup, threads):
    import torch
    from transformers import BertConfig, BertModel
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = BertConfig(**BERT_BASE, attn_implementation="eager")
    model = BertModel(cfg, add_pooling_layer=False).eval().float()
    assert model.config._attn_implementation == "eager", model.config._attn_implementation
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 30000, (8, 128), generator=g)
    mask = torch.ones_like(ids)
    times = []
    with torch.inference_mode():
        for i in range(warmup + iters):
            t0 = time.perf_counter()
            model(input_ids=ids, attention_mask=mask)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def st_embed(model_dir, sentences, threads):
    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(threads)
    st = SentenceTransformer(model_dir, device="cpu")
    st.encode(sentences[:64], batch_size=32)  # warm-up
    t0 = time.perf_counter()
    emb = st.encode(sentences, batch_size=32, convert_to_numpy=True)
    return time.perf_counter() - t0, emb


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="build folder with ember and ember_bench (default build/)")
    ap.add_argument("--model", default=os.path.join(ROOT, ".pydeps", "all-MiniLM-L6-v2"))
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--iters", type=int, default=5, help="timed B8/S128 forwards (fast, HF)")
    ap.add_argument("--ref-iters", type=int, default=1, help="timed B8/S128 forwards (reference)")
    ap.add_argument("--ref-sentences", type=int, default=200,
                    help="sentences the reference embeds (its rate is measured on the first N)")
    ap.add_argument("--skip-reference", action="store_true", help="leave out ember reference")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--threads", type=int, default=0,
                    help="threads for every peer (torch.set_num_threads; OMP_NUM_THREADS and "
                    "OPENBLAS_NUM_THREADS for ember); default: the cores")
    ap.add_argument("--out", default=None, help="results file (default benchmarks/results/"
                    "cpu-<host>-<date>.md)")
    a = ap.parse_args()

    cli = os.path.join(a.build, "ember")
    bench = os.path.join(a.build, "ember_bench")
    for p in (cli, bench):
        if not os.access(p, os.X_OK):
            sys.exit("%s not found: build first (cmake --preset default && cmake --build "
                     "--preset default)" % p)
    if not os.path.exists(os.path.join(a.model, "model.safetensors")):
        sys.exit("%s not found: run tools/fetch-minilm.sh" % a.model)
    threads = a.threads if a.threads > 0 else os.cpu_count()
    sentences = make_sentences(os.path.join(a.model, "vocab.txt"), a.sentences, a.seed)

    env = dict(os.environ)
    if a.threads > 0:
        env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = str(a.threads)
    variants = [("ember fast", env)]
    if "OPENBLAS_CORETYPE" in env:
        own = {k: v for k, v in env.items() if k != "OPENBLAS_CORETYPE"}
        variants = [("ember fast, OPENBLAS_CORETYPE=%s (environment)" % env["OPENBLAS_CORETYPE"],
                     env), ("ember fast, OpenBLAS's own kernel choice", own)]

    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    say("# ember CPU backends vs PyTorch, %s" % datetime.datetime.now().strftime("%Y-%m-%d %H:%M"))
    say()
    say("- command: %s" % " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]))
    say("- machine: %s, %s, %d cores (os.cpu_count); every peer on %d thread(s)" %
        (socket.gethostname(), cpu_name(), os.cpu_count(), threads))
    say("- load average before: %s" % load_average())
    if os.getloadavg()[0] > os.cpu_count():
        say("- NOTE: the machine is loaded (1-minute load average above its %d cores): every "
            "time below includes waiting for a core, and thread pools that spin suffer most"
            % os.cpu_count())
    for name, e in variants:
        say("- %s: OpenBLAS %s" % (name, openblas_core(e)))
    import torch
    import transformers
    import sentence_transformers
    say("- torch %s (threads set to %d), transformers %s, sentence-transformers %s" %
        (torch.__version__, threads, transformers.__version__, sentence_transformers.__version__))
    say("- embed: %d sentences of 20-40 words (seed %d), all-MiniLM-L6-v2, batch 32, mean pooling"
        " + normalize" % (len(sentences), a.seed))
    say("- base: BERT-base shape, random weights, batch 8 x 128 tokens, no pooler; median of %d "
        "(fast, HF) / %d (reference) timed forwards after one warm-up" % (a.iters, a.ref_iters))
    say()

    rows = []  # (workload, who, value, unit)
    tmp = tempfile.mkdtemp(prefix="ember_cpu_compare_")
    npy = os.path.join(tmp, "emb.npy")
    js = os.path.join(tmp, "bench.json")
    fast_emb = None
    # 1. ember fast
    for name, e in variants:
        dt, emb = run_embed(cli, a.model, sentences, "cpu", e, npy)
        fast_emb = emb if fast_emb is None else fast_emb
        rows.append(("embed", name, len(sentences) / dt, "sentences/s"))
        print("  %s embed: %.2f s" % (name, dt), flush=True)
        t = run_bench(bench, "cpu", a.iters, 1, e, js)
        rows.append(("base", name, t, "s/forward"))
        print("  %s base: %.3f s" % (name, t), flush=True)
    # 2. ember reference
    if not a.skip_reference:
        ref_sentences = sentences[:a.ref_sentences]
        dt, _ = run_embed(cli, a.model, ref_sentences, "reference", env, npy)
        rows.append(("embed", "ember reference (first %d sentences)" % len(ref_sentences),
                     len(ref_sentences) / dt, "sentences/s"))
        print("  reference embed: %.2f s" % dt, flush=True)
        t = run_bench(bench, "reference", a.ref_iters, 0, env, js)
        rows.append(("base", "ember reference", t, "s/forward"))
        print("  reference base: %.3f s" % t, flush=True)
    # 3. HF eager
    t = hf_eager_base(a.iters, 1, threads)
    rows.append(("base", "HF BertModel eager fp32", t, "s/forward"))
    print("  HF eager base: %.3f s" % t, flush=True)
    # 4. sentence-transformers
    dt, st_emb = st_embed(a.model, sentences, threads)
    rows.append(("embed", "sentence-transformers", len(sentences) / dt, "sentences/s"))
    print("  sentence-transformers embed: %.2f s" % dt, flush=True)

    cos = np.sum(fast_emb * st_emb, axis=1) / (np.linalg.norm(fast_emb, axis=1) *
                                                np.linalg.norm(st_emb, axis=1))
    say("| workload | who | result | %s is |" % variants[-1][0])
    say("|---|---|---:|---:|")
    best = {}
    for w, who, v, unit in rows:
        if who == variants[-1][0]:
            best[w] = v
    for w, who, v, unit in rows:
        faster = (v / best[w]) if unit == "s/forward" else (best[w] / v)
        fmt = "%.1f %s" % (v, unit) if unit == "sentences/s" else "%.3f %s" % (v, unit)
        say("| %s | %s | %s | %s |" % (w, who, fmt, "-" if who == variants[-1][0]
                                           else "%.2fx as fast" % faster))
    say()
    if len(variants) > 1:
        for w in ("embed", "base"):
            env_v = [v for ww, who, v, _ in rows if ww == w and who == variants[0][0]][0]
            peer = "sentence-transformers" if w == "embed" else "HF BertModel eager fp32"
            pv = [v for ww, who, v, _ in rows if ww == w and who == peer][0]
            r = env_v / pv if w == "embed" else pv / env_v
            say("- %s with the environment's OPENBLAS_CORETYPE: %.2fx %s" % (w, r, peer))
    say("- embed, ember fast vs sentence-transformers embeddings: min cosine %.7f over %d "
        "sentences" % (float(cos.min()), len(cos)))
    say("- load average after: %s" % load_average())

    out = a.out or os.path.join(HERE, "results", "cpu-%s-%s.md" % (
        socket.gethostname(), datetime.datetime.now().strftime("%Y%m%d-%H%M")))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("written to %s" % out)


if __name__ == "__main__":
    main()
